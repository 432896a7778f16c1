"""The shadow store: an isolated, temporary Accord that re-runs recorded runs.

It lives in a temporary directory (its own SQLite file and ledger keys) and is deleted when
the replay ends, so nothing a shadow does reaches the production database. It holds copies of
what the recorded runs were decided under — the tenant's journey versions, one policy bundle,
consent grants and configured bases, agent versions and their promotions — and then the
candidate. No connector is reachable from it: every capability keeps its contract, but its
handler answers from what the recorded run's call returned, matched by block and visit; a
call the recorded run never made is not executed but recorded as a divergence.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from accord.agents import AgentDefinition
from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.core import RandomIds, TenantId
from accord.errors import CapabilityFailed
from accord.journeys import LoadedJourney
from accord.replay._recorded import RecordedRun
from accord.service import Accord, Settings, build
from accord.service._conversations import SAY
from accord.service._experiments import ASSIGN, RECORD
from accord.service._identity import deployment_registry
from accord.service._offers import RECORD as OFFER_RECORD
from accord.storage import TERMINAL, RolloutRecord, journeys, policies
from accord.storage import agents as stored_agents
from accord.storage import consent as stored_consent
from accord.storage._schema import offer_catalogues, offer_outcomes
from accord.telemetry import Redactor, Telemetry

DIVERGED = "ReplayDiverged"
MAX_ROUNDS = 64


class ReplayClock:
    """The shadow's time: a recorded run's start, moved forward to the timers it waits for."""

    def __init__(self, at: float = 0.0) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


@dataclass
class ShadowRun:
    """What became of one recorded run in the shadow."""

    recorded: RecordedRun
    run_id: str | None = None
    divergences: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)
    answered: int = 0


class RecordedAnswers:
    """Answers capability calls of shadow runs from the recorded runs they shadow."""

    def __init__(self) -> None:
        self._runs: dict[str, ShadowRun] = {}

    def follow(self, shadow_run_id: str, shadow: ShadowRun) -> None:
        self._runs[shadow_run_id] = shadow

    def registry(self, source: CapabilityRegistry) -> CapabilityRegistry:
        """The capabilities of ``source`` with their contracts, answered from recordings."""
        registry = CapabilityRegistry()
        for capability in source:
            registry.add(dataclasses.replace(capability, handler=self._handler(capability)))
        return registry

    def _handler(self, capability: Capability) -> Any:
        def answer(request: Any, ctx: CallContext) -> Any:
            return self.answer(capability.name, ctx)

        return answer

    def answer(self, capability: str, ctx: CallContext) -> Any:
        shadow = self._runs.get(ctx.run_id)
        where = f"{ctx.block} (visit {ctx.visit})"
        if shadow is None:
            raise CapabilityFailed(
                f"diverged: would call {capability} at {where} of a run the recording has "
                "no calls for",
                error_type=DIVERGED,
                retryable=False,
            )
        key = (ctx.block, ctx.visit)
        _, read, source = ctx.idempotency_key.rpartition("/source/")
        if read:
            found = shadow.recorded.source_outputs().get((ctx.block, ctx.visit, source))
            if found is not None and found[0] == capability:
                shadow.answered += 1
                return found[1]
        recorded = shadow.recorded.outputs().get(key)
        if recorded is not None and recorded[0] == capability:
            shadow.answered += 1
            return recorded[1]
        failure = shadow.recorded.failures().get(key)
        if failure is not None and recorded is None:
            raise CapabilityFailed(
                str(failure.get("message") or "the recorded call failed"),
                error_type=str(failure.get("type") or "CapabilityFailed"),
                retryable=False,
            )
        shadow.divergences.append(
            f"would call {capability} at {where}, which the recorded run never called"
            + (f" (it called {recorded[0]} there)" if recorded is not None else "")
        )
        raise CapabilityFailed(
            f"diverged: the recorded run never called {capability} at {where}; a replay "
            "calls nothing for real",
            error_type=DIVERGED,
            retryable=False,
        )


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the shadow is decided under, unless the candidate replaces it."""

    bundle_version: int | None


