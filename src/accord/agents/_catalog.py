"""Deployed agent versions, their trained models, rollouts, the answer cache and metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accord.agents._engine import CachedAnswer
from accord.agents._loader import LoadedAgent
from accord.agents._rollouts import STAGES, next_stage, rollback_reason
from accord.agents._spec import AgentDefinition
from accord.audit import Ledger, entries
from accord.core import Clock, TenantId
from accord.errors import AgentInvalid, AgentNotFound, Diagnostic, RolloutConflict
from accord.journeys import AgentContract
from accord.storage import AgentVersionRecord, Database, NewEvent, OutcomeStats, RolloutRecord
from accord.storage import agents as stored
from accord.storage import runs as stored_runs


@dataclass(frozen=True, slots=True)
class AgentDeployment:
    """The outcome of a deploy: the version stored, and whether it is new."""

    name: str
    version: int
    digest: str
    created: bool


class AgentCatalog:
    """Agent versions per tenant. A version is immutable, so definitions are cached forever."""

    def __init__(
        self, db: Database, ledger: Ledger, clock: Clock, new_id: Callable[[str], str]
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock
        self._new_id = new_id
        self._definitions: dict[tuple[str, str, int], AgentDefinition] = {}
        self._models: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def deploy(
        self, tenant: TenantId, loaded: LoadedAgent, *, deployed_by: str = "cli"
    ) -> AgentDeployment:
        """Store a new agent version with its models; a repeat of a stored version is a no-op.

        Raises:
            AgentInvalid: this version is already deployed with other content.
        """
        definition = loaded.definition
        now = self._clock.now()
        with self._db.transaction() as connection:
            found = stored.get_agent_version(
                connection, tenant, definition.name, definition.version
            )
            if found is not None:
                if found.digest == definition.digest:
                    return AgentDeployment(definition.name, definition.version, found.digest, False)
                raise AgentInvalid(
                    [
                        Diagnostic(
                            f"agent {definition.name!r} version {definition.version} is already "
                            f"deployed with other content (digest {found.digest[:12]}, this one "
                            f"{definition.digest[:12]})",
                            definition.source_name,
                            path="version",
                        )
                    ],
                    hint="a deployed version never changes: give the changed spec a new version",
                )
            for path, data in loaded.model_files.items():
                stored.put_model(connection, tenant, definition.models[path], data, now)
            try:
                stored.insert_agent_version(
                    connection,
                    AgentVersionRecord(
                        tenant_id=tenant,
                        name=definition.name,
                        version=definition.version,
                        digest=definition.digest,
                        source_name=definition.source_name,
                        definition=json.dumps(definition.to_json(), sort_keys=True),
                        deployed_at=now,
                        deployed_by=deployed_by,
                    ),
                )
            except IntegrityError as exc:
                raise AgentInvalid(
                    [
                        Diagnostic(
                            f"agent {definition.name!r} version {definition.version} was "
                            "deployed at the same time by someone else",
                            definition.source_name,
                        )
                    ],
                    hint="look at 'accord agent list' and deploy again if needed",
                ) from exc
            self._ledger.append(
                connection,
                tenant,
                [
                    entries.agent_deploy(
                        name=definition.name,
                        version=definition.version,
                        digest=definition.digest,
                        prompt_digest=definition.prompt_digest,
                        models=definition.models,
                        source_name=definition.source_name,
                        actor=deployed_by,
                        at=now,
                    )
                ],
            )
        return AgentDeployment(definition.name, definition.version, definition.digest, True)

    def get(self, tenant: str, name: str, version: int | None = None) -> AgentDefinition:
        """A deployed version (the latest when ``version`` is None).

        Raises:
            AgentNotFound: with the versions that exist.
        """
        if version is not None:
            cached = self._definitions.get((tenant, name, version))
            if cached is not None:
                return cached
        with self._db.read() as connection:
            record = stored.get_agent_version(connection, TenantId(tenant), name, version)
            if record is None:
                known = stored.list_agent_versions(connection, TenantId(tenant), name)
        if record is None:
            if known:
                versions = ", ".join(str(r.version) for r in known)
                raise AgentNotFound(
                    f"agent {name!r} has no version {version}", hint=f"versions: {versions}"
                )
            raise AgentNotFound(
                f"no agent named {name!r} is deployed",
                hint="deploy its spec with 'accord agent deploy SPEC'",
            )
        key = (tenant, record.name, record.version)
        with self._lock:
            cached = self._definitions.get(key)
            if cached is None:
                cached = AgentDefinition.from_json(json.loads(record.definition))
                self._definitions[key] = cached
        return cached

    def current_version(self, tenant: str, name: str) -> int | None:
        """The version agent blocks without a pin use while no rollout is active.

        An agent's first version is current until a rollout promotes another: deploying a
        new version makes it a candidate, never the live one by itself.
        """
        with self._db.read() as connection:
            versions = stored.list_agent_versions(connection, TenantId(tenant), name)
            history = stored.list_rollouts(connection, TenantId(tenant), name)
        if not versions:
            return None
        promoted = [r for r in history if r.status == "promoted"]
        if promoted:
            return max(promoted, key=lambda r: (r.updated_at, r.rollout_id)).candidate_version
        return versions[0].version

    def contract(self, tenant: str, name: str, version: int | None) -> AgentContract | None:
        """The input and output schemas lint checks agent blocks against."""
        try:
            definition = self.get(tenant, name, version or self.current_version(tenant, name))
        except AgentNotFound:
            return None
        return AgentContract(definition.spec.input_schema(), definition.spec.output.schema_)

    def versions(self, tenant: TenantId, name: str | None = None) -> list[AgentVersionRecord]:
        with self._db.read() as connection:
            return stored.list_agent_versions(connection, tenant, name)

    def model_bytes(self, tenant: str, digest: str) -> bytes:
        """The stored bytes of a trained model."""
        cached = self._models.get((tenant, digest))
        if cached is not None:
            return cached
        with self._db.read() as connection:
            data = stored.get_model(connection, TenantId(tenant), digest)
        if data is None:
            raise AgentNotFound(f"no trained model with digest {digest[:12]} is stored")
        self._models[(tenant, digest)] = data
        return data

    def cache(self, tenant: str, subject_id: str | None = None) -> DatabaseAnswerCache:
        """The answer cache, attributing what it stores to ``subject_id`` (erased with it)."""
        return DatabaseAnswerCache(self._db, TenantId(tenant), subject_id)

    # rollouts

    def start_rollout(
        self,
        tenant: TenantId,
        agent: str,
        candidate: int,
        *,
        mode: str = "canary",
        primary: int | None = None,
        percent: float = STAGES[0],
        margin: float = 0.1,
        min_samples: int = 20,
        by: str = "cli",
    ) -> RolloutRecord:
        """Start a canary (a sticky share of subjects to ``candidate``) or a shadow.

        Raises:
            AgentNotFound: either version is not deployed.
            RolloutConflict: the agent already has an active rollout.
            InputError: percent, margin or min_samples out of range.
        """
        if mode not in ("canary", "shadow"):
            raise RolloutConflict(f"unknown rollout mode {mode!r}", hint="canary or shadow")
        _check_percent(percent)
        if not 0.0 <= margin <= 1.0:
            raise RolloutConflict(f"margin {margin} is outside 0..1", hint="e.g. 0.1 for 10 points")
        if min_samples < 1:
            raise RolloutConflict("min_samples must be at least 1")
        current = self.get(tenant, agent, primary or self.current_version(tenant, agent))
        self.get(tenant, agent, candidate)
        if current.version == candidate:
            raise RolloutConflict(
                f"the candidate v{candidate} is the primary version itself",
                hint="deploy a new version and roll that out",
            )
        now = self._clock.now()
        record = RolloutRecord(
            tenant_id=tenant,
            rollout_id=self._new_id("rol"),
            agent=agent,
            mode=mode,
            primary_version=current.version,
            candidate_version=candidate,
            percent=percent if mode == "canary" else 0.0,
            margin=margin,
            min_samples=min_samples,
            status="active",
            reason=None,
            created_by=by,
            created_at=now,
            updated_at=now,
        )
        with self._db.transaction() as connection:
            if stored.active_rollouts(connection, tenant, agent):
                raise RolloutConflict(
                    f"agent {agent!r} already has an active rollout",
                    hint="stop, promote or roll it back first ('accord agent rollout list')",
                )
            stored.insert_rollout(connection, record)
            self._ledger.append(
                connection, tenant, [_rollout_entry(record, "started", None, by, now)]
            )
            self._publish(connection, record, "started", None, by, now)
        return record

    def active_rollout(self, tenant: str, agent: str) -> RolloutRecord | None:
        with self._db.read() as connection:
            found = stored.active_rollouts(connection, TenantId(tenant), agent)
        return found[0] if found else None

    def rollouts(self, tenant: TenantId, agent: str | None = None) -> list[RolloutRecord]:
        with self._db.read() as connection:
            return stored.list_rollouts(connection, tenant, agent)

    def rollout(self, tenant: TenantId, rollout_id: str) -> RolloutRecord:
        with self._db.read() as connection:
            found = stored.get_rollout(connection, tenant, rollout_id)
        if found is None:
            raise RolloutConflict(f"no rollout {rollout_id!r}", hint="'accord agent rollout list'")
        return found

    def advance_rollout(
        self, tenant: TenantId, rollout_id: str, *, percent: float | None = None, by: str = "cli"
    ) -> RolloutRecord:
        """Send a larger share to the candidate: ``percent``, or the next stage."""
        current = self._active(tenant, rollout_id)
        if current.mode != "canary":
            raise RolloutConflict("a shadow rollout has no percentage; promote or stop it")
        target = percent if percent is not None else next_stage(current.percent)
        if target is None:
            raise RolloutConflict(
                "the rollout already sends 100% to the candidate", hint="promote it"
            )
        _check_percent(target)
        return self._change(tenant, current, "advanced", None, by, percent=target)

    def promote(
        self, tenant: TenantId, agent: str, version: int, *, by: str = "cli"
    ) -> RolloutRecord:
        """Make ``version`` current at once, without a canary (recorded as a rollout)."""
        record = self.start_rollout(tenant, agent, version, percent=100.0, by=by)
        return self.promote_rollout(tenant, record.rollout_id, by=by)

    def promote_rollout(
        self, tenant: TenantId, rollout_id: str, *, by: str = "cli"
    ) -> RolloutRecord:
        """The candidate becomes the version agent blocks without a pin use."""
        current = self._active(tenant, rollout_id)
        return self._change(tenant, current, "promoted", None, by, status="promoted", percent=100.0)

    def stop_rollout(
        self, tenant: TenantId, rollout_id: str, *, reason: str, by: str = "cli"
    ) -> RolloutRecord:
        current = self._active(tenant, rollout_id)
        return self._change(tenant, current, "stopped", reason, by, status="stopped", percent=0.0)

    def check_rollouts(self, tenant: TenantId | None = None) -> list[RolloutRecord]:
        """Roll back every active rollout whose candidate does worse than the margin allows.

        Returns the rollouts rolled back now. Safe to call from many workers at once: each
        rollback is a conditional update, so one of them wins.
        """
        with self._db.read() as connection:
            active = (
                stored.all_active_rollouts(connection)
                if tenant is None
                else stored.active_rollouts(connection, tenant)
            )
        rolled: list[RolloutRecord] = []
        for rollout in active:
            stats = self.rollout_stats(TenantId(rollout.tenant_id), rollout)
            candidate_arm = "candidate" if rollout.mode == "canary" else "shadow"
            reason = rollback_reason(
                stats.get("primary"),
                stats.get(candidate_arm),
                margin=rollout.margin,
                min_samples=rollout.min_samples,
            )
            if reason is None:
                continue
            try:
                rolled.append(
                    self._change(
                        TenantId(rollout.tenant_id),
                        rollout,
                        "rolled_back",
                        reason,
                        "accord",
                        status="rolled_back",
                        percent=0.0,
                    )
                )
            except RolloutConflict:
                continue
        return rolled

    def purge_cache(self) -> int:
        """Delete expired cached answers of every tenant; returns how many."""
        with self._db.transaction() as connection:
            return stored.cache_purge_all(connection, self._clock.now())

    def rollout_stats(self, tenant: TenantId, rollout: RolloutRecord) -> dict[str, OutcomeStats]:
        """Outcome counts per arm (primary, candidate, shadow) of one rollout."""
        with self._db.read() as connection:
            found = stored.outcome_stats(connection, tenant, rollout_id=rollout.rollout_id)
        return {s.arm: s for s in found}

    def stats(self, tenant: TenantId, agent: str | None = None) -> list[OutcomeStats]:
        with self._db.read() as connection:
            return stored.outcome_stats(connection, tenant, agent=agent)

    def run_usage(self, tenant: TenantId, run_id: str) -> dict[str, Any]:
        with self._db.read() as connection:
            return stored.run_usage(connection, tenant, run_id)

    def _active(self, tenant: TenantId, rollout_id: str) -> RolloutRecord:
        current = self.rollout(tenant, rollout_id)
        if current.status != "active":
            raise RolloutConflict(
                f"rollout {rollout_id} is {current.status}, not active",
                hint="start a new rollout to try the candidate again",
            )
        return current

    def _change(
        self,
        tenant: TenantId,
        current: RolloutRecord,
        change: str,
        reason: str | None,
        by: str,
        *,
        status: str | None = None,
        percent: float | None = None,
    ) -> RolloutRecord:
        now = self._clock.now()
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if percent is not None:
            values["percent"] = percent
        if reason is not None:
            values["reason"] = reason
        with self._db.transaction() as connection:
            changed = stored.update_rollout(
                connection,
                tenant,
                current.rollout_id,
                expected_status="active",
                expected_percent=current.percent,
                at=now,
                **values,
            )
            if not changed:
                raise RolloutConflict(
                    f"rollout {current.rollout_id} changed meanwhile",
                    hint="look at it again with 'accord agent rollout list'",
                )
            updated = stored.get_rollout(connection, tenant, current.rollout_id)
            assert updated is not None
            self._ledger.append(
                connection, tenant, [_rollout_entry(updated, change, reason, by, now)]
            )
            self._publish(connection, updated, change, reason, by, now)
        return updated

    def _publish(
        self,
        connection: Connection,
        record: RolloutRecord,
        change: str,
        reason: str | None,
        by: str,
        at: float,
    ) -> None:
        stored_runs.insert_outbox(
            connection,
            record.tenant_id,
            None,
            None,
            [
                NewEvent(
                    self._new_id("evt"),
                    "rollout.changed",
                    {
                        "rollout_id": record.rollout_id,
                        "agent": record.agent,
                        "change": change,
                        "mode": record.mode,
                        "status": record.status,
                        "primary_version": record.primary_version,
                        "candidate_version": record.candidate_version,
                        "percent": record.percent,
                        "reason": reason,
                        "by": by,
                    },
                )
            ],
            at,
        )


def _check_percent(percent: float) -> None:
    if not 0.0 < percent <= 100.0:
        raise RolloutConflict(
            f"percent {percent} is outside 0..100", hint="stages are 5, 25, 50 and 100"
        )


def _rollout_entry(
    record: RolloutRecord, change: str, reason: str | None, by: str, at: float
) -> entries.Entry:
    return entries.agent_rollout(
        rollout_id=record.rollout_id,
        agent=record.agent,
        change=change,
        state={
            "mode": record.mode,
            "primary_version": record.primary_version,
            "candidate_version": record.candidate_version,
            "percent": record.percent,
            "margin": record.margin,
            "min_samples": record.min_samples,
            "status": record.status,
        },
        reason=reason,
        actor=by,
        at=at,
    )


class DatabaseAnswerCache:
    """The answer cache in the ``agent_cache`` table."""

    def __init__(self, db: Database, tenant: TenantId, subject_id: str | None = None) -> None:
        self._db = db
        self._tenant = tenant
        self._subject_id = subject_id

    def get(self, key: str, now: float) -> CachedAnswer | None:
        with self._db.read() as connection:
            text = stored.cache_get(connection, self._tenant, key, now)
        if text is None:
            return None
        data = json.loads(text)
        return CachedAnswer(
            data["output"], float(data["confidence"]), data["provider"], data["model"]
        )

    def put(self, key: str, answer: CachedAnswer, *, now: float, ttl: float) -> None:
        text = json.dumps(
            {
                "output": answer.output,
                "confidence": answer.confidence,
                "provider": answer.provider,
                "model": answer.model,
            }
        )
        with self._db.transaction() as connection:
            stored.cache_put(
                connection,
                self._tenant,
                key,
                model=f"{answer.provider}:{answer.model}"[:200],
                subject_id=self._subject_id,
                answer=text,
                now=now,
                expires_at=now + ttl,
            )
