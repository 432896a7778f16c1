"""An offer catalogue: the actions a next-best-action block may choose from, the features it
may use and where each is read, the contact policy, and how offers are ranked. Read from YAML
and checked at load, with every error located."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from accord.core import parse_duration
from accord.errors import InputError
from accord.journeys import (
    CompiledMapping,
    Expression,
    ExpressionSyntaxError,
    compile_expression,
    compile_mapping,
)

NAME = r"^[a-z][a-z0-9_-]{0,63}$"
FEATURE = r"^[a-z][a-z0-9_]{0,63}$"
CAPABILITY = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
Method = Literal["rules", "bandit"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _cel(source: str) -> str:
    try:
        compile_expression(source)
    except ExpressionSyntaxError as exc:
        raise ValueError(f"`{source}`: {exc.message} at character {exc.offset + 1}") from exc
    return source


def _duration(value: Any) -> float:
    try:
        seconds = parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a duration (for example 7d, 12h, 30m)") from exc
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return seconds


class Source(_Strict):
    """One read through the gateway whose answer features are taken from. ``input`` maps the
    capability's input to CEL over ``args`` (the block's input), ``subject`` and ``sources``
    (the answers of the sources listed before it); a source whose input reads an answer that
    could not be had is not read either."""

    capability: str = Field(pattern=CAPABILITY)
    input: dict[str, Any] = Field(default_factory=dict)
    purpose: str | None = Field(
        None, description="the purpose it is read under; the catalogue's purpose when absent"
    )
    reads: tuple[str, ...] = ()
    description: str = ""

    @field_validator("input")
    @classmethod
    def _compiles(cls, value: dict[str, Any]) -> dict[str, Any]:
        compile_mapping(value)
        return value


class Feature(_Strict):
    """A value taken from a source's answer (``value``: CEL over ``source``). A feature whose
    source was refused, for instance because consent was withdrawn, is absent from the choice."""

    source: str = Field(pattern=FEATURE)
    value: str
    description: str = ""

    _check = field_validator("value")(_cel)


class Reason(_Strict):
    """A customer-facing reason: ``text`` (CEL, a string) when ``when`` (CEL) holds. Both read
    ``features``; a reason that reads a feature which is absent is skipped."""

    when: str = "true"
    text: str

    _check = field_validator("when", "text")(_cel)


class Offer(_Strict):
    """One action or offer the block may choose."""

    name: str = Field(pattern=NAME)
    title: str = Field(min_length=1, max_length=200, description="what the customer reads")
    action: str | None = Field(
        None,
        pattern=CAPABILITY,
        description="the capability that carries the offer out; policy is asked at choice time",
    )
    purpose: str | None = Field(
        None, description="the purpose the action is carried out under; the block's when absent"
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="the policy context of the action, CEL over features"
    )
    channels: tuple[str, ...] = Field(min_length=1, description="in order of preference")
    eligible: str = Field("true", description="CEL over features; an absent feature fails it")
    score: str = Field("0.0", description="CEL over features: the rank under method rules")
    value: float = Field(1.0, gt=0, description="the worth of an acceptance, for method bandit")
    sensitive: bool = Field(
        False, description="never explored; policy may also mark an action sensitive"
    )
    reasons: tuple[Reason, ...] = Field(min_length=1)

    _check = field_validator("eligible", "score")(_cel)

    @field_validator("context")
    @classmethod
    def _compiles(cls, value: dict[str, Any]) -> dict[str, Any]:
        compile_mapping(value)
        return value

    @model_validator(mode="after")
    def _always_a_reason(self) -> Offer:
        if self.reasons[-1].when.strip() != "true":
            raise ValueError(
                "the last reason must hold always (no `when`), so that every choice of this "
                "offer has a reason the customer can read"
            )
        return self


class Cap(_Strict):
    """At most ``max`` contacts on any of ``channels`` within ``per``."""

    channels: tuple[str, ...] = Field(min_length=1)
    max: int = Field(ge=0)
    per: float

    _parse = field_validator("per", mode="before")(_duration)


class QuietHours(_Strict):
    """No contact on ``channels`` between ``start`` and ``end``, local time: the subject's
    zone from ``timezone_feature`` when it is known, else ``timezone``."""

    start: str = Field(pattern=CLOCK)
    end: str = Field(pattern=CLOCK)
    timezone: str = "UTC"
    timezone_feature: str | None = Field(None, pattern=FEATURE)
    channels: tuple[str, ...] = ("sms", "phone")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone, e.g. Europe/Paris") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end at the same time")
        return self

    def minutes(self) -> tuple[int, int]:
        def of(text: str) -> int:
            hours, minutes = text.split(":")
            return int(hours) * 60 + int(minutes)

        return of(self.start), of(self.end)

    def zone(self, features: dict[str, Any]) -> dt.tzinfo:
        name = features.get(self.timezone_feature) if self.timezone_feature else None
        if isinstance(name, str):
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                pass
        return zoneinfo.ZoneInfo(self.timezone)


class Complaint(_Strict):
    """No contact at all for ``suppress_for`` after a complaint. ``feature`` gives the time of
    the latest complaint (a timestamp, or seconds since the epoch) or null; when it cannot be
    read, nobody is contacted: a complaint nobody could check is treated as one."""

    feature: str = Field(pattern=FEATURE)
    suppress_for: float

    _parse = field_validator("suppress_for", mode="before")(_duration)


class ContactPolicy(_Strict):
    """How often, when and how a subject may be contacted, across every channel and journey.

    ``channels`` names, per channel, the capabilities whose executed calls count as a contact
    on it; Accord counts them from its own decision records. ``preferences`` maps a channel to
    CEL over ``features`` saying whether the subject accepts it; an absent feature means no.
    """

    channels: dict[str, tuple[str, ...]] = Field(min_length=1)
    purpose: str | None = Field(
        None,
        description=(
            "the purpose contacts are made under; a channel whose first capability the gateway "
            "would refuse under it (no consent to be contacted there, say) is not used"
        ),
    )
    context: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per channel, the policy context of a contact on it (CEL over features)",
    )
    caps: tuple[Cap, ...] = ()
    quiet_hours: QuietHours | None = None
    preferences: dict[str, str] = Field(default_factory=dict)
    complaint: Complaint | None = None

    @field_validator("preferences")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for source in value.values():
            _cel(source)
        return value

    @field_validator("context")
    @classmethod
    def _contexts_compile(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for mapping in value.values():
            compile_mapping(mapping)
        return value

    @model_validator(mode="after")
    def _known_channels(self) -> ContactPolicy:
        named = set(self.preferences) | {c for cap in self.caps for c in cap.channels}
        named |= set(self.context)
        if self.quiet_hours is not None:
            named |= set(self.quiet_hours.channels)
        unknown = sorted(named - set(self.channels))
        if unknown:
            raise ValueError(
                f"channel(s) {', '.join(unknown)} are not declared under contact.channels "
                f"({', '.join(sorted(self.channels))})"
            )
        return self

    def window(self) -> float:
        """How far back contacts matter."""
        return max((cap.per for cap in self.caps), default=0.0)


class Prior(_Strict):
    """The acceptance rate assumed before any outcome, worth ``weight`` observations."""

    rate: float = Field(0.2, gt=0, lt=1)
    weight: float = Field(2.0, gt=0, le=10_000)


class Ranking(_Strict):
    """``rules``: each offer's ``score``. ``bandit``: the acceptance rate learnt from recorded
    outcomes (a Beta posterior over ``prior``) times the offer's ``value``; where a journey
    allows exploration, Thompson sampling draws the rate instead of taking its mean."""

    method: Method = "rules"
    prior: Prior = Prior()


class OfferCatalogue(_Strict):
    """A whole catalogue."""

    catalogue: str = Field(pattern=NAME)
    version: int = Field(1, ge=1)
    description: str = ""
    purpose: str = Field(
        min_length=1, description="the purpose features are read and used under (a DPV term)"
    )
    sources: dict[str, Source] = Field(default_factory=dict)
    features: dict[str, Feature] = Field(default_factory=dict)
    contact: ContactPolicy
    ranking: Ranking = Ranking()
    offers: tuple[Offer, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> OfferCatalogue:
        for name, feature in self.features.items():
            if feature.source not in self.sources:
                raise ValueError(
                    f"features.{name}: source {feature.source!r} is not among sources "
                    f"({', '.join(sorted(self.sources)) or 'none'})"
                )
        seen: set[str] = set()
        for i, offer in enumerate(self.offers):
            if offer.name in seen:
                raise ValueError(f"offers[{i}]: offer {offer.name!r} appears twice")
            seen.add(offer.name)
            unknown = sorted(set(offer.channels) - set(self.contact.channels))
            if unknown:
                raise ValueError(
                    f"offers[{i}] ({offer.name}): channel(s) {', '.join(unknown)} are not "
                    "declared under contact.channels"
                )
        wanted = [self.contact.complaint.feature] if self.contact.complaint else []
        if self.contact.quiet_hours and self.contact.quiet_hours.timezone_feature:
            wanted.append(self.contact.quiet_hours.timezone_feature)
        for wanted_name in wanted:
            if wanted_name not in self.features:
                raise ValueError(f"contact: feature {wanted_name!r} is not among features")
        return self

    def offer(self, name: str) -> Offer | None:
        return next((o for o in self.offers if o.name == name), None)


class Compiled:
    """A catalogue with its expressions compiled once."""

    def __init__(self, spec: OfferCatalogue) -> None:
        self.spec = spec
        self.source_inputs: dict[str, CompiledMapping] = {
            name: compile_mapping(s.input) for name, s in spec.sources.items()
        }
        self.features: dict[str, Expression] = {
            name: compile_expression(f.value) for name, f in spec.features.items()
        }
        self.contact_context: dict[str, CompiledMapping] = {
            channel: compile_mapping(mapping) for channel, mapping in spec.contact.context.items()
        }
        self.preferences: dict[str, Expression] = {
            channel: compile_expression(source)
            for channel, source in spec.contact.preferences.items()
        }
        self.eligible: dict[str, Expression] = {
            o.name: compile_expression(o.eligible) for o in spec.offers
        }
        self.score: dict[str, Expression] = {
            o.name: compile_expression(o.score) for o in spec.offers
        }
        self.context: dict[str, CompiledMapping] = {
            o.name: compile_mapping(o.context) for o in spec.offers
        }
        self.reasons: dict[str, tuple[tuple[Expression, Expression], ...]] = {
            o.name: tuple(
                (compile_expression(r.when), compile_expression(r.text)) for r in o.reasons
            )
            for o in spec.offers
        }


def parse_offer_catalogue(text: str, *, source: str = "<text>") -> OfferCatalogue:
    """The catalogue in ``text``.

    Raises:
        InputError: not YAML, or a field is wrong; the message names the source and field.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(
            f"{source}{where}: not valid YAML", hint="check the indentation and quoting"
        ) from exc
    try:
        return OfferCatalogue.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise InputError(f"{source}: {problems}", hint="see docs/offers.md for the fields") from exc


def load_offer_catalogue(path: Path) -> OfferCatalogue:
    """The catalogue in the file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the catalogue ({exc.strerror})") from exc
    return parse_offer_catalogue(text, source=str(path))
