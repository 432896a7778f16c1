"""The relational schema, in SQLAlchemy Core. Alembic migrations in ``migrations/`` create it.

Every table carries ``tenant_id``. Times are epoch seconds (double precision) so that SQLite and
PostgreSQL compare them the same way; JSON documents are stored as text, serialised once.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("source_name", sa.String(512), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("deployed_at", sa.Float, nullable=False),
    sa.Column("deployed_by", sa.String(128), nullable=False),
    sa.Index(None, "tenant_id", "name", "digest"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("journey_name", sa.String(128), nullable=False),
    sa.Column("journey_version", sa.Integer, nullable=False),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("inbox_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("wake_at", sa.Float),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_token", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("idempotency_key", sa.String(256)),
    sa.Column("request_digest", sa.String(80), nullable=False),
    sa.Column("parent_run_id", sa.String(64)),
    sa.Column("parent_token", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("traceparent", sa.String(64)),
    sa.UniqueConstraint("tenant_id", "idempotency_key"),
    sa.Index(None, "status", "wake_at"),
    sa.Index(None, "tenant_id", "journey_name", "status"),
    sa.Index(None, "tenant_id", "created_at"),
)

transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("block", sa.String(256)),
    sa.Column("visit", sa.Integer),
    sa.Column("attempt", sa.Integer),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("worker", sa.String(128)),
    sa.Column("lease_token", sa.BigInteger),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("timer_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("fire_at", sa.Float, nullable=False),
    sa.Index(None, "run_id"),
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("signal_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("correlation_key", sa.String(256)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("consumed_seq", sa.Integer),
    sa.Column("consumed_at", sa.Float),
    sa.Index(None, "run_id", "consumed_seq"),
    sa.Index(None, "tenant_id", "name", "correlation_key"),
)

waits = sa.Table(
    "waits",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("correlation_key", sa.String(256)),
    sa.Index(None, "tenant_id", "name", "correlation_key"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("run_seq", sa.Integer),
    sa.Column("type", sa.String(96), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("dispatched_at", sa.Float),
    sa.Column("position", sa.Integer, nullable=False, server_default="0"),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("traceparent", sa.String(64)),
    sa.Index(None, "dispatched_at", "created_at"),
    sa.Index(None, "tenant_id", "created_at"),
)

event_deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("sink", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index(None, "sink", "status"),
)

event_sinks = sa.Table(
    "event_sinks",
    metadata,
    sa.Column("sink", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
)

inbound_events = sa.Table(
    "inbound_events",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(256), primary_key=True),
    sa.Column("event_id", sa.String(256), primary_key=True),
    sa.Column("type", sa.String(256), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "received_at"),
)

consent_grants = sa.Table(
    "consent_grants",
    metadata,
    sa.Column("grant_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(128), nullable=False),
    sa.Column("purpose", sa.String(128), nullable=False),
    sa.Column("categories", sa.Text, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("notice_version", sa.String(64), nullable=False),
    sa.Column("granted_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("withdrawn_at", sa.Float),
    sa.Column("receipt", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "subject_id", "purpose"),
)

consent_events = sa.Table(
    "consent_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("grant_id", sa.String(64)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index(None, "tenant_id", "subject_id", "at"),
)

lawful_bases = sa.Table(
    "lawful_bases",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("purpose", sa.String(128), primary_key=True),
    sa.Column("basis", sa.String(32), nullable=False),
    sa.Column("categories", sa.Text),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

policy_bundles = sa.Table(
    "policy_bundles",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("policies", sa.Text, nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("source_name", sa.String(512), nullable=False),
    sa.Column("deployed_at", sa.Float, nullable=False),
    sa.Column("deployed_by", sa.String(128), nullable=False),
    sa.Index(None, "tenant_id", "digest"),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

flag_changes = sa.Table(
    "flag_changes",
    metadata,
    sa.Column("change_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("previous", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Index(None, "tenant_id", "key"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("block", sa.String(256)),
    sa.Column("visit", sa.Integer),
    sa.Column("attempt", sa.Integer),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("capability", sa.String(128), nullable=False),
    sa.Column("purpose", sa.String(128)),
    sa.Column("outcome", sa.String(24), nullable=False),
    sa.Column("reason", sa.String(48)),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Index(None, "run_id"),
    sa.Index(None, "tenant_id", "subject_id", "at"),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("entry", sa.LargeBinary, nullable=False),
    sa.Index(None, "tenant_id", "run_id"),
    sa.Index(None, "tenant_id", "subject_id"),
    sa.Index(None, "tenant_id", "at"),
)

ledger_nodes = sa.Table(
    "ledger_nodes",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
)

ledger_state = sa.Table(
    "ledger_state",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("frontier", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

ledger_heads = sa.Table(
    "ledger_heads",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("timestamp", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("log_id", sa.String(255), nullable=False),
    sa.Column("root_hash", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
)

subject_keys = sa.Table(
    "subject_keys",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary),
    sa.Column("master_key_id", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("erased_at", sa.Float),
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("placed_by", sa.String(128), nullable=False),
    sa.Column("placed_at", sa.Float, nullable=False),
)

review_queues = sa.Table(
    "review_queues",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("skills", sa.Text, nullable=False),
    sa.Column("sla_seconds", sa.Float),
    sa.Column("escalate_to", sa.String(128)),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

staff = sa.Table(
    "staff",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("person_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("skills", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("block", sa.String(256), nullable=False),
    sa.Column("visit", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("makers", sa.Text, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("due_at", sa.Float),
    sa.Column("escalations", sa.Integer, nullable=False),
    sa.Column("packet", sa.Text, nullable=False),
    sa.Column("packet_version", sa.Integer, nullable=False),
    sa.Column("source", sa.String(300), nullable=False),
    sa.Column("decision", sa.Text),
    sa.Column("decision_digest", sa.String(80)),
    sa.Column("outcome", sa.String(16)),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("decided_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "status", "queue", "priority"),
    sa.Index(None, "tenant_id", "run_id"),
    sa.Index(None, "status", "due_at"),
    sa.Index(None, "tenant_id", "source", "outcome"),
)

confirmations = sa.Table(
    "confirmations",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("confirmation_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("block", sa.String(256), nullable=False),
    sa.Column("visit", sa.Integer, nullable=False),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("channels", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("answered_at", sa.Float),
    sa.Column("channel", sa.String(32)),
    sa.Index(None, "tenant_id", "run_id"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("letter_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("block", sa.String(256), nullable=False),
    sa.Column("visit", sa.Integer, nullable=False),
    sa.Column("capability", sa.String(128), nullable=False),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("resolved_by", sa.String(128)),
    sa.Column("note", sa.Text),
    sa.Index(None, "tenant_id", "status", "created_at"),
    sa.Index(None, "tenant_id", "run_id"),
)

call_intents = sa.Table(
    "call_intents",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(400), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("capability", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "run_id"),
)

agent_versions = sa.Table(
    "agent_versions",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("source_name", sa.Text, nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("deployed_at", sa.Float, nullable=False),
    sa.Column("deployed_by", sa.String(128), nullable=False),
)

agent_models = sa.Table(
    "agent_models",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(80), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

agent_cache = sa.Table(
    "agent_cache",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("cache_key", sa.String(80), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "expires_at"),
    sa.Index(None, "tenant_id", "subject_id"),
)

agent_rollouts = sa.Table(
    "agent_rollouts",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("primary_version", sa.Integer, nullable=False),
    sa.Column("candidate_version", sa.Integer, nullable=False),
    sa.Column("percent", sa.Float, nullable=False),
    sa.Column("margin", sa.Float, nullable=False),
    sa.Column("min_samples", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "agent", "status"),
)

agent_outcomes = sa.Table(
    "agent_outcomes",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("outcome_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("block", sa.String(256), nullable=False),
    sa.Column("visit", sa.Integer, nullable=False),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("rollout_id", sa.String(64)),
    sa.Column("band", sa.String(16), nullable=False),
    sa.Column("valid", sa.Boolean, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("output_digest", sa.String(80), nullable=False),
    sa.Column("agrees", sa.Boolean),
    sa.Column("review_outcome", sa.String(16)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "agent", "version"),
    sa.Index(None, "tenant_id", "rollout_id"),
    sa.Index(None, "tenant_id", "run_id"),
)

identity_subjects = sa.Table(
    "identity_subjects",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("region", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("merged_into", sa.String(128)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

identity_records = sa.Table(
    "identity_records",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("subject_id", sa.String(128), nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("link", sa.String(16), nullable=False),
    sa.Column("probability", sa.Float),
    sa.Column("ingested_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "subject_id"),
)

identity_keys = sa.Table(
    "identity_keys",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Index(None, "tenant_id", "source", "record_id"),
)

identity_candidates = sa.Table(
    "identity_candidates",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("candidate_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(128), nullable=False),
    sa.Column("subject_id", sa.String(128), nullable=False),
    sa.Column("other_subject_id", sa.String(128), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("reason", sa.Text),
    sa.Index(None, "tenant_id", "status"),
    sa.Index(None, "tenant_id", "subject_id"),
    sa.Index(None, "tenant_id", "other_subject_id"),
)

identity_merges = sa.Table(
    "identity_merges",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("merge_id", sa.String(64), primary_key=True),
    sa.Column("into_subject", sa.String(128), nullable=False),
    sa.Column("from_subject", sa.String(128), nullable=False),
    sa.Column("records", sa.Text, nullable=False),
    sa.Column("candidate_id", sa.String(64)),
    sa.Column("merged_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("merged_at", sa.Float, nullable=False),
    sa.Column("undone_by", sa.String(128)),
    sa.Column("undone_at", sa.Float),
    sa.Index(None, "tenant_id", "into_subject"),
    sa.Index(None, "tenant_id", "from_subject"),
)

identity_models = sa.Table(
    "identity_models",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

context_items = sa.Table(
    "context_items",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(128)),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("value", sa.Text),
    sa.Column("category", sa.String(128), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(128)),
    sa.Column("region", sa.String(64)),
    sa.Column("purpose", sa.String(128)),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("anonymised_at", sa.Float),
    sa.Index(None, "tenant_id", "subject_id", "kind"),
    sa.Index(None, "tenant_id", "category", "recorded_at"),
)

retention_rules = sa.Table(
    "retention_rules",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("category", sa.String(128), primary_key=True),
    sa.Column("purpose", sa.String(128), primary_key=True),
    sa.Column("period_seconds", sa.Float, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

api_requests = sa.Table(
    "api_requests",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(256), primary_key=True),
    sa.Column("idempotency_key", sa.String(256), primary_key=True),
    sa.Column("operation", sa.String(128), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("response_status", sa.Integer),
    sa.Column("response_body", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("completed_at", sa.Float),
)

access_decisions = sa.Table(
    "access_decisions",
    metadata,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(256), nullable=False),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("action", sa.String(128), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("allowed", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("policies", sa.Text, nullable=False),
    sa.Column("bundle_digest", sa.String(80), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "at"),
)

portal_challenges = sa.Table(
    "portal_challenges",
    metadata,
    sa.Column("challenge_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("nonce_hash", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float),
    sa.Index(None, "tenant_id", "expires_at"),
)

# Confirmation notices: a proposal sent to the subject by e-mail or SMS with a signed link,
# once per confirmation and channel, with what the gateway decided about the message.
portal_notices = sa.Table(
    "portal_notices",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("confirmation_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64)),
    sa.Column("decision_id", sa.String(64)),
    sa.Column("at", sa.Float, nullable=False),
)

# Support conversations: each is one run of the chat journey; its messages (the customer's and
# Accord's) are sealed under the subject's data key, so erasing the subject shreds them.
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("conversation_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(128), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "subject_id"),
)

conversation_messages = sa.Table(
    "conversation_messages",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("conversation_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("author", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("sealed", sa.Text),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("message_key", sa.String(200)),
    sa.Column("at", sa.Float, nullable=False),
    sa.UniqueConstraint("tenant_id", "conversation_id", "message_key"),
)

# Experiments: a design (its spec and the salt that makes assignment sticky and unguessable),
# each subject's arm, and each subject's outcome per metric in arrival order.
experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("decision", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

experiment_assignments = sa.Table(
    "experiment_assignments",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("experiment", sa.String(128), primary_key=True),
    sa.Column("subject_id", sa.String(128), primary_key=True),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

experiment_observations = sa.Table(
    "experiment_observations",
    metadata,
    sa.Column("observation_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("subject_id", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("at", sa.Float, nullable=False),
    sa.UniqueConstraint(
        "tenant_id", "experiment", "subject_id", "metric", name="uq_experiment_observations_unit"
    ),
    sa.Index(None, "tenant_id", "experiment", "observation_id"),
)

# The degradation watch: a proposed change per degraded (journey, decision point, metric), with
# the finding it rests on. ``open_key`` is set while the proposal is open and cleared when a
# person decides it, so at most one proposal per key is open at a time.
watch_proposals = sa.Table(
    "watch_proposals",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("proposal_id", sa.String(64), primary_key=True),
    sa.Column("journey", sa.String(128), nullable=False),
    sa.Column("point", sa.String(256), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("open_key", sa.String(64)),
    sa.Column("finding", sa.Text, nullable=False),
    sa.Column("candidate", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("seen", sa.Integer, nullable=False),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("decided_at", sa.Float),
    sa.Column("reason", sa.Text),
    sa.Column("applied", sa.Text),
    sa.UniqueConstraint("tenant_id", "open_key"),
    sa.Index(None, "tenant_id", "status", "created_at"),
    sa.Index(None, "tenant_id", "journey", "point", "metric"),
)


offer_catalogues = sa.Table(
    "offer_catalogues",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("deployed_by", sa.String(128), nullable=False),
    sa.Column("deployed_at", sa.Float, nullable=False),
)

offer_outcomes = sa.Table(
    "offer_outcomes",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("choice_id", sa.String(400), primary_key=True),
    sa.Column("catalogue", sa.String(128), nullable=False),
    sa.Column("offer", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(128), nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index(None, "tenant_id", "catalogue", "offer"),
)
