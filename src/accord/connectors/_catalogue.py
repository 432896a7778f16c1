"""Capability catalogues: capabilities declared in YAML and bound to Python functions.

A catalogue file declares many capabilities at once, each with JSON Schema contracts and its
governance attributes::

    catalogue: 1
    capabilities:
      - name: crm.lookup_customer
        description: Look a customer up in the CRM.
        side_effect: read            # read | write | irreversible
        idempotent: true             # required for write and irreversible
        compensation: null           # the capability that undoes this one
        reads: [pd:Name, pd:EmailAddress]
        writes: []
        fields: {name: pd:Name, email: pd:EmailAddress}
        region: eu-west-1
        input: {type: object, properties: {customer_id: {type: string}}}
        output: {type: object, properties: {name: {type: string}, email: {type: string}}}
        python: accord.sandbox._crm:lookup_customer

The bound function takes ``(payload: dict, ctx: CallContext)`` and returns a dict or a Pydantic
model. Loading imports the modules the bindings name, so a catalogue is trusted configuration,
like the settings that list it.

A capability can instead be bound to an operation of a system declared under ``connectors``;
its contracts then come from the system's OpenAPI document unless the entry gives them::

    connectors:
      - name: billing
        kind: openapi
        url: http://127.0.0.1:8702          # ACCORD_CONNECTOR_BILLING_URL overrides it
        openapi: billing.openapi.json       # default: <url>/openapi.json
        auth: {header: Authorization, scheme: Bearer, secret_env: BILLING_TOKEN}
        resilience: {timeout: 5s, retries: {attempts: 3}, breaker: {failures: 5}}
    capabilities:
      - name: billing.issue_refund
        connector: billing
        operation: issue_refund             # the operationId
        side_effect: write
        idempotent: true
        resilience: {retries: {attempts: 5}}
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from accord.connectors._capability import CallContext, Capability, CapabilityRegistry, SideEffect
from accord.connectors._http import (
    Credential,
    HttpConnector,
    OperationBinding,
    operation_capability,
)
from accord.connectors._mcp import McpClient, McpTool, ToolBinding, mcp_capabilities
from accord.connectors._openapi import OpenApiOperation, load_document, operations
from accord.connectors._resilience import Endpoints, Resilience
from accord.connectors._schema_model import JsonSchemaModel, schema_model, schema_problems
from accord.errors import AccordError, CapabilityFailed, ConfigurationError, Diagnostic

__all__ = ["CatalogueInvalid", "load_catalogue"]

NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"
CATEGORY = r"^[A-Za-z][A-Za-z0-9_.-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$"
BINDING = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
SIDE_EFFECTS: tuple[SideEffect, ...] = ("read", "write", "irreversible")

PathKey = tuple[str | int, ...]
Location = tuple[int, int]
Binding = Callable[[dict[str, Any], CallContext], object]
Category = Annotated[str, StringConstraints(pattern=CATEGORY, max_length=128)]
CategoryCheck = Callable[[list[str]], object]


class CatalogueInvalid(ConfigurationError):
    """A capability catalogue failed to load. ``diagnostics`` lists every problem found."""

    def __init__(self, file: str, diagnostics: list[Diagnostic]) -> None:
        count = len(diagnostics)
        summary = "\n".join(d.render() for d in diagnostics)
        super().__init__(
            f"capability catalogue {file} has {count} problem{'s' if count != 1 else ''}; "
            f"nothing from it was registered:\n{summary}"
        )
        self.file = file
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        return self.message


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    catalogue: Literal[1]
    connectors: list[Any] = Field(default_factory=list)
    capabilities: list[Any] = Field(min_length=1)


class _Auth(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    header: str = Field("Authorization", min_length=1)
    scheme: str | None = "Bearer"
    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class _ConnectorEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)
    kind: Literal["openapi", "mcp"]
    url: str | None = Field(None, pattern=r"^https?://")
    openapi: str | None = Field(None, min_length=1)
    command: list[str] | None = Field(None, min_length=1)
    auth: _Auth | None = None
    resilience: dict[str, Any] | None = None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=NAME, max_length=128)
    description: str = ""
    side_effect: SideEffect
    idempotent: bool | None = None
    compensation: str | None = Field(None, pattern=NAME, max_length=128)
    reads: list[Category] = Field(default_factory=list)
    writes: list[Category] = Field(default_factory=list)
    fields: dict[str, Category] = Field(default_factory=dict)
    region: str | None = Field(None, min_length=1)
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    python: str | None = Field(None, pattern=BINDING)
    connector: str | None = Field(None, min_length=1)
    operation: str | None = Field(None, min_length=1)
    tool: str | None = Field(None, min_length=1)
    reconcile: str | None = Field(None, pattern=NAME, max_length=128)
    resilience: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _BoundFunction:
    """A catalogue binding as a capability handler: it gets the plain request object and its
    answer (a dict or a Pydantic model) becomes JSON data for the output contract."""

    capability: str
    function: Binding

    def __call__(self, request: object, context: CallContext) -> object:
        payload = request.root if isinstance(request, JsonSchemaModel) else request
        result = self.function(typing.cast(dict[str, Any], payload), context)
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        try:
            return to_jsonable_python(result)
        except PydanticSerializationError as exc:
            raise CapabilityFailed(
                f"{self.capability!r} returned a value that is not JSON data: {exc}",
                error_type="ContractViolation",
                retryable=False,
                hint="return a dict of JSON values or a Pydantic model",
            ) from exc


def load_catalogue(
    path: str | Path,
    registry: CapabilityRegistry,
    *,
    check_categories: CategoryCheck | None = None,
    connector_urls: Mapping[str, str] | None = None,
    secrets: Mapping[str, SecretStr] | None = None,
    environ: Mapping[str, str] | None = None,
    endpoints: Endpoints | None = None,
) -> list[Capability]:
    """Load a capability catalogue and register its capabilities, all of them or none.

    Args:
        path: the catalogue YAML file.
        registry: where the capabilities go; its names count for uniqueness and compensation.
            It owns the connectors' clients and closes them when it closes.
        check_categories: raises an :class:`~accord.errors.AccordError` for a term that is not
            a known data category, such as :func:`accord.consent.validate_categories`. Without
            it, categories are only checked to be ``prefix:Name`` terms.
        connector_urls: base URLs by connector name, over the catalogue's and the environment's.
        secrets: credentials by connector name, over the ``secret_env`` variables.
        environ: the environment (default ``os.environ``): ``ACCORD_CONNECTOR_<NAME>_URL``
            overrides a connector's URL, and ``secret_env`` names a variable in it.
        endpoints: where breakers and concurrency limits live (default: new ones).

    Returns:
        The registered capabilities, in the order the file declares them.

    Raises:
        CatalogueInvalid: listing every problem with file, line, column and the field's path;
            nothing was registered.
    """
    file = str(path)
    data, locations = _parse(Path(path), file)
    found = _Located(file, locations)
    entries = _validate(data, found)
    systems = _Systems(
        found,
        Path(path).parent,
        urls=connector_urls or {},
        secrets=secrets or {},
        environ=os.environ if environ is None else environ,
        endpoints=endpoints or Endpoints(),
    )
    try:
        systems.open(data.get("connectors"))
        capabilities = _bind(file, data, entries, found, registry, systems, check_categories)
    except BaseException:
        systems.close()
        raise
    for capability in capabilities:
        registry.add(capability)
    for connector in systems.connectors.values():
        registry.own(connector)
    for client in systems.clients.values():
        registry.own(client)
    return capabilities


def _bind(
    file: str,
    data: dict[str, Any],
    entries: dict[int, _Entry],
    found: _Located,
    registry: CapabilityRegistry,
    systems: _Systems,
    check_categories: CategoryCheck | None,
) -> list[Capability]:
    items = data.get("capabilities")
    raw_names = {
        item.get("name")
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    }
    bindings: dict[int, Binding | OpenApiOperation | McpTool] = {}
    first_line: dict[str, int] = {}
    for index, entry in entries.items():
        here: PathKey = ("capabilities", index)
        if check_categories is not None:
            _check_categories(entry, here, found, check_categories)
        _check_governance(entry, here, found, registry, raw_names)
        if entry.name in first_line:
            found.add(
                (*here, "name"),
                f"capability {entry.name!r} is declared twice",
                hint=f"the first is on line {first_line[entry.name]}; rename or remove one",
            )
        first_line.setdefault(entry.name, found.line((*here, "name")) or 0)
        bound = _binding(entry, here, found, systems)
        if bound is not None:
            bindings[index] = bound
    if found.diagnostics:
        raise CatalogueInvalid(file, found.sorted())
    capabilities = []
    for index, entry in entries.items():
        source = f"{file}:{found.line(('capabilities', index))}"
        bound = bindings[index]
        if isinstance(bound, McpTool):
            capabilities.append(_tool_capability(entry, systems, bound, source))
        elif isinstance(bound, OpenApiOperation):
            assert entry.connector is not None
            capabilities.append(_operation_capability(entry, systems, bound, source))
        else:
            capabilities.append(_capability(entry, bound, source))
    return capabilities


def _binding(
    entry: _Entry, here: PathKey, found: _Located, systems: _Systems
) -> Binding | OpenApiOperation | McpTool | None:
    """What the entry is bound to, its contracts checked; ``None`` after a diagnostic."""
    if entry.python is not None and entry.connector is None and entry.operation is None:
        for side in ("input", "output"):
            if getattr(entry, side) is None:
                found.add(
                    here,
                    f"capability {entry.name!r} is bound to Python, so it needs an {side} schema",
                    hint=f"add '{side}:' with a JSON Schema, e.g. {{type: object}}",
                )
        if entry.resilience is not None:
            found.add(
                (*here, "resilience"),
                f"capability {entry.name!r}: resilience applies to connectors' calls, not to "
                "Python bindings",
                hint="remove it; a block's 'retry:' and 'timeout:' govern in-process calls",
            )
        if entry.input is None or entry.output is None:
            return None
        _check_contracts(entry, entry.input, entry.output, here, found)
        return _resolve(entry, entry.python, here, found)
    if entry.connector is not None and entry.tool is not None and entry.python is None:
        return _tool_binding(entry, here, found, systems)
    if entry.python is not None or entry.connector is None or entry.operation is None:
        found.add(
            here,
            f"capability {entry.name!r} needs one binding: 'python: module:function', "
            "'connector:' with 'operation:' (OpenAPI), or 'connector:' with 'tool:' (MCP)",
            hint="a capability runs either in-process or on a system declared under connectors",
        )
        return None
    ops = systems.operations.get(entry.connector)
    if ops is None:
        if entry.connector not in systems.failed:
            known = sorted(systems.operations)
            close = difflib.get_close_matches(entry.connector, known, n=1)
            found.add(
                (*here, "connector"),
                f"capability {entry.name!r}: connector {entry.connector!r} is not declared",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + "declare it under 'connectors:' in this catalogue",
            )
        return None
    op = ops.get(entry.operation)
    if op is None:
        close = difflib.get_close_matches(entry.operation, sorted(ops), n=3)
        found.add(
            (*here, "operation"),
            f"capability {entry.name!r}: {entry.connector} has no operation {entry.operation!r}",
            hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
            + "name an operationId of the service's OpenAPI document",
        )
        return None
    if entry.resilience is not None:
        _check_resilience(entry.resilience, (*here, "resilience"), found, systems, entry.connector)
    _check_contracts(
        entry, entry.input or op.input_schema, entry.output or op.output_schema, here, found
    )
    return op


def _tool_binding(
    entry: _Entry, here: PathKey, found: _Located, systems: _Systems
) -> McpTool | None:
    assert entry.connector is not None and entry.tool is not None
    tools = systems.tools.get(entry.connector)
    if tools is None:
        if entry.connector not in systems.failed:
            found.add(
                (*here, "connector"),
                f"capability {entry.name!r}: MCP connector {entry.connector!r} is not declared",
                hint="declare it under 'connectors:' with kind: mcp",
            )
        return None
    tool = tools.get(entry.tool)
    if tool is None:
        close = difflib.get_close_matches(entry.tool, sorted(tools), n=3)
        found.add(
            (*here, "tool"),
            f"capability {entry.name!r}: {entry.connector} offers no tool {entry.tool!r}",
            hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
            + f"it offers: {', '.join(sorted(tools)) or 'no tools'}",
        )
        return None
    if entry.resilience is not None:
        _check_resilience(entry.resilience, (*here, "resilience"), found, systems, entry.connector)
    return tool


def _tool_capability(entry: _Entry, systems: _Systems, tool: McpTool, source: str) -> Capability:
    assert entry.connector is not None
    binding = ToolBinding(
        side_effect=entry.side_effect,
        idempotent=entry.idempotent,
        compensation=entry.compensation,
        reads=tuple(entry.reads),
        writes=tuple(entry.writes),
        fields=dict(entry.fields),
        region=entry.region,
    )
    base = systems.resilience.get(entry.connector, Resilience())
    [capability] = mcp_capabilities(
        systems.clients[entry.connector],
        prefix=entry.connector,
        tools={tool.name: binding},
        include=[tool.name],
        resilience=base.merged(entry.resilience),
        endpoints=systems.endpoints,
    )
    return dataclasses.replace(
        capability,
        name=entry.name,
        reconcile=entry.reconcile,
        description=entry.description or capability.description,
        source=f"{source} ({capability.source})",
    )


def _operation_capability(
    entry: _Entry, systems: _Systems, op: OpenApiOperation, source: str
) -> Capability:
    assert entry.connector is not None
    binding = OperationBinding(
        side_effect=entry.side_effect,
        idempotent=entry.idempotent,
        compensation=entry.compensation,
        reconcile=entry.reconcile,
        reads=tuple(entry.reads),
        writes=tuple(entry.writes),
        fields=dict(entry.fields),
        region=entry.region,
        description=entry.description or None,
        input=entry.input,
        output=entry.output,
        resilience=entry.resilience,
    )
    capability = operation_capability(
        systems.connectors[entry.connector], op, binding, name=entry.name
    )
    return dataclasses.replace(capability, source=f"{source} ({capability.source})")


class _Systems:
    """The connectors a catalogue declares, opened with their OpenAPI documents read."""

    def __init__(
        self,
        found: _Located,
        directory: Path,
        *,
        urls: Mapping[str, str],
        secrets: Mapping[str, SecretStr],
        environ: Mapping[str, str],
        endpoints: Endpoints,
    ) -> None:
        self.found = found
        self.directory = directory
        self.urls = urls
        self.secrets = secrets
        self.environ = environ
        self.endpoints = endpoints
        self.connectors: dict[str, HttpConnector] = {}
        self.resilience: dict[str, Resilience] = {}
        self.operations: dict[str, dict[str, OpenApiOperation]] = {}
        self.clients: dict[str, McpClient] = {}
        self.tools: dict[str, dict[str, McpTool]] = {}
        self.failed: set[str] = set()

    def open(self, items: object) -> None:
        for index, item in enumerate(items if isinstance(items, list) else []):
            here: PathKey = ("connectors", index)
            if not isinstance(item, dict):
                self.found.add(here, "each connector must be a mapping", hint="give name and kind")
                continue
            try:
                entry = _ConnectorEntry.model_validate(item)
            except ValidationError as exc:
                name = item.get("name")
                if isinstance(name, str):
                    self.failed.add(name)
                prefix = f"connector {name!r}: " if isinstance(name, str) else ""
                _report(exc, here, self.found, known=_ConnectorEntry.model_fields, prefix=prefix)
                continue
            if entry.name in self.connectors or entry.name in self.failed:
                self.found.add((*here, "name"), f"connector {entry.name!r} is declared twice")
                continue
            self._open(entry, here)

    def _open(self, entry: _ConnectorEntry, here: PathKey) -> None:
        if entry.kind == "mcp":
            self._open_mcp(entry, here)
            return
        name = entry.name
        self.failed.add(name)
        variable = f"ACCORD_CONNECTOR_{name.upper().replace('-', '_')}_URL"
        url = self.urls.get(name) or self.environ.get(variable) or entry.url
        if not url:
            self.found.add(
                here,
                f"connector {name!r} has no URL",
                hint=f"add 'url:' or set {variable}",
            )
            return
        resilience = self._resilience(entry.resilience, (*here, "resilience"), Resilience())
        if resilience is None:
            return
        ok, credential = self._credential(entry, here)
        if not ok:
            return
        connector = HttpConnector(
            name,
            url,
            credential=credential,
            resilience=resilience,
            endpoints=self.endpoints,
        )
        self.connectors[name] = connector
        try:
            document = self._document(entry, connector)
            found = {
                op.operation_id: op for op in operations(document, source=f"connector {name!r}")
            }
        except ConfigurationError as exc:
            self.found.add(
                (*here, "openapi" if entry.openapi else "url"), exc.message, hint=exc.hint
            )
            return
        self.failed.discard(name)
        self.resilience[name] = resilience
        self.operations[name] = found

    def _open_mcp(self, entry: _ConnectorEntry, here: PathKey) -> None:
        name = entry.name
        self.failed.add(name)
        variable = f"ACCORD_CONNECTOR_{name.upper().replace('-', '_')}_URL"
        url = self.urls.get(name) or self.environ.get(variable) or entry.url
        if (url is None) == (entry.command is None):
            self.found.add(
                here,
                f"MCP connector {name!r} needs either 'url:' (streamable HTTP) or 'command:' "
                "(a server started over stdio)",
                hint="e.g. command: [python, -m, my_tools] or url: http://127.0.0.1:8765/mcp",
            )
            return
        resilience = self._resilience(entry.resilience, (*here, "resilience"), Resilience())
        if resilience is None:
            return
        ok, credential = self._credential(entry, here)
        if not ok:
            return
        headers = {credential.header: credential.value()} if credential else None
        client = McpClient(name, command=entry.command, url=url, headers=headers)
        self.clients[name] = client
        try:
            listed = {tool.name: tool for tool in client.list_tools()}
        except (CapabilityFailed, ConfigurationError) as exc:
            self.found.add(
                (*here, "url" if url else "command"),
                f"MCP connector {name!r}: cannot list its tools: {exc.message}",
                hint="start the server, or fix its command",
            )
            return
        self.failed.discard(name)
        self.resilience[name] = resilience
        self.tools[name] = listed

    def _document(self, entry: _ConnectorEntry, connector: HttpConnector) -> dict[str, Any]:
        where = entry.openapi
        if where is None:
            return connector.fetch_document()
        if where.startswith(("http://", "https://")):
            return connector.fetch_document(where)
        return load_document(self.directory / where)

    def _credential(self, entry: _ConnectorEntry, here: PathKey) -> tuple[bool, Credential | None]:
        """Whether the credential is in order, and the credential if there is one."""
        auth = entry.auth
        secret = self.secrets.get(entry.name)
        if auth is None and secret is None:
            return True, None
        auth = auth or _Auth()
        if secret is None and auth.secret_env is not None:
            value = self.environ.get(auth.secret_env)
            secret = SecretStr(value) if value else None
        if secret is None:
            self.found.add(
                (*here, "auth"),
                f"connector {entry.name!r}: its credential is not set",
                hint=f"export {auth.secret_env or 'the variable named by secret_env'}, or pass "
                "it in the connector_secrets setting",
            )
            return False, None
        return True, Credential(secret, header=auth.header, scheme=auth.scheme)

    def _resilience(
        self, data: dict[str, Any] | None, where: PathKey, base: Resilience
    ) -> Resilience | None:
        try:
            return base.merged(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                at = (*where, *(p for p in error["loc"] if isinstance(p, str | int)))
                self.found.add(
                    at,
                    f"resilience: {error['msg']}",
                    hint="timeout, retries {attempts, initial, multiplier, max_wait, jitter, "
                    "max_retry_after}, breaker {failures, reset_after}, concurrency",
                )
            return None

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        for client in self.clients.values():
            client.close()


def _check_resilience(
    data: dict[str, Any], where: PathKey, found: _Located, systems: _Systems, connector: str
) -> None:
    base = systems.resilience.get(connector, Resilience())
    systems._resilience(data, where, base)


def _capability(entry: _Entry, function: Binding, source: str) -> Capability:
    assert entry.input is not None and entry.output is not None
    return Capability(
        name=entry.name,
        input_model=schema_model(f"{entry.name} input", entry.input),
        output_model=schema_model(f"{entry.name} output", entry.output),
        handler=_BoundFunction(entry.name, function),
        side_effect=entry.side_effect,
        idempotent=True if entry.idempotent is None else entry.idempotent,
        compensation=entry.compensation,
        reconcile=entry.reconcile,
        reads=tuple(entry.reads),
        writes=tuple(entry.writes),
        fields=dict(entry.fields),
        region=entry.region,
        description=(entry.description or inspect.getdoc(function) or "").strip(),
        source=source,
    )


class _Located:
    """Collects diagnostics, placing each at the line and column of a path in the file."""

    def __init__(self, file: str, locations: Mapping[PathKey, Location]) -> None:
        self.file = file
        self.locations = locations
        self.diagnostics: list[Diagnostic] = []

    def locate(self, path: PathKey) -> Location | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.locations:
                return self.locations[path[:end]]
        return None

    def line(self, path: PathKey) -> int | None:
        location = self.locate(path)
        return location[0] if location else None

    def add(self, path: PathKey, message: str, *, hint: str | None = None) -> None:
        location = self.locate(path)
        self.diagnostics.append(
            Diagnostic(
                message=message,
                file=self.file,
                line=location[0] if location else None,
                column=location[1] if location else None,
                path=_render(path),
                hint=hint,
            )
        )

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.diagnostics, key=lambda d: (d.line or 0, d.column or 0))


def _validate(data: dict[str, Any], found: _Located) -> dict[int, _Entry]:
    try:
        _CatalogueFile.model_validate(data)
    except ValidationError as exc:
        _report(exc, (), found, known=_CatalogueFile.model_fields)
    entries: dict[int, _Entry] = {}
    items = data.get("capabilities")
    for index, item in enumerate(items if isinstance(items, list) else []):
        here: PathKey = ("capabilities", index)
        if not isinstance(item, dict):
            found.add(
                here,
                "each capability must be a mapping",
                hint="give it name, side_effect, input, output and python",
            )
            continue
        try:
            entries[index] = _Entry.model_validate(item)
        except ValidationError as exc:
            name = item.get("name")
            prefix = f"capability {name!r}: " if isinstance(name, str) else ""
            _report(exc, here, found, known=_Entry.model_fields, prefix=prefix)
    return entries


def _report(
    exc: ValidationError,
    base: PathKey,
    found: _Located,
    *,
    known: Mapping[str, object],
    prefix: str = "",
) -> None:
    for error in exc.errors(include_url=False):
        path = (*base, *(p for p in error["loc"] if p != "[key]"))
        message, hint = _explain(error, path, list(known))
        found.add(path, prefix + message, hint=hint)


def _explain(error: Mapping[str, Any], path: PathKey, known: list[str]) -> tuple[str, str | None]:
    kind = error["type"]
    name = next((p for p in reversed(path) if isinstance(p, str)), "catalogue")
    value = error.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(name), known, n=1)
        did_you_mean = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field {name!r}", f"{did_you_mean}fields: {', '.join(known)}"
    if kind == "missing":
        return f"missing required field {name!r}", "add it; see examples/capabilities/"
    if kind == "literal_error" and name == "side_effect":
        close = difflib.get_close_matches(str(value), SIDE_EFFECTS, n=1)
        did_you_mean = f"did you mean {close[0]!r}? " if close else ""
        return (
            f"side_effect must be read, write or irreversible, not {value!r}",
            f"{did_you_mean}read changes nothing; write can be undone or repeated; "
            "irreversible cannot be undone",
        )
    if kind == "literal_error" and name == "catalogue":
        return f"unknown catalogue format {value!r}", "write 'catalogue: 1' on the first line"
    if kind == "string_pattern_mismatch":
        if name == "python":
            return (
                f"binding {value!r} is not module:function",
                "e.g. python: accord.sandbox._crm:lookup_customer",
            )
        if name in ("name", "compensation"):
            return (
                f"{name} {value!r} is not a capability name",
                "use letters, digits, '_', '.' and '-', e.g. crm.lookup_customer",
            )
        return (
            f"{value!r} is not a data category",
            "write a DPV term as prefix:Name, e.g. pd:EmailAddress, or your own prefix",
        )
    return f"{name!r}: {error['msg']}", None


def _check_categories(entry: _Entry, here: PathKey, found: _Located, check: CategoryCheck) -> None:
    listed: list[tuple[PathKey, str]] = [
        *((("reads", i), term) for i, term in enumerate(entry.reads)),
        *((("writes", i), term) for i, term in enumerate(entry.writes)),
        *((("fields", key), term) for key, term in entry.fields.items()),
    ]
    for where, term in listed:
        try:
            check([term])
        except AccordError as exc:
            found.add((*here, *where), f"capability {entry.name!r}: {exc.message}", hint=exc.hint)


def _check_contracts(
    entry: _Entry,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    here: PathKey,
    found: _Located,
) -> None:
    for side, schema in (("input", input_schema), ("output", output_schema)):
        for problem in schema_problems(schema):
            found.add(
                (*here, side, *problem.path),
                f"capability {entry.name!r}: the {side} schema is not valid: {problem.message}",
                hint="write JSON Schema draft 2020-12 with 'type: object' at the top",
            )
    properties = output_schema.get("properties")
    declared = set(properties) if isinstance(properties, dict) else set()
    for key, category in entry.fields.items():
        if key not in declared:
            close = difflib.get_close_matches(key, sorted(declared), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            found.add(
                (*here, "fields", key),
                f"capability {entry.name!r}: field {key!r} is not a property of the output",
                hint=hint + "name top-level properties of the output schema",
            )
        elif category not in entry.reads:
            found.add(
                (*here, "fields", key),
                f"capability {entry.name!r}: field {key!r} carries {category}, "
                "which 'reads' does not list",
                hint=f"add {category} to reads: a category the capability returns is read",
            )


def _check_governance(
    entry: _Entry,
    here: PathKey,
    found: _Located,
    registry: CapabilityRegistry,
    in_file: set[object],
) -> None:
    if entry.side_effect != "read" and entry.idempotent is None:
        found.add(
            here,
            f"capability {entry.name!r} is a {entry.side_effect}; say whether it is idempotent",
            hint="idempotent: true if a repeated call with the same key acts once, else false",
        )
    existing = registry.find(entry.name)
    if existing is not None:
        found.add(
            (*here, "name"),
            f"capability {entry.name!r} is already registered (from {existing.source})",
            hint="give each capability a unique name",
        )
    _check_reconcile(entry, here, found, registry, in_file)
    target = entry.compensation
    if target is None:
        return
    if entry.side_effect == "read":
        found.add(
            (*here, "compensation"),
            f"capability {entry.name!r} is a read; it has nothing to compensate",
            hint="remove compensation, or declare the side effect",
        )
    elif target not in in_file and registry.find(target) is None:
        names = sorted(
            {*(n for n in in_file if isinstance(n, str)), *(c.name for c in registry)}
            - {entry.name}
        )
        close = difflib.get_close_matches(target, names, n=1)
        found.add(
            (*here, "compensation"),
            f"capability {entry.name!r}: compensation {target!r} is not a known capability",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "declare it in this catalogue or register it before loading",
        )


def _check_reconcile(
    entry: _Entry,
    here: PathKey,
    found: _Located,
    registry: CapabilityRegistry,
    in_file: set[object],
) -> None:
    target = entry.reconcile
    if target is None:
        return
    where = (*here, "reconcile")
    if entry.side_effect == "read" or entry.idempotent is not False:
        found.add(
            where,
            f"capability {entry.name!r}: reconcile is for capabilities that are not idempotent",
            hint="an idempotent call is simply repeated after a crash; remove reconcile",
        )
    elif target not in in_file and registry.find(target) is None:
        found.add(
            where,
            f"capability {entry.name!r}: reconcile {target!r} is not a known capability",
            hint="declare the status query in this catalogue or register it before loading",
        )


def _resolve(entry: _Entry, python: str, here: PathKey, found: _Located) -> Binding | None:
    where = (*here, "python")
    module_name, _, attribute = python.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        found.add(
            where,
            f"capability {entry.name!r}: cannot import module {module_name!r}: {exc}",
            hint="check the module path and that its package is installed",
        )
        return None
    except Exception as exc:  # operator code may fail to import in any way; report it here
        found.add(
            where,
            f"capability {entry.name!r}: importing {module_name!r} raised "
            f"{type(exc).__name__}: {exc}",
            hint="fix the module so that it imports cleanly",
        )
        return None
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            found.add(
                where,
                f"capability {entry.name!r}: module {module_name!r} has no attribute {attribute!r}",
                hint=f"define {attribute} in {module_name}, or fix the binding",
            )
            return None
        target = getattr(target, part)
    if not callable(target):
        found.add(
            where,
            f"capability {entry.name!r}: {python} is a {type(target).__name__}, not a function",
            hint="bind a function taking (payload: dict, ctx: CallContext)",
        )
        return None
    try:
        inspect.signature(target).bind(None, None)
    except TypeError:
        found.add(
            where,
            f"capability {entry.name!r}: {python} cannot be called with (payload, ctx)",
            hint="bind a function taking (payload: dict, ctx: CallContext)",
        )
        return None
    except ValueError:
        pass
    function: Binding = target
    return function


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 scalars, as JSON Schema expects them: only true/false are booleans and dates
    stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _parse(path: Path, file: str) -> tuple[dict[str, Any], dict[PathKey, Location]]:
    def invalid(message: str, hint: str, line: int | None = None) -> CatalogueInvalid:
        column = None if line is None else 1
        return CatalogueInvalid(file, [Diagnostic(message, file, line, column, hint=hint)])

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise invalid(f"cannot read the catalogue: {exc.strerror}", "check the path") from exc
    except UnicodeDecodeError as exc:
        raise invalid("the catalogue is not UTF-8 text", "save it as UTF-8") from exc
    loader = _Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise invalid("the catalogue is empty", "start with 'catalogue: 1'", line=1)
        locations: dict[PathKey, Location] = {}
        duplicates: list[Diagnostic] = []
        _index(node, (), locations, duplicates, file, frozenset())
        if duplicates:
            raise CatalogueInvalid(file, duplicates)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        diagnostic = Diagnostic(
            f"invalid YAML: {exc.problem or exc.context}",
            file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            hint="check indentation, colons and quotes around this point",
        )
        raise CatalogueInvalid(file, [diagnostic]) from exc
    except yaml.YAMLError as exc:
        raise invalid(f"invalid YAML: {exc}", "check the file's syntax") from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise invalid(
            "a catalogue must be a mapping at the top level",
            "start with 'catalogue: 1' and a 'capabilities:' list",
            line=locations[()][0],
        )
    return data, locations


def _index(
    node: yaml.Node,
    path: PathKey,
    locations: dict[PathKey, Location],
    duplicates: list[Diagnostic],
    file: str,
    enclosing: frozenset[int],
) -> None:
    mark = node.start_mark
    if id(node) in enclosing:
        raise CatalogueInvalid(
            file,
            [
                Diagnostic(
                    "an alias refers to a value that contains it",
                    file,
                    mark.line + 1,
                    mark.column + 1,
                    path=_render(path),
                    hint="an alias may repeat a value elsewhere, not inside itself",
                )
            ],
        )
    quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
    locations[path] = (mark.line + 1, mark.column + 1 + int(quoted))
    inside = enclosing | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(
                    Diagnostic(
                        f"duplicate key {key!r}",
                        file,
                        line,
                        key_node.start_mark.column + 1,
                        path=_render(path),
                        hint=f"the first {key!r} is on line {seen[key]}; keep one of them",
                    )
                )
            seen.setdefault(key, line)
            _index(value_node, (*path, key), locations, duplicates, file, inside)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), locations, duplicates, file, inside)


def _render(path: PathKey) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
