"""Settings, read from ``ACCORD_*`` environment variables (and a ``.env`` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from accord.agents import LlmEndpoint
from accord.events._config import WebhookEndpoint


class Settings(BaseSettings):
    """Everything an operator configures. Each field maps to ``ACCORD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ACCORD_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path('.accord') / 'accord.db'}",
        description="sqlite:///path.db (embedded) or postgresql://user@host/db",
    )
    tenant: str = Field("default", description="tenant used by the CLI")
    sqlite_synchronous: str = Field("FULL", description="SQLite synchronous pragma")
    lease_seconds: float = Field(30.0, gt=0, description="worker lease on a claimed run")
    commit_window_ms: float = Field(
        5.0, ge=0, le=1000, description="idempotent tasks of a run that share a commit (ms)"
    )
    worker_batch_size: int = Field(16, ge=1, le=1000, description="runs a worker holds at once")
    poll_interval: float = Field(0.5, gt=0, description="idle worker poll interval (seconds)")
    capability_modules: list[str] = Field(
        default_factory=lambda: ["accord.sandbox"],
        description="modules whose register(registry) adds capabilities",
    )
    capability_catalogues: list[str] = Field(
        default_factory=list, description="YAML capability catalogues to load (file paths)"
    )
    connector_urls: dict[str, str] = Field(
        default_factory=dict,
        description="base URLs by connector name, over the catalogues' (JSON object)",
    )
    connector_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="credentials by connector name, over the catalogues' secret_env (JSON)",
    )
    llm_endpoints: dict[str, LlmEndpoint] = Field(
        default_factory=dict,
        description=(
            "LLM endpoints by name, for agent routes (JSON object), e.g. "
            '{"openai": {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", '
            '"api_key_env": "VLLM_KEY"}}'
        ),
    )
    flag_refresh_seconds: float = Field(
        1.0, ge=0, description="how often a process re-reads flags outside gateway passes"
    )
    embedded_workers: bool = Field(
        True, description="CLI commands drive runs in-process after starting or signalling"
    )
    embedded_wait_seconds: float = Field(
        5.0, ge=0, description="embedded CLI commands wait for timers due this soon"
    )
    ledger_origin: str = Field(
        "accord", min_length=1, max_length=120, description="first part of every ledger log id"
    )
    ledger_signing_key: SecretStr | None = Field(
        None, description="Ed25519 key that signs tree heads (base64 raw 32 bytes, or PEM)"
    )
    ledger_signing_key_file: Path | None = Field(
        None, description="file holding the tree-head signing key"
    )
    ledger_trusted_keys: list[str] = Field(
        default_factory=list,
        description="public keys (base64 raw or PEM) of earlier signing keys, still trusted",
    )
    ledger_master_key: SecretStr | None = Field(
        None, description="256-bit key wrapping subject data keys (base64 raw 32 bytes)"
    )
    ledger_master_key_file: Path | None = Field(None, description="file holding the master key")
    ledger_head_interval_seconds: float = Field(
        60.0, gt=0, description="workers sign a new tree head this often while the log grows"
    )
    keys_dir: Path | None = Field(
        None,
        description="development keyring directory (default: 'keys' beside the SQLite file, "
        "else .accord/keys)",
    )
    region: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the region this deployment processes data in; policies see it as "
        "context.processing_region and decide, per subject, whether a journey may start here",
    )
    identity_default_country: str | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="ISO country code for reading phone numbers written without one (e.g. GB)",
    )

    nats_url: str | None = Field(
        None, description="NATS server with JetStream (nats://host:4222); events go there when set"
    )
    nats_stream: str = Field(
        "ACCORD_EVENTS", pattern=r"^[A-Za-z0-9_-]+$", description="JetStream stream of events"
    )
    nats_subject_prefix: str = Field(
        "accord",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="events are published on PREFIX.TENANT.TYPE (e.g. accord.acme.run.completed)",
    )
    nats_trigger_stream: str | None = Field(
        None, description="JetStream stream whose CloudEvents trigger journeys (a durable consumer)"
    )
    nats_trigger_subjects: list[str] = Field(
        default_factory=list, description="subjects of the trigger stream to consume (all if empty)"
    )
    nats_trigger_consumer: str = Field(
        "accord-triggers", pattern=r"^[A-Za-z0-9_-]+$", description="durable consumer name"
    )
    webhooks: dict[str, WebhookEndpoint] = Field(
        default_factory=dict,
        description='webhook subscriptions by name (JSON), e.g. {"crm": {"url": '
        '"https://crm.example/hooks", "secret": "whsec_...", "types": ["run.*"]}}',
    )
    event_delivery_attempts: int = Field(
        8, ge=1, le=100, description="deliveries tried before an event is dead-lettered"
    )
    event_backoff_seconds: float = Field(
        1.0, gt=0, description="first retry delay; it doubles up to event_backoff_max_seconds"
    )
    event_backoff_max_seconds: float = Field(300.0, gt=0, description="longest retry delay")
    ingest_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Standard Webhooks secrets (whsec_...) by sender, for signed inbound events",
    )
    ingest_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="bearer tokens by sender, for inbound events (JSON object)",
    )
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector (http://host:4318); traces are exported when set"
    )
    otlp_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="headers sent to the OTLP collector (JSON object)"
    )
    service_name: str = Field("accord", min_length=1, description="service.name of exported spans")
    log_format: Literal["json", "console"] = Field(
        "json", description="json (one object per line) or console (for people)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    metrics_token: SecretStr | None = Field(
        None, description="bearer token Prometheus sends to scrape /metrics"
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="workers serve /metrics on this port when set"
    )

    api_issuer: str = Field(
        "accord", min_length=1, description="the 'iss' every API bearer token must carry"
    )
    api_audience: str = Field(
        "accord", min_length=1, description="the 'aud' every API bearer token must carry"
    )
    api_jwks_url: str | None = Field(
        None, description="the identity provider's JWKS URL (OIDC), for API bearer tokens"
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="public keys (PEM) that sign API bearer tokens, besides the JWKS URL's",
    )
    api_local_tokens: bool = Field(
        True,
        description=(
            "trust tokens from 'accord token create' (signed by the key in keys_dir); "
            "turn off where an identity provider issues every token"
        ),
    )
    api_roles_claim: str = Field("roles", description="the claim holding the caller's roles")
    api_tenant_claim: str = Field("tenant", description="the claim holding the caller's tenant")
    api_policies: Path | None = Field(
        None, description="a Cedar file replacing the built-in API access policies"
    )

    def resolved_keys_dir(self) -> Path:
        """Where development keys live when settings do not give them."""
        if self.keys_dir is not None:
            return self.keys_dir
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///")).parent / "keys"
        return Path(".accord") / "keys"
