"""The portal's support chat over real HTTP, against the real sandbox, with a worker running
beside the server as in `accord serve`: one durable run per conversation, every reply through
the gateway, consent asked for in the conversation, low confidence handed to a person (and the
customer told), remedies confirmed by the customer, and nothing of anyone else's reachable."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest
import sqlalchemy as sa

from accord.connectors import CallContext
from accord.errors import CapabilityFailed, InputError
from accord.service import Accord
from accord.simulation import TENANT
from accord.storage._schema import conversation_messages
from tests.integration.test_portal_sign_in import Portal, portal_world

A, B = "cus_00013", "cus_00014"  # A has a pending and a delivered order; B has no orders
HISTORY = "dpv:ServicePersonalisation"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
T = TypeVar("T")


@dataclass
class Chat:
    portal: Portal
    a: httpx.Client
    b: httpx.Client

    @property
    def accord(self) -> Accord:
        return self.portal.enterprise.accord

    def csrf(self, client: httpx.Client) -> str:
        found = CSRF.search(client.get("/portal/chat").text)
        assert found
        return found.group(1)

    def start(self, client: httpx.Client) -> str:
        opened = client.post("/portal/chat/new", data={"csrf": self.csrf(client)})
        assert opened.status_code == 303, opened.text
        return str(opened.headers["location"]).removeprefix("/portal/chat/")

    def say(self, client: httpx.Client, conversation: str, text: str) -> httpx.Response:
        return client.post(
            f"/portal/chat/{conversation}/messages",
            data={"csrf": self.csrf(client), "text": text},
        )

    def texts(self, subject: str, conversation: str) -> list[tuple[str, str, str | None]]:
        found = self.accord.conversations.get(TENANT, subject, conversation)
        return [
            (m.author, m.kind, m.text) for m in self.accord.conversations.transcript(TENANT, found)
        ]

    def run_of(self, subject: str, conversation: str) -> str:
        run_id = self.accord.conversations.get(TENANT, subject, conversation).run_id
        assert run_id is not None
        return str(run_id)


def eventually(check: Callable[[], T | None], what: str, *, seconds: float = 30.0) -> T:
    """Poll ``check`` until it returns something (the worker runs in another thread)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chat]:
    for portal in portal_world(tmp_path_factory.mktemp("portal-chat")):
        runtime = portal.enterprise.accord.runtime
        a, b = portal.sign_in(A), portal.sign_in(B)
        stop = threading.Event()
        worker = threading.Thread(target=runtime.worker().run, kwargs={"stop": stop}, daemon=True)
        worker.start()
        try:
            yield Chat(portal, a, b)
        finally:
            stop.set()
            worker.join(timeout=30)


def test_a_conversation_is_one_durable_run_that_greets_and_listens(chat: Chat) -> None:
    conversation = chat.start(chat.a)
    hello = eventually(lambda: chat.texts(A, conversation), "the greeting")
    assert hello[0][0] == "accord" and hello[0][2] is not None
    assert hello[0][2].startswith("Hello Aarav Nguyen")
    run = chat.accord.runtime.get(TENANT, chat.run_of(A, conversation))
    assert (run.journey, run.subject_id, run.status) == ("support_chat", A, "waiting")
    decisions = chat.accord.runtime.decisions(TENANT, run.run_id)
    assert [(d.capability, d.outcome) for d in decisions] == [
        ("crm.get_customer", "executed"),
        ("conversation.say", "executed"),
    ]
    listed = chat.a.get("/portal/chat")
    assert f"/portal/chat/{conversation}" in listed.text
    page = chat.a.get(f"/portal/chat/{conversation}")
    assert page.status_code == 200 and "Hello Aarav Nguyen" in page.text
    assert 'name="text"' in page.text


