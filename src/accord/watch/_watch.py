"""The watch: check a tenant's journeys against a baseline, keep one open proposal per
degraded (journey, decision point, metric), and let a person accept or reject each.

A check changes nothing in production: it reads the two windows, tests every metric
(:mod:`accord.watch._detect`) and, for each finding without an open proposal, opens one with the
candidate change (:mod:`accord.watch._candidates`) and a ``watch.proposed`` ledger entry. A later
check that finds the same degradation notes that it saw it again; it never opens a second
proposal while one is open, and after a decision it waits until the recent window holds only
runs started after that decision before proposing again for the same metric.

Accepting needs a person and a reason. It applies the change only where Accord has a governed
way to make it (rolling back an agent rollout, making an agent version current, switching a
capability off), through that same way and as that person; a journey change is left for a
person to deploy. Rejecting changes nothing. Both are ``watch.decided`` ledger entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from accord.agents import AgentCatalog
from accord.audit import Ledger, entries
from accord.core import Clock, TenantId
from accord.errors import AccordError, AgentNotFound, InputError, ReviewConflict, ReviewNotFound
from accord.flags import Flags
from accord.storage import Database
from accord.storage import agents as stored_agents
from accord.storage import journeys as stored_journeys
from accord.storage._schema import watch_proposals
from accord.watch._candidates import Candidate, Evidence, candidate_digest, choose
from accord.watch._detect import Comparison, Detection, DetectOptions, detect
from accord.watch._metrics import JOURNEY, Facts, MetricKey, MetricName, measure
from accord.watch._read import read_facts

log = logging.getLogger(__name__)

DAY = 86_400.0
MAX_REASON = 2000
ProposalStatus = Literal["open", "accepting", "accepted", "rejected"]
STATUSES: tuple[ProposalStatus, ...] = ("open", "accepting", "accepted", "rejected")
"""``accepting``: a person accepted and the change is being applied; nobody else may decide."""


class ProposalNotFound(ReviewNotFound):
    """No watch proposal of this tenant has that id."""


class ProposalConflict(ReviewConflict):
    """The proposal was decided already, or its change no longer applies as proposed."""


@dataclass(frozen=True, slots=True)
class Windows:
    """The two windows a check compares: ``[start, end)`` each, epoch seconds."""

    baseline: tuple[float, float]
    recent: tuple[float, float]

    def to_json(self) -> dict[str, list[float]]:
        return {"baseline": list(self.baseline), "recent": list(self.recent)}


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """What a check compares and how sure it must be.

    The recent window is the last ``window`` seconds; the baseline is the ``baseline`` seconds
    before it, or the pinned ``baseline_window`` (start, end).
    """

    window: float = DAY
    baseline: float = 7 * DAY
    baseline_window: tuple[float, float] | None = None
    detect: DetectOptions = field(default_factory=DetectOptions)
    threshold_step: float = 0.05
    """How far a proposed band change raises ``auto`` and ``confirm``."""

    def windows(self, now: float) -> Windows:
        """Raises:
        InputError: a window is empty or not finite, or the pinned baseline overlaps the
            recent window.
        """
        self.detect.check()
        pinned = self.baseline_window or ()
        if not all(math.isfinite(v) for v in (self.window, self.baseline, now, *pinned)):
            raise InputError("the windows must be finite numbers of seconds")
        if self.window <= 0 or self.baseline <= 0:
            raise InputError("the recent and baseline windows must be longer than zero")
        if not 0.0 < self.threshold_step <= 0.5:
            raise InputError(
                f"the threshold step must be within (0, 0.5], not {self.threshold_step}"
            )
        recent = (now - self.window, now)
        if self.baseline_window is None:
            return Windows((recent[0] - self.baseline, recent[0]), recent)
        start, end = self.baseline_window
        if end <= start:
            raise InputError("the pinned baseline ends before it starts")
        if end > recent[0]:
            raise InputError(
                f"the pinned baseline ends at {_when(end)}, inside the recent window "
                f"(from {_when(recent[0])})",
                hint="pin a baseline that ends before the recent window, or shorten --window",
            )
        return Windows((start, end), recent)


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed change for a person to accept or reject, with the finding it rests on."""

    proposal_id: str
    journey: str
    point: str
    metric: str
    kind: str
    status: str
    finding: dict[str, Any]
    candidate: Candidate
    created_at: float
    last_seen_at: float
    seen: int
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None
    applied: dict[str, Any] | None = None

    @property
    def key(self) -> MetricKey:
        return MetricKey(self.journey, self.point, cast("MetricName", self.metric))

    @property
    def title(self) -> str:
        """The finding in one line, e.g. ``support/triage override rate rose from 4.0% to
        41.0%``."""
        return title_of(self.finding)

    @classmethod
    def from_row(cls, row: RowMapping) -> Proposal:
        return cls(
            proposal_id=row["proposal_id"],
            journey=row["journey"],
            point=row["point"],
            metric=row["metric"],
            kind=row["kind"],
            status=row["status"],
            finding=json.loads(row["finding"]),
            candidate=Candidate.from_json(json.loads(row["candidate"])),
            created_at=float(row["created_at"]),
            last_seen_at=float(row["last_seen_at"]),
            seen=int(row["seen"]),
            decided_by=row["decided_by"],
            decided_at=None if row["decided_at"] is None else float(row["decided_at"]),
            reason=row["reason"],
            applied=json.loads(row["applied"]) if row["applied"] else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal_id,
            "title": self.title,
            "journey": self.journey,
            "point": self.point,
            "metric": self.metric,
            "kind": self.kind,
            "status": self.status,
            "finding": self.finding,
            "candidate": self.candidate.to_json(),
            "created_at": self.created_at,
            "last_seen_at": self.last_seen_at,
            "seen": self.seen,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class Held:
    """A finding not proposed again yet, because a person decided the same metric lately."""

    key: MetricKey
    reason: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What one check compared and found, the proposals it opened, and those still open."""

    tenant: str
    at: float
    windows: Windows
    detection: Detection
    opened: tuple[Proposal, ...] = ()
    still_open: tuple[Proposal, ...] = ()
    held: tuple[Held, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "at": self.at,
            "windows": self.windows.to_json(),
            "alpha": self.detection.alpha,
            "compared": [c.to_json() for c in self.detection.compared],
            "skipped": [{**s.key.to_json(), "reason": s.reason} for s in self.detection.skipped],
            "findings": [c.to_json() for c in self.detection.findings],
            "opened": [p.to_json() for p in self.opened],
            "still_open": [p.proposal_id for p in self.still_open],
            "held": [{**h.key.to_json(), "reason": h.reason} for h in self.held],
        }


class Watch:
    """Checks, proposals and decisions of the degradation watch, per tenant."""

    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        clock: Clock,
        new_id: Callable[[str], str],
        *,
        agents: AgentCatalog,
        flags: Flags,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.clock = clock
        self.new_id = new_id
        self.agents = agents
        self.flags = flags

    # -- checking ---------------------------------------------------------------------------

    def check(
        self, tenant: str, *, options: WatchOptions | None = None, now: float | None = None
    ) -> CheckReport:
        """Compare the recent window with the baseline and open a proposal for each new
        finding. Changes nothing but the proposals and their ledger entries.

        Raises:
            InputError: the options are out of range.
        """
        options = options or WatchOptions()
        now = self.clock.now() if now is None else now
        windows = options.windows(now)
        with self.db.read() as connection:
            baseline = read_facts(connection, tenant, *windows.baseline)
            recent = read_facts(connection, tenant, *windows.recent)
        detection = detect(measure(baseline), measure(recent), options.detect)
        opened: list[Proposal] = []
        still_open: list[Proposal] = []
        held: list[Held] = []
        evidence: Evidence | None = None
        for finding in detection.findings:
            found = self._open_for(tenant, finding.key)
            if found is not None:
                still_open.append(self._seen_again(tenant, found, now))
                continue
            last = self._last_decided(tenant, finding.key)
            decided_at = last.decided_at if last is not None else None
            if last is not None and decided_at is not None and decided_at > windows.recent[0]:
                held.append(
                    Held(
                        finding.key,
                        f"proposal {last.proposal_id} was {last.status} at "
                        f"{_when(decided_at)}, after the recent window began; the watch "
                        "proposes again once the window holds only runs started since",
                    )
                )
                continue
            if evidence is None:
                evidence = self._evidence(tenant, baseline, recent, options)
            proposal = self._propose(tenant, finding, choose(finding, evidence), windows, now)
            if proposal is None:
                # opened by a check running at the same moment elsewhere
                raced = self._open_for(tenant, finding.key)
                if raced is not None:
                    still_open.append(raced)
                continue
            opened.append(proposal)
        return CheckReport(
            tenant, now, windows, detection, tuple(opened), tuple(still_open), tuple(held)
        )

    def run(
        self,
        stop: threading.Event,
        *,
        tenant: str,
        interval: float,
        options: WatchOptions | None = None,
    ) -> None:
        """Check now and then every ``interval`` seconds until ``stop`` is set (what
        ``accord serve`` runs in a thread)."""
        while not stop.is_set():
            try:
                report = self.check(tenant, options=options)
                for proposal in report.opened:
                    log.warning(
                        "watch: %s; proposal %s: %s",
                        proposal.title,
                        proposal.proposal_id,
                        proposal.candidate.summary,
                    )
            except sa.exc.DBAPIError as exc:
                log.warning("watch: database error, checking again later: %s", exc.orig)
            except AccordError as exc:
                log.warning("watch: %s; checking again later", exc.message)
            except Exception:
                log.exception("watch: the check failed; checking again later")
            stop.wait(interval)

    # -- reading ----------------------------------------------------------------------------

    def proposals(
        self, tenant: str, *, status: str | None = "open", limit: int = 100
    ) -> list[Proposal]:
        """Proposals, newest first (``status`` None: every status).

        Raises:
            InputError: an unknown status.
        """
        if status is not None and status not in STATUSES:
            raise InputError(
                f"{status!r} is not a proposal status", hint="one of: " + ", ".join(STATUSES)
            )
        query = sa.select(watch_proposals).where(watch_proposals.c.tenant_id == tenant)
        if status is not None:
            query = query.where(watch_proposals.c.status == status)
        query = query.order_by(
            watch_proposals.c.created_at.desc(), watch_proposals.c.proposal_id.desc()
        ).limit(limit)
        with self.db.read() as connection:
            return [Proposal.from_row(r) for r in connection.execute(query).mappings()]

    def get(self, tenant: str, proposal_id: str) -> Proposal:
        """Raises:
        ProposalNotFound: no proposal of the tenant has that id.
        """
        with self.db.read() as connection:
            row = _row(connection, tenant, proposal_id)
        if row is None:
            raise ProposalNotFound(
                f"no watch proposal {proposal_id!r} in tenant {tenant!r}",
                hint="'accord watch list' shows the open proposals",
            )
        return Proposal.from_row(row)

    # -- deciding ---------------------------------------------------------------------------

    def accept(self, tenant: str, proposal_id: str, *, by: str, reason: str) -> Proposal:
        """A person accepts: the change is applied where Accord can apply it (as ``by``),
        and the decision is recorded.

        Raises:
            InputError: no person or no reason.
            ProposalNotFound: no such proposal.
            ProposalConflict: it was decided already, or its change no longer applies (a
                rollout that ended meanwhile); then nothing changed.
        """
        _require_decision(by, reason, "accepting")
        proposal = self._claim(tenant, proposal_id, by=by)
        try:
            applied = self._apply(tenant, proposal, by=by, reason=reason)
        except BaseException:
            self._release(tenant, proposal_id)
            raise
        return self._decide(
            tenant,
            proposal,
            "accepted",
            by=by,
            reason=reason,
            applied=applied,
            claimed=True,
        )

    def reject(self, tenant: str, proposal_id: str, *, by: str, reason: str) -> Proposal:
        """A person rejects: nothing changes, and the decision is recorded.

        Raises:
            InputError: no person or no reason.
            ProposalNotFound: no such proposal.
            ProposalConflict: it was decided already, or it is being accepted.
        """
        _require_decision(by, reason, "rejecting")
        proposal = self._require_open(tenant, proposal_id)
        return self._decide(tenant, proposal, "rejected", by=by, reason=reason, applied=None)

    def _require_open(self, tenant: str, proposal_id: str) -> Proposal:
        proposal = self.get(tenant, proposal_id)
        if proposal.status == "accepting":
            raise ProposalConflict(
                f"proposal {proposal_id} is being accepted by {proposal.decided_by} (since "
                f"{_when(proposal.decided_at or proposal.created_at)})",
                hint=f"accord watch show {proposal_id}",
            )
        if proposal.status != "open":
            raise ProposalConflict(
                f"proposal {proposal_id} was {proposal.status} by {proposal.decided_by} at "
                f"{_when(proposal.decided_at or proposal.created_at)}",
                hint="a decided proposal stays decided; the next check proposes again if the "
                "degradation goes on",
            )
        return proposal

    def _claim(self, tenant: str, proposal_id: str, *, by: str) -> Proposal:
        """Mark an open proposal ``accepting`` before its change is applied, so that nobody
        decides it meanwhile.

        Raises:
            ProposalNotFound: no such proposal.
            ProposalConflict: it is not open (decided, or being accepted).
        """
        proposal = self._require_open(tenant, proposal_id)
        with self.db.transaction() as connection:
            result = connection.execute(
                watch_proposals.update()
                .where(
                    watch_proposals.c.tenant_id == tenant,
                    watch_proposals.c.proposal_id == proposal_id,
                    watch_proposals.c.status == "open",
                )
                .values(status="accepting", decided_by=by, decided_at=self.clock.now())
            )
            claimed = result.rowcount == 1
        if not claimed:
            self._require_open(tenant, proposal_id)
            raise ProposalConflict(
                f"proposal {proposal_id} was decided by someone else just now",
                hint=f"accord watch show {proposal_id}",
            )
        return proposal

    def _release(self, tenant: str, proposal_id: str) -> None:
        """Open a claimed proposal again, after its change could not be applied."""
        with self.db.transaction() as connection:
            connection.execute(
                watch_proposals.update()
                .where(
                    watch_proposals.c.tenant_id == tenant,
                    watch_proposals.c.proposal_id == proposal_id,
                    watch_proposals.c.status == "accepting",
                )
                .values(status="open", decided_by=None, decided_at=None)
            )

    def _apply(
        self, tenant: str, proposal: Proposal, *, by: str, reason: str
    ) -> dict[str, Any] | None:
        candidate = proposal.candidate
        if not candidate.applies:
            return None
        change = candidate.change
        why = f"watch proposal {proposal.proposal_id}: {reason}"
        try:
            if candidate.kind == "rollback_rollout":
                rolled = self.agents.stop_rollout(
                    TenantId(tenant), str(change["rollout_id"]), reason=why, by=by
                )
                return {
                    "rollout_id": rolled.rollout_id,
                    "status": rolled.status,
                    "percent": rolled.percent,
                }
            if candidate.kind == "restore_agent_version":
                agent = str(change["agent"])
                current = self.agents.current_version(tenant, agent)
                if current != int(change["current"]):
                    raise ProposalConflict(
                        f"proposal {proposal.proposal_id} cannot be applied: agent {agent} "
                        f"is at v{current} now, not v{change['current']} as proposed",
                        hint="the change no longer applies as proposed; reject the proposal "
                        "with a reason that says so: "
                        f"accord watch reject {proposal.proposal_id} --reason ...",
                    )
                promoted = self.agents.promote(
                    TenantId(tenant), str(change["agent"]), int(change["version"]), by=by
                )
                return {
                    "rollout_id": promoted.rollout_id,
                    "agent": promoted.agent,
                    "version": promoted.candidate_version,
                    "status": promoted.status,
                }
            if candidate.kind == "kill_switch":
                record = self.flags.set(tenant, str(change["flag"]), False, actor=by, reason=why)
                return {"flag": record.key, "value": False, "version": record.version}
        except (AgentNotFound, InputError) as exc:
            if isinstance(exc, ProposalConflict):
                raise
            raise ProposalConflict(
                f"proposal {proposal.proposal_id} cannot be applied: {exc.message}",
                hint="the change no longer applies as proposed; reject the proposal with a "
                f"reason that says so: accord watch reject {proposal.proposal_id} --reason ...",
            ) from exc
        raise AssertionError(f"no way to apply a {candidate.kind} candidate")

    def _decide(
        self,
        tenant: str,
        proposal: Proposal,
        status: ProposalStatus,
        *,
        by: str,
        reason: str,
        applied: dict[str, Any] | None,
        claimed: bool = False,
    ) -> Proposal:
        now = self.clock.now()
        with self.db.transaction() as connection:
            result = connection.execute(
                watch_proposals.update()
                .where(
                    watch_proposals.c.tenant_id == tenant,
                    watch_proposals.c.proposal_id == proposal.proposal_id,
                    watch_proposals.c.status == ("accepting" if claimed else "open"),
                )
                .values(
                    status=status,
                    open_key=None,
                    decided_by=by,
                    decided_at=now,
                    reason=reason,
                    applied=json.dumps(applied) if applied is not None else None,
                )
            )
            if not result.rowcount:
                # accepting claims the proposal first, so only a reject gets here
                raise ProposalConflict(
                    f"proposal {proposal.proposal_id} was decided by someone else just now",
                    hint=f"accord watch show {proposal.proposal_id}",
                )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.watch_event(
                        "watch.decided",
                        proposal_id=proposal.proposal_id,
                        at=now,
                        body={
                            **proposal.key.to_json(),
                            "decision": status,
                            "by": by,
                            "reason": reason,
                            "candidate": proposal.candidate.kind,
                            "applies": proposal.candidate.applies,
                            "applied": applied,
                        },
                    )
                ],
            )
        return self.get(tenant, proposal.proposal_id)

    # -- proposals in the database ----------------------------------------------------------

    def _open_for(self, tenant: str, key: MetricKey) -> Proposal | None:
        with self.db.read() as connection:
            row = (
                connection.execute(
                    sa.select(watch_proposals).where(
                        watch_proposals.c.tenant_id == tenant,
                        watch_proposals.c.open_key == open_key(key),
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else Proposal.from_row(row)

    def _last_decided(self, tenant: str, key: MetricKey) -> Proposal | None:
        p = watch_proposals.c
        with self.db.read() as connection:
            row = (
                connection.execute(
                    sa.select(watch_proposals)
                    .where(
                        p.tenant_id == tenant,
                        p.journey == key.journey,
                        p.point == key.point,
                        p.metric == key.metric,
                        p.status.in_(("accepted", "rejected")),
                    )
                    .order_by(p.decided_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else Proposal.from_row(row)

    def _seen_again(self, tenant: str, proposal: Proposal, now: float) -> Proposal:
        with self.db.transaction() as connection:
            connection.execute(
                watch_proposals.update()
                .where(
                    watch_proposals.c.tenant_id == tenant,
                    watch_proposals.c.proposal_id == proposal.proposal_id,
                    watch_proposals.c.status == "open",
                )
                .values(last_seen_at=now, seen=watch_proposals.c.seen + 1)
            )
        return self.get(tenant, proposal.proposal_id)

    def _propose(
        self,
        tenant: str,
        finding: Comparison,
        candidate: Candidate,
        windows: Windows,
        now: float,
    ) -> Proposal | None:
        proposal_id = self.new_id("wp")
        figures = {**finding.to_json(), "windows": windows.to_json()}
        row = {
            "tenant_id": tenant,
            "proposal_id": proposal_id,
            **finding.key.to_json(),
            "kind": finding.kind,
            "status": "open",
            "open_key": open_key(finding.key),
            "finding": json.dumps(figures),
            "candidate": json.dumps(candidate.to_json()),
            "created_at": now,
            "last_seen_at": now,
            "seen": 1,
        }
        with self.db.transaction() as connection:
            try:
                with connection.begin_nested():
                    connection.execute(watch_proposals.insert().values(**row))
            except sa.exc.IntegrityError:
                return None
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.watch_event(
                        "watch.proposed",
                        proposal_id=proposal_id,
                        at=now,
                        body={
                            **finding.key.to_json(),
                            "kind": finding.kind,
                            "finding": figures,
                            "candidate": candidate_digest(candidate),
                        },
                    )
                ],
            )
        return self.get(tenant, proposal_id)

    def _evidence(
        self, tenant: str, baseline: Facts, recent: Facts, options: WatchOptions
    ) -> Evidence:
        names = {r.journey for r in (*baseline.runs, *recent.runs)}
        with self.db.read() as connection:
            rollouts = stored_agents.list_rollouts(connection, TenantId(tenant))
            journeys = {
                name: stored_journeys.list_versions(connection, TenantId(tenant), name)
                for name in sorted(names)
            }

        def bands(reference: str) -> tuple[float, float] | None:
            name, _, version = reference.partition("@")
            try:
                definition = self.agents.get(
                    tenant,
                    name,
                    int(version) if version else self.agents.current_version(tenant, name),
                )
            except AgentNotFound:
                return None
            return definition.spec.bands.auto, definition.spec.bands.confirm

        return Evidence(
            baseline=baseline,
            recent=recent,
            rollouts=rollouts,
            journeys=journeys,
            bands=bands,
            min_rate_change=options.detect.min_rate_change,
            threshold_step=options.threshold_step,
        )


def open_key(key: MetricKey) -> str:
    """The unique key of an open proposal: one per (journey, decision point, metric)."""
    text = "\x1f".join((key.journey, key.point, key.metric))
    return hashlib.sha256(text.encode()).hexdigest()


def title_of(finding: dict[str, Any]) -> str:
    """A finding in one line, from its stored figures."""
    where = (
        finding["journey"]
        if finding["point"] == JOURNEY
        else f"{finding['journey']}/{finding['point']}"
    )
    metric = str(finding["metric"]).replace("_", " ")
    before, after = finding["baseline"], finding["recent"]
    if "rate" in before:
        return f"{where} {metric} rose from {before['rate']:.1%} to {after['rate']:.1%}"
    if "median" in before:
        return f"{where} {metric}: median {before['median']:.3g} s → {after['median']:.3g} s"
    return f"{where} {metric} drifted (PSI {finding['effect'] or 0:.2f})"


def _require_decision(by: str, reason: str, what: str) -> None:
    if not by or not by.strip() or len(by) > 128:
        raise InputError(
            f"{what} a proposal needs the person who decides (1 to 128 characters)",
            hint="--by PERSON",
        )
    if not reason or not reason.strip():
        raise InputError(f"{what} a proposal needs a reason", hint="--reason 'why'")
    if len(reason) > MAX_REASON:
        raise InputError(f"a reason is at most {MAX_REASON} characters, not {len(reason)}")


def _row(connection: Connection, tenant: str, proposal_id: str) -> RowMapping | None:
    return (
        connection.execute(
            sa.select(watch_proposals).where(
                watch_proposals.c.tenant_id == tenant,
                watch_proposals.c.proposal_id == proposal_id,
            )
        )
        .mappings()
        .first()
    )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


__all__ = [
    "STATUSES",
    "CheckReport",
    "Held",
    "Proposal",
    "ProposalConflict",
    "ProposalNotFound",
    "ProposalStatus",
    "Watch",
    "WatchOptions",
    "Windows",
]
