"""OpenAPI 3 documents read into operations whose contracts Accord can check.

Each operation becomes one input and one output JSON Schema (draft 2020-12):

- the input is an object holding the path, query and header parameters by name and, for a JSON
  request body that is an object, its properties beside them (``body`` holds any other body, and
  a body whose properties collide with a parameter); an ``Idempotency-Key`` header parameter is
  not part of the input: it says the system accepts keys, and the connector sends the call's key;
- the output is the schema of the first 2xx JSON response; an answer that is not an object is
  wrapped as ``{"items": [...]}`` for arrays and ``{"value": ...}`` otherwise.

References to ``#/components/schemas`` become ``$defs`` of each contract, so a contract stands on
its own. OpenAPI 3.0's ``nullable`` is rewritten as a type union.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from accord.errors import ConfigurationError

__all__ = ["OpenApiOperation", "Parameter", "load_document", "operations"]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
IDEMPOTENCY_HEADER = "idempotency-key"
Location = Literal["path", "query", "header"]
Wrap = Literal["object", "items", "value", "empty"]


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: Location
    required: bool


@dataclass(frozen=True, slots=True)
class OpenApiOperation:
    """One operation of a document, ready to call and check."""

    operation_id: str
    method: str
    path: str
    summary: str
    parameters: tuple[Parameter, ...]
    body: Literal["none", "flat", "nested"]
    body_fields: tuple[str, ...]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    wrap: Wrap
    accepts_idempotency_key: bool

    @property
    def reads_only(self) -> bool:
        return self.method in ("get", "head", "options")


def load_document(source: str | Path, *, text: str | None = None) -> dict[str, Any]:
    """Parse an OpenAPI document from ``text`` (JSON or YAML), or read it from a file.

    Raises:
        ConfigurationError: the file cannot be read or is not an OpenAPI 3 document.
    """
    where = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the OpenAPI document {where}: {exc.strerror}",
                hint="check the path, or give the service's URL",
            ) from exc
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(
            f"the OpenAPI document {where} is neither JSON nor YAML: {exc}",
            hint="point at the service's openapi.json",
        ) from exc
    version = data.get("openapi") if isinstance(data, dict) else None
    if not (isinstance(version, str) and version.startswith("3.")):
        raise ConfigurationError(
            f"{where} is not an OpenAPI 3 document (its 'openapi' field is {version!r})",
            hint="Accord reads OpenAPI 3.0 and 3.1; convert Swagger 2 documents first",
        )
    return dict(data)


def operations(document: Mapping[str, Any], *, source: str = "document") -> list[OpenApiOperation]:
    """Every operation of ``document`` that has an ``operationId``, in document order.

    Raises:
        ConfigurationError: an operation id repeats, or a reference leads nowhere.
    """
    components = document.get("components") or {}
    schemas = components.get("schemas") or {}
    legacy = str(document.get("openapi", "")).startswith("3.0")
    resolver = _Resolver(document, schemas, legacy, source)
    found: dict[str, OpenApiOperation] = {}
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters") or []
        for method in METHODS:
            spec = item.get(method)
            if not isinstance(spec, dict) or not spec.get("operationId"):
                continue
            op_id = str(spec["operationId"])
            if op_id in found:
                raise ConfigurationError(
                    f"{source}: operationId {op_id!r} is used twice",
                    hint="operation ids must be unique within a document",
                )
            found[op_id] = _operation(resolver, path, method, spec, shared)
    return list(found.values())


class _Resolver:
    def __init__(
        self, document: Mapping[str, Any], schemas: Mapping[str, Any], legacy: bool, source: str
    ) -> None:
        self.document = document
        self.schemas = schemas
        self.legacy = legacy
        self.source = source

    def deref(self, value: Any) -> Any:
        """A parameter, body or response object, following one ``$ref`` chain."""
        seen = set()
        while isinstance(value, dict) and "$ref" in value and len(value) == 1:
            ref = value["$ref"]
            if ref in seen or not isinstance(ref, str) or not ref.startswith("#/"):
                raise ConfigurationError(f"{self.source}: cannot follow reference {ref!r}")
            seen.add(ref)
            value = self.document
            for raw in ref[2:].split("/"):
                part = raw.replace("~1", "/").replace("~0", "~")
                if not isinstance(value, dict) or part not in value:
                    raise ConfigurationError(
                        f"{self.source}: reference {ref!r} leads nowhere",
                        hint="fix the document, or fetch it again from the service",
                    )
                value = value[part]
        return value

    def contract(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """``schema`` made standalone: component references become ``$defs``."""
        body: dict[str, Any] = self.rewrite(copy.deepcopy(dict(schema)))
        used = self._used(body)
        if used:
            body["$defs"] = {name: self.rewrite(copy.deepcopy(self.schemas[name])) for name in used}
        return body

    def component(self, schema: Any) -> Any:
        """A schema with a top-level component reference replaced by the component."""
        if isinstance(schema, dict) and set(schema) == {"$ref"}:
            name = _component_name(schema["$ref"])
            if name is not None and name in self.schemas:
                return self.component(self.schemas[name])
        return schema

    def rewrite(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.rewrite(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {k: self.rewrite(v) for k, v in value.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#/$defs/"):
            name = _component_name(ref)
            if name is None or name not in self.schemas:
                raise ConfigurationError(
                    f"{self.source}: schema reference {ref!r} is not a component schema",
                    hint="references must point into #/components/schemas",
                )
            out["$ref"] = f"#/$defs/{name}"
        if self.legacy and out.pop("nullable", False) is True:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif "$ref" in out or "enum" not in out:
                out = {"anyOf": [out, {"type": "null"}]}
        return out

    def _used(self, schema: Any) -> list[str]:
        names: list[str] = []
        pending = [schema]
        while pending:
            value = pending.pop()
            if isinstance(value, list):
                pending.extend(value)
            elif isinstance(value, dict):
                ref = value.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/$defs/"):
                    name = ref.removeprefix("#/$defs/")
                    if name not in names:
                        names.append(name)
                        pending.append(self.rewrite(copy.deepcopy(self.schemas[name])))
                pending.extend(value.values())
        return sorted(names)


def _component_name(ref: Any) -> str | None:
    match = re.fullmatch(r"#/components/schemas/([^/]+)", str(ref))
    return match.group(1) if match else None


def _operation(
    resolver: _Resolver, path: str, method: str, spec: Mapping[str, Any], shared: list[Any]
) -> OpenApiOperation:
    op_id = str(spec["operationId"])
    properties: dict[str, Any] = {}
    required: list[str] = []
    parameters: list[Parameter] = []
    accepts_key = False
    declared = {
        (p.get("name"), p.get("in")): p
        for p in (resolver.deref(x) for x in [*shared, *(spec.get("parameters") or [])])
        if isinstance(p, dict)
    }
    for (name, location), parameter in declared.items():
        if location not in ("path", "query", "header") or not isinstance(name, str):
            continue
        if location == "header" and name.lower() == IDEMPOTENCY_HEADER:
            accepts_key = True
            continue
        is_required = bool(parameter.get("required")) or location == "path"
        parameters.append(Parameter(name, location, is_required))
        properties[name] = resolver.rewrite(copy.deepcopy(parameter.get("schema") or {}))
        if parameter.get("description") and "description" not in properties[name]:
            properties[name]["description"] = parameter["description"]
        if is_required:
            required.append(name)
    body_kind: Literal["none", "flat", "nested"] = "none"
    body_fields: tuple[str, ...] = ()
    body = resolver.deref(spec.get("requestBody")) if spec.get("requestBody") else None
    body_schema = _json_schema(body)
    if body_schema is not None:
        flat = resolver.component(body_schema)
        own = flat.get("properties") if isinstance(flat, dict) else None
        if (
            isinstance(own, dict)
            and flat.get("type", "object") == "object"
            and not set(own) & set(properties)
            and not {"allOf", "anyOf", "oneOf"} & set(flat)
        ):
            body_kind = "flat"
            body_fields = tuple(own)
            for name, schema in own.items():
                properties[name] = resolver.rewrite(copy.deepcopy(schema))
            required.extend(str(r) for r in flat.get("required") or [])
        else:
            body_kind = "nested"
            properties["body"] = resolver.rewrite(copy.deepcopy(body_schema))
            if isinstance(body, dict) and body.get("required"):
                required.append("body")
    # every key of the input has a place in the request, so any other key is a mistake
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        input_schema["required"] = sorted(set(required))
    output, wrap = _output(resolver, spec)
    return OpenApiOperation(
        operation_id=op_id,
        method=method,
        path=path,
        summary=str(spec.get("summary") or spec.get("description") or "").strip(),
        parameters=tuple(parameters),
        body=body_kind,
        body_fields=body_fields,
        input_schema=resolver.contract(input_schema),
        output_schema=output,
        wrap=wrap,
        accepts_idempotency_key=accepts_key,
    )


def _json_schema(container: Any) -> Any:
    if not isinstance(container, dict):
        return None
    content = container.get("content") or {}
    for media, entry in content.items():
        if (media == "application/json" or media.endswith("+json")) and isinstance(entry, dict):
            return entry.get("schema") or {}
    return None


def _output(resolver: _Resolver, spec: Mapping[str, Any]) -> tuple[dict[str, Any], Wrap]:
    responses = spec.get("responses") or {}
    for status in sorted(str(s) for s in responses):
        if not (status.startswith("2") or status == "2XX"):
            continue
        response = resolver.deref(responses.get(status) or responses.get(int(status), {}))
        schema = _json_schema(response)
        if schema is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}, "empty"
        flat = resolver.component(schema)
        kind = flat.get("type") if isinstance(flat, dict) else None
        if kind == "object" or (isinstance(flat, dict) and "properties" in flat and kind is None):
            # a contract's top level is the object itself, not a reference to it
            return resolver.contract(flat), "object"
        key = "items" if kind == "array" else "value"
        wrapped = {"type": "object", "properties": {key: schema}, "required": [key]}
        return resolver.contract(wrapped), "items" if kind == "array" else "value"
    return {"type": "object"}, "object"