def test_consent_is_asked_for_in_the_conversation_and_recorded_on_the_chat_channel(
    chat: Chat,
) -> None:
    accord = chat.accord
    assert not [g for g in accord.consent.grants(TENANT, A) if g.purpose == HISTORY]
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    sent = chat.say(chat.a, conversation, "where is my order?")
    assert sent.status_code == 303
    asked = eventually(
        lambda: [t for t in chat.texts(A, conversation) if t[1] == "consent_request"],
        "the consent request",
    )
    assert "never for marketing" in str(asked[0][2])
    page = chat.a.get(f"/portal/chat/{conversation}")
    assert "Looking through your orders in the support chat" in page.text
    assert 'value="agree"' in page.text
    run_id = chat.run_of(A, conversation)
    refused = [
        d for d in accord.runtime.decisions(TENANT, run_id) if d.capability == "orders.list_orders"
    ]
    assert [(d.outcome, d.reason, d.purpose) for d in refused] == [
        ("refused", "consent_missing", HISTORY)
    ]

    agreed = chat.a.post(
        f"/portal/chat/{conversation}/consent",
        data={"csrf": chat.csrf(chat.a), "purpose": HISTORY, "answer": "agree"},
    )
    assert agreed.status_code == 303
    [grant] = [g for g in accord.consent.grants(TENANT, A) if g.purpose == HISTORY]
    assert (grant.channel, grant.notice_version, grant.categories) == (
        "chat",
        "2026-12",
        ("pd:Purchase",),
    )
    answer = eventually(
        lambda: [t for t in chat.texts(A, conversation) if "latest order" in str(t[2])],
        "the order's status",
    )
    assert answer == [("accord", "text", "Your latest order, #W7728728, is delivered.")]
    reads = [
        (d.outcome, d.reason)
        for d in accord.runtime.decisions(TENANT, run_id)
        if d.capability == "orders.list_orders"
    ]
    assert reads == [("refused", "consent_missing"), ("executed", None)]
    assert ("customer", "consent_answer", "I agree") in chat.texts(A, conversation)


def test_a_message_the_model_is_unsure_of_goes_to_a_person_and_the_customer_is_told(
    chat: Chat,
) -> None:
    accord = chat.accord
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    chat.say(chat.a, conversation, "asdf qwerty zxcv")
    told = eventually(
        lambda: [t for t in chat.texts(A, conversation) if t[1] == "handoff"], "the handoff note"
    )
    assert "passed your message to a colleague" in str(told[0][2])
    run_id = chat.run_of(A, conversation)
    [item] = eventually(
        lambda: [i for i in accord.review_items(queue="support") if i.run_id == run_id],
        "the review item",
    )
    assert item.kind == "escalation" and item.status == "open"
    assert "asdf qwerty zxcv" in str(item.packet["recommendation"]["rationale"])
    assert "asdf" not in str(item.packet["reason"])
    page = chat.a.get(f"/portal/chat/{conversation}")
    assert "A colleague is looking at your message" in page.text

    accord.decide_review(
        item.item_id, "ada.support", "approve", reason="Hello, I am Ada: what can I do for you?"
    )
    reply = eventually(
        lambda: [t for t in chat.texts(A, conversation) if t[0] == "staff"], "the staff reply"
    )
    assert reply == [("staff", "text", "Hello, I am Ada: what can I do for you?")]
    assert "Our team" in chat.a.get(f"/portal/chat/{conversation}").text


