"""``accord review``: the review inbox from the command line: list, show, claim, decide."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli._common import (
    as_json,
    console,
    drive_if_embedded,
    fail,
    handled,
    opened,
    when,
)
from accord.core import parse_duration
from accord.reviews import DECISIONS, Queue, item_packet, packet_json_schema
from accord.storage import ReviewItemRecord

app = typer.Typer(
    help="Review items: claim, decide (approve, edit, reject, override, request_info), SLAs.",
    no_args_is_help=True,
)
staff_app = typer.Typer(help="The people who work review queues.", no_args_is_help=True)
queue_app = typer.Typer(help="Review queues: roles, skills, SLAs.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
app.add_typer(queue_app, name="queue")

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
As = Annotated[str, typer.Option("--as", help="the member of staff acting")]


def _item_json(item: ReviewItemRecord) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "run_id": item.run_id,
        "block": item.block,
        "kind": item.kind,
        "queue": item.queue,
        "roles": list(item.roles),
        "makers": list(item.makers),
        "priority": item.priority,
        "status": item.status,
        "owner": item.owner,
        "created_at": item.created_at,
        "due_at": item.due_at,
        "escalations": item.escalations,
        "packet_version": item.packet_version,
        "decision": item.decision,
        "outcome": item.outcome,
        "packet": item.packet,
    }


def _echo_json(value: Any) -> None:
    typer.echo(as_json(value))


@app.command("list")
def list_command(
    queue: Annotated[str | None, typer.Option(help="only this queue")] = None,
    person: Annotated[
        str | None, typer.Option("--as", help="only items this person may work")
    ] = None,
    mine: Annotated[bool, typer.Option(help="only items claimed by --as")] = False,
    run: Annotated[str | None, typer.Option(help="only this run's items")] = None,
    every: Annotated[bool, typer.Option("--all", help="decided and closed items too")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Open review items, most urgent first."""
    if mine and person is None:
        fail("--mine needs --as PERSON")
    with opened(database) as accord, handled():
        items = accord.review_items(
            queue=queue,
            person=person,
            mine=mine,
            run_id=run,
            statuses=None if every else ("open", "claimed", "info_requested"),
            limit=limit,
        )
        if json_output:
            _echo_json([{k: v for k, v in _item_json(i).items() if k != "packet"} for i in items])
            return
        if not items:
            console.print("no review items")
            return
        table = Table()
        for header in ("item", "queue", "kind", "status", "owner", "priority", "due", "title"):
            table.add_column(header, overflow="fold")
        for i in items:
            table.add_row(
                i.item_id,
                i.queue,
                i.kind,
                i.status,
                i.owner or "-",
                str(i.priority),
                when(i.due_at)[:16],
                escape(str(i.packet.get("title", ""))),
            )
        console.print(table)


@app.command("show")
def show_command(item_id: str, json_output: Json = False, database: Database = None) -> None:
    """An item and its handoff packet."""
    with opened(database) as accord, handled():
        item = accord.review_item(item_id)
        if json_output:
            _echo_json(_item_json(item))
            return
        packet = item_packet(item)
        console.print(
            f"[bold]{escape(packet.title)}[/bold]  ({item.item_id}, packet v{packet.version})"
        )
        console.print(
            f"{item.kind} in queue {item.queue}: {item.status}, owner {item.owner or '-'}"
        )
        console.print(f"why: {escape(packet.reason)}")
        console.print(
            f"run {packet.run.run_id} ({packet.run.journey} v{packet.run.version}) "
            f"at {packet.run.block}"
        )
        rec = packet.recommendation
        confidence = f", confidence {rec.confidence}" if rec.confidence is not None else ""
        band = f", band {rec.band}" if rec.band else ""
        console.print(
            f"recommendation: {rec.decision}{confidence}{band} by {rec.source.kind} "
            f"{rec.source.id} v{rec.source.version}"
            + (f": {escape(rec.rationale)}" if rec.rationale else "")
        )
        if rec.value is not None:
            console.print(f"  value: {escape(json.dumps(rec.value))}")
        if packet.proposed is not None:
            console.print(
                f"proposed call: {packet.proposed.capability} "
                f"{escape(json.dumps(packet.proposed.input))}"
            )
        if packet.policy.determining:
            console.print(
                f"policy v{packet.policy.bundle_version}: {', '.join(packet.policy.determining)}"
                f" ({'; '.join(packet.policy.reasons)})"
            )
        for v in packet.verified:
            console.print(f"verified: {v.block} by {v.system} ({v.capability})")
        for a in packet.attempted:
            console.print(
                f"attempted: {a.block or '-'} {a.what} -> {a.outcome}"
                + (f" ({escape(a.message)})" if a.message else "")
            )
        if packet.remaining:
            console.print(f"remaining: {', '.join(packet.remaining)}")
        console.print(
            f"subject {packet.subject.subject_id or '-'} under {packet.subject.purpose or '-'}: "
            f"{escape(json.dumps(packet.subject.fields))}"
        )
        if packet.subject.withheld:
            console.print(f"  withheld: {', '.join(packet.subject.withheld)}")
        for exchange in packet.info:
            console.print(
                f"asked by {exchange.asked_by}: {escape(exchange.question)}; answer: "
                f"{escape(json.dumps(exchange.answer)) if exchange.answered_at else '(waiting)'}"
            )
        console.print(f"decisions: {', '.join(packet.decisions)}")
        if item.decision:
            console.print(
                f"decided: {item.decision.get('decision')} by {item.decided_by} "
                f"({item.outcome}) {escape(str(item.decision.get('reason') or ''))}"
            )


