"""The composition root: settings in, a wired :class:`Accord` out. No import-time globals."""

from __future__ import annotations

import hmac
import importlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from accord.agents import (
    AgentCatalog,
    AgentDeployment,
    AgentEngine,
    LoadedAgent,
    ProviderRegistry,
    load_agent_file,
)
from accord.attribution import Attribution, RunPath
from accord.audit import (
    ConsistencyProof,
    Erasure,
    Explanation,
    Hold,
    InclusionProof,
    Keyring,
    Ledger,
    ReplayedRun,
    SignedHead,
    SigningKey,
    VerifyReport,
    erase_subject,
    explain_run,
    export_bundle,
    place_hold,
    release_hold,
    replay_run,
    verify_ledger,
)
from accord.connectors import CapabilityRegistry, Endpoints, load_catalogue
from accord.consent import ConsentLedger, validate_categories, validate_purpose
from accord.core import Clock, IdGenerator, RandomIds, SystemClock, TenantId
from accord.errors import ConfigurationError, InputError
from accord.events import (
    EVENT_TYPES,
    ConsumerOptions,
    Dispatcher,
    InboundEvent,
    IngestOutcome,
    Sink,
    TriggerIngest,
    event_type,
)
from accord.events import read_event as read_inbound_event
from accord.events import run_consumer as run_trigger_consumer
from accord.experiments import Experiments
from accord.flags import FlagRecord, Flags, FlagStore, FlagValue
from accord.gateway import Gateway, Governance
from accord.identity import (
    ContextStore,
    Resolver,
    ResolveReport,
    Retention,
    RetentionReport,
    SourceRecord,
)
from accord.journeys import load_journey_text
from accord.offers import OfferCatalogue, Offers, load_offer_catalogue
from accord.policy import PolicyDecisionPoint, PolicyStore
from accord.reviews import (
    ConfirmationResult,
    Confirmations,
    ConfirmationSigner,
    DecisionResult,
    Feedback,
    Person,
    Queue,
    ReviewInbox,
)
from accord.runtime import AgentServices, RunState, Runtime, SignalResult
from accord.service._attribution import Selection
from accord.service._attribution import attribution as attribute_runs
from accord.service._attribution import moment as parse_moment
from accord.service._attribution import read_paths as read_decision_paths
from accord.service._conversations import Conversations, conversation_capabilities
from accord.service._direct import DirectCall, DirectResult, invoke_direct
from accord.service._events import EventView, build_dispatcher
from accord.service._events import get_view as get_event_view
from accord.service._events import list_views as list_event_views
from accord.service._events import redeliver as redeliver_events
from accord.service._experiments import experiment_capabilities
from accord.service._identity import (
    CONTEXT_READ,
    REVIEW_JOURNEY,
    REVIEW_JOURNEY_TEXT,
    SyncReport,
    identity_capabilities,
    read_source_records,
    review_rationale,
)
from accord.service._metrics import DatabaseCollector
from accord.service._offers import offer_capabilities, offer_services
from accord.service._settings import Settings
from accord.storage import (
    Database,
    DeadLetterRecord,
    OutcomeStats,
    ReviewItemRecord,
    RolloutRecord,
)
from accord.storage import identity as stored_identity
from accord.storage import ledger as stored_ledger
from accord.storage._inbound import InboundRecord, InboundStatus
from accord.telemetry import Telemetry, Tracing, configure_logging
from accord.watch import Watch

log = logging.getLogger(__name__)