def test_a_refund_asked_for_in_the_chat_is_confirmed_by_the_customer_then_carried_out(
    chat: Chat,
) -> None:
    accord = chat.accord
    if not [g for g in accord.consent.grants(TENANT, A) if g.purpose == HISTORY]:
        accord.consent.grant(
            TENANT,
            A,
            purpose=HISTORY,
            categories=["pd:Purchase"],
            channel="chat",
            notice_version="2026-12",
            actor=f"customer/{A}",
        )
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    chat.say(chat.a, conversation, "can I get a refund for my order")
    eventually(
        lambda: [t for t in chat.texts(A, conversation) if "#W7728728" in str(t[2])],
        "the order named",
    )

    def proposed() -> str | None:
        text = chat.a.get(f"/portal/chat/{conversation}").text
        return text if 'value="confirm"' in text else None

    page = eventually(proposed, "the proposal in the conversation")
    assert "Waiting for your answer" in page and "refund the first item" in page
    block = re.search(r'name="block" value="([^"]+)"', page)
    run = re.search(r'name="run_id" value="([^"]+)"', page)
    assert block and run
    answered = chat.a.post(
        "/portal/confirmations/answer",
        data={
            "csrf": chat.csrf(chat.a),
            "run_id": run.group(1),
            "block": block.group(1),
            "answer": "confirm",
            "back": f"/portal/chat/{conversation}",
        },
    )
    assert answered.status_code == 303
    assert answered.headers["location"] == f"/portal/chat/{conversation}#latest"
    # the item's price is above 100, so the policy asks a supervisor before the refund is paid
    [item] = eventually(
        lambda: [
            i
            for i in accord.review_items(queue="supervisor")
            if i.subject_id == A and i.status == "open"
        ],
        "the supervisor's approval",
    )
    accord.decide_review(item.item_id, "sam.supervisor", "approve", reason="receipt checked")
    done = eventually(
        lambda: [t for t in chat.texts(A, conversation) if str(t[2]).startswith("Done")],
        "the outcome",
    )
    assert "refund is on its way" in str(done[0][2])
    sub = accord.runtime.get(TENANT, run.group(1))
    assert (sub.journey, sub.status, sub.outcome) == ("support_resolution", "completed", "resolved")

    # the case pages explain what people decided: the customer's answer, and that a person
    # approved the refund (never the reviewer's own note)
    case = chat.a.get(f"/portal/cases/{sub.run_id}").text
    assert "You confirmed it here in the portal" in case
    refund = item.run_id
    explained = chat.a.get(f"/portal/cases/{refund}").text
    assert "A person in our team was asked to approve it: to pay your refund" in explained
    assert "A person in our team checked it and approved it" in explained
    assert "receipt checked" not in explained
    assert "Refund approved, money back in 3\u20135 days" in chat.a.get("/portal/cases").text


def test_another_customers_conversation_answers_404_and_takes_nothing(chat: Chat) -> None:
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    before = chat.texts(A, conversation)
    assert chat.b.get(f"/portal/chat/{conversation}").status_code == 404
    written = chat.say(chat.b, conversation, "let me in")
    assert written.status_code == 404
    consent = chat.b.post(
        f"/portal/chat/{conversation}/consent",
        data={"csrf": chat.csrf(chat.b), "purpose": HISTORY, "answer": "agree"},
    )
    assert consent.status_code == 404
    assert chat.texts(A, conversation) == before
    assert conversation not in chat.b.get("/portal/chat").text
    assert not [g for g in chat.accord.consent.grants(TENANT, B) if g.purpose == HISTORY]


def test_bad_messages_are_refused_with_a_reason_and_store_nothing(chat: Chat) -> None:
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    before = chat.texts(A, conversation)
    empty = chat.say(chat.a, conversation, "   ")
    assert empty.status_code == 422 and "Write a message first" in empty.text
    long = chat.say(chat.a, conversation, "x" * 2001)
    assert long.status_code == 422 and "limit is 2000" in long.text
    forged = chat.a.post(f"/portal/chat/{conversation}/messages", data={"text": "hi"})
    assert forged.status_code == 403
    unasked = chat.a.post(
        f"/portal/chat/{conversation}/consent",
        data={"csrf": chat.csrf(chat.a), "purpose": HISTORY, "answer": "agree"},
    )
    assert unasked.status_code == 422 and "waiting for your consent" in unasked.text
    assert chat.texts(A, conversation) == before


def test_the_transcript_is_sealed_under_the_subjects_key_and_shredded_on_erasure(
    chat: Chat,
) -> None:
    accord = chat.accord
    subject = "cus_00020"
    found = accord.conversations.open(TENANT, subject, journey="support_chat")
    eventually(lambda: accord.conversations.transcript(TENANT, found), "the greeting")
    accord.conversations.post(TENANT, subject, found.conversation_id, "my card is 4111 1111")
    with accord.db.read() as connection:
        stored = connection.execute(
            conversation_messages.select().where(
                conversation_messages.c.conversation_id == found.conversation_id
            )
        ).fetchall()
    assert stored and all("4111" not in str(row.sealed) for row in stored)
    texts = [m.text for m in accord.conversations.transcript(TENANT, found)]
    assert "my card is 4111 1111" in texts

    accord.runtime.cancel(TENANT, str(found.run_id), reason="erasure", by="dpo")
    eventually(
        lambda: accord.runtime.get(TENANT, str(found.run_id)).status == "cancelled",
        "the cancellation",
    )
    accord.erase_subject(subject, actor="dpo", reason="the customer asked")
    assert [m.text for m in accord.conversations.transcript(TENANT, found)] == [None, None]