class ShadowStore:
    """One temporary Accord, seeded from production (read only), with the candidate applied."""

    def __init__(self, accord: Accord, answers: RecordedAnswers, clock: ReplayClock) -> None:
        self.accord = accord
        self.answers = answers
        self.clock = clock
        self.tenant = TenantId(accord.settings.tenant)

    def seed(self, tenant: TenantId, production: Accord, baseline: Baseline) -> None:
        """Copy what the recorded runs were decided under (no kill switches: every switch is
        on in a shadow, and held runs are not what a replay looks for)."""
        with production.db.read() as source, self.accord.db.transaction() as target:
            for record in journeys.list_versions(source, tenant):
                journeys.insert_version(target, record)
            if baseline.bundle_version is not None:
                bundle = policies.get_version(source, tenant, baseline.bundle_version)
                if bundle is not None:
                    policies.insert_version(target, bundle)
            for basis in stored_consent.list_bases(source, tenant):
                stored_consent.save_basis(target, basis, exists=False)
            for version in stored_agents.list_agent_versions(source, tenant):
                stored_agents.insert_agent_version(target, version)
                definition = AgentDefinition.from_json(json.loads(version.definition))
                for digest in definition.models.values():
                    data = stored_agents.get_model(source, tenant, digest)
                    if data is not None:
                        stored_agents.put_model(target, tenant, digest, data, version.deployed_at)
            for rollout in stored_agents.list_rollouts(source, tenant):
                if rollout.status == "promoted":
                    stored_agents.insert_rollout(target, rollout)
            # offer blocks choose from the same catalogues, with what production has learnt
            for table in (offer_catalogues, offer_outcomes):
                rows = source.execute(sa.select(table).where(table.c.tenant_id == tenant))
                copied = [dict(row) for row in rows.mappings()]
                if copied:
                    target.execute(sa.insert(table), copied)

    def seed_subjects(self, tenant: TenantId, production: Accord, subjects: set[str]) -> None:
        with production.db.read() as source, self.accord.db.transaction() as target:
            for subject in sorted(subjects):
                for grant in stored_consent.subject_grants(source, tenant, subject):
                    stored_consent.insert_grant(target, grant)

    def promote_agent(self, tenant: TenantId, agent: str, version: int) -> None:
        """Make ``version`` the one unpinned agent blocks use in the shadow."""
        with self.accord.db.transaction() as connection:
            history = stored_agents.list_rollouts(connection, tenant, agent)
            latest = max((r.updated_at for r in history), default=0.0)
            versions = stored_agents.list_agent_versions(connection, tenant, agent)
            primary = versions[0].version if versions else version
            stored_agents.insert_rollout(
                connection,
                RolloutRecord(
                    tenant_id=tenant,
                    rollout_id=f"rol_replay_{agent}_{version}",
                    agent=agent,
                    mode="canary",
                    primary_version=primary,
                    candidate_version=version,
                    percent=100.0,
                    margin=0.0,
                    min_samples=0,
                    status="promoted",
                    reason="replay candidate",
                    created_by="accord replay",
                    created_at=latest + 1.0,
                    updated_at=latest + 1.0,
                ),
            )

    def deploy_bundle(self, tenant: TenantId, policies_text: str, schema: str, name: str) -> int:
        bundle = self.accord.policies.deploy(
            tenant, policies_text, schema, source_name=name, actor="accord replay"
        )
        return int(bundle.version or 0)

    def insert_bundle(self, production: Accord, tenant: TenantId, version: int) -> bool:
        with production.db.read() as source, self.accord.db.transaction() as target:
            bundle = policies.get_version(source, tenant, version)
            if bundle is None:
                return False
            if policies.get_version(target, tenant, version) is None:
                policies.insert_version(target, bundle)
        return True

    def deploy_journey(self, tenant: TenantId, loaded: LoadedJourney) -> int:
        catalog = self.accord.runtime.catalog
        return catalog.deploy(tenant, loaded, deployed_by="accord replay").version

    def rerun(self, recorded: RecordedRun, *, version: int) -> ShadowRun:
        """Start the recorded run's input again and drive it: recorded decisions of people and
        events are delivered when the shadow waits for them, timers fire at once."""
        shadow = ShadowRun(recorded)
        record = recorded.record
        runtime = self.accord.runtime
        self.clock.at = record.created_at
        started = runtime.start(
            self.tenant,
            record.journey_name,
            input=record.input,
            subject=record.subject_id,
            version=version,
        )
        shadow.run_id = started.run_id
        self.answers.follow(started.run_id, shadow)
        used: set[str] = set()
        for _ in range(MAX_ROUNDS):
            runtime.drive()
            view = runtime.get(self.tenant, started.run_id)
            if view.status in TERMINAL or shadow.divergences:
                break
            progressed = False
            for position in view.positions:
                if position.waiting_for is None:
                    continue
                kind, _, name = position.waiting_for.partition(":")
                if kind in ("timer", "retry", "hold") and position.until is not None:
                    self.clock.at = max(self.clock.at, position.until)
                    progressed = True
                elif kind in ("human", "event"):
                    signal = _recorded_signal(recorded, kind, position.block, name, used)
                    if signal is None:
                        what = "a person's decision" if kind == "human" else f"event {name!r}"
                        shadow.waits.append(
                            f"waits for {what} at {position.block}, which the recording holds "
                            "none of: the replay stops there"
                        )
                        continue
                    used.add(signal.signal_id)
                    payload = {k: v for k, v in signal.payload.items() if k != "visit"}
                    if kind == "human":
                        # the decision answers the shadow's own review item for this visit
                        opened = [
                            item
                            for item in self.accord.review_items(
                                tenant=self.tenant, run_id=started.run_id
                            )
                            if item.block == position.block
                        ]
                        if opened:
                            payload["item"] = opened[0].item_id
                    runtime.signal(
                        self.tenant,
                        signal.name,
                        run_id=started.run_id,
                        payload=payload,
                        kind="decision" if kind == "human" else "event",
                    )
                    progressed = True
                else:
                    shadow.waits.append(
                        f"waits ({kind}) at {position.block}, which a replay cannot answer"
                    )
            if not progressed:
                break
        return shadow


