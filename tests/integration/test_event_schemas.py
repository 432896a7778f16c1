"""Every domain event Accord emits is a CloudEvent that the ``cloudevents`` SDK reads, in both
HTTP content modes, and its data validates against the JSON Schema the catalogue publishes.

One scenario drives real flows through the service facade (runs that complete, wait, are
held, cancelled, fail, compensate and escalate; reviews, confirmations, dead letters, consent,
flags, policies and agent rollouts) until the outbox holds every catalogued type. Runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import ast
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from accord.agents import load_agent_text
from accord.core import TenantId
from accord.events import EVENT_TYPES, EventType, binary, event_type, structured
from accord.journeys import load_journey_text
from accord.reviews import Queue
from accord.service import Accord, EventView
from accord.storage import TERMINAL
from accord.storage._events import OutboxEvent
from accord.storage._schema import runs
from accord.testing import FrozenClock
from tests.governance import PERMIT_ALL

T = TenantId("default")
SUBJECT = "cust-1"
PURPOSE = "dpv:ServiceProvision"
ORIGIN = "accord"
SRC = Path(__file__).resolve().parents[2] / "src" / "accord"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "events"

POLICIES = (
    PERMIT_ALL
    + """
@id("audit-doubles")
@notify("audit")
permit(principal, action == Accord::Action::"test.double", resource);

@id("naps-need-a-supervisor")
@approval("supervisor")
permit(principal, action == Accord::Action::"test.slow", resource);
"""
)

JOURNEYS = (
    # run.started, gateway.notify (the policy's @notify), run.completed
    """
journey: plain
blocks:
  - {id: double, kind: task, capability: test.double, input: {amount: 2}}
  - {id: done, kind: end, outcome: doubled}
""",
    # review.requested by a policy's @approval
    """
journey: gated
blocks:
  - {id: nap, kind: task, capability: test.slow, input: {seconds: 0}}
  - {id: done, kind: end, outcome: rested}
""",
    # run.waiting; run.cancelled
    """
journey: waits
input: {order: string}
blocks:
  - id: paid
    kind: wait
    event: {name: payment_received, correlation: input.order}
  - {id: done, kind: end, outcome: paid}
""",
    # run.held behind a kill switch
    """
journey: echo
blocks:
  - {id: say, kind: task, capability: test.echo, input: {value: '"hi"'}}
  - {id: done, kind: end, outcome: said}
""",
    # run.failed, run.compensating, run.compensated; run.escalated when the undo fails
    """
journey: saga
input: {undo_fails: boolean}
blocks:
  - id: book
    kind: task
    capability: test.undo
    input: {value: '"book"'}
    compensate:
      capability: test.flaky
      input: {fail_times: 'input.undo_fails ? 1 : 0', error: '"Locked"', retryable: false}
  - id: pay
    kind: task
    capability: test.flaky
    input: {fail_times: 1, error: '"Declined"', retryable: false}
  - {id: done, kind: end, outcome: paid}
""",
    # call.dead_lettered
    """
journey: letter
blocks:
  - id: send
    kind: task
    capability: test.flaky
    input: {fail_times: 9}
    retry: {max_attempts: 2, initial_interval: 1s, jitter: 0}
  - {id: done, kind: end, outcome: sent}
""",
    # review.requested, .overdue, .info_requested, .decided; run.escalated by a block
    """
journey: humans
blocks:
  - id: sign_off
    kind: approve
    role: support
    queue: goodwill
    title: Goodwill credit
  - id: handoff
    kind: escalate
    queue: supervisors
    reason: '"a second look"'
  - {id: done, kind: end, outcome: approved}
""",
    # confirmation.requested
    """
journey: offer
purpose: dpv:ServiceProvision
blocks:
  - id: propose
    kind: confirm
    proposal: {discount: 20, plan: '"annual"'}
    channels: [email, portal]
  - {id: done, kind: end, outcome: applied}
""",
    # run.escalated (escalate band) and review.requested (confirm band) by an agent
    """
journey: triage
purpose: dpv:ServiceProvision
input: {message: string}
blocks:
  - id: triage
    kind: agent
    agent: triage
    input: {message: input.message}
  - {id: done, kind: end, outcome: resolved}
