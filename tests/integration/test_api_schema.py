"""The API against its own OpenAPI document, over real HTTP: Schemathesis generates requests
from /openapi.json for each role's bearer token and without one, and every answer must be
documented (status, content type, body schema), no answer may be a server error, invalid
input must be refused with a 4xx, and without a token every /v1 route but the sender-authed
``POST /v1/events`` answers 401."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accord.api import ROLES, create_app
from accord.service import Accord
from tests.integration import test_api
from tests.integration.test_api import auth, token
from tests.served import serving

shop = test_api.shop

EXAMPLES_PER_MODE = 20
"""Cases per operation and generation mode; each is sent once by each of the 7 callers."""

MINIMUM_REQUESTS = 10_000

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

CONFIG = schemathesis.Config.from_dict(
    # the bearer token is each run's, never a generated one
    {"generation": {"with-security-parameters": False}}
)

UNDESCRIBED: set[str] = set()
"""Checked for server errors only: /metrics (created in accord.api._app) documents just a JSON
200, but answers Prometheus text, and problem details 401 without its token and 404 when off."""

OPEN = {"GET /health", "GET /ready", "GET /metrics", "POST /v1/events"}
"""Operations with no bearer token: open, or with credentials of their own."""


@dataclass
class Tally:
    """What one caller's run sent and got back."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    anonymous_not_401: list[str] = field(default_factory=list)

    def failed(self, operation: str, failure: Failure, example: str) -> None:
        self.failures.setdefault((operation, failure.title), f"{failure}\n{example}")


def exercise(
    schema: schemathesis.BaseSchema,
    session: requests.Session,
    base_url: str,
    callers: dict[str, str | None],
) -> dict[str, Tally]:
    """Send every generated case once as each caller (a bearer token, or None for none)."""
    tallies = {who: Tally() for who in callers}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, session, base_url, callers, tallies)
            except Unsatisfiable:
                # nothing to negate: the operation takes no input
                assert mode is GenerationMode.NEGATIVE, operation.label
    return tallies


def fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    session: requests.Session,
    base_url: str,
    callers: dict[str, str | None],
    tallies: dict[str, Tally],
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    checks = [not_a_server_error] if label in UNDESCRIBED else CHECKS

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: schemathesis.Case) -> None:
        for name in [h for h in case.headers or {} if h.lower() == "authorization"]:
            del case.headers[name]
        for who, bearer in callers.items():
            tally, headers = tallies[who], auth(bearer) if bearer else {}
            response = case.call(base_url=base_url, session=session, headers=headers)
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            if bearer is None and label not in OPEN and response.status_code != 401:
                tally.anonymous_not_401.append(f"{label} -> {response.status_code}")
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    tally.failed(label, failure, case.as_curl_command(headers=headers))
            except Failure as failure:
                tally.failed(label, failure, case.as_curl_command(headers=headers))

    send()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_answer_for_every_caller_keeps_the_openapi_contract(shop: Accord) -> None:
    with serving(create_app(shop)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=CONFIG)
        callers: dict[str, str | None] = {role: token(shop, role) for role in ROLES}
        callers["anonymous"] = None
        with requests.Session() as session:
            tallies = exercise(schema, session, url, callers)

    total = sum(t.requests for t in tallies.values())
    statuses = sum((t.statuses for t in tallies.values()), Counter())
    print(
        f"\nschemathesis: {total} requests; "
        + ", ".join(f"{who} {t.requests}" for who, t in tallies.items())
        + "; statuses "
        + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    )
    failures = {(who, *key): text for who, t in tallies.items() for key, text in t.failures.items()}
    for (who, operation, title), text in sorted(failures.items()):
        print(f"--- {who} {operation}: {title}\n{text}\n")
    assert not failures, sorted(failures)
    assert not tallies["anonymous"].anonymous_not_401
    assert not any(s >= 500 for s in statuses)
    assert total >= MINIMUM_REQUESTS
