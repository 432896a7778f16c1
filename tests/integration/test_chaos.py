"""Chaos: a journey mix against the sandbox enterprise with 20% injected errors and latency.

Every service fails one request in five before acting, loses some answers after acting, and
stalls some requests. The runs must all end (completed) or wait in the dead-letter queue, each
effect must happen once at its system, and the queue must hold exactly the calls that exhausted
their retries, as the gateway's own decision records tell. Then the faults stop, the letters
are retried, and every run completes without a second effect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from accord.connectors import load_catalogue
from accord.consent import validate_categories
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.testing import FrozenClock
from tests.sandbox_process import sandbox_process

T = TenantId("default")
CATALOGUE = Path(__file__).parents[2] / "examples" / "capabilities" / "sandbox.yaml"
SERVICES = ("billing", "helpdesk", "kyc", "notifications", "crm", "orders", "directory")
RUNS_PER_JOURNEY = 25
ATTEMPTS = 2

REFUND = f"""
journey: chaos_refund
input: {{order_id: string, to: string}}
blocks:
  - id: score
    kind: task
    capability: kyc.fraud_score
    input: {{customer_id: '"cus_00001"'}}
    retry: {{max_attempts: {ATTEMPTS}, initial_interval: 1s, jitter: 0}}
  - id: refund
    kind: task
    capability: billing.issue_refund
    input: {{order_id: input.order_id, amount: 1.0, method: '"gift_card"'}}
    retry: {{max_attempts: {ATTEMPTS}, initial_interval: 1s, jitter: 0}}
  - id: tell
    kind: task
    capability: kyc.start_verification
    input: {{customer_id: '"cus_00001"', method: '"otp"'}}
    retry: {{max_attempts: {ATTEMPTS}, initial_interval: 1s, jitter: 0}}
  - {{id: done, kind: end, outcome: refunded}}
"""

TICKET = f"""
journey: chaos_ticket
input: {{customer_id: string}}
blocks:
  - id: open
    kind: task
    capability: helpdesk.open_ticket
    input: {{customer_id: input.customer_id, channel: '"email"', subject: '"Late order"',
             body: '"Where is it?"'}}
    retry: {{max_attempts: {ATTEMPTS}, initial_interval: 1s, jitter: 0}}
  - id: resolve
    kind: task
    capability: helpdesk.resolve_ticket
    input: {{ticket_id: steps.open.ticket_id, resolution: '"Shipped today."'}}
    retry: {{max_attempts: {ATTEMPTS}, initial_interval: 1s, jitter: 0}}
  - {{id: done, kind: end, outcome: resolved}}
"""

WRITES = {
    "refund": ("billing", "issue_refund"),
    "tell": ("kyc", "start_verification"),
    "open": ("helpdesk", "open_ticket"),
    "resolve": ("helpdesk", "resolve_ticket"),
}


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox"), SERVICES) as urls:
        yield urls


def chaos(urls: dict[str, str], *, on: bool) -> None:
    for index, name in enumerate(SERVICES):
        if not on:
            httpx.delete(f"{urls[name]}/_sandbox/faults").raise_for_status()
            continue
        rules = [
            {"operation": "*", "error_rate": 0.2, "seed": 10 + index},
            {"operation": "*", "drop_rate": 0.05, "when": "after", "seed": 20 + index},
            {"operation": "*", "latency_ms": 30, "latency_rate": 0.1, "seed": 30 + index},
        ]
        httpx.put(f"{urls[name]}/_sandbox/faults", json=rules).raise_for_status()


def effects(urls: dict[str, str]) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for service, operation in set(WRITES.values()):
        for entry in httpx.get(
            f"{urls[service]}/_sandbox/effects", params={"operation": operation}
        ).json():
            found[(operation, entry["idempotency_key"])] += 1
    return found


def settle(accord: Accord, clock: FrozenClock) -> None:
    """Drive until every retry timer has fired (each round passes every backoff delay)."""
    for _ in range(3 * ATTEMPTS):
        accord.runtime.drive()
        clock.advance(10)
    accord.runtime.drive()


def test_a_journey_mix_survives_injected_faults(
    make_accord: Any, clock: FrozenClock, systems: dict[str, str], tmp_path: Path
) -> None:
    accord: Accord = make_accord()
    # one attempt per call at the connector, so that the block's retries are what run out
    catalogue = yaml.safe_load(CATALOGUE.read_text())
    for connector in catalogue["connectors"]:
        connector["resilience"] = {"retries": {"attempts": 1}, "breaker": None}
    single = tmp_path / "sandbox.yaml"
    single.write_text(yaml.safe_dump(catalogue))
    load_catalogue(
        single,
        accord.capabilities,
        check_categories=validate_categories,
        connector_urls=systems,
        endpoints=accord.endpoints,
    )
    accord.runtime.catalog.deploy(T, load_journey_text(REFUND))
    accord.runtime.catalog.deploy(T, load_journey_text(TICKET))
    customer = httpx.get(f"{systems['crm']}/customers/cus_00001").json()
    user = httpx.get(f"{systems['orders']}/users/{customer['retail_user_id']}").json()
    order = user["orders"][0]
    runs = []
    for n in range(RUNS_PER_JOURNEY):
        runs.append(
            accord.runtime.start(
                T, "chaos_refund", input={"order_id": order, "to": f"c{n}@example.org"}
            ).run_id
        )
        runs.append(
            accord.runtime.start(T, "chaos_ticket", input={"customer_id": "cus_00002"}).run_id
        )
    chaos(systems, on=True)
    try:
        settle(accord, clock)
    finally:
        chaos(systems, on=False)

    views = {run_id: accord.runtime.get(T, run_id) for run_id in runs}
    letters = accord.dead_letters()
    parked = {letter.run_id for letter in letters}
    lost = [r for r, v in views.items() if v.status != "completed" and r not in parked]
    assert lost == [], f"runs neither completed nor in the dead-letter queue: {lost}"
    assert all(views[r].status == "waiting" for r in parked)
    assert [r for r, v in views.items() if v.status == "completed"], "nothing got through"

    # the queue holds exactly the calls whose every attempt failed, by the decision records
    exhausted = set()
    for run_id in runs:
        failed: Counter[str] = Counter()
        executed = set()
        for decision in accord.runtime.decisions(T, run_id):
            if decision.outcome == "failed":
                failed[decision.block] += 1
            elif decision.outcome == "executed":
                executed.add(decision.block)
        exhausted |= {
            (run_id, block)
            for block, count in failed.items()
            if count >= ATTEMPTS and block not in executed
        }
    assert letters, "with one connector attempt, some calls should have run out of retries"
    assert {(letter.run_id, letter.block) for letter in letters} == exhausted
    assert all(letter.reason == "retries_exhausted" for letter in letters)

    applied = effects(systems)
    assert [k for k, count in applied.items() if count > 1] == []
    for run_id, view in views.items():
        if view.status == "completed":
            blocks = ("refund", "tell") if view.journey == "chaos_refund" else ("open", "resolve")
            for block in blocks:
                assert applied[(WRITES[block][1], f"{run_id}/{block}/1")] == 1

    for letter in letters:
        accord.retry_dead_letter(letter.letter_id, by="ops", note="the systems are back")
    settle(accord, clock)
    assert {accord.runtime.get(T, r).status for r in runs} == {"completed"}
    applied = effects(systems)
    assert [k for k, count in applied.items() if count > 1] == []
