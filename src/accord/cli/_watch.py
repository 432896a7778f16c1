"""``accord watch``: check journeys for degradation and drift now, list the proposed changes,
show one, and accept or reject it with a reason."""

from __future__ import annotations

import datetime as dt
import getpass
import math
from typing import Annotated, Any

import typer
from rich.table import Table

from accord.cli._common import as_json, console, fail, handled, opened, tenant_of, when
from accord.core import parse_duration
from accord.watch import CheckReport, Comparison, DetectOptions, Proposal, WatchOptions

app = typer.Typer(
    help="The degradation watch: metrics per journey and decision point against a baseline, "
    "and the changes it proposes for a person to accept or reject.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Reason = Annotated[str, typer.Option("--reason", help="why; recorded in the ledger")]
By = Annotated[str | None, typer.Option("--by", help="who decides (default: your user name)")]


def _person(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def _finite(value: float, option: str) -> float:
    if not math.isfinite(value):
        fail(f"{option}: {value} is not a finite number")
    return value


def _seconds(text: str, option: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        fail(f"{option}: {exc}")
    return _finite(seconds, option)


def _moment(text: str, option: str) -> float:
    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        return _finite(epoch, option)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(
            f"{option}: {text!r} is neither epoch seconds nor an ISO 8601 time",
            hint=f"e.g. {option} 2026-01-01T00:00:00Z",
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


@app.command("check")
def check_command(
    window: Annotated[
        str, typer.Option(help="the recent window, ending now (e.g. 1d, 12h)")
    ] = "1d",
    baseline: Annotated[
        str, typer.Option(help="the baseline: this long before the recent window")
    ] = "7d",
    baseline_from: Annotated[
        str | None,
        typer.Option("--baseline-from", help="pin the baseline's start (ISO time or epoch)"),
    ] = None,
    baseline_to: Annotated[
        str | None,
        typer.Option("--baseline-to", help="pin the baseline's end (ISO time or epoch)"),
    ] = None,
    alpha: Annotated[
        float, typer.Option(help="the chance of any false alarm in one check (Holm)")
    ] = 0.01,
    min_count: Annotated[
        int, typer.Option("--min-count", help="observations each window needs per metric")
    ] = 30,
    min_change: Annotated[
        float, typer.Option("--min-change", help="the smallest rise of a rate that matters")
    ] = 0.05,
    min_psi: Annotated[
        float, typer.Option("--min-psi", help="the smallest distribution shift that matters")
    ] = 0.1,
    every: Annotated[
        bool, typer.Option("--all", help="show every metric tested, not only the findings")
    ] = False,
    json: Json = False,
    database: Database = None,
) -> None:
    """Compare the recent window with the baseline now; open a proposal for each new finding.
    Nothing in production changes."""
    if (baseline_from is None) != (baseline_to is None):
        fail("a pinned baseline needs both --baseline-from and --baseline-to")
    pinned = (
        (_moment(baseline_from, "--baseline-from"), _moment(baseline_to, "--baseline-to"))
        if baseline_from is not None and baseline_to is not None
        else None
    )
    _finite(alpha, "--alpha")
    _finite(min_change, "--min-change")
    _finite(min_psi, "--min-psi")
    options = WatchOptions(
        window=_seconds(window, "--window"),
        baseline=_seconds(baseline, "--baseline"),
        baseline_window=pinned,
        detect=DetectOptions(
            alpha=alpha, min_count=min_count, min_rate_change=min_change, min_psi=min_psi
        ),
    )
    with opened(database) as accord, handled():
        report = accord.watch.check(tenant_of(accord), options=options)
        if json:
            console.print(as_json(report.to_json()), markup=False, soft_wrap=True)
            return
        show_check(report, every=every)


def show_check(report: CheckReport, *, every: bool = False) -> None:
    windows = report.windows
    console.print(
        f"watch of tenant {report.tenant}: recent {when(windows.recent[0])[:16]} to "
        f"{when(windows.recent[1])[:16]}, baseline {when(windows.baseline[0])[:16]} to "
        f"{when(windows.baseline[1])[:16]}",
        markup=False,
    )
    detection = report.detection
    console.print(
        f"   {_plural(len(detection.compared), 'metric')} tested (Holm-corrected, alpha "
        f"{detection.alpha:g}), {len(detection.skipped)} not tested (too few observations or "
        "nothing to compare)",
        markup=False,
    )
    shown = list(detection.compared) if every else detection.findings
    if shown:
        table = Table("metric", "baseline", "recent", "test", "p", "adjusted p", "effect", "")
        for c in shown:
            table.add_row(
                c.key.label,
                _figure(c.baseline.to_json()),
                _figure(c.recent.to_json()),
                c.test,
                f"{c.p_value:.3g}",
                f"{c.adjusted_p:.3g}",
                _effect(c.effect, c.effect_name),
                _verdict(c),
            )
        console.print(table)
    if not detection.findings:
        console.print("   no degradation or drift found", markup=False)
    for proposal in report.opened:
        console.print(f"proposed {proposal.proposal_id}: {proposal.title}", markup=False)
        console.print(f"   {proposal.candidate.summary}", markup=False)
    for proposal in report.still_open:
        console.print(
            f"still open {proposal.proposal_id}: {proposal.title} (seen {proposal.seen} times)",
            markup=False,
        )
    for held in report.held:
        console.print(f"not proposed again: {held.key.label}: {held.reason}", markup=False)


def _effect(value: float | None, name: str) -> str:
    if value is None:
        return "n/a"
    if name == "rate change":
        return f"{value * 100:+.1f} points"
    if name == "PSI":
        return f"PSI {value:.2f}"
    return f"{value:+.3g} s median"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _verdict(c: Comparison) -> str:
    if c.finding:
        return c.kind
    if not c.significant:
        return "no evidence"
    if not c.worse:
        return "better"
    return "too small to matter"


def _figure(data: dict[str, Any]) -> str:
    pending = f", {data['pending']} pending" if data.get("pending") else ""
    if "rate" in data:
        return f"{data['rate']:.1%} ({data['events']}/{data['total']}{pending})"
    if "median" in data:
        return f"median {data['median']:.3g} s ({data['count']})"
    counts = data.get("counts") or {}
    total = data.get("total") or 1
    return ", ".join(f"{k} {v / total:.0%}" for k, v in counts.items()) + f" ({total}{pending})"


@app.command("list")
def list_command(
    status: Annotated[
        str, typer.Option(help="open, accepting, accepted, rejected, or all")
    ] = "open",
    json: Json = False,
    database: Database = None,
) -> None:
    """Proposals, newest first."""
    with opened(database) as accord, handled():
        found = accord.watch.proposals(
            tenant_of(accord), status=None if status == "all" else status
        )
        if json:
            console.print(as_json([p.to_json() for p in found]), markup=False, soft_wrap=True)
            return
        table = Table("proposal", "status", "finding", "candidate", "opened", "seen")
        for p in found:
            table.add_row(
                p.proposal_id,
                p.status,
                p.title,
                p.candidate.kind + (" (applies on accept)" if p.candidate.applies else ""),
                when(p.created_at)[:19],
                str(p.seen),
            )
        console.print(table)
        if not found:
            console.print(f"no {'' if status == 'all' else status + ' '}proposals", markup=False)


@app.command("show")
def show_command(
    proposal_id: Annotated[str, typer.Argument(help="the proposal")],
    json: Json = False,
    database: Database = None,
) -> None:
    """A proposal's handoff packet: the finding with its figures, and the candidate change."""
    with opened(database) as accord, handled():
        proposal = accord.watch.get(tenant_of(accord), proposal_id)
        if json:
            console.print(as_json(proposal.to_json()), markup=False, soft_wrap=True)
            return
        show_proposal(proposal)


def show_proposal(proposal: Proposal) -> None:
    finding = proposal.finding
    windows = finding.get("windows", {})
    console.print(f"{proposal.proposal_id}: {proposal.title}", markup=False)
    console.print(
        f"   status: {proposal.status}"
        + (
            f" by {proposal.decided_by} at {when(proposal.decided_at)[:19]}: {proposal.reason}"
            if proposal.decided_by
            else f" (seen by {_plural(proposal.seen, 'check')}, last "
            f"{when(proposal.last_seen_at)[:19]})"
        ),
        markup=False,
    )
    console.print(
        f"   {proposal.kind}: {finding['test']}, p = {finding['p_value']:.3g}, Holm-adjusted "
        f"{finding['adjusted_p']:.3g} (alpha {finding['alpha']:g}), "
        + _effect(finding["effect"], finding["effect_name"]),
        markup=False,
    )
    for name in ("baseline", "recent"):
        span = windows.get(name) or [0.0, 0.0]
        console.print(
            f"   {name}: {_figure(finding[name])}, runs started {when(span[0])[:16]} to "
            f"{when(span[1])[:16]}",
            markup=False,
        )
    candidate = proposal.candidate
    console.print(f"candidate ({candidate.kind}): {candidate.summary}", markup=False)
    console.print(f"   why: {candidate.rationale}", markup=False)
    if proposal.status == "open":
        console.print(
            "   accepting applies it, as you"
            if candidate.applies
            else "   accepting records the decision; a person deploys the change",
            markup=False,
        )
    change = candidate.change
    for item in change.get("look_at") or []:
        console.print(f"   look at: {item}", markup=False)
    if change.get("diff"):
        console.print(change["diff"], markup=False, highlight=False)
    if change.get("deploy"):
        console.print(f"   to deploy: {change['deploy']}", markup=False)
    if proposal.applied:
        console.print(f"   applied: {as_json(proposal.applied)}", markup=False)


@app.command("accept")
def accept_command(
    proposal_id: Annotated[str, typer.Argument(help="the proposal")],
    reason: Reason,
    by: By = None,
    database: Database = None,
) -> None:
    """Accept: the change is applied where Accord can apply it (rollback, agent version, kill
    switch), as you; otherwise the decision is recorded for a person to deploy the change."""
    with opened(database) as accord, handled():
        proposal = accord.watch.accept(
            tenant_of(accord), proposal_id, by=_person(by), reason=reason
        )
        console.print(f"accepted {proposal.proposal_id}: {proposal.title}", markup=False)
        if proposal.applied:
            console.print(f"   applied: {as_json(proposal.applied)}", markup=False)
        else:
            console.print(
                f"   nothing applied; to make the change: {proposal.candidate.summary}",
                markup=False,
            )


@app.command("reject")
def reject_command(
    proposal_id: Annotated[str, typer.Argument(help="the proposal")],
    reason: Reason,
    by: By = None,
    database: Database = None,
) -> None:
    """Reject: nothing changes; the decision and its reason are recorded."""
    with opened(database) as accord, handled():
        proposal = accord.watch.reject(
            tenant_of(accord), proposal_id, by=_person(by), reason=reason
        )
        console.print(f"rejected {proposal.proposal_id}: {proposal.title}", markup=False)
