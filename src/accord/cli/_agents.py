"""``accord agent``: deploy, train and evaluate agents; roll candidates out; read their metrics."""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from accord.agents import AgentSpec, load_agent_file
from accord.agents._evaluation import (
    choose_threshold,
    expected_calibration_error,
    in_scope_accuracy,
    read_labelled,
    risk_coverage,
)
from accord.agents._local import IntentModel
from accord.cli._common import as_json, console, fail, handled, opened, tenant_of, when
from accord.errors import AgentInvalid, JourneyInvalid
from accord.journeys import parse_located_yaml, validation_diagnostics
from accord.storage import RolloutRecord

app = typer.Typer(
    help="Agents: specs, training, evaluation, rollouts and metrics.", no_args_is_help=True
)
rollout_app = typer.Typer(
    help="Canary and shadow rollouts of a candidate version.", no_args_is_help=True
)
app.add_typer(rollout_app, name="rollout")

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
By = Annotated[str | None, typer.Option("--by", help="who acts (default: your login name)")]
SpecFile = Annotated[Path, typer.Argument(help="the agent spec (YAML)")]
CURVE = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)


def _by(by: str | None) -> str:
    return by or getpass.getuser()


def _spec_only(path: Path) -> AgentSpec:
    """The spec alone (no prompt or model needed yet), for training."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    with handled():
        try:
            data, source_map = parse_located_yaml(text, str(path))
        except JourneyInvalid as exc:
            raise AgentInvalid(exc.diagnostics) from exc
        try:
            return AgentSpec.model_validate(data)
        except ValidationError as exc:
            raise AgentInvalid(validation_diagnostics(exc, source_map)) from exc
    raise AssertionError("unreachable: handled() exits on errors")


def _local_route_path(spec: AgentSpec, path: Path) -> Path:
    for route in spec.routes:
        if route.provider == "local" and route.path:
            return path.parent / route.path
    fail(
        f"agent {spec.agent!r} has no local model route",
        hint="train and eval work on a route with 'provider: local' and 'path:'",
    )


@app.command("deploy")
def deploy(spec: SpecFile, by: By = None, database: Database = None) -> None:
    """Deploy an agent version with its prompt and trained models (immutable once deployed)."""
    with opened(database) as accord, handled():
        done = accord.deploy_agent(spec, by=_by(by))
    state = "deployed" if done.created else "already deployed"
    console.print(
        f"{state}: {done.name} v{done.version} (digest {done.digest.removeprefix('sha256:')[:12]})"
    )


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="the agent")],
    version: Annotated[int, typer.Argument(help="the version to make current")],
    by: By = None,
    database: Database = None,
) -> None:
    """Make a version current at once, without a canary (recorded like a rollout)."""
    with opened(database) as accord, handled():
        _print_rollout(accord.promote_agent(name, version, by=_by(by)))


@app.command("list")
def list_agents(json_output: Json = False, database: Database = None) -> None:
    """Deployed agent versions."""
    with opened(database) as accord, handled():
        found = accord.agents.versions(tenant_of(accord))
    if json_output:
        console.print_json(
            as_json(
                [
                    {
                        "agent": r.name,
                        "version": r.version,
                        "digest": r.digest,
                        "source": r.source_name,
                        "deployed_at": r.deployed_at,
                        "deployed_by": r.deployed_by,
                    }
                    for r in found
                ]
            )
        )
        return
    if not found:
        console.print("no agents deployed; 'accord agent deploy SPEC' deploys one")
        return
    table = Table()
    for header in ("agent", "version", "digest", "source", "deployed", "by"):
        table.add_column(header, overflow="fold")
    for r in found:
        table.add_row(
            r.name,
            str(r.version),
            r.digest.removeprefix("sha256:")[:12],
            escape(r.source_name),
            when(r.deployed_at),
            r.deployed_by,
        )
    console.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="the agent's name")],
    version: Annotated[int | None, typer.Option("--version", help="default: latest")] = None,
    database: Database = None,
) -> None:
    """A deployed version's spec, prompt digest and models."""
    with opened(database) as accord, handled():
        definition = accord.agents.get(tenant_of(accord), name, version)
    console.print_json(as_json(definition.to_json() | {"digest": definition.digest}))


