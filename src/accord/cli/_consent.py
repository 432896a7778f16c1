"""``accord consent``: grant and withdraw consent, show receipts, configure lawful bases."""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli._common import as_json, console, fail, handled, opened, tenant_of, when
from accord.consent import (
    CATEGORIES,
    LAWFUL_BASES,
    PURPOSES,
    ConsentLedger,
    ConsentSnapshot,
    Grant,
)
from accord.core import parse_duration
from accord.service import Accord

app = typer.Typer(
    help="Consent grants and receipts, withdrawals, and the lawful bases of purposes.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Actor = Annotated[
    str | None, typer.Option("--actor", help="who records it (default: your user name)")
]
Purpose = Annotated[str, typer.Option("--purpose", help="a DPV purpose, e.g. dpv:Marketing")]

_STATUS_STYLE = {"active": "green", "expired": "yellow", "withdrawn": "red", "not_yet": "cyan"}


def _ledger(instance: Accord) -> ConsentLedger:
    return instance.consent


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def _terms(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _time(text: str) -> float | None:
    """Epoch seconds, or an ISO 8601 time (UTC when it names no zone); None if neither."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _parse_time(text: str, option: str) -> float:
    moment = _time(text)
    if moment is None:
        fail(
            f"{option} {text!r} is neither an ISO 8601 time nor epoch seconds",
            hint=f"e.g. {option} 2026-03-01T12:00:00Z or {option} 1772366400",
        )
    return moment


def _parse_expiry(text: str, now: float) -> float:
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    moment = _time(text)
    if moment is None:
        fail(
            f"--expires {text!r} is neither a duration nor a time",
            hint="give a duration such as 365d or 12h, or an ISO 8601 time",
        )
    return moment


def _grant_json(grant: Grant, at: float) -> dict[str, Any]:
    return {
        "grant_id": grant.grant_id,
        "subject_id": grant.subject_id,
        "purpose": grant.purpose,
        "categories": list(grant.categories),
        "channel": grant.channel,
        "notice_version": grant.notice_version,
        "granted_at": grant.granted_at,
        "expires_at": grant.expires_at,
        "withdrawn_at": grant.withdrawn_at,
        "status": grant.status_at(at),
    }


def _print_grant(grant: Grant, verb: str) -> None:
    expiry = f", expires {when(grant.expires_at)}" if grant.expires_at is not None else ""
    console.print(
        f"{verb} [bold]{grant.grant_id}[/bold]: {escape(grant.subject_id)} "
        f"{grant.purpose} ({', '.join(grant.categories)}){expiry}"
    )


@app.command("grant")
def grant_command(
    subject: Annotated[str, typer.Argument(help="the subject (customer or employee) id")],
    purpose: Purpose,
    categories: Annotated[
        str, typer.Option("--categories", help="comma-separated pd: terms, e.g. pd:EmailAddress")
    ],
    channel: Annotated[str, typer.Option(help="where consent was collected")] = "web",
    notice: Annotated[str, typer.Option(help="version of the privacy notice shown")] = "1",
    expires: Annotated[
        str | None, typer.Option(help="lapse after a duration (365d) or at an ISO time")
    ] = None,
    language: Annotated[str, typer.Option(help="language of the consent dialogue")] = "en",
    actor: Actor = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Record a subject's consent and issue its receipt."""
    with opened(database) as accord, handled():
        ledger = _ledger(accord)
        expires_at = None if expires is None else _parse_expiry(expires, ledger.clock.now())
        grant = ledger.grant(
            tenant_of(accord),
            subject,
            purpose=purpose,
            categories=_terms(categories),
            channel=channel,
            notice_version=notice,
            expires_at=expires_at,
            actor=_actor(actor),
            language=language,
        )
        if json_output:
            console.print(
                as_json(_grant_json(grant, grant.granted_at)), markup=False, soft_wrap=True
            )
            return
        _print_grant(grant, "granted")
        console.print(
            f"  receipt: accord consent receipt {grant.grant_id}", markup=False, soft_wrap=True
        )


@app.command("withdraw")
def withdraw_command(
    target: Annotated[
        str, typer.Argument(help="a grant id, or a subject id together with --purpose")
    ],
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="withdraw all of a subject's grants for it")
    ] = None,
    reason: Annotated[str, typer.Option(help="why, in the customer's words")] = "",
    actor: Actor = None,
    database: Database = None,
) -> None:
    """Withdraw one grant (GRANT_ID), or every grant of a subject for a purpose."""
    with opened(database) as accord, handled():
        ledger = _ledger(accord)
        tenant = tenant_of(accord)
        if purpose is None:
            grant = ledger.withdraw(tenant, target, actor=_actor(actor), reason=reason)
            _print_grant(grant, "withdrew")
            return
        grants = ledger.withdraw_purpose(
            tenant, target, purpose, actor=_actor(actor), reason=reason
        )
        if not grants:
            console.print(
                f"nothing to withdraw: {escape(target)} has no active consent for {purpose}"
            )
        for grant in grants:
            _print_grant(grant, "withdrew")