""",
)

PROMPT = "You triage complaints.\n<!-- user -->\n{{ input.message }}\n"


def agent_spec(version: int) -> str:
    return textwrap.dedent(
        f"""
        agent: triage
        version: {version}
        purpose: {PURPOSE}
        model:
          provider: scripted
          name: script-small
          price: {{input: 1.0, output: 2.0}}
          script:
            - when: "unsure"
              output: {{action: refund}}
              confidence: 0.7
            - output: {{action: none}}
              confidence: 0.3
        prompt: triage
        input:
          message: {{type: string}}
        output:
          schema:
            type: object
            properties:
              action: {{enum: [refund, none]}}
            required: [action]
        tools: []
        bands: {{auto: 0.9, confirm: 0.6}}
        """
    )


# -- reading the outbox -----------------------------------------------------------------------


def all_events(accord: Accord) -> list[EventView]:
    """Every event of the tenant as the facade lists it, oldest first, page by page."""
    after = None
    found: list[EventView] = []
    while True:
        batch = accord.events(after=after, limit=100)
        found += batch
        if len(batch) < 100:
            return found
        after = (batch[-1].event.created_at, batch[-1].event.event_id)


def of_type(accord: Accord, name: str) -> list[OutboxEvent]:
    return [v.event for v in accord.events(types=[name], limit=1000)]


def only_item(accord: Accord, run_id: str, **selection: Any) -> str:
    found = [i for i in accord.review_items(run_id=run_id, **selection) if i.status != "decided"]
    assert len(found) == 1, found
    return found[0].item_id


def run(accord: Accord, journey: str, **options: Any) -> str:
    run_id = accord.runtime.start(T, journey, **options).run_id
    accord.runtime.drive()
    return run_id


def status(accord: Accord, run_id: str) -> tuple[str, str | None]:
    view = accord.runtime.get(T, run_id)
    return view.status, view.outcome


# -- the scenario -----------------------------------------------------------------------------


def drive_every_event(accord: Accord, clock: FrozenClock, tmp_path: Path) -> None:
    """Real flows through the facade that, together, emit every type in the catalogue."""
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "triage.md").write_text(PROMPT)
    for version in (1, 2):
        accord.deploy_agent(
            load_agent_text(agent_spec(version), source_name="triage.yaml", base=tmp_path)
        )
    for text in JOURNEYS:
        accord.runtime.catalog.deploy(T, load_journey_text(text))
    for person, roles in {"ann": ["supervisor", "operations"], "sue": ["support"]}.items():
        accord.put_person(person, roles=roles, actor="test")
    accord.put_queue(
        Queue("goodwill", roles=("support",), sla=3600, escalate_to="supervisors"), actor="test"
    )
    accord.put_queue(Queue("supervisors", roles=("supervisor",)), actor="test")

    # consent.granted, consent.withdrawn
    accord.consent.grant(T, SUBJECT, purpose=PURPOSE, categories=["pd:Name"], actor="test")
    marketing = accord.consent.grant(
        T, SUBJECT, purpose="dpv:Marketing", categories=["pd:EmailAddress"], actor="test"
    )
    accord.consent.withdraw(T, marketing.grant_id, actor=SUBJECT, reason="too many e-mails")

    # run.started, gateway.notify, run.completed
    plain = run(accord, "plain")
    assert status(accord, plain) == ("completed", "doubled")
    # gateway.notify of a direct call, outside any run
    assert accord.invoke("test.double", {"amount": 1}, principal="ops").output == {"amount": 2}

    # review.requested (a policy asks for approval), review.decided
    gated = run(accord, "gated")
    accord.decide_review(only_item(accord, gated), "ann", "approve", reason="fine")
    accord.runtime.drive()
    assert status(accord, gated) == ("completed", "rested")

    # run.waiting, run.cancelled
    paid = run(accord, "waits", input={"order": "o-1"})
    left = run(accord, "waits", input={"order": "o-2"})
    accord.runtime.signal(T, "payment_received", correlation_key="o-1", payload={"n": 1})
    accord.runtime.cancel(T, left, reason="customer left", by="ops")
    accord.runtime.drive()
    assert status(accord, paid) == ("completed", "paid")
    assert status(accord, left)[0] == "cancelled"

    # flag.changed, run.held
    accord.set_flag("capability:test.echo", False, actor="ops", reason="incident 7")
    held = run(accord, "echo")
    assert status(accord, held) == ("waiting", None)
    accord.set_flag("capability:test.echo", True, actor="ops", reason="fixed")
    accord.runtime.drive()
    assert status(accord, held) == ("completed", "said")

    # run.compensating, run.compensated
    undone = run(accord, "saga", input={"undo_fails": False})
    assert status(accord, undone) == ("compensated", "compensated")

    # run.escalated (a compensation failed for good), then run.failed when rejected
    stuck = run(accord, "saga", input={"undo_fails": True})
    accord.decide_review(only_item(accord, stuck), "ann", "reject", reason="keep it booked")
    accord.runtime.drive()
    assert status(accord, stuck) == ("failed", None)

    # call.dead_lettered, and run.failed when the letter is discarded
    letter = run(accord, "letter")
    clock.advance(5)
    accord.runtime.drive()
    [parked] = accord.dead_letters(run_id=letter)
    accord.discard_dead_letter(parked.letter_id, by="ops", note="given up")
    accord.runtime.drive()
    assert status(accord, letter)[0] == "failed"

    # review.requested, review.overdue, review.info_requested, review.decided; run.escalated
    humans = run(accord, "humans")
    sign_off = only_item(accord, humans)
    accord.claim_review(sign_off, "sue")
    clock.advance(3601)
    assert accord.sweep_reviews() == 1
    accord.decide_review(sign_off, "ann", "request_info", question="Which order was late?")
    accord.provide_review_info(sign_off, by=SUBJECT, answer={"order": "o-9"})
    accord.decide_review(sign_off, "ann", "approve", reason="o-9 was late")
    accord.runtime.drive()
    accord.decide_review(only_item(accord, humans), "ann", "approve", reason="looked again")
    accord.runtime.drive()
    assert status(accord, humans) == ("completed", "approved")

    # confirmation.requested
    offer = run(accord, "offer", subject=SUBJECT)
    [requested] = [e for e in of_type(accord, "confirmation.requested") if e.run_id == offer]
    accord.confirm(requested.payload["token"], "confirm", channel="email")
    accord.runtime.drive()
    assert status(accord, offer) == ("completed", "applied")

    # an agent's escalate band (run.escalated) and confirm band (review.requested)
    for message in ("my kettle", "unsure what I want"):
        triage = run(accord, "triage", input={"message": message}, subject=SUBJECT)
        accord.decide_review(only_item(accord, triage), "ann", "approve")
        accord.runtime.drive()
        assert status(accord, triage) == ("completed", "resolved")

    # rollout.changed
    rollout = accord.start_rollout("triage", 2, percent=25.0, by="ops")
    accord.stop_rollout(rollout.rollout_id, reason="enough", by="ops")


@pytest.fixture
def emitted(
    make_accord: Callable[..., Accord], clock: FrozenClock, tmp_path: Path
) -> list[EventView]:
    accord = make_accord(policies=POLICIES)
    drive_every_event(accord, clock, tmp_path)
    return all_events(accord)


# -- the contract -----------------------------------------------------------------------------


def parse(headers: dict[str, str], body: bytes) -> Any:
    return from_http(HTTPMessage(headers=headers, body=body), JSONFormat())


def validator(known: EventType) -> jsonschema.Draft202012Validator:
    # format_checker=None: the schemas' formats are documentation, not checked
    return jsonschema.Draft202012Validator(known.json_schema(), format_checker=None)


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert len({t.name for t in EVENT_TYPES}) == len(EVENT_TYPES)
    for known in EVENT_TYPES:
        schema = known.json_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"] == known.schema_url
        assert known.cloudevents_type == "accord." + known.name
        assert set(known.required) <= set(schema["properties"])


def test_every_emitted_event_is_a_cloudevent_whose_data_matches_its_schema(
    emitted: list[EventView],
) -> None:
    assert len({v.event.event_id for v in emitted}) == len(emitted)
    assert {v.event.type for v in emitted} == {t.name for t in EVENT_TYPES}

    for view in emitted:
        event = view.event
        known = event_type(event.type)
        assert known is not None, event.type
        encodings = {
            "structured": structured(event, origin=ORIGIN),
            "binary": binary(event, origin=ORIGIN),
            # the structured JSON the facade (and the API and CLI) show
            "listed": (
                {"content-type": "application/cloudevents+json"},
                json.dumps(view.cloudevent).encode(),
            ),
        }
        for mode, (headers, body) in encodings.items():
            where = f"{event.type} {event.event_id} ({mode})"
            ce = parse(headers, body)
            assert ce.get_type() == known.cloudevents_type, where
            assert ce.get_id() == event.event_id, where
            assert ce.get_source().startswith("urn:accord:"), where
            assert ce.get_dataschema() == known.schema_url, where
            assert ce.get_extension("accordtenant") == event.tenant_id == T, where
            assert ce.get_extension("partitionkey") == event.ordering_key, where
            data = ce.get_data()
            assert data == event.payload, where
            errors = [e.message for e in validator(known).iter_errors(data)]
            assert errors == [], f"{where}: {errors} in {data}"


def test_the_schema_check_catches_a_missing_field_and_a_wrong_type(accord: Accord) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(JOURNEYS[0]))
    run_id = run(accord, "plain")
    [started] = [e for e in of_type(accord, "run.started") if e.run_id == run_id]
    known = event_type("run.started")
    assert known is not None
    data = parse(*binary(started, origin=ORIGIN)).get_data()
    validator(known).validate(data)

    without = {k: v for k, v in data.items() if k != "version"}
    with pytest.raises(jsonschema.ValidationError, match="'version' is a required property"):
        validator(known).validate(without)
    retyped = {**data, "run_id": 42}
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        validator(known).validate(retyped)

    # and an event of a type the catalogue does not know goes out without a dataschema
    unknown = OutboxEvent(**{**_fields(started), "type": "run.renamed"})
    assert parse(*structured(unknown, origin=ORIGIN)).get_dataschema() is None


def _fields(event: OutboxEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in OutboxEvent.__slots__}


def assert_matches_schema(event: OutboxEvent) -> None:
    known = event_type(event.type)
    assert known is not None, event.type
    errors = [e.message for e in validator(known).iter_errors(event.payload)]
    assert errors == [], f"{event.type}: {errors} in {event.payload}"


@pytest.mark.no_replay_check
def test_a_run_the_runtime_fails_by_itself_announces_it_by_the_schema(accord: Accord) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(JOURNEYS[0]))
    broken = accord.runtime.start(T, "plain").run_id
    with accord.db.transaction() as connection:
        connection.execute(runs.update().where(runs.c.run_id == broken).values(state="{oops"))
    accord.runtime.drive()
    with accord.db.read() as connection:
        ended = connection.execute(sa.select(runs.c.status).where(runs.c.run_id == broken))
        assert ended.scalar_one() == "failed"
    [failed] = [e for e in of_type(accord, "run.failed") if e.run_id == broken]
    assert_matches_schema(failed)


def test_an_escalation_to_the_default_queue_announces_it_by_the_schema(accord: Accord) -> None:
    accord.runtime.catalog.deploy(
        T,
        load_journey_text(
            """
