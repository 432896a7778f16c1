"""Logs: JSON lines with trace ids and runs, subjects pseudonymised, personal data and
secrets kept out, from structlog and the standard library alike."""

from __future__ import annotations

import io
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from accord.telemetry import bound_run, configure_logging, get_logger, redact_text

SECRET = "sk-live-4f9a2c7e1b"
KEY = b"k" * 32


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    # a uvicorn server started in this process may have configured its own loggers (its
    # default log config stops uvicorn.access propagating, a log level silences it)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [], True
        logger.setLevel(logging.NOTSET)
    out = io.StringIO()
    configure_logging(pseudonym_key=KEY, secrets=[SECRET], stream=out)
    yield out
    logging.getLogger().handlers = [
        h for h in logging.getLogger().handlers if h.get_name() != "accord"
    ]


def read(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_lines_are_json_with_run_trace_and_a_pseudonymous_subject(lines: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span, bound_run("run_1", "cus-0042"):
        get_logger("accord.test").info("run.claimed", worker="w1")
        logging.getLogger("accord.stdlib").warning("from %s", "stdlib")
    first, second = read(lines)
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert first["event"] == "run.claimed" and first["level"] == "info"
    assert first["trace_id"] == trace_id and second["trace_id"] == trace_id
    assert first["run_id"] == "run_1"
    assert first["subject"] != "cus-0042" and str(first["subject"]).startswith("subj_")
    assert second["event"] == "from stdlib" and second["logger"] == "accord.stdlib"
    assert "timestamp" in first


def test_the_pseudonym_is_stable_and_keyed(lines: io.StringIO) -> None:
    for _ in range(2):
        with bound_run("run_1", "cus-0042"):
            get_logger("t").info("x")
    a, b = read(lines)
    assert a["subject"] == b["subject"]
    other = io.StringIO()
    configure_logging(pseudonym_key=b"z" * 32, stream=other)
    with bound_run("run_1", "cus-0042"):
        get_logger("t").info("x")
    assert read(other)[0]["subject"] != a["subject"]


def test_personal_data_and_secrets_never_reach_a_line(lines: io.StringIO) -> None:
    get_logger("t").info(
        "mail ann.lee@example.com or +44 20 7946 0958",
        card="4111 1111 1111 1111",
        nested={"iban": "GB82WEST12345698765432", "note": f"key {SECRET} used"},
        api_key="anything",
    )
    logging.getLogger("t").error("token %s leaked to ann.lee@example.com", SECRET)
    text = lines.getvalue()
    for leaked in ("ann.lee@example.com", "7946", "4111 1111", "GB82WEST", SECRET, "anything"):
        assert leaked not in text
    first = read(lines)[0]
    assert first["event"] == "mail [email] or [phone]"
    assert first["card"] == "[card]"
    assert first["nested"] == {"iban": "[iban]", "note": "key [secret] used"}
    assert first["api_key"] == "[secret]"


def test_without_the_redactor_the_same_line_leaks() -> None:
    out = io.StringIO()
    configure_logging(stream=out, redact=False)
    get_logger("t").info("mail ann.lee@example.com", subject="cus-0042")
    assert "ann.lee@example.com" in out.getvalue()
    assert "cus-0042" in out.getvalue()


def test_numbers_that_are_not_personal_data_stay() -> None:
    assert redact_text("run took 1234 ms, 3 of 4") == "run took 1234 ms, 3 of 4"
    assert redact_text("order 4111111111111112") == "order 4111111111111112"  # fails Luhn
    assert redact_text("card 4111111111111111") == "card [card]"


def test_a_bearer_token_in_an_access_log_line_is_replaced(lines: io.StringIO) -> None:
    import time

    from accord.api import issue_token

    with tempfile.TemporaryDirectory() as keys:
        token = issue_token(
            Path(keys), subject="ann", tenant="t", roles=["reviewer"], now=time.time()
        )
    logging.getLogger("uvicorn.access").info(
        '127.0.0.1:5000 - "GET /console/sign-in?token=%s HTTP/1.1" 303', token
    )
    line = lines.getvalue()
    assert token not in line and token.split(".")[1] not in line
    assert "token=[token] HTTP/1.1" in line
