"""Replay on the sample enterprise: recorded refunds over real HTTP, a candidate bundle with a
lower approval threshold, and exactly the runs between the thresholds change."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.errors import ConfigurationError
from accord.replay import replay_candidate
from accord.service import Settings, build
from accord.simulation import Case, Driver, open_enterprise

ENTERPRISE = Path(__file__).resolve().parents[2] / "examples" / "enterprise"

REFUNDS = [
    ("small", "cus_00001", "#W4316152", 40.0),
    ("between", "cus_00011", "#W2842410", 75.0),
    ("supervisor", "cus_00005", "#W3038897", 420.0),
]


def test_a_lower_threshold_changes_only_the_refunds_between_the_thresholds(
    tmp_path: Path,
) -> None:
    candidate = tmp_path / "lower.cedar"
    candidate.write_text(
        (ENTERPRISE / "policies" / "enterprise.cedar")
        .read_text(encoding="utf-8")
        .replace('decimal("100.00")', 'decimal("50.00")')
    )
    with open_enterprise(tmp_path / "enterprise") as enterprise:
        driver = Driver(enterprise, advance_time=True)
        for name, customer, order, amount in REFUNDS:
            driver.start(
                Case(
                    name,
                    "refund_request",
                    {"customer_id": customer, "order_id": order, "amount": amount},
                    customer,
                )
            )
        driver.settle(seconds=60)
        outcomes = {f.case.name: f.outcome for f in driver.results()}
        assert outcomes == {"small": "refunded", "between": "refunded", "supervisor": "refunded"}
        runs = {f.case.name: f.run_id for f in driver.results()}
        driver.close()
        report = replay_candidate(
            enterprise.accord,
            journey="refund_request",
            candidate=f"policy-file:{candidate}",
            since=0.0,
        )
    by_run = {r.run_id: r for r in report.runs}
    assert report.counts["replayed"] == 3
    assert by_run[runs["small"]].status == "unchanged"
    assert by_run[runs["supervisor"]].status == "unchanged"
    changed = by_run[runs["between"]]
    assert changed.status == "changed"
    gateway = next(c for c in changed.changes if c.kind == "gateway" and c.block == "refund")
    assert gateway.before["determining"] == ["refund-up-to-100"]
    assert gateway.after is not None
    assert gateway.after["determining"] == ["refund-up-to-1000-with-supervisor"]
    assert gateway.recorded and "refund-up-to-100" in gateway.recorded
    assert gateway.candidate and "refund-up-to-1000-with-supervisor" in gateway.candidate


def test_a_replay_without_the_runs_capabilities_says_so(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'enterprise' / 'accord.db'}"
    with open_enterprise(tmp_path / "enterprise") as enterprise:
        driver = Driver(enterprise, advance_time=True)
        driver.start(
            Case(
                "small",
                "refund_request",
                {"customer_id": "cus_00001", "order_id": "#W4316152", "amount": 40.0},
                "cus_00001",
            )
        )
        driver.settle(seconds=60)
        driver.close()
    bare = build(Settings(database_url=database))
    try:
        with pytest.raises(ConfigurationError) as raised:
            replay_candidate(bare, journey="refund_request", candidate="policy:1", since=0.0)
        assert "crm.get_customer" in raised.value.message
        assert "ACCORD_CAPABILITY_CATALOGUES" in (raised.value.hint or "")
    finally:
        bare.close()
