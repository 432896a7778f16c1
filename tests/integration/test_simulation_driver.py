"""The simulation's people on the sample enterprise over real HTTP: expectations see sub-runs, a
failing sandbox system stops one case and not the simulation, skip-level managers decide access
their manager asked for, and the demo's mix labels refunds by their amount."""

from __future__ import annotations

from pathlib import Path

import httpx

from accord.simulation import (
    TENANT,
    Case,
    Driver,
    demo_mix,
    find_manifest,
    load_manifest,
    load_scenario,
    open_enterprise,
    run_scenario,
)

MANIFEST = load_manifest(find_manifest())


def scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_expectations_include_what_sub_runs_did(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "scenario: a support case refunds through the refund journey\n"
        "cases:\n"
        "  - name: damaged\n"
        "    journey: support_resolution\n"
        "    subject: cus_00008\n"
        "    input: {customer_id: cus_00008, message: 'the item in order #W5497052 arrived "
        "broken', order_id: '#W5497052'}\n"
        "    expect: {executed: [crm.get_customer], never_executed: [billing.issue_refund]}\n",
    )
    report = run_scenario(load_scenario(path, manifest=MANIFEST), workdir=tmp_path / "work")
    [check] = report.checks
    assert not check.ok
    assert "executed " in check.got and "billing.issue_refund" in check.got
    assert "helpdesk.open_ticket" in check.got


def test_a_failing_sandbox_system_stops_one_case_not_the_simulation(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "scenario: the customer's phone is out of reach\n"
        "faults:\n"
        "  - service: kyc\n"
        "    rules: [{operation: get_sandbox_otp, error_rate: 1.0}]\n"
        "cases:\n"
        "  - name: no code\n"
        "    journey: account_recovery\n"
        "    subject: cus_00001\n"
        "    input: {customer_id: cus_00001, new_email: aarav.new@example.org}\n"
        "    expect: {status: completed}\n"
        "  - name: unaffected\n"
        "    journey: refund_request\n"
        "    subject: cus_00001\n"
        "    input: {customer_id: cus_00001, order_id: '#W4316152', amount: 50.0}\n"
        "    expect: {status: completed, outcome: refunded}\n",
    )
    report = run_scenario(path)
    checks = {check.case: check for check in report.checks}
    assert checks["unaffected"].ok, checks["unaffected"]
    failed = checks["no code"].got
    assert "at block 'code_entered'" in failed
    assert "/verifications/" in failed and "/otp failed (HTTPStatusError" in failed
    assert "stopped answering this run" in failed
    assert report.actions["answers failed"] == 1


def test_a_manager_who_asked_leaves_the_decision_to_their_own_manager(tmp_path: Path) -> None:
    with open_enterprise(tmp_path / "work") as enterprise:
        directory = enterprise.url("directory")
        manager = httpx.get(f"{directory}/employees/emp_0007").json()["manager_id"]
        skip = httpx.get(f"{directory}/employees/{manager}").json()["manager_id"]
        assert skip and skip != manager
        with Driver(enterprise, advance_time=True) as driver:
            run_id = driver.start(
                Case(
                    "asked by the manager",
                    "access_provisioning",
                    {
                        "employee_id": "emp_0007",
                        "entitlement_id": "ent_helpdesk_write",
                        "duration_hours": 8,
                        "justification": "cover",
                        "requested_by": manager,
                    },
                    "emp_0007",
                )
            )
            driver.settle(seconds=60)
        accord = enterprise.accord
        [item] = [
            i
            for i in accord.review_items(statuses=None, limit=100)
            if i.run_id == run_id and i.queue == "managers"
        ]
        assert item.makers == (manager,)
        assert item.decided_by == skip
        assert accord.runtime.get(TENANT, run_id or "").steps["manager_approval"]["by"] == skip


def test_the_mix_labels_refunds_by_amount_and_repeats_only_approved_ones(
    tmp_path: Path,
) -> None:
    with open_enterprise(tmp_path / "work") as enterprise:
        mixes = [demo_mix(enterprise, people=120, seed=seed) for seed in (1, 2, 3, 7)]
    refunds = [c for first, _ in mixes for c in first if c.journey == "refund_request"]
    assert len(refunds) > 40
    for case in refunds:
        amount = case.input["amount"]
        expected = (
            "refund:wrong_method"
            if case.input["method"] == "bank_transfer"
            else "refund:automatic"
            if amount <= 100
            else "refund:supervisor"
            if amount <= 1000
            else "refund:senior"
        )
        assert case.kind == expected, case
    for first, repeats in mixes:
        by_name = {case.name: case for case in first}
        assert repeats
        for repeat in repeats:
            original = by_name[repeat.name.removesuffix("-again")]
            assert original.staff == "approve", original
            assert original.input["method"] in ("original_payment", "gift_card"), original
            assert repeat.input == original.input and repeat.kind == "refund:duplicate"
