"""HTTP connectors: capabilities bound to the operations of an OpenAPI document.

An :class:`HttpConnector` is one system: a base URL, an ``httpx.Client`` with its connection pool,
a credential and the resilience its calls get. :func:`openapi_capabilities` turns the document's
operations into capabilities whose handlers make one HTTP request each, wrapped by
:func:`~accord.connectors.resilient`.

How answers become results or errors:

======================  =========================================  ==========  =============
answer                  error type                                 retryable   outcome known
======================  =========================================  ==========  =============
2xx                     (the result)                               —           —
429                     ``RateLimited`` (honours ``Retry-After``)  yes         not applied
409 key in flight       ``IdempotencyInFlight``                    yes         not applied
other 4xx               the problem's ``code``, else ``HTTP4xx``   no          not applied
5xx                     the problem's ``code``, else ``HTTP5xx``   yes         unknown
could not connect       ``ConnectionFailed``                       yes         not applied
timeout, connection     ``Timeout``, ``ConnectionLost``            yes         unknown
lost mid-call
======================  =========================================  ==========  =============

"Unknown" means the request may have acted: only an idempotent capability (one whose system
accepts the ``Idempotency-Key`` the connector sends) is retried then; the runtime reconciles the
others.
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from accord.connectors._capability import CallContext, Capability, SideEffect
from accord.connectors._openapi import OpenApiOperation, load_document, operations
from accord.connectors._resilience import Endpoints, Resilience, resilient
from accord.connectors._schema_model import JsonSchemaModel, schema_model
from accord.errors import CapabilityFailed, ConfigurationError
from accord.telemetry import inject_headers

__all__ = ["Credential", "HttpConnector", "OperationBinding", "openapi_capabilities"]


@dataclass(frozen=True, slots=True)
class Credential:
    """A secret sent with every request, as ``header: [scheme ]secret``. Never shown."""

    secret: SecretStr
    header: str = "Authorization"
    scheme: str | None = "Bearer"

    @classmethod
    def from_env(
        cls,
        variable: str,
        *,
        header: str = "Authorization",
        scheme: str | None = "Bearer",
        environ: Mapping[str, str] | None = None,
    ) -> Credential:
        """The credential held in environment variable ``variable``.

        Raises:
            ConfigurationError: the variable is not set.
        """
        value = (os.environ if environ is None else environ).get(variable)
        if not value:
            raise ConfigurationError(
                f"the credential variable {variable} is not set",
                hint=f"export {variable}=... before starting Accord",
            )
        return cls(SecretStr(value), header=header, scheme=scheme)

    def value(self) -> str:
        secret = self.secret.get_secret_value()
        return f"{self.scheme} {secret}" if self.scheme else secret

    def __repr__(self) -> str:
        return f"Credential(header={self.header!r}, secret='**********')"


@dataclass
class HttpConnector:
    """One system reached over HTTP."""

    name: str
    base_url: str
    credential: Credential | None = None
    resilience: Resilience = field(default_factory=Resilience)
    endpoints: Endpoints = field(default_factory=Endpoints)
    transport: httpx.BaseTransport | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            size = self.resilience.concurrency or 64
            self._client = httpx.Client(
                base_url=self.base_url.rstrip("/"),
                transport=self.transport,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                timeout=self.resilience.timeout or 30.0,
                headers={"User-Agent": "accord-connector"},
            )
        return self._client

    def fetch_document(self, path: str = "/openapi.json") -> dict[str, Any]:
        """The service's OpenAPI document, fetched from ``path`` under the base URL.

        Raises:
            ConfigurationError: the service did not answer with a document.
        """
        url = f"{self.base_url.rstrip('/')}{path}"
        try:
            response = self.client.get(path, headers=self._auth())
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ConfigurationError(
                f"connector {self.name!r}: cannot fetch its OpenAPI document from {url}: {exc}",
                hint="start the service (accord sandbox serve), or give a local copy of the "
                "document with 'openapi:'",
            ) from exc
        return load_document(url, text=response.text)

    def _auth(self) -> dict[str, str]:
        if self.credential is None:
            return {}
        return {self.credential.header: self.credential.value()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass(frozen=True, slots=True)
class OperationBinding:
    """Governance attributes for one operation, over what its method implies."""

    name: str | None = None
    side_effect: SideEffect | None = None
    idempotent: bool | None = None
    compensation: str | None = None
    reconcile: str | None = None
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None
    description: str | None = None
    input: Mapping[str, Any] | None = None
    output: Mapping[str, Any] | None = None
    resilience: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _HttpCall:
    """One attempt at one operation."""

    connector: HttpConnector
    operation: OpenApiOperation

    def __call__(self, request: object, context: CallContext) -> object:
        payload: dict[str, Any] = request.root if isinstance(request, JsonSchemaModel) else {}
        op = self.operation
        path = op.path
        query: dict[str, Any] = {}
        headers = self.connector._auth()
        for parameter in op.parameters:
            if parameter.name not in payload:
                continue
            value = payload[parameter.name]
            if parameter.location == "path":
                path = path.replace("{" + parameter.name + "}", quote(str(value), safe=""))
            elif parameter.location == "query":
                query[parameter.name] = _query_value(value)
            else:
                headers[parameter.name] = str(value)
        if op.accepts_idempotency_key:
            headers["Idempotency-Key"] = context.idempotency_key
        inject_headers(headers)
        body: Any = None
        if op.body == "flat":
            body = {k: payload[k] for k in op.body_fields if k in payload}
        elif op.body == "nested":
            body = payload.get("body")
        timeout = None if context.deadline is None else max(0.001, context.deadline - time.time())
        where = f"{self.connector.name} {op.method.upper()} {op.path}"
        try:
            response = self.connector.client.request(
                op.method.upper(),
                path,
                params=query or None,
                headers=headers,
                json=body if op.body != "none" else None,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise CapabilityFailed(
                f"{where}: could not connect: {exc}",
                error_type="ConnectionFailed",
                retryable=True,
            ) from exc
        except httpx.TimeoutException as exc:
            raise CapabilityFailed(
                f"{where}: no answer within the timeout",
                error_type="Timeout",
                retryable=True,
                outcome_unknown=True,
            ) from exc
        except httpx.TransportError as exc:
            raise CapabilityFailed(
                f"{where}: the connection was lost before an answer: {exc}",
                error_type="ConnectionLost",
                retryable=True,
                outcome_unknown=True,
            ) from exc
        return _result(where, op, response)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _result(where: str, op: OpenApiOperation, response: httpx.Response) -> object:
    status = response.status_code
    if 200 <= status < 300:
        if op.wrap == "empty" or not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise CapabilityFailed(
                f"{where}: answered {status} with a body that is not JSON",
                error_type="ContractViolation",
                retryable=False,
            ) from exc
        if op.wrap == "items":
            return {"items": data}
        if op.wrap == "value":
            return {"value": data}
        return data
    problem = _problem(response)
    code = problem.get("code")
    detail = problem.get("detail") or problem.get("title") or response.reason_phrase
    message = f"{where}: {status} {detail}"
    retry_after = _retry_after(response.headers.get("Retry-After"))
    if status == 429:
        raise CapabilityFailed(
            message, error_type="RateLimited", retryable=True, retry_after=retry_after, status=429
        )
    if status == 409 and isinstance(code, str) and "in_flight" in code:
        raise CapabilityFailed(
            message,
            error_type="IdempotencyInFlight",
            retryable=True,
            retry_after=retry_after,
            status=409,
        )
    error_type = code if isinstance(code, str) and code else f"HTTP{status}"
    if status >= 500:
        raise CapabilityFailed(
            message,
            error_type=error_type,
            retryable=True,
            retry_after=retry_after,
            outcome_unknown=True,
            status=status,
        )
    raise CapabilityFailed(message, error_type=error_type, retryable=False, status=status)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def openapi_capabilities(
    connector: HttpConnector,
    document: Mapping[str, Any],
    *,
    prefix: str | None = None,
    bindings: Mapping[str, OperationBinding] | None = None,
    include: Iterable[str] | None = None,
    source: str | None = None,
) -> list[Capability]:
    """Capabilities for the operations of ``document``, reached through ``connector``.

    Args:
        prefix: names are ``prefix.operationId`` (default: the connector's name), unless a
            binding names the capability.
        bindings: governance attributes by operationId. Without one, a GET is a read and any
            other method a write, idempotent when the operation takes an ``Idempotency-Key``.
        include: the operationIds to register (default: those with a binding when bindings are
            given, else all).

    Raises:
        ConfigurationError: an included operation is not in the document.
    """
    where = source or f"openapi:{connector.name}"
    found = {op.operation_id: op for op in operations(document, source=where)}
    bound = dict(bindings or {})
    wanted = list(include) if include is not None else (list(bound) if bound else list(found))
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ConfigurationError(
            f"{where}: no operation {', '.join(repr(m) for m in missing)} in the document",
            hint=f"operations: {', '.join(sorted(found))}",
        )
    capabilities = []
    for op_id in wanted:
        op = found[op_id]
        binding = bound.get(op_id, OperationBinding())
        capabilities.append(
            operation_capability(
                connector, op, binding, name=binding.name or f"{prefix or connector.name}.{op_id}"
            )
        )
    return capabilities


def operation_capability(
    connector: HttpConnector, op: OpenApiOperation, binding: OperationBinding, *, name: str
) -> Capability:
    """The capability that calls ``op``, governed as ``binding`` says."""
    side_effect: SideEffect = binding.side_effect or ("read" if op.reads_only else "write")
    idempotent = binding.idempotent
    if idempotent is None:
        idempotent = (
            side_effect == "read"
            or op.accepts_idempotency_key
            or op.method
            in (
                "put",
                "delete",
            )
        )
    resilience = connector.resilience.merged(dict(binding.resilience or {}))
    endpoint = connector.endpoints.get(
        f"{connector.name} {op.method.upper()} {op.path}", resilience
    )
    handler = resilient(
        _HttpCall(connector, op), endpoint=endpoint, resilience=resilience, idempotent=idempotent
    )
    return Capability(
        name=name,
        input_model=schema_model(f"{name} input", binding.input or op.input_schema),
        output_model=schema_model(f"{name} output", binding.output or op.output_schema),
        handler=handler,
        side_effect=side_effect,
        idempotent=idempotent,
        compensation=binding.compensation,
        reconcile=binding.reconcile,
        reads=binding.reads,
        writes=binding.writes,
        fields=dict(binding.fields),
        region=binding.region,
        description=binding.description or op.summary,
        source=f"openapi:{connector.name}#{op.operation_id}",
    )
