"""Requests and entities, and their translation into what Cedar reads.

Accord code names entity types without namespace (``"Service"``); in Cedar they live in
namespace ``Accord`` (``Accord::Service::"journey/refund"``), and a capability name is the id of
an ``Accord::Action``.

Values become Cedar values by these rules: ``bool``, ``int`` and ``str`` stay as they are (an
``int`` must fit Cedar's 64-bit ``Long``); a ``float`` and a :class:`decimal.Decimal` are always
a ``decimal``, whatever their value, so that a journey's ``number`` (``100.0`` as much as
``42.5``) meets a policy's ``decimal`` attribute with one type;
decimals are rounded to Cedar's four places and must lie within its range; a mapping becomes a
record (``None`` values are left out, keys must be strings); a list, tuple or set becomes a set;
an :class:`Entity` inside a value becomes a reference to that entity. Anything else (NaN, an
infinite or out-of-range number, ``None`` inside a set, a record key Cedar's JSON reserves for
its own escapes) is a :class:`CedarValueError`, which the decision point turns into a deny.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

NAMESPACE = "Accord"
ACTION_TYPE = f"{NAMESPACE}::Action"

_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1
# Cedar's decimal is a 64-bit integer count of ten-thousandths.
_DECIMAL_MIN = Decimal(_LONG_MIN).scaleb(-4)
_DECIMAL_MAX = Decimal(_LONG_MAX).scaleb(-4)
_FOUR_PLACES = Decimal("0.0001")
# A record with one of these keys would be read by Cedar as an entity or extension escape,
# which would let data smuggle in an entity reference.
_RESERVED_KEYS = frozenset({"__entity", "__extn", "__expr"})


class CedarValueError(ValueError):
    """A value in a request has no faithful Cedar equivalent."""


@dataclass(frozen=True, slots=True)
class Entity:
    """A principal or resource, with the attributes policies may read.

    Attributes:
        type: the entity type without namespace: ``Service``, ``Agent``, ``Person``,
            ``Subject``, ``Record``.
        id: the entity's id, any string (``journey/refund``, ``cus_123``).
        attrs: attribute values, converted as the module docstring describes.
        parents: ``(type, id)`` of the groups the entity is ``in``, types without namespace.
    """

    type: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    parents: tuple[tuple[str, str], ...] = ()

    @property
    def cedar_uid(self) -> dict[str, str]:
        """The entity's uid in Cedar JSON form."""
        return {"type": f"{NAMESPACE}::{self.type}", "id": self.id}


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One question for the decision point: may ``principal`` do ``action`` on ``resource``?

    Attributes:
        principal: who acts: a ``Service`` (a journey), an ``Agent`` or a ``Person``.
        action: the capability name, e.g. ``payments.refund``.
        resource: what it acts on, usually the ``Subject`` or a ``Record``.
        context: facts of the moment (purpose, amount, channel...), converted as the module
            docstring describes.
    """

    principal: Entity
    action: str
    resource: Entity
    context: Mapping[str, Any] = field(default_factory=dict)


def to_cedar(request: PolicyRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Cedar request and entity list for ``request``, as ``cedarpy.is_authorized`` takes them.

    The principal and the resource are the only entities; when both are the same entity it is
    listed once.

    Raises:
        CedarValueError: a value cannot be represented in Cedar.
    """
    principal = request.principal
    resource = request.resource
    cedar_request = {
        "principal": principal.cedar_uid,
        "action": {"type": ACTION_TYPE, "id": request.action},
        "resource": resource.cedar_uid,
        "context": _record(request.context, "context"),
    }
    entities = [_entity(principal, "principal")]
    if resource != principal:
        entities.append(_entity(resource, "resource"))
    return cedar_request, entities


def to_cedar_value(value: Any) -> Any:
    """One value in Cedar JSON form (see the module docstring for the rules).

    Raises:
        CedarValueError: the value cannot be represented in Cedar.
    """
    return _value(value, "value")


def _entity(entity: Entity, where: str) -> dict[str, Any]:
    return {
        "uid": entity.cedar_uid,
        "attrs": _record(entity.attrs, f"{where}.attrs"),
        "parents": [{"type": f"{NAMESPACE}::{t}", "id": i} for t, i in entity.parents],
    }


def _record(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, item in values.items():
        if item is None:
            continue
        if type(key) is not str:
            raise CedarValueError(f"{where}: record keys must be strings, got {key!r}")
        if key in _RESERVED_KEYS:
            raise CedarValueError(f"{where}: {key!r} is reserved by Cedar's JSON format")
        record[key] = _value(item, f"{where}.{key}")
    return record


def _value(value: Any, where: str) -> Any:
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if kind is int:
        if _LONG_MIN <= value <= _LONG_MAX:
            return value
        raise CedarValueError(f"{where}: {value} does not fit Cedar's 64-bit Long")
    if kind is float:
        return _float(value, where)
    if isinstance(value, Decimal):
        return _decimal(value, where)
    if isinstance(value, Entity):
        return {"__entity": value.cedar_uid}
    if isinstance(value, Mapping):
        return _record(value, where)
    if isinstance(value, list | tuple | set | frozenset):
        items = []
        for item in value:
            if item is None:
                raise CedarValueError(f"{where}: a Cedar set cannot hold None")
            items.append(_value(item, f"{where}[]"))
        return items
    # Subclasses such as StrEnum and IntEnum count as their plain value.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return _value(int.__int__(value), where)
    raise CedarValueError(f"{where}: {kind.__name__} values have no Cedar equivalent")


def _float(value: float, where: str) -> Any:
    if not math.isfinite(value):
        raise CedarValueError(f"{where}: {value} is not a number Cedar can hold")
    # adding 0.0 turns -0.0 into 0.0, which Cedar's decimal syntax has no sign for
    return _decimal(Decimal(repr(value + 0.0)), where)


def _decimal(value: Decimal, where: str) -> dict[str, Any]:
    if not value.is_finite():
        raise CedarValueError(f"{where}: {value} is not a number Cedar can hold")
    try:
        rounded = value.quantize(_FOUR_PLACES, rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise CedarValueError(f"{where}: {value} is outside Cedar's decimal range") from exc
    if not _DECIMAL_MIN <= rounded <= _DECIMAL_MAX:
        raise CedarValueError(f"{where}: {value} is outside Cedar's decimal range")
    return {"__extn": {"fn": "decimal", "arg": f"{rounded:f}"}}
