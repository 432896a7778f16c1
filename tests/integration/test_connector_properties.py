"""Properties of governed HTTP calls under injected faults, over generated call sequences.

Each example installs a seeded fault schedule on a real sandbox service (errors and lost answers
before and after the effect, dropped connections, rate limits) and makes a sequence of calls
through the resilient connector, some repeating an earlier call's idempotency key, some the
system refuses. Whatever the faults, for every key:

- the system applied at most one effect, and exactly one once any call with it succeeded;
- every success under one key returned the same answer;
- a refusal (a non-retryable error) was attempted once, never retried.

``ACCORD_PROPERTY_EXAMPLES`` sets the number of sequences (10,000 by default).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.connectors import (
    BreakerSettings,
    CallContext,
    CapabilityRegistry,
    CircuitOpen,
    Endpoints,
    HttpConnector,
    OperationBinding,
    Resilience,
    Retries,
    openapi_capabilities,
)
from accord.errors import CapabilityFailed
from tests.sandbox_process import sandbox_process

EXAMPLES = int(os.environ.get("ACCORD_PROPERTY_EXAMPLES", "10000"))
# every kind of fault at once, each drawn from its own seeded generator; "after" means the
# system acted before the answer was lost
FAULTS = [
    {"operation": "send_email", "error_rate": 0.15, "error_status": 503, "seed": 1},
    {"operation": "send_email", "error_rate": 0.1, "error_status": 500, "when": "after", "seed": 2},
    {"operation": "send_email", "drop_rate": 0.05, "seed": 3},
    {"operation": "send_email", "drop_rate": 0.1, "when": "after", "seed": 4},
    {"operation": "send_email", "rate_limit_rate": 0.1, "retry_after": 0, "seed": 5},
]
STEPS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["send", "send", "send", "refused"])),
    min_size=1,
    max_size=4,
)
serial = itertools.count()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox"), ["notifications"]) as urls:
        yield urls["notifications"]


@pytest.fixture(scope="module")
def client(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service) as found:
        yield found


@pytest.fixture(scope="module")
def registry(service: str) -> Iterator[CapabilityRegistry]:
    connector = HttpConnector(
        "notifications",
        service,
        resilience=Resilience(
            timeout=5.0,
            retries=Retries(attempts=6, initial=0.0, max_wait=0.0, jitter=0.0, max_retry_after=0),
            breaker=None,
        ),
        endpoints=Endpoints(),
    )
    document = httpx.get(f"{service}/openapi.json").json()
    found = CapabilityRegistry()
    for capability in openapi_capabilities(
        connector,
        document,
        bindings={"send_email": OperationBinding(), "get_message": OperationBinding()},
    ):
        found.add(capability)
    found.own(connector)
    yield found
    found.close()


def _call(registry: CapabilityRegistry, name: str, payload: dict[str, Any], key: str) -> Any:
    capability = registry.get(name)
    context = CallContext("default", "run_p", "b", 1, 1, key)
    return capability.handler(capability.input_model.model_validate(payload), context)


def test_one_effect_per_key_and_no_retry_of_a_refusal(
    client: httpx.Client, registry: CapabilityRegistry
) -> None:
    client.put("/_sandbox/faults", json=FAULTS).raise_for_status()
    succeeded: dict[str, Any] = {}
    tried: set[str] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,
        database=None,
    )
    @given(steps=STEPS)
    def sequence(steps: list[tuple[int, str]]) -> None:
        example = next(serial)
        keys = [f"p{example}-{i}" for i in range(3)]
        for index, kind in steps:
            key = keys[index]
            if kind == "refused":
                with pytest.raises(CapabilityFailed) as caught:
                    _call(
                        registry,
                        "notifications.get_message",
                        {"message_id": f"msg_9{example % 100_000:05d}"},
                        key,
                    )
                assert caught.value.status == 404 and not caught.value.retryable
                assert caught.value.attempts == 1, "a refusal must never be retried"
                continue
            tried.add(key)
            payload = {"to": f"{key}@example.org", "subject": "Your refund", "body": "Done."}
            try:
                answer = _call(registry, "notifications.send_email", payload, key)
            except CapabilityFailed as exc:
                assert exc.retryable, f"only retryable faults are injected, got {exc.error_type}"
                continue
            first = succeeded.setdefault(key, answer)
            assert answer == first, f"{key} answered differently on a repeat"

    try:
        sequence()
    finally:
        client.delete("/_sandbox/faults").raise_for_status()
    applied: Counter[str] = Counter(
        e["idempotency_key"]
        for e in client.get("/_sandbox/effects", params={"operation": "send_email"}).json()
    )
    assert tried and succeeded, "the faults let nothing through"
    assert [key for key in tried if applied[key] > 1] == []
    assert [key for key in succeeded if applied[key] != 1] == []
    assert set(applied) <= tried


def test_at_most_one_probe_reaches_a_recovering_endpoint(tmp_path: Path) -> None:
    """Many threads call an endpoint whose breaker has just gone half-open: one request goes
    through as the probe, every other call is refused without reaching the system."""
    import threading
    import time

    from accord.connectors import Endpoint, resilient

    clock = [0.0]
    endpoints = Endpoints(clock=lambda: clock[0])
    resilience = Resilience(
        timeout=None, retries=None, breaker=BreakerSettings(failures=1, reset_after=5)
    )
    endpoint: Endpoint = endpoints.get("sys POST /x", resilience)
    inside = [0]
    most = [0]
    lock = threading.Lock()
    release = threading.Event()

    def slow(request: Any, context: CallContext) -> Any:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(5)
        with lock:
            inside[0] -= 1
        return {"ok": True}

    def failing(request: Any, context: CallContext) -> Any:
        raise CapabilityFailed("down", error_type="HTTP503", retryable=True)

    context = CallContext("default", "r", "b", 1, 1, "k")
    with pytest.raises(CapabilityFailed):
        resilient(failing, endpoint=endpoint, resilience=resilience, idempotent=True)(None, context)
    clock[0] = 6.0
    call = resilient(slow, endpoint=endpoint, resilience=resilience, idempotent=True)
    refused = []

    def attempt() -> None:
        try:
            call(None, context)
        except CircuitOpen:
            refused.append(1)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(refused) < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert most[0] == 1 and len(refused) == 15
    assert endpoint.breaker is not None and endpoint.breaker.state == "closed"
