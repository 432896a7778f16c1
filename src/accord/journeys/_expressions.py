"""CEL expressions and mappings: compiled once, evaluated many times, never ``eval``.

Static typing works by evaluating an expression against *exemplars*: a value of the declared type
for every variable (``"x"`` for a string, ``1`` for an integer, one-element lists, objects with all
their properties). CEL is strictly typed at run time, so an exemplar run reveals type errors
(``input.amount > "100"``), unknown fields and unknown names exactly as a real run would, and the
exemplar result's type is the expression's type. Values of unknown shape (``any``, event payloads)
are marked :data:`DYN`; expressions that reach into them are not typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import cel

from accord.errors import ExpressionError


class _Dyn:
    def __repr__(self) -> str:
        return "DYN"


DYN: Final = _Dyn()

_PATH = re.compile(r"(?<![\w.\"'])([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_SYNTAX_POS = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")


@dataclass(frozen=True, slots=True)
class ExpressionSyntaxError(Exception):
    """A CEL expression does not parse. ``offset`` is the 0-based character offset."""

    source: str
    message: str
    offset: int


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression.

    ``names`` are the variables it reads; ``steps`` the step outputs it reads, when it names
    each one (``steps.lookup.total``), or ``None`` when it uses ``steps`` as a whole. Evaluation
    hands CEL only those, since converting values into CEL costs more than evaluating.
    """

    source: str
    program: Any
    names: frozenset[str] = frozenset()
    steps: frozenset[str] | None = None

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate against ``variables``.

        Raises:
            ExpressionError: naming the expression and what went wrong (not retryable).
        """
        context = {name: variables[name] for name in self.names if name in variables}
        if self.steps is not None and "steps" in context:
            outputs = context["steps"]
            context["steps"] = {k: outputs[k] for k in self.steps if k in outputs}
        try:
            return self.program.execute(context)
        except KeyError as exc:
            raise ExpressionError(
                f"expression `{self.source}` read a missing field {exc.args[0]!r}",
                hint="guard optional fields with has(...), e.g. has(input.x) ? input.x : 0",
            ) from exc
        except (
            TypeError,
            ValueError,
            RuntimeError,
            ZeroDivisionError,
            OverflowError,
            IndexError,
        ) as exc:
            raise ExpressionError(
                f"expression `{self.source}` failed: {_first_sentence(str(exc))}"
            ) from exc


def compile_expression(source: str) -> Expression:
    """Compile CEL ``source``.

    Raises:
        ExpressionSyntaxError: with the offset of the first syntax error.
    """
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        message = str(exc)
        match = _SYNTAX_POS.search(message)
        offset = 0
        detail = _first_sentence(message)
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            lines = source.split("\n")
            offset = sum(len(x) + 1 for x in lines[: line - 1]) + max(column - 1, 0)
            detail = match.group(3).split("\n")[0]
        raise ExpressionSyntaxError(source, f"CEL syntax error: {detail}", offset) from exc
    names = frozenset(program.variables())
    uses = [rest for root, rest in _paths(source) if root == "steps"]
    steps = None
    if uses and all(rest for rest in uses):
        steps = frozenset(rest.split(".")[1] for rest in uses)
    return Expression(source, program, names, steps)


def _first_sentence(text: str) -> str:
    head = text.strip().split("\n")[0]
    cut = head.find(". ")
    return head if cut < 0 else head[: cut + 1]


class CompiledMapping:
    """A mapping of output fields to CEL expressions, literals, nested maps and lists."""

    __slots__ = ("_tree",)

    def __init__(self, tree: Any) -> None:
        self._tree = tree

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        return _evaluate_tree(self._tree, variables)


def compile_mapping(value: Any) -> CompiledMapping:
    """Compile a mapping whose string leaves are CEL expressions.

    Raises:
        ExpressionSyntaxError: for the first leaf that does not parse.
    """
    return CompiledMapping(_compile_tree(value))


def _compile_tree(value: Any) -> Any:
    if isinstance(value, str):
        return compile_expression(value)
    if isinstance(value, dict):
        return {k: _compile_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_compile_tree(v) for v in value]
    return value


def _evaluate_tree(tree: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(tree, Expression):
        return tree.evaluate(variables)
    if isinstance(tree, dict):
        return {k: _evaluate_tree(v, variables) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_evaluate_tree(v, variables) for v in tree]
    return tree


def exemplar_from_schema(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """A value of the type a JSON Schema describes, or :data:`DYN` if its shape is open."""
    root = schema if root is None else root
    if "$ref" in schema:
        ref = str(schema["$ref"])
        name = ref.rsplit("/", 1)[-1]
        target = root.get("$defs", {}).get(name)
        return DYN if target is None else exemplar_from_schema(target, root)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return exemplar_from_schema(options[0], root) if len(options) == 1 else DYN
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return exemplar_from_schema(schema["allOf"][0], root)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        return "x"
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        items = schema.get("items")
        return [exemplar_from_schema(items, root)] if isinstance(items, dict) else DYN
    # an object that admits more properties than it lists has an open shape
    if kind == "object" and "properties" in schema and not schema.get("additionalProperties"):
        return {k: exemplar_from_schema(v, root) for k, v in schema["properties"].items()}
    return DYN


def type_name(value: Any) -> str:
    """The JSON type name of an exemplar."""
    if value is DYN:
        return "any"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__


def accepts(expected: str, value: Any) -> bool:
    """Whether a value of the exemplar's type may fill a field of JSON type ``expected``."""
    actual = type_name(value)
    if expected == "any" or actual in ("any", "null"):
        return True
    if expected == "number":
        return actual in ("number", "integer")
    if expected == "string" and not isinstance(value, str | dict | list | bool | int | float):
        return True
    return actual == expected


