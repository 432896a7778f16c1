"""Policy bundles: Cedar policies and their schema, parsed and validated once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import cedarpy

from accord.core import digest
from accord.policy._decision import OBLIGATION_KINDS, Obligation
from accord.policy._errors import PolicyInvalid
from accord.policy._source import SourcePiece, split_policies

Effect = Literal["permit", "forbid"]

_POLICY_REFERENCE = re.compile(r"policy `(policy\d+)`")
_FOR_POLICY_PREFIX = re.compile(r"^for policy `policy\d+`,\s*")


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One policy of a bundle, as explanations and decisions need it.

    Attributes:
        id: the policy's ``@id`` annotation, else ``cedar_id``; decisions name policies by it.
        cedar_id: Cedar's positional id, ``policy0`` for the first policy in the text.
        effect: ``permit`` or ``forbid``.
        annotations: every annotation; a bare ``@name`` has the value ``""``.
        obligations: what an Allow this policy determines obliges, from its annotations.
        source: the policy's text as deployed.
        line: the line of the bundle text the policy starts on, when known.
    """

    id: str
    cedar_id: str
    effect: Effect
    annotations: Mapping[str, str]
    obligations: tuple[Obligation, ...]
    source: str
    line: int | None
    cedar_json: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        """How diagnostics name the policy: ``policy "refund-limit" (policy1, line 12)``."""
        return _label(self.id, self.cedar_id, self.line)


def _label(policy_id: str, cedar_id: str, line: int | None) -> str:
    details = [] if policy_id == cedar_id else [cedar_id]
    if line is not None:
        details.append(f"line {line}")
    name = cedar_id if policy_id == cedar_id else f'"{policy_id}"'
    return f"policy {name}" + (f" ({', '.join(details)})" if details else "")


def bundle_digest(policies: str, schema: str) -> str:
    """The digest that identifies a bundle's content: same texts, same digest."""
    return digest({"policies": policies, "schema": schema})


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """A compiled policy bundle. Build one with :meth:`compile`; it never changes afterwards.

    The Cedar ``PolicySet`` and ``Schema`` are parsed here once, so deciding a request costs
    no parsing of policies.
    """

    version: int
    digest: str
    policies: str
    schema: str
    source_name: str
    deployed_at: float
    deployed_by: str
    policy_set: cedarpy.PolicySet = field(repr=False, compare=False)
    cedar_schema: cedarpy.Schema = field(repr=False, compare=False)
    compiled_policies: tuple[CompiledPolicy, ...] = field(repr=False, compare=False)
    _by_cedar_id: Mapping[str, CompiledPolicy] = field(repr=False, compare=False)

    @classmethod
    def compile(
        cls,
        policies: str,
        schema: str,
        *,
        version: int = 0,
        source_name: str = "",
        deployed_at: float = 0.0,
        deployed_by: str = "",
    ) -> PolicyBundle:
        """Parse ``policies`` and validate them against ``schema``.

        Args:
            policies: Cedar policies; entity types live in namespace ``Accord``.
            schema: the Cedar schema, in Cedar schema syntax or as Cedar JSON schema text.
            version: the stored version (0 for a bundle not deployed).
            source_name: where the policies came from, named in diagnostics.
            deployed_at: epoch seconds of the deploy.
            deployed_by: who deployed it.

        Raises:
            PolicyInvalid: the schema or a policy does not parse, a policy does not validate
                against the schema, two policies share an ``@id``, a policy is a template, or
                an obligation annotation is empty or sits on a ``forbid``.
        """
        diagnostics: list[str] = []
        cedar_schema = _parse_schema(schema, diagnostics)
        pieces, rest = split_policies(policies)
        try:
            policy_set = cedarpy.PolicySet.from_str(policies)
            cedar_json = json.loads(cedarpy.policies_to_json_str(policies))
        except ValueError as exc:
            diagnostics.extend(_locate_parse_errors(pieces, rest, str(exc)))
            raise PolicyInvalid(diagnostics, source_name=source_name) from exc

        compiled = _compile_policies(cedar_json, pieces, diagnostics)
        if cedar_schema is not None:
            by_cedar_id = {p.cedar_id: p for p in compiled}
            result = cedarpy.validate_policies(policies, cedar_schema)
            for error in result.errors:
                diagnostics.append(_validation_message(error.policy_id, error.error, by_cedar_id))
        if diagnostics or cedar_schema is None:
            raise PolicyInvalid(list(dict.fromkeys(diagnostics)), source_name=source_name)
        return cls(
            version=version,
            digest=bundle_digest(policies, schema),
            policies=policies,
            schema=schema,
            source_name=source_name,
            deployed_at=deployed_at,
            deployed_by=deployed_by,
            policy_set=policy_set,
            cedar_schema=cedar_schema,
            compiled_policies=compiled,
            _by_cedar_id=MappingProxyType({p.cedar_id: p for p in compiled}),
        )

    def policy(self, cedar_id: str) -> CompiledPolicy:
        """The policy Cedar calls ``cedar_id`` (``policy0``…)."""
        return self._by_cedar_id[cedar_id]

    def policy_ids(self, cedar_ids: Iterable[str]) -> tuple[str, ...]:
        """Accord ids of Cedar's positional ids, in bundle order."""
        found = sorted((self._by_cedar_id[c] for c in cedar_ids), key=_position)
        return tuple(p.id for p in found)

    def obligations(self, cedar_ids: Iterable[str]) -> tuple[Obligation, ...]:
        """The obligations of the given policies, in bundle order."""
        found = sorted((self._by_cedar_id[c] for c in cedar_ids), key=_position)
        return tuple(o for p in found for o in p.obligations)

    def describe_errors(self, errors: Iterable[str]) -> tuple[str, ...]:
        """Cedar's messages with each positional policy id completed by the policy's ``@id``."""

        def name(match: re.Match[str]) -> str:
            compiled = self._by_cedar_id.get(match.group(1))
            if compiled is None or compiled.id == compiled.cedar_id:
                return match.group(0)
            return f"policy `{compiled.id}` ({compiled.cedar_id})"

        return tuple(_POLICY_REFERENCE.sub(name, message) for message in errors)


