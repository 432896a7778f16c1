"""Experiments in the database: designs, sticky assignment by subject, outcomes, the report,
and the decisions to ship or stop, each recorded in the ledger.

Assignment is deterministic and sticky: a subject's bucket is HMAC-SHA256 of their id under
the experiment's own random salt, so the same subject always lands in the same arm, and nobody
can predict the arm of an id without the salt. The first assignment is stored and written to
the ledger (``experiment.assigned``); later calls answer the stored arm. A share of subjects
(``holdout``) is kept out of every arm.

Outcomes are one value per subject and metric, in arrival order, and are analysed with an
always-valid sequential test (:mod:`accord.experiments._analysis`), so the report may be read
at any time without inflating the error rates. A guardrail breach stops the experiment at once,
with the figures recorded; shipping or stopping otherwise is a person's decision.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from accord.audit import Ledger, entries
from accord.core import Clock, TenantId
from accord.errors import InputError
from accord.experiments._analysis import (
    Comparison,
    Observation,
    compare,
    default_tau,
    required_sample,
)
from accord.experiments._spec import ExperimentSpec
from accord.storage import Database
from accord.storage._schema import experiment_assignments, experiment_observations, experiments

HOLDOUT = "holdout"
BURN_IN = 30
"""Outcomes each arm needs before a look counts: below it the plug-in variance is too rough
for the test's normal approximation (a handful of equal values would look certain)."""
Status = Literal["running", "shipped", "stopped"]
Recorded = Literal["recorded", "duplicate", "not_assigned", "closed"]


class ExperimentNotFound(InputError):
    """No experiment of this tenant has that name."""


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: str
    in_experiment: bool
    """False once the experiment ended (everyone new gets the outcome) or for the holdout."""
    status: str


@dataclass(frozen=True, slots=True)
class GuardrailCheck:
    metric: str
    comparison: Comparison
    breached: bool


@dataclass(frozen=True, slots=True)
class Report:
    """Where an experiment stands: counts, the primary comparison of each treatment with the
    control, each guardrail, and what the figures say to do."""

    experiment: str
    version: int
    status: str
    decision: dict[str, Any] | None
    alpha: float
    assigned: dict[str, int]
    primary: list[Comparison]
    guardrails: list[GuardrailCheck]
    planned_sample: int | None
    verdict: str
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        for comparison in [*found["primary"], *(g["comparison"] for g in found["guardrails"])]:
            for key in ("low", "high"):
                if not math.isfinite(comparison[key]):
                    comparison[key] = None
        return found


