"""Policy test cases: requests with the decision a bundle must give them.

A case file is YAML::

    cases:
      - name: a journey reads an order
        principal: {type: Service, id: journey/support, attrs: {role: journey, tier: standard}}
        action: orders.lookup
        resource: Subject::cus_1          # or {type: ..., id: ..., attrs: {...}}
        context: {purpose: service_provision}
        decision: allow                   # allow | deny
        reason: permit                    # optional: permit, no_permit, forbid, error, no_bundle
        determining: [services-read]      # optional, in any order
        obligations: [{notify: customer}] # optional, in any order; [] expects none

A number written with a decimal point (``42.5``, ``100.0``) is a Cedar ``decimal``; one without
(``100``) is a ``Long``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from accord.errors import InputError
from accord.policy._bundle import PolicyBundle
from accord.policy._decision import DecisionReason, ObligationKind, PolicyDecision
from accord.policy._entities import Entity, PolicyRequest
from accord.policy._pdp import PolicyDecisionPoint


def parse_entity_ref(text: str) -> tuple[str, str]:
    """``"Service::journey/refund"`` as ``("Service", "journey/refund")``.

    Raises:
        InputError: the text has no ``::`` or an empty type.
    """
    entity_type, separator, entity_id = text.partition("::")
    if not separator or not entity_type.strip():
        raise InputError(
            f"{text!r} is not an entity reference",
            hint='write Type::id, e.g. Service::journey/refund (type without "Accord::")',
        )
    return entity_type.strip(), entity_id


@dataclass(frozen=True, slots=True)
class PolicyCase:
    """One request and what the bundle must answer (None where the case does not say)."""

    name: str
    request: PolicyRequest
    decision: Literal["allow", "deny"]
    reason: DecisionReason | None = None
    determining: tuple[str, ...] | None = None
    obligations: tuple[tuple[ObligationKind, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class CaseResult:
    """A case, the decision it got, and every way the decision differs from the expectation."""

    case: PolicyCase
    decision: PolicyDecision
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def run_cases(
    bundle: PolicyBundle | None,
    cases: Iterable[PolicyCase],
    *,
    pdp: PolicyDecisionPoint | None = None,
) -> list[CaseResult]:
    """Decide every case under ``bundle`` and compare with what the case expects."""
    pdp = pdp or PolicyDecisionPoint()
    return [_run(pdp, bundle, case) for case in cases]


def _run(pdp: PolicyDecisionPoint, bundle: PolicyBundle | None, case: PolicyCase) -> CaseResult:
    decision = pdp.decide(bundle, case.request)
    failures: list[str] = []
    got = "allow" if decision.allowed else "deny"
    if got != case.decision:
        detail = f" ({decision.reason}: {'; '.join(decision.errors)})" if decision.errors else ""
        failures.append(f"expected {case.decision}, got {got}{detail}")
    if case.reason is not None and decision.reason != case.reason:
        failures.append(f"expected reason {case.reason}, got {decision.reason}")
    if case.determining is not None and sorted(decision.determining) != sorted(case.determining):
        failures.append(
            f"expected determining {_listing(case.determining)}, "
            f"got {_listing(decision.determining)}"
        )
    if case.obligations is not None:
        got_obligations = sorted((o.kind, o.value) for o in decision.obligations)
        if got_obligations != sorted(case.obligations):
            failures.append(
                f"expected obligations {_obligation_listing(case.obligations)}, "
                f"got {_obligation_listing(got_obligations)}"
            )
    return CaseResult(case, decision, tuple(failures))


def _listing(ids: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(ids)) + "]"


def _obligation_listing(obligations: Iterable[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{kind}: {value}" for kind, value in sorted(obligations)) + "]"


def load_cases_file(path: Path) -> list[PolicyCase]:
    """The cases of a YAML case file.

    Raises:
        InputError: the file cannot be read or a case is malformed (named by number and name).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    return load_cases(text, source_name=str(path))


