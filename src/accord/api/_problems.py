"""RFC 9457 problem details for every error the API answers, each with a stable ``code``.

Accord's own errors keep their :class:`~accord.errors.ErrorCode`; the API adds codes of its own
(``unauthenticated``, ``forbidden``, ``not_found``, ``validation_failed``, …). ``type`` is
``https://accord.dev/problems/<code>``; ``detail`` says what went wrong and ``hint`` how to fix
it. Internal failures answer 500 with the request id only, never a stack or a message that
could carry data.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from accord import errors
from accord.policy import PolicyBundleNotFound

PROBLEM = "application/problem+json"
log = logging.getLogger(__name__)

_STATUS_BY_TYPE: tuple[tuple[type[errors.AccordError], int], ...] = (
    (PolicyBundleNotFound, 404),
    (errors.JourneyNotFound, 404),
    (errors.RunNotFound, 404),
    (errors.ReviewNotFound, 404),
    (errors.DeadLetterNotFound, 404),
    (errors.AgentNotFound, 404),
    (errors.CapabilityNotFound, 404),
    (errors.RunFinished, 409),
    (errors.IdempotencyConflict, 409),
    (errors.ReviewConflict, 409),
    (errors.DeadLetterConflict, 409),
    (errors.RolloutConflict, 409),
    (errors.LegalHold, 409),
    (errors.ReviewForbidden, 403),
    (errors.SubjectErased, 410),
    (errors.InputError, 422),
    (errors.ConcurrencyError, 409),
    (errors.ExecutionError, 502),
    (errors.ConfigurationError, 500),
)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


_MEANINGS = {
    400: "a malformed body, cursor or Idempotency-Key",
    401: "no valid bearer token",
    403: "the access policies do not let the caller perform this operation",
    404: "nothing with this id or name exists in the caller's tenant",
    409: "the resource's state, or an Idempotency-Key request still in flight, forbids this",
    410: "the subject was erased",
    422: "the input breaks the operation's schema or a rule of the resource",
    500: "the server failed; the incident id is in its log",
    502: "a system Accord called failed",
}

REF = "#/components/schemas/"

_HTTP_CODES = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}
"""Codes of the errors Starlette and FastAPI answer themselves (FastAPI's only 400 is a body
it cannot decode)."""


class ProblemError(BaseModel):
    """One of a problem's ``errors``: an input field that failed validation, or a diagnostic
    of a journey, agent or policy text."""

    model_config = ConfigDict(extra="allow")

    message: str
    location: str | None = Field(None, description="the input field, e.g. body.journey")
    type: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None
    hint: str | None = None
    severity: str | None = None


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: the body of every error the API answers."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="https://accord.dev/problems/<code>")
    title: str
    status: int = Field(ge=400, le=599)
    code: str = Field(description="stable: the same failure always has the same code")
    detail: str = Field(description="what went wrong")
    hint: str | None = Field(None, description="how to fix it")
    errors: list[ProblemError] | None = None
    operation: str | None = Field(None, description="the denied operation (403)")
    reason: str | None = Field(None, description="why the access policies denied it (403)")
    policies: list[str] | None = Field(None, description="the policies that decided (403)")
    incident: str | None = Field(None, description="the incident in the server's log (500)")


def _problem_schemas() -> dict[str, Any]:
    schema = ProblemDetails.model_json_schema(ref_template=REF + "{model}")
    found: dict[str, Any] = schema.pop("$defs", {})
    found["Problem"] = schema
    return found


_PROBLEM_SCHEMAS = _problem_schemas()


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem details an operation answers with ``statuses``."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        response: dict[str, Any] = {
            "description": _MEANINGS[status],
            "content": {PROBLEM: {"schema": {"$ref": REF + "Problem"}}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": "the scheme to authenticate with",
                    "schema": {"type": "string"},
                }
            }
        found[status] = response
    return found


class Problem(Exception):
    """An answer the API gives on purpose: raise it from a route or dependency."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.hint = hint
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://accord.dev/problems/{self.code}",
            "title": _TITLES.get(self.status, "Error"),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.hint:
            body["hint"] = self.hint
        body.update(self.extra)
        return body

    def response(self) -> JSONResponse:
        headers = dict(self.headers or {})
        if self.status == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="accord"')
        return JSONResponse(
            self.body(), status_code=self.status, media_type=PROBLEM, headers=headers
        )


def status_of(error: errors.AccordError) -> int:
    for kind, status in _STATUS_BY_TYPE:
        if isinstance(error, kind):
            return status
    return 500


def from_error(error: errors.AccordError) -> Problem:
    """The problem an Accord error answers as."""
    status = status_of(error)
    extra: dict[str, Any] = {}
    diagnostics = getattr(error, "diagnostics", None)
    if diagnostics:
        extra["errors"] = [_diagnostic(d) for d in diagnostics]
    if status >= 500 and not isinstance(error, errors.ExecutionError):
        # configuration problems are for operators: the log has them, the caller does not
        log.error("api.configuration_error", exc_info=error)
        return Problem(500, error.code.value, "the server is misconfigured; see its log")
    return Problem(status, error.code.value, error.message, hint=error.hint, **extra)


def _diagnostic(found: Any) -> dict[str, Any]:
    """One of an error's diagnostics: a located :class:`~accord.errors.Diagnostic`, or the
    plain message a policy bundle's validation gives."""
    if isinstance(found, str):
        return {"message": found}
    return {
        "message": found.message,
        "file": found.file,
        "line": found.line,
        "column": found.column,
        "path": found.path,
        "hint": found.hint,
        "severity": found.severity,
    }


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details, and document them in its OpenAPI
    document as the ``Problem`` schema (which :func:`problem_responses` refers to)."""
    document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            found = document()
            schemas = found.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_PROBLEM_SCHEMAS)
        return app.openapi_schema or document()

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(Problem)
    async def on_problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(errors.AccordError)
    async def on_accord_error(_: Request, exc: errors.AccordError) -> JSONResponse:
        return from_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = [
            {
                "location": ".".join(str(p) for p in error.get("loc", ())),
                "message": error.get("msg", ""),
                "type": error.get("type", ""),
            }
            for error in exc.errors()
        ]
        first = found[0] if found else {"location": "request", "message": "invalid"}
        return Problem(
            422,
            "validation_failed",
            f"{first['location']}: {first['message']}",
            hint="the operation's schema is in /openapi.json",
            errors=found,
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else None
        return Problem(exc.status_code, code, detail, headers=headers).response()

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex
        log.error("api.unexpected_error", exc_info=exc, extra={"incident": incident})
        return Problem(
            500,
            "internal",
            f"the server failed on this request; incident {incident} is in its log",
            incident=incident,
        ).response()
