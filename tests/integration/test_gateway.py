"""The governed gateway in runs: each refusal reason takes its fallback, holds, approvals, records.

Every test runs on SQLite and on PostgreSQL. The last tests build Accord without governance and
watch the forbidden calls go through, so these tests can fail.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from accord.connectors import CallContext, CapabilityRegistry
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord, Settings, build
from accord.storage._schema import outbox
from accord.testing import FrozenClock
from tests.capabilities import Calls, CustomerRef, Echo
from tests.governance import PERMIT_ALL, deploy_policies

T = TenantId("default")
SUBJECT = "cust-1"
SERVICE = "dpv:ServiceProvision"
MARKETING = "dpv:Marketing"

PROFILE = """
journey: profile
purpose: dpv:ServiceProvision
blocks:
  - id: fetch
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
    retry: {max_attempts: 1}
    on_refusal:
      subject_missing: escalate
      consent_missing: ask
      consent_expired: ask
      consent_withdrawn: withdrawn
      policy_denied: escalate
      policy_error: escalate
  - {id: done, kind: end, outcome: fetched, output: {profile: steps.fetch}}
  - {id: ask, kind: end, outcome: asked_for_consent, output: {why: errors.fetch.reason}}
  - {id: withdrawn, kind: end, outcome: consent_gone, output: {why: errors.fetch.reason}}
  - {id: escalate, kind: end, outcome: escalated, output: {why: errors.fetch.reason}}
"""


def deploy(accord: Accord, text: str) -> None:
    accord.runtime.catalog.deploy(T, load_journey_text(text))


def run(accord: Accord, journey: str, *, subject: str | None = SUBJECT, **input: object) -> str:
    run_id = accord.runtime.start(T, journey, input=dict(input), subject=subject).run_id
    accord.runtime.drive()
    return run_id


def grant(accord: Accord, clock: FrozenClock, *categories: str, **options: object) -> str:
    purpose = str(options.pop("purpose", SERVICE))
    created = accord.consent.grant(
        T,
        SUBJECT,
        purpose=purpose,
        categories=list(categories),
        actor="test",
        **options,  # type: ignore[arg-type]
    )
    return created.grant_id


def outcome(accord: Accord, run_id: str) -> tuple[str, str | None, object]:
    view = accord.runtime.get(T, run_id)
    return view.status, view.outcome, view.output


def decisions(accord: Accord, run_id: str) -> list[tuple[str, str, str | None]]:
    return [(d.capability, d.outcome, d.reason) for d in accord.runtime.decisions(T, run_id)]


@pytest.fixture
def governed(accord: Accord) -> Accord:
    deploy(accord, PROFILE)
    return accord


def test_consented_call_runs_and_is_recorded(
    governed: Accord, clock: FrozenClock, calls: Calls
) -> None:
    grant_id = grant(governed, clock, "pd:Name", "pd:EmailAddress")
    run_id = run(governed, "profile")
    assert outcome(governed, run_id)[:2] == ("completed", "fetched")
    assert calls.by_capability["test.profile"] == 1
    [record] = governed.runtime.decisions(T, run_id)
    assert (record.outcome, record.reason, record.purpose) == ("executed", None, SERVICE)
    assert record.record["lawful_basis"]["grants"] == [grant_id]
    assert record.record["policy"]["allowed"] is True
    assert record.record["policy"]["bundle_version"] == 1
    assert record.record["policy"]["determining"]


def test_consent_missing_takes_the_fallback_without_calling(governed: Accord, calls: Calls) -> None:
    run_id = run(governed, "profile")
    assert outcome(governed, run_id) == (
        "completed",
        "asked_for_consent",
        {"why": "consent_missing"},
    )
    assert calls.by_capability["test.profile"] == 0
    assert decisions(governed, run_id) == [("test.profile", "refused", "consent_missing")]
    kinds = [e.kind for e in governed.runtime.history(T, run_id)]
    assert "gateway.refused" in kinds


def test_consent_for_another_purpose_does_not_count(
    governed: Accord, clock: FrozenClock, calls: Calls
) -> None:
    grant(governed, clock, "pd:Name", "pd:EmailAddress", purpose=MARKETING)
    run_id = run(governed, "profile")
    assert outcome(governed, run_id)[1] == "asked_for_consent"
    assert calls.by_capability["test.profile"] == 0


def test_consent_expired_takes_the_fallback(
    governed: Accord, clock: FrozenClock, calls: Calls
) -> None:
    grant(governed, clock, "pd:Name", "pd:EmailAddress", expires_at=clock.now() + 60)
    clock.advance(61)
    run_id = run(governed, "profile")
    assert outcome(governed, run_id)[2] == {"why": "consent_expired"}
    assert calls.by_capability["test.profile"] == 0


def test_withdrawal_takes_effect_for_a_run_in_flight(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    deploy(
        accord,
        """