@dataclass
class Accord:
    """One wired instance: settings, database, capabilities, governance, gateway and runtime."""

    settings: Settings
    db: Database
    capabilities: CapabilityRegistry
    consent: ConsentLedger
    policies: PolicyStore
    pdp: PolicyDecisionPoint
    flags: Flags
    gateway: Gateway
    runtime: Runtime
    ledger: Ledger
    reviews: ReviewInbox
    confirmations: Confirmations
    agents: AgentCatalog
    providers: ProviderRegistry
    identity: Resolver
    context: ContextStore
    retention: Retention
    conversations: Conversations
    experiments: Experiments
    offers: Offers
    endpoints: Endpoints = field(default_factory=Endpoints)
    telemetry: Telemetry = field(default_factory=Telemetry)

    def deploy_agent(
        self, spec: str | Path | LoadedAgent, *, by: str = "cli", tenant: str | None = None
    ) -> AgentDeployment:
        """Deploy an agent spec file (with its prompt and trained models), or a loaded one.

        Raises:
            AgentInvalid: the spec, prompt or model is invalid, or the version is already
                deployed with other content.
        """
        loaded = spec if isinstance(spec, LoadedAgent) else load_agent_file(spec)
        return self.agents.deploy(TenantId(self._tenant(tenant)), loaded, deployed_by=by)

    def deploy_offers(
        self, catalogue: str | Path | OfferCatalogue, *, by: str = "cli", tenant: str | None = None
    ) -> int:
        """Deploy an offer catalogue file (or a parsed one); returns the deployed version.

        Raises:
            InputError: the file is invalid, or a changed catalogue keeps its version.
        """
        spec = (
            catalogue
            if isinstance(catalogue, OfferCatalogue)
            else load_offer_catalogue(Path(catalogue))
        )
        problems = []
        for name, source in spec.sources.items():
            found = self.capabilities.find(source.capability)
            if found is None:
                problems.append(f"sources.{name}: no capability {source.capability!r}")
            elif found.side_effect != "read":
                problems.append(
                    f"sources.{name}: {source.capability!r} is a {found.side_effect}; "
                    "sources only read"
                )
        named = [(f"offers.{o.name}.action", o.action) for o in spec.offers if o.action]
        named += [
            (f"contact.channels.{channel}", capability)
            for channel, capabilities in spec.contact.channels.items()
            for capability in capabilities
        ]
        problems += [
            f"{where}: no capability {capability!r}"
            for where, capability in named
            if self.capabilities.find(capability) is None
        ]
        if problems:
            raise InputError(
                f"offer catalogue {spec.catalogue!r}: {'; '.join(problems)}",
                hint="'accord capability list' shows the registered capabilities",
            )
        return self.offers.deploy(TenantId(self._tenant(tenant)), spec, actor=by)

    def start_rollout(
        self,
        agent: str,
        candidate: int,
        *,
        mode: str = "canary",
        percent: float = 5.0,
        margin: float = 0.1,
        min_samples: int = 20,
        by: str = "cli",
        tenant: str | None = None,
    ) -> RolloutRecord:
        """Start a canary (a sticky share of subjects) or a shadow of a candidate version."""
        return self.agents.start_rollout(
            TenantId(self._tenant(tenant)),
            agent,
            candidate,
            mode=mode,
            percent=percent,
            margin=margin,
            min_samples=min_samples,
            by=by,
        )

    def advance_rollout(
        self,
        rollout_id: str,
        *,
        percent: float | None = None,
        by: str = "cli",
        tenant: str | None = None,
    ) -> RolloutRecord:
        """Send the next stage (5 → 25 → 50 → 100), or ``percent``, to the candidate."""
        return self.agents.advance_rollout(
            TenantId(self._tenant(tenant)), rollout_id, percent=percent, by=by
        )

    def promote_agent(
        self, agent: str, version: int, *, by: str = "cli", tenant: str | None = None
    ) -> RolloutRecord:
        """Make a deployed version the one unpinned agent blocks use, without a canary."""
        return self.agents.promote(TenantId(self._tenant(tenant)), agent, version, by=by)

    def promote_rollout(
        self, rollout_id: str, *, by: str = "cli", tenant: str | None = None
    ) -> RolloutRecord:
        return self.agents.promote_rollout(TenantId(self._tenant(tenant)), rollout_id, by=by)

    def stop_rollout(
        self, rollout_id: str, *, reason: str, by: str = "cli", tenant: str | None = None
    ) -> RolloutRecord:
        return self.agents.stop_rollout(
            TenantId(self._tenant(tenant)), rollout_id, reason=reason, by=by
        )

    def check_rollouts(self, *, tenant: str | None = None) -> list[RolloutRecord]:
        """Roll back every rollout whose candidate escalates or is overridden too often."""
        return self.agents.check_rollouts(TenantId(self._tenant(tenant)))

    def agent_stats(
        self, agent: str | None = None, *, tenant: str | None = None
    ) -> list[OutcomeStats]:
        """Outputs, bands, escalation and override rates, tokens and cost per agent version."""
        return self.agents.stats(TenantId(self._tenant(tenant)), agent)

    def run_usage(self, run_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Tokens and cost a run's agents used."""
        return self.agents.run_usage(TenantId(self._tenant(tenant)), run_id)

    def set_flag(
        self, key: str, value: FlagValue, *, actor: str, reason: str, tenant: str | None = None
    ) -> FlagRecord:
        """Set a flag; switching a kill switch back on makes the runs it held ask again now."""
        tenant = tenant or self.settings.tenant
        record = self.flags.set(tenant, key, value, actor=actor, reason=reason)
        if value is True:
            self.runtime.wake_held(TenantId(tenant))
        return record

    def invoke(
        self,
        capability: str,
        payload: Mapping[str, Any],
        *,
        principal: str,
        subject: str | None = None,
        purpose: str | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
        reads: Sequence[str] = (),
        tenant: str | None = None,
    ) -> DirectResult:
        """Invoke one capability outside any run, governed like a task block's call.

        ``principal`` names the agent that asks: policies see it as an ``Agent`` entity, and
        the kill switch ``agent:<principal>`` holds its calls. The decision and its ledger
        entries are committed before this returns; a refusal, hold or failure is a result,
        not an exception. The connector receives ``idempotency_key`` (a fresh one if none);
        ``reads`` narrows the categories asked for, as a task block's ``reads`` does.

        Raises:
            CapabilityNotFound, InputError, SubjectErased: nothing was called or recorded.
        """
        call = DirectCall(
            TenantId(self._tenant(tenant)),
            capability,
            payload,
            principal,
            subject=subject,
            purpose=purpose,
            channel=channel,
            idempotency_key=idempotency_key,
            reads=tuple(reads),
        )
        runtime = self.runtime
        return invoke_direct(
            call,
            gateway=self.gateway,
            db=self.db,
            ledger=self.ledger,
            clock=runtime.clock,
            ids=runtime.ids,
        )

    # -- identity, context and retention ----------------------------------------------------

    def read_context(
        self,
        subject: str,
        *,
        purpose: str,
        principal: str = "accord",
        categories: Sequence[str] | None = None,
        signals: int = 50,
        tenant: str | None = None,
    ) -> DirectResult:
        """The subject's context through the gateway, projected to what ``purpose`` allows.

        The read is the capability ``context.read``: the kill switch, the lawful basis for
        ``purpose`` (and for each of ``categories``, when named) and the policy decide it, and
        every category the purpose does not allow is withheld. A refusal is a result.
        """
        payload: dict[str, Any] = {"signals": signals}
        if categories is not None:
            payload["categories"] = list(categories)
        return self.invoke(
            CONTEXT_READ,
            payload,
            principal=principal,
            subject=subject,
            purpose=purpose,
            reads=categories or (),
            tenant=tenant,
        )

    def resolve_identities(
        self,
        records: Sequence[SourceRecord],
        *,
        purpose: str | None = "dpv:CustomerRelationshipManagement",
        tenant: str | None = None,
    ) -> ResolveReport:
        """Resolve source records to subjects; each possible link opens a review run."""
        tenant = self._tenant(tenant)
        report = self.identity.resolve(tenant, records, purpose=purpose)
        self.open_identity_reviews(tenant=tenant)
        return report

    def sync_identities(
        self,
        capability: str,
        requests: Sequence[Mapping[str, Any]],
        *,
        source: str,
        id_field: str,
        region_field: str | None = None,
        purpose: str = "dpv:CustomerRelationshipManagement",
        principal: str = "identity-sync",
        tenant: str | None = None,
    ) -> SyncReport:
        """Read records from a system through the gateway and resolve them.

        Each request is one call of ``capability`` (e.g. ``{"customer_id": "cus_00042"}`` for
        ``crm.get_customer``), made about no subject: the purpose needs a lawful basis other
        than consent that covers what the call returns, and the policy must permit the
        ``principal``. The answer's ``id_field`` is the record's id in ``source``; its region is
        ``region_field`` of the answer, else the capability's region. A request whose call is
        refused or fails is reported, not dropped.
        """
        region = self.capabilities.get(capability).region
        records, problems = read_source_records(
            lambda request: self.invoke(
                capability, request, principal=principal, purpose=purpose, tenant=tenant
            ),
            requests,
            source=source,
            id_field=id_field,
            region_field=region_field,
            region=region,
        )
        resolved = self.resolve_identities(records, purpose=purpose, tenant=tenant)
        return SyncReport(resolved, tuple(problems))

    def open_identity_reviews(self, *, tenant: str | None = None) -> list[str]:
        """Start an ``identity_review`` run for every open possible link that has none.

        Safe to repeat: a candidate's run is started under an idempotency key of its id.
        """
        tenant_id = TenantId(self._tenant(tenant))
        with self.db.read() as connection:
            waiting = stored_identity.list_candidates(
                connection, tenant_id, status="open", without_run=True
            )
        if not waiting:
            return []
        self.runtime.catalog.deploy(
            tenant_id,
            load_journey_text(REVIEW_JOURNEY_TEXT, source_name="<accord>"),
            deployed_by="accord",
        )
        started = []
        for candidate in waiting:
            result = self.runtime.start(
                tenant_id,
                REVIEW_JOURNEY,
                input={
                    "candidate_id": candidate.candidate_id,
                    "other_subject": candidate.other_subject_id,
                    "probability": candidate.probability,
                    "rationale": review_rationale(candidate),
                },
                subject=candidate.subject_id,
                idempotency_key=f"identity-review/{candidate.candidate_id}",
            )
            with self.db.transaction() as connection:
                stored_identity.set_candidate_run(
                    connection, tenant_id, candidate.candidate_id, result.run_id
                )
            started.append(result.run_id)
        return started

    def apply_retention(
        self, *, by: str = "retention", tenant: str | None = None
    ) -> RetentionReport:
        """Delete or anonymise every expired context item not under legal hold."""
        return self.retention.apply(self._tenant(tenant), by=by)

    # -- connectors: the dead-letter queue and the health of endpoints ----------------------

    def dead_letters(
        self,
        *,
        status: str | None = "pending",
        run_id: str | None = None,
        capability: str | None = None,
        limit: int = 100,
        tenant: str | None = None,
    ) -> list[DeadLetterRecord]:
        """Calls parked after exhausting their retries or losing their answer, oldest first."""
        return self.runtime.dead_letters(
            TenantId(tenant or self.settings.tenant),
            status=status,
            run_id=run_id,
            capability=capability,
            limit=limit,
        )

    def retry_dead_letter(
        self, letter_id: str, *, by: str, note: str | None = None, tenant: str | None = None
    ) -> SignalResult:
        """Run the parked call's block again from its first attempt."""
        return self.runtime.resolve_dead_letter(
            TenantId(tenant or self.settings.tenant), letter_id, action="retry", by=by, note=note
        )

    def discard_dead_letter(
        self, letter_id: str, *, by: str, note: str | None = None, tenant: str | None = None
    ) -> SignalResult:
        """Give the parked call up: its block fails (``on_error``, or the run fails and
        compensates)."""
        return self.runtime.resolve_dead_letter(
            TenantId(tenant or self.settings.tenant),
            letter_id,
            action="discard",
            by=by,
            note=note,
        )

    def connector_status(self) -> list[dict[str, Any]]:
        """Each endpoint this process has called: breaker state, calls in flight, failures."""
        return [endpoint.status() for endpoint in self.endpoints]

    # -- reviews: the inbox people work ----------------------------------------------------

    def put_person(
        self,
        person_id: str,
        *,
        roles: list[str],
        skills: list[str] | None = None,
        name: str = "",
        active: bool = True,
        actor: str,
        tenant: str | None = None,
    ) -> Person:
        """Add a member of staff who can work review queues, or change one."""
        return self.reviews.put_person(
            self._tenant(tenant),
            person_id,
            roles=roles,
            skills=skills or [],
            name=name,
            active=active,
            actor=actor,
        )

    def put_queue(self, queue: Queue, *, actor: str, tenant: str | None = None) -> Queue:
        """Define a review queue: its roles, skills, SLA and supervisor queue."""
        return self.reviews.put_queue(self._tenant(tenant), queue, actor=actor)

    def review_items(
        self, *, tenant: str | None = None, **selection: Any
    ) -> list[ReviewItemRecord]:
        """Review items, most urgent first (see :meth:`ReviewInbox.items`)."""
        return self.reviews.items(self._tenant(tenant), **selection)

    def review_item(self, item_id: str, *, tenant: str | None = None) -> ReviewItemRecord:
        return self.reviews.get(self._tenant(tenant), item_id)

    def claim_review(
        self, item_id: str, person: str, *, tenant: str | None = None
    ) -> ReviewItemRecord:
        return self.reviews.claim(self._tenant(tenant), item_id, person)

    def release_review(
        self, item_id: str, person: str, *, tenant: str | None = None
    ) -> ReviewItemRecord:
        return self.reviews.release(self._tenant(tenant), item_id, person)

    def reassign_review(
        self, item_id: str, *, by: str, to: str, reason: str, tenant: str | None = None
    ) -> ReviewItemRecord:
        return self.reviews.reassign(self._tenant(tenant), item_id, by=by, to=to, reason=reason)

    def decide_review(
        self, item_id: str, person: str, decision: str, *, tenant: str | None = None, **details: Any
    ) -> DecisionResult:
        """Decide a review item (see :meth:`ReviewInbox.decide`)."""
        return self.reviews.decide(self._tenant(tenant), item_id, person, decision, **details)

    def provide_review_info(
        self, item_id: str, *, by: str, answer: Any, tenant: str | None = None
    ) -> ReviewItemRecord:
        return self.reviews.provide_info(self._tenant(tenant), item_id, by=by, answer=answer)

    def sweep_reviews(self) -> int:
        """Escalate overdue review items now (workers do this on their own)."""
        return self.reviews.sweep()

    def review_feedback(self, *, tenant: str | None = None) -> list[Feedback]:
        """Acceptance and override rates per recommender version."""
        return self.reviews.feedback(self._tenant(tenant))

    def confirm(self, token: str, answer: str, *, channel: str) -> ConfirmationResult:
        """The subject's answer (``confirm`` or ``refuse``) to a proposal, by its token."""
        return self.confirmations.answer(token, answer, channel=channel)

    # -- the degradation watch: proposed changes for a person to accept or reject -------------

    @cached_property
    def watch(self) -> Watch:
        """Checks journeys for degradation and drift, and holds the changes it proposes; an
        accepted change is applied through the agents' rollouts and the flags, as the person
        who accepted it."""
        return Watch(
            self.db,
            self.ledger,
            self.runtime.clock,
            self.runtime.ids.new_id,
            agents=self.agents,
            flags=self.flags,
        )

    # -- inbound events: triggers start and signal runs ---------------------------------------

    @cached_property
    def triggers(self) -> TriggerIngest:
        """Where inbound events go: the triggers of deployed journeys."""
        return TriggerIngest(self.runtime)

    def ingest_event(
        self,
        event: InboundEvent | Mapping[str, Any] | str | bytes,
        *,
        channel: Literal["http", "nats", "cli"] = "cli",
        tenant: str | None = None,
    ) -> IngestOutcome:
        """Start or signal runs from one CloudEvent (an event, or structured JSON), once.

        Raises:
            EventInvalid: the event breaks CloudEvents 1.0; nothing was recorded.
        """
        return self.triggers.ingest(
            self._tenant(tenant), read_inbound_event(event), channel=channel
        )

    def inbound_events(
        self, tenant: str | None = None, *, status: InboundStatus | None = None, limit: int = 50
    ) -> list[InboundRecord]:
        """Inbound events with what each did, newest first."""
        return self.triggers.received(self._tenant(tenant), status=status, limit=limit)

    def consume_triggers(
        self, stop: threading.Event, *, ready: threading.Event | None = None
    ) -> None:
        """Run the NATS JetStream trigger consumer until ``stop`` is set (blocking).

        Raises:
            ConfigurationError: ``nats_url`` or ``nats_trigger_stream`` is not set.
        """
        settings = self.settings
        if settings.nats_url is None or settings.nats_trigger_stream is None:
            raise ConfigurationError(
                "the trigger consumer needs ACCORD_NATS_URL and ACCORD_NATS_TRIGGER_STREAM",
                hint="e.g. ACCORD_NATS_URL=nats://127.0.0.1:4222 "
                "ACCORD_NATS_TRIGGER_STREAM=INBOUND",
            )
        options = ConsumerOptions(
            url=settings.nats_url,
            stream=settings.nats_trigger_stream,
            durable=settings.nats_trigger_consumer,
            tenant=settings.tenant,
            subjects=tuple(settings.nats_trigger_subjects),
        )
        run_trigger_consumer(self.triggers, options, stop, ready=ready)

    # -- outbound events: the outbox, its sinks and their delivery state --------------------

    def dispatcher(self, *, sinks: list[Sink] | None = None) -> Dispatcher:
        """A dispatcher for the configured sinks (NATS, webhooks), or for ``sinks``."""
        return build_dispatcher(
            self.settings, self.db, self.runtime.clock, self.telemetry.metrics, sinks=sinks
        )

    def configure_logging(self) -> None:
        """Send this process's logs through the redacting pipeline the settings describe:
        JSON lines (or console), subjects pseudonymised with a key derived from the ledger's
        master key, and every configured secret hidden."""
        settings = self.settings
        secrets = [s.get_secret_value() for s in settings.connector_secrets.values()]
        secrets += [s.get_secret_value() for s in settings.ingest_secrets.values()]
        secrets += [s.get_secret_value() for s in settings.ingest_tokens.values()]
        secrets += [s.get_secret_value() for s in settings.otlp_headers.values()]
        secrets += [w.secret.get_secret_value() for w in settings.webhooks.values()]
        for optional in (
            settings.metrics_token,
            settings.ledger_signing_key,
            settings.ledger_master_key,
        ):
            if optional is not None:
                secrets.append(optional.get_secret_value())
        key = hmac.new(self.ledger.keyring.master, b"accord log pseudonyms", "sha256").digest()
        configure_logging(
            format=settings.log_format,
            level=settings.log_level,
            pseudonym_key=key,
            secrets=secrets,
        )

    def start_event_services(self, stop: threading.Event) -> list[threading.Thread]:
        """Start, in daemon threads, what the settings ask for: the outbox dispatcher (NATS,
        webhooks) and the NATS trigger consumer. They run until ``stop`` is set."""
        threads: list[threading.Thread] = []
        dispatcher = self.dispatcher()
        if dispatcher.sinks:

            def dispatch() -> None:
                try:
                    dispatcher.run(stop, poll_interval=self.settings.poll_interval)
                finally:
                    dispatcher.close()

            threads.append(threading.Thread(target=dispatch, name="accord-dispatcher"))
        if self.settings.nats_url is not None and self.settings.nats_trigger_stream is not None:
            threads.append(
                threading.Thread(target=self.consume_triggers, args=(stop,), name="accord-triggers")
            )
        for thread in threads:
            thread.daemon = True
            thread.start()
        return threads

    def events(
        self,
        tenant: str | None = None,
        *,
        types: Sequence[str] = (),
        run_id: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 50,
        newest: bool = False,
    ) -> list[EventView]:
        """The tenant's domain events as CloudEvents, oldest first, with each sink's state.

        Raises:
            InputError: a type is not in the catalogue, or the limit is out of range.
        """
        for name in types:
            if event_type(name) is None:
                raise InputError(
                    f"{name!r} is not an event type",
                    hint="known types: " + ", ".join(t.name for t in EVENT_TYPES),
                )
        return list_event_views(
            self.db,
            self._tenant(tenant),
            self.settings.ledger_origin,
            types=list(types),
            run_id=run_id,
            after=after,
            limit=limit,
            newest=newest,
        )

    def event(self, event_id: str, *, tenant: str | None = None) -> EventView:
        """One event as a CloudEvent, with each sink's delivery state.

        Raises:
            InputError: no such event in the tenant.
        """
        return get_event_view(self.db, self._tenant(tenant), self.settings.ledger_origin, event_id)

    def redeliver_events(
        self,
        event_ids: Sequence[str] = (),
        *,
        dead: bool = False,
        sink: str | None = None,
        tenant: str | None = None,
    ) -> int:
        """Send events again (to ``sink`` or every sink); how many were reopened.

        Raises:
            InputError: an event is unknown in the tenant (nothing changed), or neither or
                both of ``event_ids`` and ``dead`` were given.
        """
        return redeliver_events(
            self.db, self._tenant(tenant), event_ids=list(event_ids), dead=dead, sink=sink
        )

    # -- attribution: outcomes linked back to the decisions on each run's path --------------

    def _selection(
        self,
        journey: str,
        version: int | None,
        since: float | str | None,
        until: float | str | None,
        tenant: str | None,
    ) -> Selection:
        now = self.runtime.clock.now()
        return Selection(
            TenantId(self._tenant(tenant)),
            journey,
            version,
            parse_moment(since, now=now, name="since"),
            parse_moment(until, now=now, name="until"),
        )

    def decision_paths(
        self,
        journey: str,
        *,
        version: int | None = None,
        since: float | str | None = None,
        until: float | str | None = None,
        limit: int = 1000,
        tenant: str | None = None,
    ) -> list[RunPath]:
        """The decision points of the newest ``limit`` ended runs of ``journey`` started in
        [since, until), each run's in the order taken, with its outcome; oldest run first.

        ``since`` and ``until`` are epoch seconds, RFC 3339 times or durations before now
        (``7d``). Runs of erased subjects are left out.

        Raises:
            JourneyNotFound: the journey (or the version) is not deployed.
            InputError: ``since`` or ``until`` is neither a time nor a duration.
        """
        selection = self._selection(journey, version, since, until, tenant)
        return read_decision_paths(self.runtime, selection, limit=limit)[0]

    def attribution(
        self,
        journey: str,
        *,
        success: str | Sequence[str],
        version: int | None = None,
        since: float | str | None = None,
        until: float | str | None = None,
        min_runs: int = 30,
        confidence: float = 0.95,
        tenant: str | None = None,
    ) -> Attribution:
        """The outcomes of ``journey``'s ended runs attributed to the decision points on their
        paths: per point and value, the difference in success rate with its interval and the
        method named (causal only for experiment arms), and each point's share of the credit
        by the removal effect. ``success`` names the outcomes that count as success
        (comma-separated, or a sequence); below ``min_runs`` a figure says "too few runs".

        Raises:
            JourneyNotFound: the journey (or the version) is not deployed.
            InputError: no success outcome, one the journey never ends with, a bad time, or
                a minimum or confidence out of range.
        """
        selection = self._selection(journey, version, since, until, tenant)
        return attribute_runs(
            self.runtime,
            self.experiments,
            selection,
            success=success,
            min_runs=min_runs,
            confidence=confidence,
        )

    # -- evidence: the facade the CLI (and the API) call -----------------------------------

    def _tenant(self, tenant: str | None) -> str:
        return tenant or self.settings.tenant

    def verify_ledger(
        self, tenant: str | None = None, *, progress: Callable[[int], None] | None = None
    ) -> VerifyReport:
        """Recompute the tenant's whole ledger and check every signed head."""
        tenant = self._tenant(tenant)
        return verify_ledger(
            self.db,
            tenant,
            log_id=self.ledger.log_id(tenant),
            trusted=self.ledger.keyring.trusted,
            progress=progress,
        )

    def tree_head(self, tenant: str | None = None, *, fresh: bool = False) -> SignedHead:
        """The newest signed tree head (``fresh``: sign one now)."""
        tenant = self._tenant(tenant)
        return self.ledger.issue_head(tenant) if fresh else self.ledger.latest_head(tenant)

    def inclusion_proof(
        self, index: int, *, tree_size: int | None = None, tenant: str | None = None
    ) -> InclusionProof:
        return self.ledger.inclusion_proof(self._tenant(tenant), index, tree_size=tree_size)

    def consistency_proof(
        self, size1: int, size2: int, *, tenant: str | None = None
    ) -> ConsistencyProof:
        return self.ledger.consistency_proof(self._tenant(tenant), size1, size2)

    def export_evidence(self, *, tenant: str | None = None, **selection: Any) -> dict[str, Any]:
        """An evidence bundle (see :func:`accord.audit.export_bundle`)."""
        return export_bundle(self.ledger, self._tenant(tenant), **selection)

    def replay(self, run_id: str, *, tenant: str | None = None) -> ReplayedRun:
        """A run rebuilt from the ledger alone."""
        return replay_run(self.ledger, self._tenant(tenant), run_id)

    def explain(self, run_id: str, *, tenant: str | None = None) -> Explanation:
        """The explanation of every significant decision of a run."""
        return explain_run(self.ledger, self._tenant(tenant), run_id)

    def erase_subject(
        self, subject_id: str, *, actor: str, reason: str, tenant: str | None = None
    ) -> Erasure:
        """Crypto-shred a subject (refused under legal hold, recorded either way)."""
        return erase_subject(
            self.ledger,
            self._tenant(tenant),
            subject_id,
            actor=actor,
            reason=reason,
            empty_state=RunState().dumps(),
        )

    def place_hold(
        self, subject_id: str, *, actor: str, reason: str, tenant: str | None = None
    ) -> Hold:
        return place_hold(self.ledger, self._tenant(tenant), subject_id, actor=actor, reason=reason)

    def release_hold(
        self, subject_id: str, *, actor: str, reason: str, tenant: str | None = None
    ) -> None:
        release_hold(self.ledger, self._tenant(tenant), subject_id, actor=actor, reason=reason)

    def subject_status(self, subject_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Whether the subject's data key exists or was erased, its hold and entry count."""
        tenant = self._tenant(tenant)
        with self.db.read() as connection:
            key = stored_ledger.subject_key_rows(connection, tenant, [subject_id]).get(subject_id)
            hold = stored_ledger.get_hold(connection, tenant, subject_id)
            count = stored_ledger.count_entries(connection, tenant, subject_id=subject_id)
        return {
            "subject": subject_id,
            "key": "none" if key is None else ("erased" if key.wrapped_key is None else "active"),
            "erased_at": None if key is None else key.erased_at,
            "hold": None
            if hold is None
            else {"reason": hold.reason, "placed_by": hold.placed_by, "placed_at": hold.placed_at},
            "entries": count,
        }

    def rotate_signing_key(self) -> SigningKey:
        """A new development signing key; heads from now on are signed by it."""
        self.ledger.keyring = self.ledger.keyring.rotate(self.settings.resolved_keys_dir())
        return self.ledger.keyring.signing

    def close(self) -> None:
        self.telemetry.tracing.shutdown()
        self.providers.close()
        self.gateway.close()
        self.capabilities.close()
        self.flags.close()
        self.db.dispose()

    def __enter__(self) -> Accord:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def load_capabilities(modules: list[str], registry: CapabilityRegistry) -> None:
    """Import each module and call its ``register(registry)``."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import capability module {name!r}: {exc}",
                hint="check ACCORD_CAPABILITY_MODULES and that the module is installed",
            ) from exc
        register = getattr(module, "register", None)
        if not callable(register):
            raise ConfigurationError(
                f"capability module {name!r} has no register(registry) function"
            )
        register(registry)


def build(
    settings: Settings | None = None,
    *,
    capabilities: CapabilityRegistry | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    fencing: bool = True,
    migrate: bool = True,
    governed: bool = True,
    telemetry: Telemetry | None = None,
) -> Accord:
    """Wire Accord from settings. Pass ``capabilities`` to skip loading capability modules.

    ``governed=False`` builds a gateway without kill switches, consent, policy or decision
    records: for tests that show what governance prevents and for benchmarks that price it.
    ``telemetry`` replaces the tracer and metrics the settings describe.
    """
    settings = settings or Settings()
    telemetry = telemetry or build_telemetry(settings)
    endpoints = Endpoints()
    if capabilities is None:
        capabilities = CapabilityRegistry()
        load_capabilities(settings.capability_modules, capabilities)
        for catalogue in settings.capability_catalogues:
            load_catalogue(
                Path(catalogue),
                capabilities,
                check_categories=validate_categories,
                connector_urls=settings.connector_urls,
                secrets=settings.connector_secrets,
                endpoints=endpoints,
            )
    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if migrate:
        try:
            db.migrate()
        except BaseException:
            db.dispose()
            raise
    clock = clock or SystemClock()
    ids = ids or RandomIds()
    try:
        keyring = load_keyring(settings)
        if db.backend == "postgresql" and keyring.source != "settings":
            log.warning(
                "ledger keys are development keys from %s: every machine must use the same "
                "keys, so set ACCORD_LEDGER_SIGNING_KEY and ACCORD_LEDGER_MASTER_KEY "
                "(or their _FILE variants) for PostgreSQL deployments",
                keyring.source,
            )
        ledger = Ledger(
            db,
            keyring,
            clock=clock,
            origin=settings.ledger_origin,
            head_interval=settings.ledger_head_interval_seconds,
        )
    except BaseException:
        db.dispose()
        raise
    consent = ConsentLedger(db, clock=clock, ids=ids, ledger=ledger)
    policies = PolicyStore(db, clock=clock, ledger=ledger)
    pdp = PolicyDecisionPoint()
    reviews = ReviewInbox(db, clock=clock, ids=ids, ledger=ledger, policies=policies, pdp=pdp)
    signer = ConfirmationSigner.from_master(ledger.keyring.master)
    confirmations = Confirmations(db, clock=clock, ids=ids, ledger=ledger, signer=signer)
    flags = Flags(
        FlagStore(db, clock=clock, ids=ids, ledger=ledger),
        refresh_seconds=settings.flag_refresh_seconds,
    )
    identity = Resolver(
        db, ledger, clock, ids.new_id, default_country=settings.identity_default_country
    )
    context = ContextStore(db, ledger, clock, ids.new_id, check_categories=validate_categories)
    retention = Retention(
        db,
        ledger,
        clock,
        check_categories=validate_categories,
        check_purpose=validate_purpose,
    )
    capabilities = identity_capabilities(identity, context, capabilities)
    conversations = Conversations(db, ledger, clock, ids)
    capabilities = conversation_capabilities(conversations, capabilities)
    experiments = Experiments(db, ledger, clock)
    capabilities = experiment_capabilities(experiments, capabilities)
    offers = Offers(db, ledger, clock)
    capabilities = offer_capabilities(offers, capabilities)
    governance = Governance(db, consent, policies, pdp, flags, ids.new_id, region=settings.region)
    gateway = Gateway(
        capabilities, governance=governance if governed else None, telemetry=telemetry
    )
    agents = AgentCatalog(db, ledger, clock, ids.new_id)
    providers = ProviderRegistry(agents, settings.llm_endpoints)
    runtime = Runtime(
        db,
        gateway,
        clock=clock,
        ids=ids,
        ledger=ledger,
        lease_seconds=settings.lease_seconds,
        commit_window=settings.commit_window_ms / 1000,
        fencing=fencing,
        reviews=reviews,
        confirmations=signer,
        agents=AgentServices(agents, AgentEngine(providers)),
        offers=offer_services(offers),
        telemetry=telemetry,
    )
    conversations.bind(runtime)
    telemetry.metrics.register(
        DatabaseCollector(
            db, lambda: [endpoint.status() for endpoint in endpoints], clock=clock.now
        )
    )
    return Accord(
        settings,
        db,
        capabilities,
        consent,
        policies,
        pdp,
        flags,
        gateway,
        runtime,
        ledger,
        reviews,
        confirmations,
        agents,
        providers,
        identity,
        context,
        retention,
        conversations,
        experiments,
        offers,
        endpoints,
        telemetry,
    )


def build_telemetry(settings: Settings) -> Telemetry:
    """Tracing exported over OTLP when ``ACCORD_OTLP_ENDPOINT`` is set (else off), and a
    fresh metrics registry."""
    if settings.otlp_endpoint is None:
        return Telemetry()
    headers = {k: v.get_secret_value() for k, v in settings.otlp_headers.items()}
    tracing = Tracing.otlp(
        settings.otlp_endpoint, service_name=settings.service_name, headers=headers
    )
    return Telemetry(tracing=tracing)


def load_keyring(settings: Settings) -> Keyring:
    """The ledger's keys from settings, or the development keyring."""
    return Keyring.load(
        keys_dir=settings.resolved_keys_dir(),
        signing_key=_secret(settings.ledger_signing_key),
        signing_key_file=settings.ledger_signing_key_file,
        trusted_keys=settings.ledger_trusted_keys,
        master_key=_secret(settings.ledger_master_key),
        master_key_file=settings.ledger_master_key_file,
    )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