def _position(policy: CompiledPolicy) -> int:
    return int(policy.cedar_id.removeprefix("policy"))


def _parse_schema(schema: str, diagnostics: list[str]) -> cedarpy.Schema | None:
    try:
        if schema.lstrip().startswith("{"):
            return cedarpy.Schema.from_json_str(schema)
        return cedarpy.Schema.from_str(schema)
    except ValueError as exc:
        diagnostics.append(f"schema: {exc}")
        return None


def _locate_parse_errors(
    pieces: list[SourcePiece], rest: SourcePiece | None, message: str
) -> list[str]:
    """Cedar names no position for a parse error; parsing policy by policy finds where it is."""
    found: list[str] = []
    for piece in pieces:
        try:
            cedarpy.PolicySet.from_str(piece.text)
        except ValueError as exc:
            found.append(f"policy at line {piece.line} does not parse: {exc} in {_head(piece)}")
    if rest is not None:
        try:
            cedarpy.PolicySet.from_str(rest.text + ";")
            found.append(f"policy at line {rest.line} does not end with ';': {_head(rest)}")
        except ValueError as exc:
            found.append(f"text at line {rest.line} does not parse: {exc} in {_head(rest)}")
    return found or [f"policies do not parse: {message}"]


def _head(piece: SourcePiece) -> str:
    first = " ".join(piece.text.split())
    return repr(first if len(first) <= 60 else first[:57] + "...")


