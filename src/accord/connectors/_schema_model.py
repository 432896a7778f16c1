"""Contracts declared as JSON Schema: Pydantic models that validate with ``jsonschema``.

A capability declared in a catalogue states its input and output as JSON Schema (draft 2020-12)
rather than as Python classes. :func:`schema_model` turns such a schema into a Pydantic model, so
the gateway checks both kinds of contract the same way: ``model_validate`` raises a Pydantic
``ValidationError`` with one error per violation, located by its path, ``model_dump(mode="json")``
returns the plain object, and ``model_json_schema()`` returns the schema as declared.

``format`` is an annotation, as JSON Schema 2020-12 specifies by default: use ``pattern`` to
enforce the shape of a string. References (``$ref``) are resolved within the contract only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self
from urllib.parse import unquote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaViolation
from pydantic import RootModel, ValidationError, model_validator
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, GenerateJsonSchema, JsonSchemaMode
from pydantic_core import InitErrorDetails, PydanticCustomError

from accord.errors import ConfigurationError

SchemaPath = tuple[str | int, ...]
_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One thing wrong with a declared schema; ``path`` leads to it inside the schema."""

    path: SchemaPath
    message: str

    @property
    def pointer(self) -> str:
        """``path`` as a JSON pointer (RFC 6901); the empty string is the whole schema."""
        return json_pointer(self.path)


class JsonSchemaModel(RootModel[dict[str, Any]]):
    """A JSON object checked against a declared JSON Schema. Build one with :func:`schema_model`."""

    declared_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    _validator: ClassVar[Draft202012Validator] = Draft202012Validator({"type": "object"})

    @model_validator(mode="after")
    def _conforms(self) -> Self:
        violations = sorted(
            self._validator.iter_errors(self.root),
            key=lambda v: (tuple(str(p) for p in v.absolute_path), v.message),
        )
        if violations:
            raise ValidationError.from_exception_data(
                type(self).__name__, [_line_error(v) for v in violations]
            )
        return self

    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool | None = None,
        ref_template: str = DEFAULT_REF_TEMPLATE,
        schema_generator: type[GenerateJsonSchema] = GenerateJsonSchema,
        mode: JsonSchemaMode = "validation",
        *,
        union_format: Literal["any_of", "primitive_type_array"] = "any_of",
    ) -> dict[str, Any]:
        """The schema as declared (the generation options do not apply to it)."""
        return copy.deepcopy(cls.declared_schema)


def schema_model(name: str, schema: Mapping[str, Any]) -> type[JsonSchemaModel]:
    """A Pydantic model that validates JSON objects against ``schema`` (draft 2020-12).

    Args:
        name: what the model belongs to, e.g. ``"crm.lookup_customer input"``; it names the
            model and appears in error messages.
        schema: an object schema (``type: object`` at the top level).

    Raises:
        ConfigurationError: the schema is not a valid object schema; the message names ``name``
            and the JSON pointer of each problem inside the schema.
    """
    problems = schema_problems(schema)
    if problems:
        listed = "; ".join(f"{p.pointer or '(top level)'}: {p.message}" for p in problems)
        raise ConfigurationError(
            f"the JSON Schema of {name} is not valid: {listed}",
            hint="fix the schema at those pointers (JSON Schema draft 2020-12)",
        )
    declared = copy.deepcopy(dict(schema))
    model_name = "".join(part.capitalize() for part in _words(name)) or "Contract"
    return type(
        model_name,
        (JsonSchemaModel,),
        {
            "__module__": __name__,
            "__doc__": f"JSON object checked against the declared schema of {name}.",
            "declared_schema": declared,
            "_validator": Draft202012Validator(declared),
        },
    )


def schema_problems(schema: Mapping[str, Any]) -> list[SchemaProblem]:
    """Everything wrong with ``schema`` as a capability contract, in document order.

    The schema must be valid JSON Schema (draft 2020-12, checked against its meta-schema), an
    object schema at the top level, and its references must point inside it.
    """
    meta = Draft202012Validator(
        Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    problems = [
        SchemaProblem(tuple(error.absolute_path), _meta_message(error))
        for error in meta.iter_errors(schema)
    ]
    if problems:
        return sorted(problems, key=lambda p: tuple(str(e) for e in p.path))
    if schema.get("type") != "object":
        problems.append(
            SchemaProblem(
                ("type",) if "type" in schema else (),
                "a contract must be an object schema: give it 'type: object'",
            )
        )
    for path, ref in _references(schema, ()):
        if not ref.startswith("#"):
            problems.append(SchemaProblem(path, f"{ref!r} points outside the contract"))
        elif (ref == "#" or ref.startswith("#/")) and not _resolves(schema, ref):
            problems.append(SchemaProblem(path, f"{ref!r} points at nothing in the contract"))
    return problems


def json_pointer(path: SchemaPath) -> str:
    """``path`` as a JSON pointer (RFC 6901)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _meta_message(error: SchemaViolation) -> str:
    path = tuple(error.absolute_path)
    if path and path[-1] == "type" and error.validator == "anyOf":
        return f"{error.instance!r} is not a JSON Schema type; use one of {', '.join(_TYPES)}"
    return error.message


def _line_error(violation: SchemaViolation) -> InitErrorDetails:
    path: SchemaPath = tuple(violation.absolute_path)
    pointer = json_pointer(path)
    where = f" (at {pointer})" if pointer else ""
    return InitErrorDetails(
        type=PydanticCustomError(
            "json_schema",
            "{reason}",
            {
                "reason": f"{violation.message}{where}",
                "pointer": pointer,
                "keyword": str(violation.validator),
            },
        ),
        loc=path,
        input=violation.instance,
    )


def _references(node: Any, path: SchemaPath) -> Iterator[tuple[SchemaPath, str]]:
    """Each ``$ref`` in ``node``, with its path; not beneath a nested ``$id`` (another base)."""
    if isinstance(node, Mapping):
        if path and "$id" in node:
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield (*path, "$ref"), ref
        for key, value in node.items():
            yield from _references(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, (*path, index))


def _resolves(schema: Mapping[str, Any], ref: str) -> bool:
    target: Any = schema
    for raw in unquote(ref[1:]).split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


def _words(name: str) -> list[str]:
    word = ""
    words: list[str] = []
    for char in name:
        if char.isalnum():
            word += char
        elif word:
            words.append(word)
            word = ""
    return [*words, word] if word else words
