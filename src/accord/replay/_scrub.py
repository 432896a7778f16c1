"""Keeping the recorded runs' personal data out of a replay's report.

Three layers, each from what Accord already does for its logs: subject ids become the log
pseudonyms (:meth:`accord.telemetry.Redactor.pseudonym`, keyed by the instance's log key, so
a report and the logs name a subject alike); e-mail addresses, phone, card and IBAN numbers
in any string are replaced (:func:`accord.telemetry.redact_text`); and every value of the
recorded run that looks personal — held under a key such as ``name``, ``email`` or
``message``, or free text — is replaced wherever it reappears, in outputs and explanations
alike. Over-redacting is the safe side: a report says what changed, never whose data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from accord.telemetry import Redactor, redact_text

REDACTED = "[redacted]"

_PERSONAL_KEYS = re.compile(
    r"name|mail|phone|mobile|address|street|city|post_?code|zip|birth|dob|iban|card|"
    r"passport|ssn|national|tax_?id|message|text|comment|note|reason|description",
    re.I,
)


def _looks_personal(key: str, value: str) -> bool:
    if len(value) < 2:
        return False
    if _PERSONAL_KEYS.search(key):
        return True
    return " " in value.strip() or "@" in value or redact_text(value) != value


class Scrubber:
    """Scrubs the values of one replay: subjects, known personal values, patterns."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._known: set[str] = set()
        self._subjects: set[str] = set()

    def learn(self, value: Any, key: str = "") -> None:
        """Remember the personal-looking strings of a recorded value (input, outputs...)."""
        if isinstance(value, str):
            if _looks_personal(key, value):
                self._known.add(value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                self.learn(v, str(k) if not key or not _PERSONAL_KEYS.search(key) else key)
        elif isinstance(value, list | tuple):
            for item in value:
                self.learn(item, key)

    def subject(self, subject_id: str | None) -> str | None:
        """The subject's pseudonym, and remember the id so it never appears in clear."""
        if subject_id is None:
            return None
        self._subjects.add(subject_id)
        return self._redactor.pseudonym(subject_id)

    def subjects(self, ids: Iterable[str | None]) -> None:
        for subject_id in ids:
            self.subject(subject_id)

    def text(self, text: str) -> str:
        for known in sorted(self._known, key=len, reverse=True):
            if known in text:
                text = text.replace(known, REDACTED)
        for subject_id in sorted(self._subjects, key=len, reverse=True):
            if subject_id in text:
                text = text.replace(subject_id, self._redactor.pseudonym(subject_id))
        return redact_text(text)

    def value(self, value: Any, key: str = "") -> Any:
        """``value`` with personal data replaced: personal keys' strings, known values,
        subject ids and patterns."""
        if isinstance(value, str):
            if key and _PERSONAL_KEYS.search(key) and len(value) >= 2:
                return REDACTED
            return self.text(value)
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, key) for v in value]
        return value
