"""RFC 9457 problem details: the one error format every sandbox service answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:accord:sandbox:problem:"

# Every operation may meet these: the sandbox injects them on request (see ``_faults``).
_ALWAYS = (429, 503)


class FieldError(BaseModel):
    """One invalid part of a request."""

    model_config = ConfigDict(extra="forbid")

    location: str
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details with a stable machine-readable ``code``."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raised by a handler to answer with a problem; any open transaction rolls back."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.errors = list(errors) if errors is not None else None

    def to_problem(self) -> Problem:
        return Problem(
            type=_TYPE_PREFIX + self.code,
            title=HTTPStatus(self.status).phrase,
            status=self.status,
            detail=self.detail,
            code=self.code,
            errors=self.errors,
        )


def problem_body(error: ProblemError) -> bytes:
    """The JSON bytes of ``error``'s problem document."""
    document = error.to_problem().model_dump(mode="json", exclude_none=True)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def problem_response(error: ProblemError) -> Response:
    """``error`` as an ``application/problem+json`` response."""
    return Response(
        problem_body(error),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers,
    )


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can fail with ``statuses`` (plus injected faults)."""
    documented = sorted({*statuses, *_ALWAYS})
    return {
        status: {"model": Problem, "description": _DESCRIPTIONS.get(status, "error")}
        for status in documented
    }


_DESCRIPTIONS = {
    404: "the resource does not exist",
    409: "the resource is in a state that does not allow this",
    422: "the request is invalid, or its idempotency key was used for a different request",
    429: "too many requests; retry after the number of seconds in Retry-After",
    503: "the service is unavailable; retry later",
}


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every deliberate error, invalid request and unknown route with problem details."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc)


async def _on_invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(
            location=".".join(str(part) for part in error["loc"]),
            message=str(error["msg"]).removeprefix("Value error, "),
        )
        for error in exc.errors()
    ]
    summary = "; ".join(f"{e.location}: {e.message}" for e in errors[:3])
    if len(errors) > 3:
        summary += f"; and {len(errors) - 3} more"
    return problem_response(ProblemError(422, "invalid_request", summary, errors=errors))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = f"there is nothing at {request.url.path}; see /openapi.json for the operations"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem_response(ProblemError(exc.status_code, code, detail, headers=exc.headers))
