"""``accord audit``: verify the ledger, sign heads, prove, export evidence, replay runs;
``accord explain``; and ``accord subject``: erase, hold, release, show."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from accord.audit import ENTRY_KINDS, Erased, render_explanation
from accord.audit import verifier as standalone
from accord.cli._common import as_json, console, errors, fail, handled, opened, when

app = typer.Typer(
    help="The tamper-evident ledger: verify, heads, proofs, evidence, replay.",
    no_args_is_help=True,
)
subjects = typer.Typer(
    help="Subjects: crypto-shredding erasure and legal holds.", no_args_is_help=True
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Tenant = Annotated[str | None, typer.Option(help="tenant (default: ACCORD_TENANT)")]


def _json(value: object) -> None:
    """JSON on stdout, never wrapped to the terminal's width."""
    typer.echo(as_json(value))


def _time(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(
            f"{option} {text!r} is not an ISO 8601 time",
            hint=f"e.g. {option} 2026-12-01T09:00:00Z",
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@app.command("verify")
def verify_command(
    json_output: Json = False, tenant: Tenant = None, database: Database = None
) -> None:
    """Recompute the whole ledger and check every signed head. Exits 1 on any problem."""
    with opened(database) as accord, handled():
        if json_output:
            report = accord.verify_ledger(tenant)
        else:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("verifying entries", total=None)
                report = accord.verify_ledger(
                    tenant, progress=lambda n: bar.update(task, completed=n)
                )
    if json_output:
        _json(report.to_json())
    elif report.ok:
        console.print(
            f"[green]ledger verified[/green]: {report.log_id}, {report.entries} entries, "
            f"{report.nodes} nodes, {report.heads} signed heads"
            + (
                f"; the newest {report.unsigned_tail} entries await the next head"
                if report.unsigned_tail
                else ""
            )
        )
    else:
        first = report.first
        assert first is not None
        where = f"entry {first.index}" if first.index is not None else "the heads"
        errors.print(
            f"ledger verification FAILED at {where}: {first.message}", style="red", markup=False
        )
        for problem in sorted(report.problems, key=lambda p: (p.index is None, p.index or 0))[1:10]:
            errors.print(f"  also: [{problem.kind}] {problem.message}", markup=False)
        if len(report.problems) > 10:
            errors.print(f"  ... {len(report.problems) - 10} more (--json lists them)")
        errors.print(
            "  hint: restore the database from a backup taken before the first bad entry, and "
            "compare with an exported evidence bundle",
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("head")
def head_command(
    fresh: Annotated[bool, typer.Option("--fresh", help="sign a new head now")] = False,
    tenant: Tenant = None,
    database: Database = None,
) -> None:
    """Print the newest signed tree head (issuing one when there is none, or with --fresh)."""
    with opened(database) as accord, handled():
        head = accord.tree_head(tenant, fresh=fresh)
    _json(head.to_json())


@app.command("heads")
def heads_command(
    json_output: Json = False, tenant: Tenant = None, database: Database = None
) -> None:
    """Every signed tree head of the log, oldest first."""
    with opened(database) as accord, handled():
        heads = accord.ledger.heads(tenant or accord.settings.tenant)
    if json_output:
        _json([h.to_json() for h in heads])
        return
    table = Table("size", "signed at", "key", "root")
    for head in heads:
        table.add_row(
            str(head.tree_size), when(head.timestamp / 1000), head.key_id, head.root_hash[:16]
        )
    console.print(table)


@app.command("proof")
def proof_command(
    index: Annotated[int | None, typer.Option(help="entry index: prove its inclusion")] = None,
    size: Annotated[int | None, typer.Option(help="tree size (default: newest head)")] = None,
    since_size: Annotated[
        int | None, typer.Option("--from-size", help="prove consistency from this size")
    ] = None,
    tenant: Tenant = None,
    database: Database = None,
) -> None:
    """An inclusion proof (--index) or a consistency proof (--from-size, --size)."""
    if (index is None) == (since_size is None):
        fail("give --index for an inclusion proof or --from-size for a consistency proof")
    with opened(database) as accord, handled():
        if index is not None:
            proof = accord.inclusion_proof(index, tree_size=size, tenant=tenant)
            _json(proof.to_json())
            return
        assert since_size is not None
        target = size if size is not None else accord.tree_head(tenant).tree_size
        _json(accord.consistency_proof(since_size, target, tenant=tenant).to_json())


@app.command("entries")
def entries_command(
    run: Annotated[str | None, typer.Option(help="entries of one run")] = None,
    subject: Annotated[str | None, typer.Option(help="entries of one subject")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="only these kinds")] = None,
    limit: Annotated[int, typer.Option(help="the newest this many", min=1)] = 200,
    json_output: Json = False,
    tenant: Tenant = None,
    database: Database = None,
) -> None:
    """List ledger entries, personal parts opened where the subject's key still exists."""
    for name in kind or []:
        if name not in ENTRY_KINDS:
            fail(f"unknown entry kind {name!r}", hint="one of: " + ", ".join(ENTRY_KINDS))
    with opened(database) as accord, handled():
        found = accord.ledger.entries(
            tenant or accord.settings.tenant,
            run_id=run,
            subject_id=subject,
            kinds=kind,
            limit=limit,
            newest=True,
        )
    if json_output:
        _json(
            [
                {
                    "index": e.index,
                    "entry": e.envelope,
                    "personal": "<erased>" if isinstance(e.personal, Erased) else e.personal,
                }
                for e in found
            ]
        )
        return
    table = Table("#", "at", "kind", "run", "subject", "what")
    for e in found:
        what = {k: v for k, v in e.body.items() if v not in (None, [], {})}
        table.add_row(
            str(e.index),
            when(e.at),
            e.kind,
            e.run_id or "-",
            e.subject_id or "-",
            json.dumps(what, ensure_ascii=False)[:80],
        )
    console.print(table)


@app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="bundle file to write")],
    run: Annotated[str | None, typer.Option(help="entries of one run")] = None,
    subject: Annotated[str | None, typer.Option(help="entries of one subject")] = None,
    since: Annotated[str | None, typer.Option(help="from this ISO 8601 time")] = None,
    until: Annotated[str | None, typer.Option(help="before this ISO 8601 time")] = None,
    tenant: Tenant = None,
    database: Database = None,
) -> None:
    """Write an evidence bundle: entries, proofs, signed heads and public keys."""
    with opened(database) as accord, handled():
        bundle = accord.export_evidence(
            tenant=tenant,
            run_id=run,
            subject_id=subject,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(bundle, indent=1))
    console.print(
        f"wrote {output}: {len(bundle['entries'])} entries, tree size "
        f"{bundle['tree_head']['tree_size']}, {len(bundle['earlier_heads'])} earlier heads; "
        f"check it with: python {Path(standalone.__file__).name} {output}"
    )