def _compile_policies(
    cedar_json: Mapping[str, Any], pieces: list[SourcePiece], diagnostics: list[str]
) -> tuple[CompiledPolicy, ...]:
    static: Mapping[str, Any] = cedar_json.get("staticPolicies", {})
    templates: Mapping[str, Any] = cedar_json.get("templates", {})
    located = len(pieces) == len(static) + len(templates)
    for cedar_id in sorted(templates, key=_number):
        where = f"line {pieces[_number(cedar_id)].line}" if located else cedar_id
        diagnostics.append(
            f"policy at {where} is a template (it uses ?principal or ?resource); "
            "a bundle holds static policies only: name the principal or resource instead"
        )
    compiled: list[CompiledPolicy] = []
    for cedar_id in sorted(static, key=_number):
        body: Mapping[str, Any] = static[cedar_id]
        annotations = {
            k: "" if v is None else str(v) for k, v in body.get("annotations", {}).items()
        }
        effect: Effect = "forbid" if body["effect"] == "forbid" else "permit"
        piece = pieces[_number(cedar_id)] if located else None
        policy_id = annotations.get("id", cedar_id)
        label = _label(policy_id, cedar_id, None if piece is None else piece.line)
        compiled.append(
            CompiledPolicy(
                id=policy_id,
                cedar_id=cedar_id,
                effect=effect,
                annotations=MappingProxyType(annotations),
                obligations=_obligations(label, policy_id, effect, annotations, diagnostics),
                source=_render(cedar_id, body) if piece is None else piece.text,
                line=None if piece is None else piece.line,
                cedar_json=MappingProxyType(dict(body)),
            )
        )
    _check_ids(compiled, diagnostics)
    return tuple(compiled)


def _number(cedar_id: str) -> int:
    return int(cedar_id.removeprefix("policy"))


def _check_ids(compiled: list[CompiledPolicy], diagnostics: list[str]) -> None:
    """Decisions name policies by id, so every id must name exactly one policy."""
    owners: dict[str, CompiledPolicy] = {}
    for policy in compiled:
        if "id" in policy.annotations and not policy.id.strip():
            diagnostics.append(f"{policy.label}: @id is empty; give the policy a name")
        clash = owners.setdefault(policy.id, policy)
        if clash is policy:
            continue
        named, positional = (clash, policy) if policy.id == policy.cedar_id else (policy, clash)
        if positional.id == positional.cedar_id:
            diagnostics.append(
                f"{named.label}: @id {named.id!r} is also the positional id of "
                f"{positional.label}; give that policy an @id or choose another"
            )
        else:
            diagnostics.append(
                f"{policy.label}: id {policy.id!r} is already used by {clash.label}; "
                "every policy needs its own @id"
            )


def _obligations(
    label: str,
    policy_id: str,
    effect: Effect,
    annotations: Mapping[str, str],
    diagnostics: list[str],
) -> tuple[Obligation, ...]:
    found: list[Obligation] = []
    for kind in OBLIGATION_KINDS:
        raw = annotations.get(kind)
        if raw is None:
            continue
        if effect == "forbid":
            diagnostics.append(
                f"{label}: @{kind} has no effect on a forbid (obligations come with an "
                "Allow); move it to the permit it belongs to"
            )
            continue
        values = [v.strip() for v in raw.split(",")]
        if not all(values):
            diagnostics.append(
                f'{label}: @{kind}("{raw}") has an empty value; write e.g. '
                f'@{kind}("{_EXAMPLES[kind]}")'
            )
            continue
        found.extend(Obligation(kind, value, policy_id) for value in values)
    return tuple(found)


_EXAMPLES = {
    "approval": "supervisor",
    "notify": "customer",
    "redact": "pd:EmailAddress,pd:TelephoneNumber",
    "sensitive": "financial hardship",
}


def _render(cedar_id: str, body: Mapping[str, Any]) -> str:
    text = json.dumps({"staticPolicies": {cedar_id: body}, "templates": {}, "templateLinks": []})
    return cedarpy.policies_from_json_str(text).strip()


def _validation_message(
    cedar_id: str, message: str, by_cedar_id: Mapping[str, CompiledPolicy]
) -> str:
    policy = by_cedar_id.get(cedar_id)
    if policy is None:
        return message
    return f"{policy.label}: {_FOR_POLICY_PREFIX.sub('', message)}"
