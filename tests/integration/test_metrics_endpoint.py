"""The HTTP application over real HTTP: health without credentials, /metrics only with the
scrape token, and gauges that read the database (queue depths, outbox backlog and lag)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from accord.api import create_app
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.reviews import Queue
from accord.service import Accord
from accord.testing import FrozenClock
from tests.served import serving

T = TenantId("default")
TOKEN = "scrape-3b9d1f"

APPROVAL = """
journey: approval
blocks:
  - id: check
    kind: approve
    role: supervisor
    queue: refunds
    title: check it
  - {id: done, kind: end}
"""


@pytest.fixture
def served(make_accord: Callable[..., Accord]) -> Iterator[tuple[Accord, str]]:
    accord = make_accord(policies=None)
    accord.settings.metrics_token = SecretStr(TOKEN)
    with serving(create_app(accord)) as url:
        yield accord, url


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_health_is_open_and_metrics_need_the_token(served: tuple[Accord, str]) -> None:
    _, url = served
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/ready").json()["status"] == "ready"
    missing = httpx.get(f"{url}/metrics")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text
    assert scrape(url)[("accord_outbox_pending", ())] == 0


def test_metrics_are_off_until_a_token_is_configured(make_accord: Callable[..., Accord]) -> None:
    accord = make_accord(policies=None)
    with serving(create_app(accord)) as url:
        off = httpx.get(f"{url}/metrics")
        assert off.status_code == 404
        assert "ACCORD_METRICS_TOKEN" in off.json()["detail"]


def test_gauges_read_the_database(served: tuple[Accord, str], clock: FrozenClock) -> None:
    accord, url = served
    accord.put_queue(Queue("refunds", roles=("supervisor",), sla=3600.0), actor="ops")
    accord.runtime.catalog.deploy(T, load_journey_text(APPROVAL))
    for _ in range(3):
        accord.runtime.start(T, "approval")
    accord.runtime.drive()
    clock.advance(30)
    figures = scrape(url)
    queue = (("queue", "refunds"), ("tenant", "default"))
    assert figures[("accord_review_queue_depth", queue)] == 3
    assert figures.get(("accord_review_sla_breached", queue), 0) == 0
    assert figures[("accord_runs", (("status", "waiting"), ("tenant", "default")))] == 3
    # three run.started and three review.requested events wait for a sink
    assert figures[("accord_outbox_pending", ())] == 6
    assert figures[("accord_runs_started_total", (("journey", "approval"),))] == 3

    clock.advance(2 * 3600)
    assert scrape(url)[("accord_review_sla_breached", queue)] == 3