@app.command("train")
def train(
    spec: SpecFile,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="labelled JSONL: {text, label} lines (default: training.data)"),
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option("--validation", help="labelled JSONL to suggest the auto threshold on"),
    ] = None,
    max_risk: Annotated[float, typer.Option("--max-risk", min=0.0, max=1.0)] = 0.01,
) -> None:
    """Train the spec's local model from labelled data, reproducibly, into its ``path``.

    Label ``oos`` marks out-of-scope examples. With ``--validation``, the lowest threshold
    whose risk stays within ``--max-risk`` there is suggested for the spec's ``bands.auto``.
    """
    parsed = _spec_only(spec)
    target = _local_route_path(parsed, spec)
    if data is None:
        if parsed.training.data is None:
            fail("no --data given and the spec names no training.data")
        data = spec.parent / parsed.training.data
    with handled():
        items = read_labelled(data)
        started = time.monotonic()
        model = IntentModel.train(
            [t for t, _ in items],
            [label for _, label in items],
            seed=parsed.training.seed,
            source=parsed.training.data or data.name,
            attribution=parsed.training.attribution,
        )
        elapsed = time.monotonic() - started
        target.parent.mkdir(parents=True, exist_ok=True)
        model.save(target)
    labels = sorted({label for _, label in items})
    console.print(
        f"trained {target} from {len(items)} examples, {len(labels)} labels, in {elapsed:.1f}s "
        f"(sha256 {model.digest[:16]})"
    )
    if validation is not None:
        with handled():
            held = read_labelled(validation)
        predictions = model.predict([t for t, _ in held])
        truth = [label for _, label in held]
        threshold = choose_threshold(predictions, truth, max_risk=max_risk)
        (row,) = risk_coverage(predictions, truth, [threshold])
        console.print(
            f"on {validation}: in-scope accuracy {in_scope_accuracy(predictions, truth):.3f}; "
            f"threshold {threshold:.4f} auto-executes {row.coverage:.1%} at risk {row.risk:.2%}"
        )
        console.print(f"set bands.auto to {threshold:.4f} in the spec (a new version)")


@app.command("eval")
def evaluate(
    spec: SpecFile,
    data: Annotated[Path, typer.Option("--data", help="labelled JSONL: {text, label} lines")],
    json_output: Json = False,
) -> None:
    """Accuracy on in-scope items and the risk-coverage table at the spec's thresholds.

    An item is auto-executed when its confidence reaches a threshold and the model calls it
    in scope; it is wrong when its label differs (an out-of-scope item auto-executed is wrong).
    """
    with handled():
        loaded = load_agent_file(spec)
        model = IntentModel.load(_local_route_path(loaded.definition.spec, spec))
        items = read_labelled(data)
    bands = loaded.definition.spec.bands
    predictions = model.predict([t for t, _ in items])
    truth = [label for _, label in items]
    thresholds = sorted({bands.confirm, bands.auto, *CURVE})
    rows = risk_coverage(predictions, truth, thresholds)
    accuracy = in_scope_accuracy(predictions, truth)
    ece = expected_calibration_error(predictions, truth)
    if json_output:
        console.print_json(
            as_json(
                {
                    "agent": loaded.definition.key,
                    "items": len(items),
                    "in_scope_accuracy": accuracy,
                    "ece": ece,
                    "bands": {"auto": bands.auto, "confirm": bands.confirm},
                    "rows": [
                        {
                            "threshold": r.threshold,
                            "auto_executed": r.auto_executed,
                            "coverage": r.coverage,
                            "wrong": r.wrong,
                            "risk": r.risk,
                        }
                        for r in rows
                    ],
                }
            )
        )
        return
    in_scope = sum(1 for label in truth if label != "oos")
    console.print(
        f"{loaded.definition.key} on {data}: {len(items)} items ({in_scope} in scope); "
        f"in-scope accuracy {accuracy:.3f}; calibration error {ece:.3f}"
    )
    table = Table(title="risk and coverage")
    for header in ("threshold", "", "auto-executed", "coverage", "wrong", "risk"):
        table.add_column(header, justify="right")
    for r in rows:
        mark = (
            "auto"
            if r.threshold == bands.auto
            else "confirm"
            if r.threshold == bands.confirm
            else ""
        )
        table.add_row(
            f"{r.threshold:.2f}",
            mark,
            str(r.auto_executed),
            f"{r.coverage:.1%}",
            str(r.wrong),
            f"{r.risk:.2%}",
        )
    console.print(table)