@dataclass(frozen=True, slots=True)
class TypeCheck:
    """Result of typing an expression: its exemplar value, or a problem with a hint."""

    value: Any = DYN
    problem: str | None = None
    hint: str | None = None


def check_expression(expression: Expression, scope: Mapping[str, Any]) -> TypeCheck:
    """Type an expression by evaluating it against exemplars of the variables in ``scope``."""
    for root, rest in _paths(expression.source):
        if root not in scope:
            continue
        value = scope[root]
        walked = root
        for field in [p for p in rest.split(".") if p]:
            if value is DYN:
                return TypeCheck()
            if not isinstance(value, dict):
                break
            if field not in value:
                if _is_function_call(expression.source, walked, field):
                    break
                known = ", ".join(sorted(value)) or "none"
                return TypeCheck(
                    problem=f"`{walked}` has no field {field!r} in `{expression.source}`",
                    hint=f"fields of {walked}: {known}",
                )
            value = value[field]
            walked = f"{walked}.{field}"
        if value is DYN:
            return TypeCheck()
    try:
        result = expression.program.execute(_strip_dyn(scope))
    except KeyError as exc:
        return TypeCheck(problem=f"unknown field {exc.args[0]!r} in `{expression.source}`")
    except RuntimeError as exc:
        text = str(exc)
        name = re.search(r"'([^']+)'", text)
        if "Undefined variable" in text and name:
            return TypeCheck(
                problem=f"unknown name {name.group(1)!r} in `{expression.source}`",
                hint="available here: " + ", ".join(sorted(scope)),
            )
        return TypeCheck(problem=f"`{expression.source}`: {_first_sentence(text)}")
    except (ZeroDivisionError, IndexError):
        # an exemplar's division by zero or index past a filtered list's end says nothing
        # about types: the value is known only when the run evaluates it
        return TypeCheck()
    except (TypeError, ValueError) as exc:
        return TypeCheck(
            problem=f"type error in `{expression.source}`: {_first_sentence(str(exc))}",
            hint=_describe_types(expression.source, scope)
            or "CEL does not convert types; use int(), double() or string()",
        )
    return TypeCheck(value=result)


def _paths(source: str) -> list[tuple[str, str]]:
    """Dotted names in ``source``, not counting the text inside string literals."""
    return _PATH.findall(_STRING.sub('""', source))


def _is_function_call(source: str, walked: str, field: str) -> bool:
    return re.search(re.escape(f"{walked}.{field}") + r"\s*\(", source) is not None


def _strip_dyn(value: Any) -> Any:
    if value is DYN:
        return None
    if isinstance(value, dict):
        return {k: _strip_dyn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_dyn(v) for v in value]
    return value


def _describe_types(source: str, scope: Mapping[str, Any]) -> str:
    described = []
    for root, rest in _paths(source):
        if root not in scope or not rest:
            continue
        value = scope[root]
        for field in [p for p in rest.split(".") if p]:
            value = value.get(field, DYN) if isinstance(value, dict) else DYN
        described.append(f"{root}{rest} is {type_name(value)}")
    if not described:
        return ""
    return "; ".join(dict.fromkeys(described)) + "; CEL does not convert types implicitly"
