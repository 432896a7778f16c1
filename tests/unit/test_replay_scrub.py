"""The replay's scrubber: personal values of a recorded run never reach a report."""

from __future__ import annotations

from accord.replay._scrub import REDACTED, Scrubber
from accord.telemetry import Redactor

RECORDED = {"name": "Ada Lovelace", "email": "ada@example.org", "amount": 70.0, "tier": "gold"}


def test_known_values_subjects_and_patterns_are_replaced() -> None:
    redactor = Redactor(pseudonym_key=b"k" * 32)
    scrub = Scrubber(redactor)
    scrub.learn(RECORDED)
    pseudonym = scrub.subject("cus-1815")
    text = "Ada Lovelace (cus-1815) wrote from ada@example.org, call +44 20 7946 0958"
    assert scrub.text(text) == f"{REDACTED} ({pseudonym}) wrote from {REDACTED}, call [phone]"
    assert scrub.value({"who": "Ada Lovelace", "name": "Ada", "tier": "gold"}) == {
        "who": REDACTED,
        "name": REDACTED,
        "tier": "gold",
    }


def test_without_learning_the_run_a_name_in_free_text_would_pass() -> None:
    scrub = Scrubber(Redactor(pseudonym_key=None))
    assert "Ada Lovelace" in scrub.text("refund for Ada Lovelace")
    scrub.learn(RECORDED)
    assert "Ada Lovelace" not in scrub.text("refund for Ada Lovelace")
