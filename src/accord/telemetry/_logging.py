"""Structured logs: one JSON object per line (or a console rendering for people), from
structlog loggers and from the standard library's ``logging`` alike.

Each line holds the time, level, logger and event, the current trace and span ids, and the
run and subject bound with :func:`bound_run`. Three processors stand between an event and
its line: subjects become pseudonyms (a keyed hash, stable across processes sharing the key),
e-mail addresses, phone numbers, card numbers and IBANs in any string become ``[email]``,
``[phone]``, ``[card]``, ``[iban]``, and configured secrets (and the values of keys named like
secrets) become ``[secret]``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from structlog.contextvars import bound_contextvars
from structlog.types import EventDict, Processor, WrappedLogger

from accord.telemetry._tracing import trace_ids

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w.])\+?\d[\d ().-]{7,}\d(?![\w.])")
# a JWT (header.payload.signature, the header starting '{"' in base64url) wherever it appears,
# e.g. in a console sign-in link an access log records
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|api_?key|authorization|credential", re.I)
_SUBJECT_KEYS = frozenset({"subject", "subject_id"})


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    found = match.group()
    digits = re.sub(r"\D", "", found)
    # a bare run of digits is more likely an id than a phone number
    written_as_phone = found.startswith("+") or not found.isdigit()
    return "[phone]" if 8 <= len(digits) <= 15 and written_as_phone else found


def redact_text(text: str) -> str:
    """``text`` with bearer tokens (JWTs), e-mail addresses, IBANs, card numbers and phone
    numbers replaced."""
    text = _JWT.sub("[token]", text)
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub("[iban]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


class Redactor:
    """The processor that pseudonymises subjects, redacts personal data and hides secrets."""

    def __init__(self, *, pseudonym_key: bytes | None, secrets: Iterable[str] = ()) -> None:
        self.key = pseudonym_key
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def pseudonym(self, subject: str) -> str:
        """``subj_`` and a keyed hash of the subject id (unkeyed only when no key is set)."""
        key = self.key or b"accord-log-pseudonyms"
        return "subj_" + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:16]

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        return {k: self._value(k, v) for k, v in event.items()}

    def _value(self, key: str, value: Any) -> Any:
        if key in _SUBJECT_KEYS and isinstance(value, str):
            return self.pseudonym(value)
        if _SECRET_KEYS.search(key) and value not in (None, ""):
            return "[secret]"
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Mapping):
            return {k: self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value("", v) for v in value]
        if type(value).__name__ == "SecretStr":
            return "[secret]"
        return value

    def _text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        return redact_text(text)


def add_trace_ids(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """``trace_id`` and ``span_id`` of the current span, when there is one."""
    ids = trace_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


def _render_exception(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    return structlog.processors.format_exc_info(logger, name, event)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self._fixed or sys.stderr
        super().emit(record)


# libraries whose INFO lines narrate their own work (migrations applied, requests sent);
# they speak at WARNING and above unless the level asked for is DEBUG
_CHATTY = ("alembic", "httpx", "httpcore", "nats")


def configure_logging(
    *,
    format: Literal["json", "console"] = "json",
    level: str = "INFO",
    pseudonym_key: bytes | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    redact: bool = True,
) -> None:
    """Route structlog and standard-library logging through one pipeline to ``stream``
    (standard error by default). Calling it again replaces the earlier configuration.

    ``redact=False`` drops the redaction processor: only for showing what it prevents.
    """
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        _render_exception,
    ]
    if redact:
        shared.append(Redactor(pseudonym_key=pseudonym_key, secrets=secrets))
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = _Stderr(stream)
    handler.set_name("accord")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "accord"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = (
        logging.DEBUG if logging.getLevelName(level.upper()) == logging.DEBUG else logging.WARNING
    )
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger (``log.info("run.claimed", run_id=…)``)."""
    return structlog.stdlib.get_logger(name)


@contextmanager
def bound_run(run_id: str, subject_id: str | None) -> Iterator[None]:
    """Every log line inside carries the run and (pseudonymised) subject."""
    fields: MutableMapping[str, Any] = {"run_id": run_id}
    if subject_id is not None:
        fields["subject"] = subject_id
    with bound_contextvars(**fields):
        yield