def load_cases(text: str, *, source_name: str = "<cases>") -> list[PolicyCase]:
    """The cases of a YAML case document (see the module docstring for the format).

    Raises:
        InputError: the YAML does not parse or a case is malformed (named by number and name).
    """
    try:
        data = yaml.load(text, Loader=_CasesLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise InputError(f"{source_name}: not valid YAML: {exc}") from exc
    try:
        document = _CasesFile.model_validate(data)
    except ValidationError as exc:
        raise InputError(
            f"{source_name}: {_describe(exc, data)}",
            hint="each case needs principal, action, resource and decision (allow or deny)",
        ) from exc
    return [_case(index, model) for index, model in enumerate(document.cases, start=1)]


class _CasesLoader(yaml.SafeLoader):
    """YAML with decimal points read as exact decimals, so ``100.0`` stays a Cedar decimal."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    lowered = text.lower()
    if lowered in (".nan",):
        return Decimal("NaN")
    if lowered in (".inf", "+.inf", "-.inf"):
        return Decimal("-Infinity" if lowered.startswith("-") else "Infinity")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a decimal number", node.start_mark
        ) from exc


_CasesLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


class _EntityModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1)
    id: str
    attrs: dict[str, Any] = {}
    parents: list[str] = []


class _CaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    principal: _EntityModel | str
    action: str = Field(min_length=1)
    resource: _EntityModel | str
    context: dict[str, Any] = {}
    decision: Literal["allow", "deny"]
    reason: DecisionReason | None = None
    determining: list[str] | None = None
    obligations: list[dict[ObligationKind, str]] | None = None

    @field_validator("obligations")
    @classmethod
    def _one_per_item(
        cls, value: list[dict[ObligationKind, str]] | None
    ) -> list[dict[ObligationKind, str]] | None:
        if value is not None and any(len(item) != 1 for item in value):
            raise ValueError("write each obligation as one 'kind: value' item")
        return value


class _CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[_CaseModel]


def _describe(error: ValidationError, data: Any) -> str:
    problems = []
    for item in error.errors():
        location = list(item["loc"])
        where = ".".join(str(part) for part in location)
        if len(location) >= 2 and location[0] == "cases" and isinstance(location[1], int):
            number = location[1]
            name = _case_name(data, number)
            where = f"case {number + 1}{name}" + (
                f", field {'.'.join(str(p) for p in location[2:])}" if location[2:] else ""
            )
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(dict.fromkeys(problems))


def _case_name(data: Any, index: int) -> str:
    try:
        name = data["cases"][index]["name"]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" ({name})" if isinstance(name, str) else ""


def _case(number: int, model: _CaseModel) -> PolicyCase:
    obligations = None
    if model.obligations is not None:
        obligations = tuple(
            (kind, value) for item in model.obligations for kind, value in item.items()
        )
    name = model.name or f"case {number}"
    try:
        principal = _entity(model.principal)
        resource = _entity(model.resource)
    except InputError as exc:
        raise InputError(f"case {number} ({name}): {exc.message}", hint=exc.hint) from exc
    return PolicyCase(
        name=name,
        request=PolicyRequest(principal, model.action, resource, model.context),
        decision=model.decision,
        reason=model.reason,
        determining=None if model.determining is None else tuple(model.determining),
        obligations=obligations,
    )


def _entity(model: _EntityModel | str) -> Entity:
    if isinstance(model, str):
        entity_type, entity_id = parse_entity_ref(model)
        return Entity(entity_type, entity_id)
    return Entity(
        model.type,
        model.id,
        model.attrs,
        tuple(parse_entity_ref(parent) for parent in model.parents),
    )


def entity_from(reference: str, attrs: Mapping[str, Any] | None = None) -> Entity:
    """An entity from a ``Type::id`` reference and optional attributes."""
    entity_type, entity_id = parse_entity_ref(reference)
    return Entity(entity_type, entity_id, attrs or {})
