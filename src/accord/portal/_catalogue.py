"""The portal's words: the purpose catalogue (``purposes.yaml``) and the case texts
(``portal.yaml``), validated at load with every error located by file and field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accord.errors import ConfigurationError

Basis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "legitimate_interest",
    "vital_interest",
    "public_task",
]

BASIS_WORDS: dict[str, str] = {
    "consent": "your consent",
    "contract": "our contract with you",
    "legal_obligation": "a legal obligation",
    "legitimate_interest": "our legitimate interest",
    "vital_interest": "protecting someone's life",
    "public_task": "a task in the public interest",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataItem(_Strict):
    category: str = Field(pattern=r"^[a-z]+:[A-Za-z]+$")
    label: str = Field(min_length=1, max_length=200)


class Purpose(_Strict):
    """One purpose in a customer's words."""

    purpose: str = Field(pattern=r"^[a-z]+:[A-Za-z]+$")
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1, max_length=1000)
    data: tuple[DataItem, ...] = Field(min_length=1)
    systems: tuple[str, ...] = Field(min_length=1)
    kept: str = Field(min_length=1, max_length=500)
    automated: bool
    automated_note: str = ""
    basis: Basis
    why: str = Field(min_length=1, max_length=1000)
    notice_version: str = Field(min_length=1, max_length=64)

    @property
    def categories(self) -> list[str]:
        return [item.category for item in self.data]

    @property
    def basis_words(self) -> str:
        return BASIS_WORDS[self.basis]


class _PurposesFile(_Strict):
    catalogue: Literal[1]
    purposes: tuple[Purpose, ...]


class CaseStatus(_Strict):
    """A line of a journey's texts: it matches an outcome, or what a running case waits for."""

    outcome: str | None = None
    waiting_for: str | None = None
    text: str = Field(min_length=1, max_length=300)


class CaseTexts(_Strict):
    journey: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=120)
    statuses: tuple[CaseStatus, ...] = ()


class ChatSettings(_Strict):
    """The support chat: the journey that carries each conversation (it takes
    ``conversation`` and ``customer_id``)."""

    journey: str = Field(min_length=1, max_length=128)


class _PortalFile(_Strict):
    portal: Literal[1]
    chat: ChatSettings | None = None
    cases: tuple[CaseTexts, ...] = ()
    fallback: dict[str, str] = Field(default_factory=dict)
    decisions: dict[str, str] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict)
    actions: dict[str, str] = Field(default_factory=dict)
    reviews: dict[str, str] = Field(default_factory=dict)
    answers: dict[str, str] = Field(default_factory=dict)


GENERIC_STATUS = "With our team"
CHANNEL_WORDS = {
    "portal": "here in the portal",
    "chat": "in the support chat",
    "email": "from our e-mail",
    "sms": "from our text message",
}


@dataclass(frozen=True)
class Catalogue:
    """Everything the portal says, by purpose and by journey."""

    purposes: dict[str, Purpose] = field(default_factory=dict)
    cases: dict[str, CaseTexts] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    chat: ChatSettings | None = None
    reviews: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)

    def review_text(self, decision: str) -> str:
        """A person's decision in the customer's words (never the reviewer's own notes)."""
        return self.reviews.get(decision, "A person in our team looked at your case")

    def answer_text(self, answer: str, channel: str | None) -> str:
        text = self.answers.get(answer, "You answered")
        where = CHANNEL_WORDS.get(channel or "", "")
        return f"{text} {where}".strip()

    def case_title(self, journey: str) -> str:
        found = self.cases.get(journey)
        return found.title if found else "Your case"

    def case_status(
        self, journey: str, status: str, outcome: str | None, waiting_for: tuple[str, ...]
    ) -> str:
        """The customer's words for where a case stands; a generic line when none is written."""
        texts = self.cases.get(journey)
        # a position waits for "confirm:propose", "human:handoff", "event:chat_message", ...
        kinds = {waiting.partition(":")[0] for waiting in waiting_for}
        for line in texts.statuses if texts else ():
            if outcome is not None and line.outcome == outcome:
                return line.text
            if outcome is None and line.waiting_for is not None and line.waiting_for in kinds:
                return line.text
        return self.fallback.get(status, GENERIC_STATUS)

    def decision_text(self, capability: str, outcome: str, reason: str | None) -> str:
        action = self.actions.get(capability, "take a step in your case")
        verdict = self.decisions.get(outcome, "We looked at it")
        text = f"{verdict}: to {action}"
        if outcome != "executed" and reason:
            text += f", because {self.reasons.get(reason, 'our rules decided so')}"
        return text + "."


def _located(path: Path, exc: ValidationError) -> ConfigurationError:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{path}: {where or '(top)'}: {error['msg']}")
    return ConfigurationError("; ".join(problems), hint=f"fix {path.name} and start Accord again")


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationError(f"{path}:{line}: not valid YAML") from exc


def load_purposes(path: Path) -> dict[str, Purpose]:
    """The purpose catalogue of ``path``, by purpose.

    Raises:
        ConfigurationError: the file is unreadable, not YAML, or a field is wrong (named by
            file and field), or a purpose is listed twice.
    """
    try:
        parsed = _PurposesFile.model_validate(_read(path))
    except ValidationError as exc:
        raise _located(path, exc) from exc
    found: dict[str, Purpose] = {}
    for index, entry in enumerate(parsed.purposes):
        if entry.purpose in found:
            raise ConfigurationError(
                f"{path}: purposes.{index}.purpose: {entry.purpose} is listed twice"
            )
        found[entry.purpose] = entry
    return found


def load_portal_texts(path: Path) -> _PortalFile:
    raw = _read(path)
    try:
        return _PortalFile.model_validate(raw)
    except ValidationError as exc:
        raise _located(path, exc) from exc


def load_catalogue(folder: Path | None) -> Catalogue:
    """``purposes.yaml`` and ``portal.yaml`` of ``folder``; an empty catalogue without one."""
    if folder is None:
        return Catalogue()
    purposes_file, portal_file = folder / "purposes.yaml", folder / "portal.yaml"
    purposes = load_purposes(purposes_file) if purposes_file.is_file() else {}
    if not portal_file.is_file():
        return Catalogue(purposes)
    texts = load_portal_texts(portal_file)
    return Catalogue(
        purposes,
        {case.journey: case for case in texts.cases},
        texts.fallback,
        texts.decisions,
        texts.reasons,
        texts.actions,
        texts.chat,
        texts.reviews,
        texts.answers,
    )


def find_catalogue_folder() -> Path | None:
    """``examples/enterprise`` of the checkout or the working directory, if there is one."""
    here = Path(__file__).resolve()
    for base in (Path.cwd(), here.parents[3]):
        candidate = base / "examples" / "enterprise"
        if (candidate / "purposes.yaml").is_file():
            return candidate
    return None