journey: twice
purpose: dpv:ServiceProvision
blocks:
  - {id: first, kind: task, capability: test.profile, input: {customer_id: run.subject}}
  - {id: pause, kind: wait, event: {name: go}}
  - id: second
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
    on_refusal: {consent_withdrawn: stopped}
  - {id: done, kind: end}
  - {id: stopped, kind: end, outcome: stopped, output: {why: errors.second.reason}}
""",
    )
    grant_id = grant(accord, clock, "pd:Name", "pd:EmailAddress")
    run_id = run(accord, "twice")
    assert accord.runtime.get(T, run_id).status == "waiting"
    assert calls.by_capability["test.profile"] == 1
    clock.advance(5)
    accord.consent.withdraw(T, grant_id, actor="customer", reason="changed my mind")
    accord.runtime.signal(T, "go", run_id=run_id, payload={})
    accord.runtime.drive()
    assert outcome(accord, run_id) == ("completed", "stopped", {"why": "consent_withdrawn"})
    assert calls.by_capability["test.profile"] == 1
    assert [d[1:] for d in decisions(accord, run_id)] == [
        ("executed", None),
        ("refused", "consent_withdrawn"),
    ]


def test_projection_withholds_fields_the_consent_does_not_cover(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    deploy(
        accord,
        """
journey: narrow
purpose: dpv:ServiceProvision
blocks:
  - id: fetch
    kind: task
    capability: test.profile
    reads: [pd:Name]
    input: {customer_id: run.subject}
  - {id: done, kind: end, output: {profile: steps.fetch}}
""",
    )
    grant(accord, clock, "pd:Name")
    run_id = run(accord, "narrow")
    status, _, output = outcome(accord, run_id)
    assert status == "completed"
    assert output == {"profile": {"customer_id": SUBJECT, "name": "Ada Lovelace", "tier": "gold"}}
    [record] = accord.runtime.decisions(T, run_id)
    assert record.record["withheld"] == ["email"]


def test_contract_basis_needs_no_consent(accord: Accord, calls: Calls) -> None:
    deploy(accord, PROFILE)
    accord.consent.set_basis(
        T, SERVICE, "contract", categories=["pd:Name", "pd:EmailAddress"], actor="dpo"
    )
    run_id = run(accord, "profile")
    assert outcome(accord, run_id)[1] == "fetched"
    [record] = accord.runtime.decisions(T, run_id)
    assert record.record["lawful_basis"]["basis"] == "contract"


def test_run_without_subject_is_refused_for_personal_data(governed: Accord, calls: Calls) -> None:
    run_id = run(governed, "profile", subject=None)
    assert outcome(governed, run_id) == ("completed", "escalated", {"why": "subject_missing"})
    assert calls.by_capability["test.profile"] == 0
    assert decisions(governed, run_id) == [("test.profile", "refused", "subject_missing")]


def test_purpose_missing_takes_the_fallback(
    make_accord: Callable[..., Accord], database_url: str, clock: FrozenClock, calls: Calls
) -> None:
    """A journey linted against an older contract (no personal data) meets a newer one."""
    old_contracts = CapabilityRegistry()

    @old_contracts.capability("test.profile")
    def profile(request: CustomerRef, ctx: CallContext) -> Echo:
        raise AssertionError("only the contract is used at deploy")

    with build(
        Settings(database_url=database_url), capabilities=old_contracts, clock=clock
    ) as deployer:
        deploy(
            deployer,
            """
journey: no_purpose
blocks:
  - id: fetch
    kind: task
    capability: test.profile
    input: {customer_id: run.subject}
    on_refusal: {purpose_missing: unclear}
  - {id: done, kind: end}
  - {id: unclear, kind: end, outcome: purpose_unclear, output: {why: errors.fetch.reason}}