@app.command("claim")
def claim_command(item_id: str, person: As, database: Database = None) -> None:
    """Take an item; one owner at a time."""
    with opened(database) as accord, handled():
        item = accord.claim_review(item_id, person)
        console.print(f"{item.item_id} is {person}'s")


@app.command("release")
def release_command(item_id: str, person: As, database: Database = None) -> None:
    """Give an item back to its queue."""
    with opened(database) as accord, handled():
        accord.release_review(item_id, person)
        console.print(f"{item_id} is back in its queue")


@app.command("reassign")
def reassign_command(
    item_id: str,
    to: Annotated[str, typer.Option(help="who takes it over")],
    person: As,
    reason: Annotated[str, typer.Option(help="why")],
    database: Database = None,
) -> None:
    """A supervisor hands an item to someone else."""
    with opened(database) as accord, handled():
        accord.reassign_review(item_id, by=person, to=to, reason=reason)
        console.print(f"{item_id} is now {to}'s")


@app.command("decide")
def decide_command(
    item_id: str,
    decision: Annotated[str, typer.Argument(help=" | ".join(DECISIONS))],
    person: As,
    reason: Annotated[str | None, typer.Option(help="why (an override needs one)")] = None,
    value: Annotated[
        str | None, typer.Option(help="the edited value, JSON (edit, override)")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option(help="what an override decides: approve, reject, or a route")
    ] = None,
    question: Annotated[str | None, typer.Option(help="what request_info asks")] = None,
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Decide an item. The same decision again returns the first; a different one is refused."""
    parsed: Any = None
    if value is not None:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            fail(
                f"--value is not valid JSON: {exc.msg} at column {exc.colno}",
                hint="""quote it for the shell, e.g. --value '{"amount": 80}'""",
            )
    with opened(database) as accord, handled():
        result = accord.decide_review(
            item_id,
            person,
            decision,
            reason=reason,
            value=parsed,
            outcome=outcome,
            question=question,
        )
        drive_if_embedded(accord, lambda: None)
        if json_output:
            _echo_json(result.to_json())
            return
        again = " (already decided so; nothing changed)" if result.replayed else ""
        console.print(f"{item_id}: {result.decision} by {result.by} -> {result.status}{again}")


@app.command("info")
def info_command(
    item_id: str,
    by: Annotated[str, typer.Option(help="who answers: the subject or a system")],
    answer: Annotated[str, typer.Option(help="the answer, JSON or text")],
    database: Database = None,
) -> None:
    """Answer a reviewer's request for more information; the item reopens."""
    try:
        parsed: Any = json.loads(answer)
    except json.JSONDecodeError:
        parsed = answer
    with opened(database) as accord, handled():
        item = accord.provide_review_info(item_id, by=by, answer=parsed)
        console.print(f"{item_id} is {item.status} again (packet v{item.packet_version})")


@app.command("sweep")
def sweep_command(database: Database = None) -> None:
    """Escalate overdue items now (workers do this on their own)."""
    with opened(database) as accord, handled():
        console.print(f"{accord.sweep_reviews()} overdue items escalated")


@app.command("feedback")
def feedback_command(json_output: Json = False, database: Database = None) -> None:
    """How people received each rule, agent or prompt version's recommendations."""
    with opened(database) as accord, handled():
        rows = accord.review_feedback()
        if json_output:
            _echo_json([r.to_json() for r in rows])
            return
        table = Table()
        for header in ("source", "decided", "accepted", "edited", "rejected", "overridden"):
            table.add_column(header, overflow="fold")
        table.add_column("acceptance")
        table.add_column("override")
        for r in rows:
            table.add_row(
                r.source,
                str(r.decided),
                str(r.accepted),
                str(r.edited),
                str(r.rejected),
                str(r.overridden),
                f"{r.acceptance_rate:.0%}",
                f"{r.override_rate:.0%}",
            )
        console.print(table)


@app.command("schema")
def schema_command() -> None:
    """The JSON Schema of the handoff packet."""
    _echo_json(packet_json_schema())


@staff_app.command("add")
def staff_add(
    person: str,
    role: Annotated[list[str], typer.Option("--role", help="a role they hold (repeat)")],
    skill: Annotated[list[str] | None, typer.Option("--skill", help="a skill (repeat)")] = None,
    name: Annotated[str, typer.Option(help="display name")] = "",
    inactive: Annotated[bool, typer.Option(help="record them as inactive")] = False,
    actor: Annotated[str, typer.Option(help="who makes the change")] = "cli",
    database: Database = None,
) -> None:
    """Add a member of staff, or change their roles and skills."""
    with opened(database) as accord, handled():
        added = accord.put_person(
            person, roles=role, skills=skill or [], name=name, active=not inactive, actor=actor
        )
        console.print(f"{added.person_id}: roles {', '.join(added.roles)}")


@staff_app.command("list")
def staff_list(json_output: Json = False, database: Database = None) -> None:
    with opened(database) as accord, handled():
        people = accord.reviews.staff(accord.settings.tenant)
        if json_output:
            _echo_json([p.to_json() for p in people])
            return
        for p in people:
            console.print(
                f"{p.person_id}  roles {', '.join(p.roles)}  skills {', '.join(p.skills) or '-'}"
                + ("" if p.active else "  (inactive)")
            )


@queue_app.command("set")
def queue_set(
    name: str,
    role: Annotated[list[str] | None, typer.Option("--role", help="who works it (repeat)")] = None,
    skill: Annotated[list[str] | None, typer.Option("--skill", help="needed skill")] = None,
    sla: Annotated[str | None, typer.Option(help="time to decide, e.g. 4h")] = None,
    escalate_to: Annotated[str | None, typer.Option(help="where overdue items go")] = None,
    description: Annotated[str, typer.Option()] = "",
    actor: Annotated[str, typer.Option(help="who makes the change")] = "cli",
    database: Database = None,
) -> None:
    """Define a queue or change one."""
    with opened(database) as accord, handled():
        queue = accord.put_queue(
            Queue(
                name,
                roles=tuple(role or ()),
                skills=tuple(skill or ()),
                sla=parse_duration(sla) if sla else None,
                escalate_to=escalate_to,
                description=description,
            ),
            actor=actor,
        )
        console.print(
            f"queue {queue.name}: SLA {queue.sla or '-'} s, escalates to {queue.escalate_to or '-'}"
        )


@queue_app.command("list")
def queue_list(json_output: Json = False, database: Database = None) -> None:
    with opened(database) as accord, handled():
        queues = accord.reviews.queues(accord.settings.tenant)
        if json_output:
            _echo_json([q.to_json() for q in queues])
            return
        for q in queues:
            console.print(
                f"{q.name}  roles {', '.join(q.roles) or 'any'}  SLA {q.sla or '-'} s  "
                f"escalates to {q.escalate_to or '-'}"
            )


def confirm_command(
    token: Annotated[str, typer.Argument(help="the confirmation token the subject received")],
    refuse: Annotated[bool, typer.Option(help="refuse the proposal instead")] = False,
    channel: Annotated[str, typer.Option(help="where the answer came from")] = "portal",
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Answer a proposal for its subject: confirm it (or --refuse) with its token."""
    with opened(database) as accord, handled():
        result = accord.confirm(token, "refuse" if refuse else "confirm", channel=channel)
        drive_if_embedded(accord, lambda: None)
        if json_output:
            _echo_json(result.to_json())
            return
        console.print(f"{result.confirmation_id}: {result.answer} on {result.channel}")