class Experiments:
    def __init__(self, db: Database, ledger: Ledger, clock: Clock) -> None:
        self.db = db
        self.ledger = ledger
        self.clock = clock

    # -- designs ----------------------------------------------------------------------------

    def create(self, tenant: TenantId, spec: ExperimentSpec, *, actor: str) -> None:
        """Start ``spec``. A design of the same name may be replaced only by a higher version
        after the earlier one ended (its assignments and outcomes go with it).

        Raises:
            InputError: an experiment of that name is running, or the version is not higher.
        """
        now = self.clock.now()
        with self.db.transaction() as connection:
            found = self._row(connection, tenant, spec.experiment, lock=True)
            if found is not None:
                if found["status"] == "running":
                    raise InputError(
                        f"experiment {spec.experiment!r} is running",
                        hint="ship or stop it first: accord experiment stop NAME --reason ...",
                    )
                if spec.version <= found["version"]:
                    raise InputError(
                        f"experiment {spec.experiment!r} v{found['version']} exists; a new "
                        f"design needs a higher version than {found['version']}"
                    )
                for table in (experiment_assignments, experiment_observations):
                    connection.execute(
                        sa.delete(table).where(
                            table.c.tenant_id == tenant, table.c.experiment == spec.experiment
                        )
                    )
                connection.execute(
                    sa.delete(experiments).where(
                        experiments.c.tenant_id == tenant, experiments.c.name == spec.experiment
                    )
                )
            connection.execute(
                sa.insert(experiments).values(
                    tenant_id=tenant,
                    name=spec.experiment,
                    version=spec.version,
                    spec=spec.model_dump_json(),
                    salt=secrets.token_hex(16),
                    status="running",
                    decision=None,
                    created_at=now,
                    updated_at=now,
                )
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.experiment_change(
                        experiment=spec.experiment,
                        version=spec.version,
                        change="created",
                        actor=actor,
                        reason=spec.description or "experiment created",
                        detail={
                            "target": spec.target.model_dump(),
                            "variants": [v.name for v in spec.variants],
                            "control": spec.control,
                            "holdout": spec.holdout,
                            "primary": spec.primary.name,
                            "guardrails": [g.name for g in spec.guardrails],
                            "alpha": spec.alpha,
                        },
                        at=now,
                    )
                ],
            )

    def spec(self, tenant: TenantId, name: str) -> ExperimentSpec:
        with self.db.read() as connection:
            return ExperimentSpec.model_validate_json(
                self._require(connection, tenant, name)["spec"]
            )

    def list(self, tenant: TenantId) -> list[dict[str, Any]]:
        with self.db.read() as connection:
            rows = connection.execute(
                sa.select(experiments).where(experiments.c.tenant_id == tenant)
            ).mappings()
            return [
                {
                    "experiment": r["name"],
                    "version": r["version"],
                    "status": r["status"],
                    "decision": json.loads(r["decision"]) if r["decision"] else None,
                    "created_at": r["created_at"],
                }
                for r in rows
            ]

    # -- assignment and outcomes ------------------------------------------------------------

    def assign(self, tenant: TenantId, name: str, subject: str) -> Assignment:
        """The subject's arm: stored on first use, the same ever after."""
        if not subject or len(subject) > 128:
            raise InputError("an assignment needs a subject id of 1 to 128 characters")
        now = self.clock.now()
        table = experiment_assignments
        mine = (table.c.tenant_id == tenant, table.c.experiment == name)
        with self.db.transaction() as connection:
            row = self._require(connection, tenant, name)
            spec = ExperimentSpec.model_validate_json(row["spec"])
            earlier = connection.execute(
                sa.select(table.c.variant).where(*mine, table.c.subject_id == subject)
            ).scalar()
            if earlier is not None:
                return Assignment(name, str(earlier), earlier != HOLDOUT, row["status"])
            if row["status"] != "running":
                decision = json.loads(row["decision"] or "{}")
                outcome = str(decision.get("variant") or spec.control)
                return Assignment(name, outcome, False, row["status"])
            variant = choose(spec, row["salt"], subject)
            try:
                with connection.begin_nested():
                    connection.execute(
                        sa.insert(table).values(
                            tenant_id=tenant,
                            experiment=name,
                            subject_id=subject,
                            variant=variant,
                            at=now,
                        )
                    )
            except sa.exc.IntegrityError:
                # assigned at the same moment elsewhere: the same arm, already recorded
                return Assignment(name, variant, variant != HOLDOUT, "running")
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.experiment_assigned(
                        experiment=name,
                        version=spec.version,
                        variant=variant,
                        subject_id=subject,
                        at=now,
                    )
                ],
            )
        return Assignment(name, variant, variant != HOLDOUT, "running")

    def record(
        self,
        tenant: TenantId,
        name: str,
        subject: str,
        metric: str,
        value: float,
        *,
        run_id: str | None = None,
    ) -> Recorded:
        """The subject's outcome on ``metric`` (its first one counts), then the guardrails.

        Raises:
            InputError: the experiment does not measure ``metric``, or the value is not a
                finite number (or not 0 or 1 for a binary primary metric).
        """
        if not math.isfinite(value):
            raise InputError(f"{metric}: {value!r} is not a finite number")
        now = self.clock.now()
        with self.db.transaction() as connection:
            row = self._require(connection, tenant, name)
            spec = ExperimentSpec.model_validate_json(row["spec"])
            if metric not in spec.metrics:
                raise InputError(
                    f"experiment {name!r} does not measure {metric!r}",
                    hint="it measures " + ", ".join(spec.metrics),
                )
            if (
                metric == spec.primary.name
                and spec.primary.kind == "binary"
                and value not in (0, 1)
            ):
                raise InputError(f"{metric} is a binary metric: record 0 or 1, not {value}")
            if row["status"] != "running":
                return "closed"
            variant = connection.execute(
                sa.select(experiment_assignments.c.variant).where(
                    experiment_assignments.c.tenant_id == tenant,
                    experiment_assignments.c.experiment == name,
                    experiment_assignments.c.subject_id == subject,
                )
            ).scalar()
            if variant is None:
                return "not_assigned"
            try:
                with connection.begin_nested():
                    connection.execute(
                        sa.insert(experiment_observations).values(
                            tenant_id=tenant,
                            experiment=name,
                            subject_id=subject,
                            metric=metric,
                            variant=variant,
                            value=float(value),
                            run_id=run_id,
                            at=now,
                        )
                    )
            except sa.exc.IntegrityError:
                return "duplicate"
        if metric in {g.name for g in spec.guardrails} and self._due(tenant, name, metric):
            self.watch(tenant, name)
        return "recorded"

    def _due(self, tenant: TenantId, name: str, metric: str) -> bool:
        """Whether this outcome should trigger a guardrail check: each of the first 200, then
        each time the count grows by about 1%. The test is valid at any looks, so checking less
        often only delays a stop a little, and a report's reading checks too."""
        table = experiment_observations
        with self.db.read() as connection:
            count = int(
                connection.execute(
                    sa.select(sa.func.count()).where(
                        table.c.tenant_id == tenant,
                        table.c.experiment == name,
                        table.c.metric == metric,
                    )
                ).scalar_one()
            )
        return count <= 200 or count % max(1, count // 100) == 0

    # -- the report and decisions -----------------------------------------------------------

    def report(self, tenant: TenantId, name: str) -> Report:
        with self.db.read() as connection:
            row = self._require(connection, tenant, name)
            spec = ExperimentSpec.model_validate_json(row["spec"])
            counts: dict[str, int] = dict(
                connection.execute(
                    sa.select(experiment_assignments.c.variant, sa.func.count())
                    .where(
                        experiment_assignments.c.tenant_id == tenant,
                        experiment_assignments.c.experiment == name,
                    )
                    .group_by(experiment_assignments.c.variant)
                ).all()
            )
            observed = connection.execute(
                sa.select(
                    experiment_observations.c.metric,
                    experiment_observations.c.variant,
                    experiment_observations.c.value,
                )
                .where(
                    experiment_observations.c.tenant_id == tenant,
                    experiment_observations.c.experiment == name,
                )
                .order_by(experiment_observations.c.observation_id)
            ).all()
        by_metric: dict[str, list[Observation]] = {m: [] for m in spec.metrics}
        for metric, variant, value in observed:
            if metric in by_metric and variant != HOLDOUT:
                by_metric[metric].append(Observation(str(variant), float(str(value))))
        return _report(spec, row, counts, by_metric)

    def watch(self, tenant: TenantId, name: str) -> Report:
        """The report; a running experiment whose guardrail is breached is stopped now."""
        found = self.report(tenant, name)
        breached = [g for g in found.guardrails if g.breached]
        if found.status == "running" and breached:
            self._end(
                tenant,
                name,
                "stopped",
                variant=None,
                actor="accord",
                reason="guardrail breached: " + ", ".join(_breach(g) for g in breached),
                report=found,
            )
            return self.report(tenant, name)
        return found

    def ship(self, tenant: TenantId, name: str, variant: str, *, actor: str, reason: str) -> None:
        """A person ends the experiment: ``variant`` is what everyone new gets."""
        spec = self.spec(tenant, name)
        if variant not in {v.name for v in spec.variants}:
            raise InputError(
                f"{variant!r} is not a variant of {name!r}",
                hint="one of " + ", ".join(v.name for v in spec.variants),
            )
        self._end(tenant, name, "shipped", variant=variant, actor=actor, reason=reason)

    def stop(self, tenant: TenantId, name: str, *, actor: str, reason: str) -> None:
        """A person ends the experiment without shipping: everyone new gets the control."""
        self._end(tenant, name, "stopped", variant=None, actor=actor, reason=reason)

    def _end(
        self,
        tenant: TenantId,
        name: str,
        status: Status,
        *,
        variant: str | None,
        actor: str,
        reason: str,
        report: Report | None = None,
    ) -> None:
        if not reason.strip():
            raise InputError("a decision on an experiment needs a reason")
        report = report or self.report(tenant, name)
        figures = {
            "assigned": report.assigned,
            "primary": [
                {
                    "variant": c.variant,
                    "effect": c.effect,
                    "p_value": c.p_value,
                    "n": [c.n_control, c.n_variant],
                }
                for c in report.primary
            ],
            "verdict": report.verdict,
        }
        now = self.clock.now()
        with self.db.transaction() as connection:
            row = self._require(connection, tenant, name, lock=True)
            if row["status"] != "running":
                raise InputError(
                    f"experiment {name!r} has already ended ({row['status']})",
                    hint="accord experiment report NAME shows how",
                )
            decision = {"status": status, "variant": variant, "by": actor, "reason": reason}
            connection.execute(
                sa.update(experiments)
                .where(experiments.c.tenant_id == tenant, experiments.c.name == name)
                .values(status=status, decision=json.dumps(decision), updated_at=now)
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.experiment_change(
                        experiment=name,
                        version=int(row["version"]),
                        change=status,
                        actor=actor,
                        reason=reason,
                        detail={"variant": variant, **figures},
                        at=now,
                    )
                ],
            )

    def _row(
        self, connection: Any, tenant: TenantId, name: str, *, lock: bool = False
    ) -> Any | None:
        query = sa.select(experiments).where(
            experiments.c.tenant_id == tenant, experiments.c.name == name
        )
        if lock:
            query = query.with_for_update()
        return connection.execute(query).mappings().first()

    def _require(self, connection: Any, tenant: TenantId, name: str, *, lock: bool = False) -> Any:
        found = self._row(connection, tenant, name, lock=lock)
        if found is None:
            raise ExperimentNotFound(
                f"no experiment {name!r}", hint="accord experiment list shows the experiments"
            )
        return found