@app.command("metrics")
def metrics(
    name: Annotated[str | None, typer.Argument(help="one agent (default: all)")] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Outputs, bands, escalation and override rates, tokens and cost per agent version."""
    with opened(database) as accord, handled():
        found = accord.agent_stats(name)
    if json_output:
        console.print_json(as_json([s.to_json() for s in found]))
        return
    if not found:
        console.print("no agent outputs recorded yet")
        return
    table = Table()
    for header in (
        "agent",
        "version",
        "arm",
        "outputs",
        "auto",
        "confirm",
        "escalated",
        "overridden",
        "tokens",
        "cost",
    ):
        table.add_column(header, justify="right")
    for s in found:
        table.add_row(
            s.agent,
            str(s.version),
            s.arm,
            str(s.outputs),
            str(s.auto),
            str(s.confirm),
            f"{s.escalated} ({s.escalation_rate:.0%})",
            f"{s.overridden}/{s.reviewed}",
            str(s.input_tokens + s.output_tokens),
            f"{s.cost:.4f}",
        )
    console.print(table)


def _print_rollout(record: RolloutRecord) -> None:
    share = f"{record.percent:g}%" if record.mode == "canary" else "shadow"
    console.print(
        f"{record.rollout_id}: {record.agent} v{record.primary_version} → "
        f"v{record.candidate_version} ({share}), {record.status}"
        + (f": {escape(record.reason)}" if record.reason else "")
    )


@rollout_app.command("start")
def rollout_start(
    name: Annotated[str, typer.Argument(help="the agent")],
    candidate: Annotated[int, typer.Option("--candidate", help="the version to try")],
    shadow: Annotated[
        bool, typer.Option("--shadow", help="run beside the primary, no effects")
    ] = False,
    percent: Annotated[float, typer.Option("--percent", help="the canary's first share")] = 5.0,
    margin: Annotated[
        float, typer.Option("--margin", help="how much worse (0-1) before it rolls back")
    ] = 0.1,
    min_samples: Annotated[int, typer.Option("--min-samples", min=1)] = 20,
    by: By = None,
    database: Database = None,
) -> None:
    """Start a canary (a sticky share of subjects) or a shadow of a candidate version."""
    with opened(database) as accord, handled():
        record = accord.start_rollout(
            name,
            candidate,
            mode="shadow" if shadow else "canary",
            percent=percent,
            margin=margin,
            min_samples=min_samples,
            by=_by(by),
        )
    _print_rollout(record)


@rollout_app.command("advance")
def rollout_advance(
    rollout_id: Annotated[str, typer.Argument()],
    percent: Annotated[float | None, typer.Option("--percent", help="default: next stage")] = None,
    by: By = None,
    database: Database = None,
) -> None:
    """Send the next stage (5 → 25 → 50 → 100) to the candidate."""
    with opened(database) as accord, handled():
        _print_rollout(accord.advance_rollout(rollout_id, percent=percent, by=_by(by)))


@rollout_app.command("promote")
def rollout_promote(
    rollout_id: Annotated[str, typer.Argument()], by: By = None, database: Database = None
) -> None:
    """Make the candidate the version every run uses."""
    with opened(database) as accord, handled():
        _print_rollout(accord.promote_rollout(rollout_id, by=_by(by)))


@rollout_app.command("stop")
def rollout_stop(
    rollout_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason", help="why, for the ledger")],
    by: By = None,
    database: Database = None,
) -> None:
    """Stop a rollout: every run goes back to the primary."""
    with opened(database) as accord, handled():
        _print_rollout(accord.stop_rollout(rollout_id, reason=reason, by=_by(by)))


@rollout_app.command("check")
def rollout_check(database: Database = None) -> None:
    """Roll back every rollout whose candidate does worse than its margin allows."""
    with opened(database) as accord, handled():
        rolled = accord.check_rollouts()
    if not rolled:
        console.print("every active rollout is within its margin")
    for record in rolled:
        _print_rollout(record)


@rollout_app.command("list")
def rollout_list(
    name: Annotated[str | None, typer.Argument(help="one agent (default: all)")] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Rollouts, newest last, with each arm's outcome counts."""
    with opened(database) as accord, handled():
        tenant = tenant_of(accord)
        found = accord.agents.rollouts(tenant, name)
        stats = {r.rollout_id: accord.agents.rollout_stats(tenant, r) for r in found}
    if json_output:
        console.print_json(
            as_json(
                [
                    r.to_json() | {"arms": {a: s.to_json() for a, s in stats[r.rollout_id].items()}}
                    for r in found
                ]
            )
        )
        return
    if not found:
        console.print("no rollouts")
        return
    for record in found:
        _print_rollout(record)
        for arm, s in sorted(stats[record.rollout_id].items()):
            console.print(
                f"  {arm}: v{s.version} {s.outputs} outputs, escalated {s.escalation_rate:.0%}, "
                f"overridden {s.overridden}/{s.reviewed}"
            )