def _recorded_signal(
    recorded: RecordedRun, kind: str, block: str, name: str, used: set[str]
) -> Any:
    wanted = "decision" if kind == "human" else "event"
    for signal in recorded.signals:
        if signal.signal_id in used or signal.kind != wanted:
            continue
        if wanted == "decision" and signal.name.rsplit("/", 1)[-1] != block:
            continue
        if wanted == "event" and signal.name != name:
            continue
        return signal
    return None


def log_redactor(accord: Accord) -> Redactor:
    """The redactor whose pseudonyms equal those in the instance's logs."""
    key = hmac.new(accord.ledger.keyring.master, b"accord log pseudonyms", "sha256").digest()
    return Redactor(pseudonym_key=key)


@contextmanager
def shadow_store(production: Accord, answers: RecordedAnswers) -> Iterator[ShadowStore]:
    """A fresh shadow store in a temporary directory, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="accord-replay-") as directory:
        root = Path(directory)
        settings = Settings(
            database_url=f"sqlite:///{root / 'shadow.db'}",
            keys_dir=root / "keys",
            tenant=production.settings.tenant,
            llm_endpoints=production.settings.llm_endpoints,
            region=production.settings.region,
            commit_window_ms=0,
            capability_modules=[],
            capability_catalogues=[],
            webhooks={},
            nats_url=None,
            otlp_endpoint=None,
        )
        clock = ReplayClock()
        base = CapabilityRegistry(over=deployment_registry(production.capabilities))
        # the conversation a recorded run wrote to, the experiments it was assigned in and the
        # offer outcomes it recorded are not the shadow's: those calls are answered from the
        # recording like any other
        for built_in in (SAY, ASSIGN, RECORD, OFFER_RECORD):
            base.add(production.capabilities.get(built_in))
        instance = build(
            settings,
            capabilities=answers.registry(base),
            clock=clock,
            ids=RandomIds(),
            telemetry=Telemetry(),
        )
        try:
            yield ShadowStore(instance, answers, clock)
        finally:
            instance.close()