def bucket(salt: str, subject: str) -> float:
    """Where ``subject`` falls in [0, 1) for this salt: uniform, stable, unguessable."""
    digest = hmac.new(salt.encode(), subject.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(spec: ExperimentSpec, salt: str, subject: str) -> str:
    """The arm of ``subject``: the holdout's share first, then the variants by weight."""
    point = bucket(salt, subject)
    if point < spec.holdout:
        return HOLDOUT
    point = (point - spec.holdout) / (1 - spec.holdout)
    total = sum(v.weight for v in spec.variants)
    edge = 0.0
    for variant in spec.variants:
        edge += variant.weight / total
        if point < edge:
            return variant.name
    return spec.variants[-1].name


def _breach(check: GuardrailCheck) -> str:
    c = check.comparison
    return (
        f"{check.metric} {c.variant} vs {c.control}: {c.effect:+.4g} "
        f"(always-valid interval {c.low:.4g} to {c.high:.4g})"
    )


def _report(
    spec: ExperimentSpec,
    row: Any,
    counts: dict[str, int],
    by_metric: dict[str, list[Observation]],
) -> Report:
    # A/B/n: each treatment is compared with the control at alpha / treatments (Bonferroni)
    alpha = spec.alpha / max(1, len(spec.treatments))
    primary = [
        compare(
            by_metric[spec.primary.name],
            control=spec.control,
            variant=variant,
            alpha=alpha,
            tau=default_tau(spec.primary.minimum_effect),
            min_sample=BURN_IN,
        )
        for variant in spec.treatments
    ]
    guardrails = []
    for guardrail in spec.guardrails:
        for variant in spec.treatments:
            c = compare(
                by_metric[guardrail.name],
                control=spec.control,
                variant=variant,
                alpha=alpha,
                tau=default_tau(guardrail.scale),
                min_sample=BURN_IN,
            )
            enough = min(c.n_control, c.n_variant) >= 2
            harm = (
                c.low > guardrail.tolerance
                if guardrail.worse == "higher"
                else (c.high < -guardrail.tolerance)
            )
            guardrails.append(GuardrailCheck(guardrail.name, c, enough and harm))
    spread = spec.primary.spread()
    planned = (
        required_sample(spec.primary.minimum_effect, spread, alpha=alpha, power=spec.power)
        if spread is not None
        else None
    )
    verdict, reasons = _verdict(spec, primary, guardrails)
    return Report(
        experiment=spec.experiment,
        version=spec.version,
        status=str(row["status"]),
        decision=json.loads(row["decision"]) if row["decision"] else None,
        alpha=spec.alpha,
        assigned={
            name: int(counts.get(name, 0)) for name in [*(v.name for v in spec.variants), HOLDOUT]
        },
        primary=primary,
        guardrails=guardrails,
        planned_sample=max(planned, spec.minimum_sample) if planned is not None else None,
        verdict=verdict,
        reasons=reasons,
    )


def _verdict(
    spec: ExperimentSpec, primary: list[Comparison], guardrails: list[GuardrailCheck]
) -> tuple[str, list[str]]:
    breached = [g for g in guardrails if g.breached]
    if breached:
        return "stop", [f"guardrail breached: {_breach(g)}" for g in breached]
    reasons = []
    winners = []
    for c in primary:
        if min(c.n_control, c.n_variant) < spec.minimum_sample:
            reasons.append(
                f"{c.variant}: {min(c.n_control, c.n_variant)} of the {spec.minimum_sample} "
                "outcomes per arm the design asks for before deciding"
            )
            continue
        better = c.low > 0 if spec.primary.better == "higher" else c.high < 0
        worse = c.high < 0 if spec.primary.better == "higher" else c.low > 0
        if c.significant and better:
            winners.append(c)
            reasons.append(f"{c.variant} is better on {spec.primary.name}: {c.effect:+.4g}")
        elif c.significant and worse:
            reasons.append(f"{c.variant} is worse on {spec.primary.name}: {c.effect:+.4g}")
        else:
            reasons.append(f"{c.variant}: no difference shown yet (p = {c.p_value:.3g})")
    if winners:
        best = max(
            winners, key=lambda c: c.effect if spec.primary.better == "higher" else -c.effect
        )
        return f"ship {best.variant}", reasons
    return "continue", reasons