""",
        )
    accord = make_accord()
    grant(accord, clock, "pd:Name", "pd:EmailAddress")
    run_id = run(accord, "no_purpose")
    assert outcome(accord, run_id) == ("completed", "purpose_unclear", {"why": "purpose_missing"})
    assert calls.by_capability["test.profile"] == 0


FORBID_PROFILE = """
@id("reads")
permit(principal, action, resource);
@id("no-profiles-for-vips")
forbid(principal, action == Accord::Action::"test.profile", resource)
when { resource has tier && resource.tier == "vip" };
"""


def test_policy_deny_takes_the_fallback(accord: Accord, clock: FrozenClock, calls: Calls) -> None:
    deploy(
        accord,
        PROFILE.replace(
            "input: {customer_id: run.subject}",
            "input: {customer_id: run.subject}\n    resource: {tier: input.tier}",
        ).replace("journey: profile", "journey: profile\ninput: {tier: string}"),
    )
    deploy_policies(accord, FORBID_PROFILE)
    grant(accord, clock, "pd:Name", "pd:EmailAddress")
    vip = run(accord, "profile", tier="vip")
    assert outcome(accord, vip)[2] == {"why": "policy_denied"}
    [record] = accord.runtime.decisions(T, vip)
    assert record.record["policy"]["determining"] == ["no-profiles-for-vips"]
    assert calls.by_capability["test.profile"] == 0
    regular = run(accord, "profile", tier="regular")
    assert outcome(accord, regular)[1] == "fetched"
    assert calls.by_capability["test.profile"] == 1


def test_policy_evaluation_error_fails_closed(
    accord: Accord, clock: FrozenClock, calls: Calls
) -> None:
    deploy(accord, PROFILE)
    deploy_policies(
        accord,
        """
permit(principal, action, resource) when { context has time && context.time * 10000000000 > 0 };
""",
    )
    grant(accord, clock, "pd:Name", "pd:EmailAddress")
    run_id = run(accord, "profile")
    assert outcome(accord, run_id)[2] == {"why": "policy_error"}
    assert calls.by_capability["test.profile"] == 0


def test_no_policy_bundle_permits_nothing(make_accord: Callable[..., Accord], calls: Calls) -> None:
    accord = make_accord(policies=None)
    deploy(accord, "journey: bare\nblocks:\n  - {id: a, kind: task, capability: test.echo}\n")
    run_id = run(accord, "bare")
    view = accord.runtime.get(T, run_id)
    assert view.status == "failed"
    assert view.error is not None and view.error["reason"] == "policy_error"
    assert "no policy bundle" in view.error["message"]
    assert calls.by_capability["test.echo"] == 0


APPROVAL = """
@id("profiles")
permit(principal, action == Accord::Action::"test.profile", resource);
@id("small-charges")
permit(principal, action == Accord::Action::"test.charge", resource)
when { context has amount && context.amount.lessThanOrEqual(decimal("100.0")) };
@id("large-charges")
@approval("supervisor")
@notify("finance")
permit(principal, action == Accord::Action::"test.charge", resource)
when { context has amount && context.amount.greaterThan(decimal("100.0")) };
"""

CHARGE = """
journey: charge
purpose: dpv:ServiceProvision
input: {amount: number}
blocks:
  - id: pay
    kind: task
    capability: test.charge
    input: {amount: input.amount}
    context: {amount: input.amount}
    on_refusal: {approval_rejected: declined}
  - {id: done, kind: end, outcome: charged, output: {receipt: steps.pay}}
  - {id: declined, kind: end, outcome: declined, output: {why: errors.pay.message}}