@app.command("check-bundle")
def check_bundle_command(
    bundle: Path,
    key: Annotated[
        list[str] | None,
        typer.Option(help="trusted public key (base64); default: the keys in the bundle"),
    ] = None,
) -> None:
    """Check an evidence bundle exactly as the standalone verifier does. Exits 1 if it fails."""
    try:
        data = json.loads(bundle.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read bundle {str(bundle)!r}: {exc}")
    try:
        summary = standalone.verify_bundle(data, trusted_keys=key or None)
    except standalone.ProofError as exc:
        errors.print(f"bundle REJECTED: {exc}", style="red", markup=False)
        raise typer.Exit(1) from exc
    console.print(f"[green]bundle verified[/green]: {summary}")


@app.command("replay")
def replay_command(
    run_id: str, json_output: Json = False, tenant: Tenant = None, database: Database = None
) -> None:
    """Rebuild a run's timeline from the ledger alone."""
    with opened(database) as accord, handled():
        run = accord.replay(run_id, tenant=tenant)
    if json_output:
        _json(run.to_json())
        return
    console.print(
        f"[bold]{run.run_id}[/bold]  {run.journey} v{run.version}  {run.status}"
        + (f"  outcome={run.outcome}" if run.outcome else "")
        + ("  (subject erased)" if run.erased else "")
    )
    table = Table("seq", "at", "event", "block", "detail")
    for h in run.history:
        table.add_row(
            str(h.seq),
            when(h.at),
            h.kind,
            h.block or "-",
            json.dumps(h.detail, ensure_ascii=False)[:70],
        )
    console.print(table)


@app.command("rotate-key")
def rotate_key_command(database: Database = None) -> None:
    """Rotate the development signing key; old heads keep verifying with the retired key."""
    with opened(database) as accord, handled():
        old = accord.ledger.keyring.signing.key_id
        new = accord.rotate_signing_key()
        head = accord.tree_head(fresh=True)
    console.print(f"signing key {old} retired; heads are now signed by {new.key_id}")
    console.print(f"new head at size {head.tree_size} records the rotation")


def explain_command(
    run_id: str, json_output: Json = False, tenant: Tenant = None, database: Database = None
) -> None:
    """Explain every significant decision of a run, from the ledger."""
    with opened(database) as accord, handled():
        explanation = accord.explain(run_id, tenant=tenant)
    if json_output:
        _json(explanation.to_json())
    else:
        console.print(render_explanation(explanation), markup=False)


Actor = Annotated[str, typer.Option("--by", help="who acts (recorded)")]
Reason = Annotated[str, typer.Option(help="why (recorded in the ledger)")]


@subjects.command("erase")
def erase_command(
    subject: str, by: Actor, reason: Reason, tenant: Tenant = None, database: Database = None
) -> None:
    """Erase a subject by destroying its data key; the ledger still verifies."""
    with opened(database) as accord, handled():
        erasure = accord.erase_subject(subject, actor=by, reason=reason, tenant=tenant)
    console.print(
        f"subject {subject} erased: data key destroyed, {erasure.runs_scrubbed} runs scrubbed, "
        f"recorded as ledger entry {erasure.ledger_index}"
    )


@subjects.command("hold")
def hold_command(
    subject: str, by: Actor, reason: Reason, tenant: Tenant = None, database: Database = None
) -> None:
    """Place a legal hold: erasure is refused until it is released."""
    with opened(database) as accord, handled():
        accord.place_hold(subject, actor=by, reason=reason, tenant=tenant)
    console.print(f"subject {subject} is under legal hold")


@subjects.command("release")
def release_command(
    subject: str, by: Actor, reason: Reason, tenant: Tenant = None, database: Database = None
) -> None:
    """Release a legal hold."""
    with opened(database) as accord, handled():
        accord.release_hold(subject, actor=by, reason=reason, tenant=tenant)
    console.print(f"legal hold on {subject} released")


@subjects.command("show")
def show_command(
    subject: str, json_output: Json = False, tenant: Tenant = None, database: Database = None
) -> None:
    """A subject's key state, legal hold and ledger entries."""
    with opened(database) as accord, handled():
        status = accord.subject_status(subject, tenant=tenant)
    if json_output:
        _json(status)
        return
    console.print(
        f"subject {subject}: key {status['key']}"
        + (f" (erased {when(status['erased_at'])})" if status["erased_at"] else "")
        + (
            f"; under legal hold by {status['hold']['placed_by']}: {status['hold']['reason']}"
            if status["hold"]
            else "; no legal hold"
        )
        + f"; {status['entries']} ledger entries"
    )
