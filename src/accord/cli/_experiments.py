"""``accord experiment``: start an experiment, read its report, ship or stop it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from accord.cli._common import actor_or_user, as_json, console, handled, opened, tenant_of, when
from accord.experiments import Comparison, ExperimentSpec, Report, load_experiment

app = typer.Typer(
    help="A/B/n experiments with a holdout: sticky assignment, always-valid analysis, "
    "guardrails that stop them.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Reason = Annotated[str, typer.Option("--reason", help="why; recorded in the ledger")]
Actor = Annotated[str | None, typer.Option("--actor", help="who (default: your user name)")]


def started(spec: ExperimentSpec) -> str:
    """The line that says ``spec`` is running (also used by the demo)."""
    arms = ", ".join(v.name for v in spec.variants)
    holdout = f", holdout {spec.holdout:.0%}" if spec.holdout else ""
    return f"experiment {spec.experiment} v{spec.version} running: {arms}{holdout}"


@app.command("create")
def create_command(
    file: Annotated[Path, typer.Argument(help="the experiment's design (YAML)")],
    actor: Actor = None,
    database: Database = None,
) -> None:
    """Start the experiment ``file`` describes (checked first; errors name the field)."""
    with opened(database) as accord, handled():
        spec = load_experiment(file)
        accord.experiments.create(tenant_of(accord), spec, actor=actor_or_user(actor))
        console.print(started(spec), markup=False)


@app.command("list")
def list_command(json: Json = False, database: Database = None) -> None:
    """The tenant's experiments and where each stands."""
    with opened(database) as accord, handled():
        found = accord.experiments.list(tenant_of(accord))
        if json:
            console.print(as_json(found), markup=False, soft_wrap=True)
            return
        table = Table("experiment", "version", "status", "decision", "created")
        for row in found:
            decision = row["decision"] or {}
            table.add_row(
                row["experiment"],
                str(row["version"]),
                row["status"],
                str(decision.get("variant") or decision.get("reason") or ""),
                when(row["created_at"])[:19],
            )
        console.print(table)


@app.command("report")
def report_command(
    name: Annotated[str, typer.Argument(help="the experiment")],
    json: Json = False,
    database: Database = None,
) -> None:
    """Assignments, the primary metric of each variant against the control with its
    always-valid interval and p-value, the guardrails, and what the figures say to do. A
    breached guardrail stops a running experiment as this reads it."""
    with opened(database) as accord, handled():
        report = accord.experiments.watch(tenant_of(accord), name)
        if json:
            console.print(as_json(report.to_json()), markup=False, soft_wrap=True)
            return
        show(report, primary=accord.experiments.spec(tenant_of(accord), name).primary.name)


WIDE = 110
"""The narrowest terminal the report is drawn as a table on."""


def _figure(value: float) -> str:
    return f"{value:+.4g}" if math.isfinite(value) else "n/a"


def _row(metric: str, c: Comparison) -> tuple[str, ...]:
    return (
        metric,
        c.variant,
        f"{c.n_control}/{c.n_variant}",
        f"{c.control_mean:.4g}",
        f"{c.variant_mean:.4g}",
        _figure(c.effect),
        f"{_figure(c.low)} to {_figure(c.high)}",
        f"{c.p_value:.3g}",
    )


def show(report: Report, *, primary: str | None = None) -> None:
    """The report as tables (also used by the demo); ``primary`` names the primary metric."""
    console.print(
        f"experiment {report.experiment} v{report.version}: {report.status}"
        + (
            f" ({report.decision.get('variant') or report.decision.get('reason')})"
            if report.decision
            else ""
        ),
        markup=False,
    )
    console.print(
        "   assigned: " + ", ".join(f"{arm} {n}" for arm, n in report.assigned.items()),
        markup=False,
    )
    rows = [(f"{primary} (primary)" if primary else "primary", c) for c in report.primary]
    rows += [
        (f"{g.metric} (guardrail{', breached' if g.breached else ''})", g.comparison)
        for g in report.guardrails
    ]
    if console.width >= WIDE:
        table = Table(
            "metric",
            "variant",
            "n (control/variant)",
            "control",
            "variant",
            "effect",
            f"{1 - report.alpha:.0%} always-valid interval",
            "p (always valid)",
        )
        for metric, c in rows:
            table.add_row(*_row(metric, c))
        console.print(table)
    else:
        # a table this wide would cut its words short on a narrow terminal: one line each
        for metric, c in rows:
            console.print(
                f"   {metric}: {c.variant} {c.variant_mean:.4g} (n {c.n_variant}) against "
                f"{c.control_mean:.4g} (n {c.n_control}), effect {_figure(c.effect)}, "
                f"{1 - report.alpha:.0%} always-valid interval {_figure(c.low)} to "
                f"{_figure(c.high)}, p {c.p_value:.3g}",
                markup=False,
            )
    if report.planned_sample is not None:
        console.print(f"   planned sample: {report.planned_sample} per arm", markup=False)
    console.print(f"   verdict: {report.verdict}", markup=False)
    for reason in report.reasons:
        console.print(f"   - {reason}", markup=False)
    if report.primary:
        console.print(f"   method: {report.primary[0].method}", markup=False)


@app.command("ship")
def ship_command(
    name: Annotated[str, typer.Argument(help="the experiment")],
    variant: Annotated[str, typer.Argument(help="the variant everyone new gets")],
    reason: Reason,
    actor: Actor = None,
    database: Database = None,
) -> None:
    """End the experiment: ``variant`` for everyone new (recorded with the figures)."""
    with opened(database) as accord, handled():
        accord.experiments.ship(
            tenant_of(accord), name, variant, actor=actor_or_user(actor), reason=reason
        )
        console.print(f"experiment {name} shipped {variant}", markup=False)


@app.command("stop")
def stop_command(
    name: Annotated[str, typer.Argument(help="the experiment")],
    reason: Reason,
    actor: Actor = None,
    database: Database = None,
) -> None:
    """End the experiment without shipping: everyone new gets the control."""
    with opened(database) as accord, handled():
        accord.experiments.stop(tenant_of(accord), name, actor=actor_or_user(actor), reason=reason)
        console.print(f"experiment {name} stopped", markup=False)