"""


@pytest.fixture
def charging(accord: Accord, clock: FrozenClock) -> Accord:
    deploy(accord, CHARGE)
    deploy_policies(accord, APPROVAL)
    grant(accord, clock, "pd:PaymentCard")
    return accord


def test_approval_obligation_pauses_until_approved(charging: Accord, calls: Calls) -> None:
    run_id = run(charging, "charge", amount=250.0)
    view = charging.runtime.get(T, run_id)
    assert view.status == "waiting"
    assert view.positions[0].waiting_for == "human:pay"
    assert calls.by_capability["test.charge"] == 0
    requested = [e for e in charging.runtime.history(T, run_id) if e.kind == "approval.requested"]
    assert requested[0].detail["roles"] == ["supervisor"]
    assert requested[0].detail["policies"] == ["large-charges"]

    charging.runtime.decide(T, run_id, "pay", "approve", by="sam", reason="known customer")
    charging.runtime.drive()
    assert outcome(charging, run_id)[1] == "charged"
    assert calls.by_capability["test.charge"] == 1
    records = charging.runtime.decisions(T, run_id)
    assert [r.outcome for r in records] == ["approval_required", "executed"]
    assert records[1].record["approvals"][0]["by"] == "sam"
    with charging.db.read() as connection:
        notified = connection.execute(
            sa.select(outbox.c.payload).where(outbox.c.type == "gateway.notify")
        ).all()
    assert len(notified) == 1 and '"finance"' in notified[0][0]


def test_approval_rejected_takes_the_fallback(charging: Accord, calls: Calls) -> None:
    run_id = run(charging, "charge", amount=250.0)
    charging.runtime.decide(T, run_id, "pay", "reject", by="sam", reason="looks like fraud")
    charging.runtime.drive()
    status, result, output = outcome(charging, run_id)
    assert (status, result) == ("completed", "declined")
    assert isinstance(output, dict) and "looks like fraud" in output["why"]
    assert calls.by_capability["test.charge"] == 0


def test_small_amount_needs_no_approval(charging: Accord, calls: Calls) -> None:
    run_id = run(charging, "charge", amount=20.0)
    assert outcome(charging, run_id)[1] == "charged"
    assert calls.by_capability["test.charge"] == 1


def test_kill_switch_holds_the_run_and_switching_back_resumes_it(
    charging: Accord, clock: FrozenClock, calls: Calls
) -> None:
    charging.set_flag("capability:test.charge", False, actor="ops", reason="incident 42")
    run_id = run(charging, "charge", amount=20.0)
    view = charging.runtime.get(T, run_id)
    assert view.status == "waiting"
    assert view.positions[0].waiting_for == "hold:capability:test.charge"
    assert calls.by_capability["test.charge"] == 0
    clock.advance(1.5)
    charging.runtime.drive()
    assert charging.runtime.get(T, run_id).status == "waiting"
    assert calls.by_capability["test.charge"] == 0

    charging.set_flag("capability:test.charge", True, actor="ops", reason="fixed")
    charging.runtime.drive()
    assert outcome(charging, run_id)[1] == "charged"
    assert calls.by_capability["test.charge"] == 1
    held = [d for d in decisions(charging, run_id) if d[1] == "held"]
    assert held and all(d[2] == "kill_switch" for d in held)


def test_journey_kill_switch_holds_its_runs_only(
    charging: Accord, clock: FrozenClock, calls: Calls
) -> None:
    deploy(charging, PROFILE)
    grant(charging, clock, "pd:Name", "pd:EmailAddress")
    charging.set_flag("journey:charge", False, actor="ops", reason="bad release")
    held = run(charging, "charge", amount=20.0)
    fine = run(charging, "profile")
    assert charging.runtime.get(T, held).status == "waiting"
    assert outcome(charging, fine)[1] == "fetched"


def test_governance_off_lets_the_forbidden_calls_through(
    make_accord: Callable[..., Accord], calls: Calls
) -> None:
    accord = make_accord(governed=False, policies=None)
    deploy(accord, PROFILE)
    deploy(accord, CHARGE)
    accord.flags.set(T, "capability:test.charge", False, actor="ops", reason="incident")
    no_consent = run(accord, "profile")
    unapproved = run(accord, "charge", amount=250.0)
    assert outcome(accord, no_consent)[1] == "fetched"
    assert outcome(accord, unapproved)[1] == "charged"
    assert calls.by_capability["test.profile"] == 1
    assert calls.by_capability["test.charge"] == 1
    assert accord.runtime.decisions(T, no_consent) == []


def test_permit_all_bundle_is_what_the_fixture_deploys(accord: Accord) -> None:
    bundle = accord.policies.active(T)
    assert bundle is not None and bundle.policies == PERMIT_ALL


def test_a_rejection_is_recorded_as_a_refusal(charging: Accord) -> None:
    run_id = run(charging, "charge", amount=250.0)
    charging.runtime.decide(T, run_id, "pay", "reject", by="sam", reason="looks like fraud")
    charging.runtime.drive()
    [asked, rejected] = charging.runtime.decisions(T, run_id)
    assert (asked.outcome, rejected.outcome, rejected.reason) == (
        "approval_required",
        "refused",
        "approval_rejected",
    )
    assert rejected.record["rejected_by"] == "sam"
    refusals = [e for e in charging.runtime.history(T, run_id) if e.kind == "gateway.refused"]
    assert refusals[0].detail["decision"] == rejected.decision_id


def test_an_unusable_stored_bundle_refuses_instead_of_failing(
    charging: Accord, make_accord: Callable[..., Accord], calls: Calls
) -> None:
    with charging.db.transaction() as connection:
        connection.execute(
            sa.text("UPDATE policy_bundles SET policies = 'permit(' WHERE tenant_id = 'default'")
        )
    another_process = make_accord(policies=None)
    run_id = run(another_process, "charge", amount=20.0)
    view = another_process.runtime.get(T, run_id)
    assert view.status == "failed"
    assert view.error is not None and view.error["reason"] == "policy_error"
    assert "unusable" in view.error["message"]
    assert calls.by_capability["test.charge"] == 0


def test_decisions_come_back_in_the_order_they_were_taken(
    accord: Accord, clock: FrozenClock
) -> None:
    task = "kind: task, capability: test.profile, input: {customer_id: run.subject}"
    steps = "\n".join(f"  - {{id: s{i}, {task}}}" for i in range(12))
    deploy(accord, f"journey: many\npurpose: dpv:ServiceProvision\nblocks:\n{steps}\n")
    grant(accord, clock, "pd:Name", "pd:EmailAddress")
    run_id = run(accord, "many")
    assert [d.block for d in accord.runtime.decisions(T, run_id)] == [f"s{i}" for i in range(12)]
