"""The portal's words for a case: what a running case waits for picks its line by the kind of
wait (``confirm:propose`` is a ``confirm``), and people's decisions never carry their notes."""

from __future__ import annotations

from pathlib import Path

from accord.portal import load_catalogue

ENTERPRISE = Path(__file__).resolve().parents[2] / "examples" / "enterprise"


def test_a_running_case_is_described_by_the_kind_of_wait() -> None:
    catalogue = load_catalogue(ENTERPRISE)
    status = catalogue.case_status
    waiting = "Waiting for your confirmation"
    assert status("refund_request", "waiting", None, ("confirm:propose",)) == waiting
    assert status("refund_request", "waiting", None, ("human:refund",)) == "With our team"
    assert status("support_chat", "waiting", None, ("human:handoff",)) == (
        "A colleague is answering you"
    )
    assert status("support_chat", "waiting", None, ("event:chat_message",)) == "Open"
    # an outcome wins over what was waited for; an unknown journey falls back by status
    assert status("refund_request", "completed", "refunded", ()) == (
        "Refund approved, money back in 3\u20135 days"
    )
    assert status("no_such_journey", "completed", "done", ()) == "Closed"


def test_peoples_decisions_in_the_customers_words() -> None:
    catalogue = load_catalogue(ENTERPRISE)
    assert catalogue.review_text("approve") == "A person in our team checked it and approved it"
    assert catalogue.review_text("something_new") == "A person in our team looked at your case"
    assert catalogue.answer_text("confirmed", "email") == "You confirmed it from our e-mail"
    assert catalogue.answer_text("refused", "portal") == "You declined it here in the portal"
    assert catalogue.answer_text("confirmed", None) == "You confirmed it"