journey: unqueued
blocks:
  - {id: handoff, kind: escalate, queue: null, reason: '"a second look"'}
  - {id: done, kind: end, outcome: approved}
"""
        ),
    )
    run_id = run(accord, "unqueued")
    [item] = accord.review_items(run_id=run_id)
    [escalated] = [e for e in of_type(accord, "run.escalated") if e.run_id == run_id]
    assert escalated.payload["queue"] == item.queue == "supervisors"
    assert_matches_schema(escalated)


# -- the source and the published schemas -----------------------------------------------------

# the values an f-string type takes: a run ends in one of its terminal statuses, and the
# consent ledger publishes grants and withdrawals
_TEMPLATES = {"run.": TERMINAL, "consent.": ("granted", "withdrawn")}


def _type_names(node: ast.expr) -> list[str]:
    """The event types an argument can be: a literal, a conditional of literals, or an
    f-string whose fixed prefix is one of ``_TEMPLATES``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _type_names(node.body) + _type_names(node.orelse)
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        prefix = first.value if isinstance(first, ast.Constant) else ""
        assert prefix in _TEMPLATES, f"an event type f-string {ast.unparse(node)!r}"
        return [str(prefix) + value for value in _TEMPLATES[str(prefix)]]
    return []


def emitted_in_source(root: Path) -> dict[str, list[str]]:
    """Each event type named in ``_publish("...")`` and ``NewEvent(id, "...", ...)`` in the
    modules under ``root``, with where."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            argument: ast.expr | None = None
            if name == "_publish" and node.args:
                argument = node.args[0]
            elif name == "NewEvent":
                keyword = next((k.value for k in node.keywords if k.arg == "type"), None)
                argument = node.args[1] if len(node.args) > 1 else keyword
            if argument is None:
                continue
            for type_name in _type_names(argument):
                where = f"{path.relative_to(root)}:{node.lineno}"
                found.setdefault(type_name, []).append(where)
    return found


def uncatalogued(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: where for name, where in found.items() if event_type(name) is None}


def test_every_event_type_the_source_emits_is_catalogued() -> None:
    found = emitted_in_source(SRC)
    assert uncatalogued(found) == {}
    assert set(found) == {t.name for t in EVENT_TYPES}


def test_the_source_check_finds_an_uncatalogued_type(tmp_path: Path) -> None:
    (tmp_path / "emitter.py").write_text(
        textwrap.dedent(
            """
            def advance(adv, ids, ok):
                adv._publish("run.completed", outcome="done")
                adv._publish("run.renamed" if ok else "run.failed", name="x")
                NewEvent(ids.new_id("evt"), "flag.toggled", {})
                NewEvent(ids.new_id("evt"), type="consent.granted", payload={})
                adv._publish(f"run.{status}", outcome=None)
            """
        )
    )
    found = emitted_in_source(tmp_path)
    assert uncatalogued(found) == {
        "run.renamed": ["emitter.py:4"],
        "flag.toggled": ["emitter.py:5"],
    }
    assert {"run.completed", "run.failed", "consent.granted", "run.cancelled"} <= set(found)


def test_the_published_schemas_are_the_generated_ones() -> None:
    if not DOCS.is_dir():
        pytest.skip(f"{DOCS} is not generated yet (accord events schemas --out)")
    expected = {f"{t.name}.v{t.version}.json": t.json_schema() for t in EVENT_TYPES}
    published = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DOCS.glob("*.json")}
    assert sorted(published) == sorted(expected)
    for name, schema in expected.items():
        assert published[name] == schema, name