def test_a_message_written_while_the_run_is_busy_waits_for_it_sealed_and_an_ended_one_refuses(
    chat: Chat,
) -> None:
    accord = chat.accord
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    chat.say(chat.a, conversation, "asdf qwerty zxcv")
    run_id = chat.run_of(A, conversation)
    [item] = eventually(
        lambda: [i for i in accord.review_items(queue="support") if i.run_id == run_id],
        "the review item",
    )
    # the run waits for a person: this message waits in its inbox, addressed to the run
    chat.say(chat.a, conversation, "SECRET-WHILE-WAITING")
    signals = accord.ledger.entries(TENANT, kinds=["signal"], run_id=run_id)
    assert signals and all(e.subject_id == A for e in signals)
    with accord.db.read() as connection:
        raw = connection.execute(sa.text("SELECT entry FROM ledger_entries")).scalars().all()
    assert not [r for r in raw if "SECRET-WHILE-WAITING" in str(r)], "chat text left unsealed"
    accord.decide_review(item.item_id, "ada.support", "approve", reason="Which order, please?")
    eventually(
        lambda: [t for t in chat.texts(A, conversation) if t[0] == "staff"], "the staff reply"
    )
    # the held message is the next one the run listens to: it goes to a person again
    eventually(
        lambda: [i for i in accord.review_items(queue="support") if i.run_id == run_id],
        "the held message triaged",
    )

    accord.runtime.cancel(TENANT, run_id, reason="closing", by="ops")
    eventually(lambda: accord.runtime.get(TENANT, run_id).status == "cancelled", "the end")
    before = chat.texts(A, conversation)
    late = chat.say(chat.a, conversation, "anyone there?")
    assert late.status_code == 422 and "has ended" in late.text
    assert "has ended" in chat.a.get(f"/portal/chat/{conversation}").text
    assert chat.texts(A, conversation) == before


def test_a_consent_question_takes_one_answer(chat: Chat) -> None:
    accord = chat.accord
    subject = "cus_00012"
    found = accord.conversations.open(TENANT, subject, journey="support_chat")
    eventually(lambda: accord.conversations.transcript(TENANT, found), "the greeting")
    accord.conversations.post(TENANT, subject, found.conversation_id, "where is my order?")
    eventually(
        lambda: [
            m for m in accord.conversations.transcript(TENANT, found) if m.kind == "consent_request"
        ],
        "the consent request",
    )
    accord.conversations.answer_consent(
        TENANT, subject, found.conversation_id, purpose=HISTORY, granted=False
    )
    with pytest.raises(InputError, match="not waiting for a consent answer"):
        accord.conversations.answer_consent(
            TENANT, subject, found.conversation_id, purpose=HISTORY, granted=False
        )
    answers = [
        m for m in accord.conversations.transcript(TENANT, found) if m.kind == "consent_answer"
    ]
    assert len(answers) == 1


def test_conversation_say_writes_only_into_the_runs_subjects_conversation(chat: Chat) -> None:
    accord = chat.accord
    conversation = chat.start(chat.a)
    eventually(lambda: chat.texts(A, conversation), "the greeting")
    say = accord.capabilities.get("conversation.say")
    request = say.input_model.model_validate({"conversation": conversation, "text": "hi"})

    def context(subject: str | None, key: str) -> CallContext:
        return CallContext(
            tenant_id=TENANT,
            run_id="run_x",
            block="b",
            visit=1,
            attempt=1,
            idempotency_key=key,
            subject_id=subject,
        )

    for subject in (B, None):
        with pytest.raises(CapabilityFailed):
            say.handler(request, context(subject, f"k-{subject}"))
    first = say.handler(request, context(A, "same-key"))
    again = say.handler(request, context(A, "same-key"))
    assert first.seq == again.seq
    assert [t for t in chat.texts(A, conversation) if t[2] == "hi"] == [("accord", "text", "hi")]