@app.command("show")
def show_command(
    subject: Annotated[str, typer.Argument(help="the subject id")],
    at: Annotated[
        str | None,
        typer.Option(help="as the ledger stood at this ISO time or epoch (default: now)"),
    ] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """A subject's grants and their status, and the tenant's configured lawful bases."""
    with opened(database) as accord, handled():
        ledger = _ledger(accord)
        tenant = tenant_of(accord)
        if at is None:
            moment = ledger.clock.now()
            snapshot = ledger.snapshot(tenant, subject)
        else:
            moment = _parse_time(at, "--at")
            snapshot = ledger.snapshot(tenant, subject, as_of=moment)
        if json_output:
            console.print(as_json(_snapshot_json(snapshot, moment)), markup=False, soft_wrap=True)
            return
        _print_snapshot(snapshot, moment)


def _snapshot_json(snapshot: ConsentSnapshot, moment: float) -> dict[str, Any]:
    return {
        "subject_id": snapshot.subject_id,
        "at": moment,
        "grants": [_grant_json(g, moment) for g in snapshot.grants],
        "bases": [
            {
                "purpose": b.purpose,
                "basis": b.basis,
                "categories": None if b.categories is None else list(b.categories),
                "description": b.description,
            }
            for b in snapshot.bases
        ],
    }


def _print_snapshot(snapshot: ConsentSnapshot, moment: float) -> None:
    console.print(f"consent of [bold]{escape(snapshot.subject_id)}[/bold] at {when(moment)} UTC")
    if snapshot.grants:
        table = Table()
        # Ids are copied into other commands, so they are never shortened.
        width = max(len(g.grant_id) for g in snapshot.grants)
        table.add_column("grant", no_wrap=True, min_width=width)
        table.add_column("purpose", overflow="fold")
        table.add_column("categories", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("when (UTC)", no_wrap=True)
        for grant in snapshot.grants:
            status = grant.status_at(moment)
            style = _STATUS_STYLE[status]
            times = [f"granted   {_minute(grant.granted_at)}"]
            if grant.expires_at is not None:
                times.append(f"expires   {_minute(grant.expires_at)}")
            if grant.withdrawn_at is not None:
                times.append(f"withdrawn {_minute(grant.withdrawn_at)}")
            table.add_row(
                grant.grant_id,
                grant.purpose,
                "\n".join(grant.categories),
                f"[{style}]{status}[/{style}]",
                "\n".join(times),
            )
        console.print(table)
    else:
        console.print("no consent recorded")
    _print_bases(snapshot)


def _minute(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _print_bases(snapshot: ConsentSnapshot) -> None:
    if not snapshot.bases:
        console.print("no lawful bases configured: every purpose needs consent")
        return
    table = Table("purpose", "lawful basis", "categories", "description", title="lawful bases")
    for basis in snapshot.bases:
        table.add_row(
            basis.purpose,
            basis.basis,
            "any" if basis.categories is None else ", ".join(basis.categories),
            escape(basis.description),
        )
    console.print(table)


@app.command("check")
def check_command(
    subject: Annotated[str, typer.Argument(help="the subject id")],
    purpose: Purpose,
    categories: Annotated[str, typer.Option("--categories", help="comma-separated pd: terms")],
    at: Annotated[
        str | None, typer.Option(help="what was allowed at this ISO time or epoch")
    ] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Whether a purpose may use a subject's data categories, now or at a past time.

    Exits with 1 when the answer is no, so scripts can test it.
    """
    with opened(database) as accord, handled():
        moment = None if at is None else _parse_time(at, "--at")
        check = _ledger(accord).check(
            tenant_of(accord), subject, purpose, _terms(categories), at=moment
        )
        if json_output:
            allowed = check.allowed_categories
            result = {
                "allowed": check.allowed,
                "reason": check.reason,
                "basis": check.basis,
                "grant_ids": list(check.grant_ids),
                "missing": list(check.missing),
                "allowed_categories": None if allowed is None else sorted(allowed),
                "message": check.message,
            }
            console.print(as_json(result), markup=False, soft_wrap=True)
        else:
            style = "green" if check.allowed else "red"
            console.print(f"[{style}]{escape(check.message)}[/{style}]")
    if not check.allowed:
        raise typer.Exit(1)


@app.command("receipt")
def receipt_command(
    grant_id: Annotated[str, typer.Argument(help="the grant id (= consentReceiptID)")],
    database: Database = None,
) -> None:
    """Print the Kantara Consent Receipt v1.1 JSON issued for a grant."""
    with opened(database) as accord, handled():
        receipt = _ledger(accord).receipt(tenant_of(accord), grant_id)
        console.print(as_json(receipt), markup=False, soft_wrap=True)


@app.command("history")
def history_command(
    subject: Annotated[str, typer.Argument(help="the subject id")],
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Every consent change of a subject, oldest first."""
    with opened(database) as accord, handled():
        events = _ledger(accord).history(tenant_of(accord), subject)
        if json_output:
            console.print(as_json(events), markup=False, soft_wrap=True)
            return
        if not events:
            console.print(f"no consent history for {escape(subject)}")
            return
        table = Table("at", "event", "grant", "actor", "detail")
        for event in events:
            detail = ", ".join(
                f"{key}={_detail_value(key, value)}"
                for key, value in event.detail.items()
                if value not in (None, "")
            )
            table.add_row(
                when(event.at),
                event.kind,
                event.grant_id or "",
                escape(event.actor),
                escape(detail),
            )
        console.print(table)


def _detail_value(key: str, value: Any) -> str:
    if key.endswith("_at") and isinstance(value, int | float):
        return when(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@app.command("basis")
def basis_command(
    purpose: Annotated[str, typer.Argument(help="a DPV purpose, e.g. dpv:CustomerCare")],
    basis: Annotated[str, typer.Option("--basis", help="one of " + ", ".join(LAWFUL_BASES))],
    categories: Annotated[
        str | None,
        typer.Option("--categories", help="comma-separated pd: terms it covers (default: any)"),
    ] = None,
    description: Annotated[str, typer.Option(help="why the basis applies")] = "",
    actor: Actor = None,
    database: Database = None,
) -> None:
    """Configure the lawful basis of a purpose; --basis consent removes the configured one."""
    with opened(database) as accord, handled():
        result = _ledger(accord).set_basis(
            tenant_of(accord),
            purpose,
            basis,
            categories=None if categories is None else _terms(categories),
            description=description,
            actor=_actor(actor),
        )
        if result.basis == "consent":
            console.print(f"{purpose} now needs each subject's consent")
            return
        covered = "any category" if result.categories is None else ", ".join(result.categories)
        console.print(f"{purpose}: [bold]{result.basis}[/bold] covers {covered}")


@app.command("bases")
def bases_command(json_output: Json = False, database: Database = None) -> None:
    """The tenant's configured lawful bases (purposes not listed need consent)."""
    with opened(database) as accord, handled():
        ledger = _ledger(accord)
        tenant = tenant_of(accord)
        bases = ledger.bases(tenant)
        if json_output:
            console.print(as_json(bases), markup=False, soft_wrap=True)
            return
        _print_bases(ConsentSnapshot(tenant, "", (), tuple(bases)))


@app.command("terms")
def terms_command(
    kind: Annotated[str, typer.Argument(help="purposes or categories")] = "purposes",
) -> None:
    """The DPV purposes and DPV-PD categories Accord knows (any other prefix is custom)."""
    if kind not in ("purposes", "categories"):
        fail(f"unknown kind {kind!r}", hint="use `purposes` or `categories`")
    terms = PURPOSES if kind == "purposes" else CATEGORIES
    table = Table("term", "meaning", "special category")
    for term in terms.values():
        table.add_row(term.term, term.label, "yes" if term.sensitive else "")
    console.print(table)
