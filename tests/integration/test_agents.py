"""Agents under governance: bands, review, repair, budgets, cache, routing, tools, redaction.

Agents here are scripted (deterministic answers written in the spec), so every test names the
exact behaviour it checks; every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from accord.agents import LoadedAgent, load_agent_text
from accord.core import TenantId
from accord.errors import AgentInvalid
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage import ReviewItemRecord
from tests.capabilities import Calls
from tests.governance import deploy_policies

T = TenantId("default")
SUBJECT = "cust-1"
PURPOSE = "dpv:ServiceProvision"

PROMPT = """You decide remedies for {{ input.message | length }}-character complaints.
Customer e-mail on file: {{ input.email }}
<!-- user -->
{{ input.message }}
"""

SCRIPT = """
    - when: "refund"
      output: {action: refund, amount: 20.0}
      confidence: 0.95
    - when: "unsure"
      output: {action: refund, amount: 20.0}
      confidence: 0.7
    - output: {action: none, amount: 0.0}
      confidence: 0.3
"""


def spec(
    *,
    version: int = 1,
    script: str = SCRIPT,
    extra: str = "",
    tools: str = "[test.echo]",
    name: str = "remedy",
) -> str:
    return (
        textwrap.dedent(
            f"""
        agent: {name}
        version: {version}
        purpose: {PURPOSE}
        model:
          provider: scripted
          name: script-small
          price: {{input: 1.0, output: 2.0}}
          script:
        """
        )
        + textwrap.indent(textwrap.dedent(script).strip("\n"), "    ")
        + "\n"
        + textwrap.dedent(
            f"""
        prompt: remedy
        input:
          message: {{type: string}}
          email: {{type: string, category: pd:EmailAddress}}
        output:
          schema:
            type: object
            properties:
              action: {{enum: [refund, none, replace]}}
              amount: {{type: number, minimum: 0}}
            required: [action, amount]
          rules:
            - name: refund-cap
              check: "output.amount <= 100.0"
              message: a refund above 100 needs a person
        tools: {tools}
        bands: {{auto: 0.9, confirm: 0.6}}
        """
        )
        + textwrap.dedent(extra)
    )


SUPPORT = """
journey: support
purpose: dpv:ServiceProvision
input: {message: string, email: string}
blocks:
  - id: triage
    kind: agent
    agent: remedy
    input: {message: input.message, email: input.email}
    on: {confirm: confirm_it}
  - id: act
    kind: task
    capability: test.double
    input: {amount: steps.triage.output.amount}
  - {id: done, kind: end, outcome: resolved, output: {amount: steps.act.amount}}
  - {id: confirm_it, kind: end, outcome: needs_confirmation}
"""


def load(tmp_path: Path, text: str, prompt: str = PROMPT) -> LoadedAgent:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "remedy.md").write_text(prompt)
    return load_agent_text(text, source_name="remedy.yaml", base=tmp_path)


@pytest.fixture
def agents(accord: Accord, tmp_path: Path) -> Accord:
    accord.consent.grant(T, SUBJECT, purpose=PURPOSE, categories=["pd:Name"], actor="test")
    accord.put_person("sue", roles=["support"], skills=[], actor="test")
    return accord


def deploy(accord: Accord, tmp_path: Path, text: str, journey: str = SUPPORT) -> None:
    accord.deploy_agent(load(tmp_path, text))
    accord.runtime.catalog.deploy(T, load_journey_text(journey))


def run(
    accord: Accord, message: str, *, subject: str = SUBJECT, email: str = "ada@example.org"
) -> str:
    run_id = accord.runtime.start(
        T, "support", input={"message": message, "email": email}, subject=subject
    ).run_id
    accord.runtime.drive()
    return run_id


def outcome(accord: Accord, run_id: str) -> tuple[str, str | None]:
    view = accord.runtime.get(T, run_id)
    return view.status, view.outcome


def ledger(accord: Accord, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        {**e.body, **(e.personal if isinstance(e.personal, dict) else {})}
        for e in accord.ledger.entries(T, run_id=run_id)
        if e.kind == kind
    ]


def the_item(accord: Accord, run_id: str) -> ReviewItemRecord:
    found = accord.review_items(run_id=run_id)
    assert len(found) == 1, found
    return found[0]


# -- bands ------------------------------------------------------------------------------------


def test_a_confident_output_executes_and_is_recorded_with_its_prompt(
    agents: Accord, tmp_path: Path, calls: Calls
) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "please refund my broken kettle")
    assert outcome(agents, run_id) == ("completed", "resolved")
    assert agents.runtime.get(T, run_id).output == {"amount": 40.0}
    (entry,) = ledger(agents, run_id, "agent.output")
    assert (entry["agent"], entry["version"], entry["band"], entry["confidence"]) == (
        "remedy",
        1,
        "auto",
        0.95,
    )
    assert entry["output"] == {"action": "refund", "amount": 20.0}
    assert entry["prompt"]["message"] == "please refund my broken kettle"
    (stats,) = agents.agent_stats("remedy")
    assert (stats.outputs, stats.auto, stats.escalated) == (1, 1, 0)


def test_the_confirm_band_takes_the_confirm_route(agents: Accord, tmp_path: Path) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "unsure what I want")
    assert outcome(agents, run_id) == ("completed", "needs_confirmation")


def test_journey_bands_override_the_specs(agents: Accord, tmp_path: Path) -> None:
    lenient = SUPPORT.replace(
        "    on: {confirm: confirm_it}",
        "    on: {confirm: confirm_it}\n    bands: {auto: 0.6, confirm: 0.5}",
    )
    deploy(agents, tmp_path, spec(), journey=lenient)
    run_id = run(agents, "unsure what I want")
    assert outcome(agents, run_id) == ("completed", "resolved")


def test_low_confidence_escalates_with_a_handoff_packet_and_approval_goes_on(
    agents: Accord, tmp_path: Path
) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "my kettle")
    assert outcome(agents, run_id) == ("waiting", None)
    item = the_item(agents, run_id)
    assert (item.kind, item.queue) == ("agent", "agents")
    packet = item.packet
    assert packet["recommendation"]["source"] == {"kind": "agent", "id": "remedy", "version": "1"}
    assert packet["recommendation"]["band"] == "escalate"
    assert packet["recommendation"]["value"] == {"action": "none", "amount": 0.0}
    assert "confidence 0.30" in packet["reason"]
    assert packet["edit_schema"]["required"] == ["action", "amount"]
    agents.decide_review(item.item_id, "sue", "approve")
    agents.runtime.drive()
    assert outcome(agents, run_id) == ("completed", "resolved")
    (stats,) = agents.agent_stats("remedy")
    assert (stats.escalated, stats.reviewed, stats.overridden) == (1, 1, 0)


def test_an_edit_is_validated_and_used(agents: Accord, tmp_path: Path) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "my kettle")
    item = the_item(agents, run_id)
    with pytest.raises(Exception, match="amount"):
        agents.decide_review(item.item_id, "sue", "edit", value={"action": "refund"})
    agents.decide_review(item.item_id, "sue", "edit", value={"action": "refund", "amount": 7.5})
    agents.runtime.drive()
    assert agents.runtime.get(T, run_id).output == {"amount": 15.0}
    (stats,) = agents.agent_stats("remedy")
    assert (stats.reviewed, stats.overridden) == (1, 1)


def test_a_rejected_output_fails_the_block(agents: Accord, tmp_path: Path, calls: Calls) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "my kettle")
    agents.decide_review(the_item(agents, run_id).item_id, "sue", "reject", reason="wrong")
    agents.runtime.drive()
    view = agents.runtime.get(T, run_id)
    assert view.status == "failed" and view.error is not None
    assert view.error["type"] == "AgentRejected"
    assert calls.by_capability["test.double"] == 0


def test_the_agents_kill_switch_holds_the_block_without_asking_the_model(
    agents: Accord, tmp_path: Path
) -> None:
    deploy(agents, tmp_path, spec())
    agents.set_flag("agent:remedy", False, actor="ops", reason="model misbehaving")
    run_id = run(agents, "please refund")
    assert outcome(agents, run_id) == ("waiting", None)
    assert ledger(agents, run_id, "agent.output") == []
    held = [e for e in agents.runtime.history(T, run_id) if e.kind == "gateway.held"]
    assert held and held[0].detail["flag"] == "agent:remedy"
    agents.set_flag("agent:remedy", True, actor="ops", reason="fixed")
    agents.runtime.drive()
    assert outcome(agents, run_id) == ("completed", "resolved")


def test_an_override_can_take_one_of_the_blocks_routes(agents: Accord, tmp_path: Path) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "my kettle")
    item = the_item(agents, run_id)
    agents.decide_review(
        item.item_id, "sue", "override", reason="ask the customer first", outcome="confirm"
    )
    agents.runtime.drive()
    assert outcome(agents, run_id) == ("completed", "needs_confirmation")
    (stats,) = agents.agent_stats("remedy")
    assert (stats.reviewed, stats.overridden) == (1, 1)


def test_input_that_breaks_the_agents_contract_fails_the_block_clearly(
    agents: Accord, tmp_path: Path
) -> None:
    loose = SUPPORT.replace(
        "input: {message: string, email: string}", "input: {message: string, email: any}"
    )
    deploy(agents, tmp_path, spec(), journey=loose)
    run_id = agents.runtime.start(
        T, "support", input={"message": "refund", "email": 7}, subject=SUBJECT
    ).run_id
    agents.runtime.drive()
    view = agents.runtime.get(T, run_id)
    assert view.status == "failed" and view.error is not None
    assert view.error["message"] == (
        "the input mapped for agent remedy@1 is invalid: email: 7 is not of type 'string'"
    )


# -- validation and repair --------------------------------------------------------------------


REPAIRED = """
    - repair: false
      output: {action: refund, amount: 500.0}
      confidence: 0.99
    - repair: true
      output: {action: refund, amount: 50.0}
      confidence: 0.97
"""

NEVER_VALID = """
    - output: {action: refund, amount: "lots"}
      confidence: 0.99
"""


def test_an_invalid_output_is_repaired_before_anything_happens(
    agents: Accord, tmp_path: Path
) -> None:
    deploy(agents, tmp_path, spec(script=REPAIRED))
    run_id = run(agents, "refund please")
    assert outcome(agents, run_id) == ("completed", "resolved")
    assert agents.runtime.get(T, run_id).output == {"amount": 100.0}
    (entry,) = ledger(agents, run_id, "agent.output")
    assert entry["valid"] is True
    history = [e for e in agents.runtime.history(T, run_id) if e.kind == "agent.output"]
    attempts = history[0].detail["attempts"]
    assert [a["problems"] for a in attempts] == [
        ["rule refund-cap: a refund above 100 needs a person"],
        [],
    ]


def test_an_output_still_invalid_after_repair_escalates(
    agents: Accord, tmp_path: Path, calls: Calls
) -> None:
    deploy(agents, tmp_path, spec(script=NEVER_VALID))
    run_id = run(agents, "refund please")
    item = the_item(agents, run_id)
    assert item.packet["reason"].startswith("the output stayed invalid after repair")
    assert "amount: 'lots' is not of type 'number'" in item.packet["reason"]
    history = [e for e in agents.runtime.history(T, run_id) if e.kind == "agent.output"]
    assert len(history[0].detail["attempts"]) == 2
    assert calls.by_capability["test.double"] == 0


# -- budgets, cache, routing ------------------------------------------------------------------


def test_a_token_budget_exceeded_escalates_with_the_reason(agents: Accord, tmp_path: Path) -> None:
    script = """
        - output: {action: refund, amount: 20.0}
          confidence: 0.95
          input_tokens: 900
          output_tokens: 200
    """
    deploy(agents, tmp_path, spec(script=script, extra="budget: {tokens: 1000}\n"))
    run_id = run(agents, "refund please")
    item = the_item(agents, run_id)
    assert item.packet["reason"] == (
        "the agent ran out of budget: the agent used 1100 tokens, over its budget of 1000"
    )
    (entry,) = ledger(agents, run_id, "agent.output")
    assert (entry["reason"], entry["band"]) == ("budget_exceeded", "escalate")


def test_a_tool_call_budget_stops_the_agent(agents: Accord, tmp_path: Path, calls: Calls) -> None:
    script = """
        - output: {action: refund, amount: 20.0}
          confidence: 0.95
          tool_calls:
            - {name: test.echo, arguments: {value: one}}
            - {name: test.echo, arguments: {value: two}}
    """
    deploy(agents, tmp_path, spec(script=script, extra="budget: {tool_calls: 1}\n"))
    run_id = run(agents, "refund please")
    assert "over" not in the_item(agents, run_id).packet["reason"]
    assert "more than 1 tool call" in the_item(agents, run_id).packet["reason"]
    assert calls.by_capability["test.echo"] == 1


def test_answers_are_cached_by_version_and_input(agents: Accord, tmp_path: Path) -> None:
    deploy(agents, tmp_path, spec(extra="cache: {ttl: 1h}\n"))
    first = run(agents, "refund please")
    second = run(agents, "refund please", subject="cust-2")
    third = run(agents, "refund something else")
    cached = [ledger(agents, r, "agent.output")[0]["cached"] for r in (first, second, third)]
    assert cached == [False, True, False]
    assert agents.run_usage(second) == {
        "outputs": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
    }
    assert agents.run_usage(first)["input_tokens"] > 0


def test_erasing_a_subject_forgets_the_answers_cached_from_their_runs(
    agents: Accord, tmp_path: Path
) -> None:
    deploy(agents, tmp_path, spec(extra="cache: {ttl: 1h}\n"))
    run(agents, "refund please")
    agents.erase_subject(SUBJECT, actor="dpo", reason="request")
    again = run(agents, "refund please", subject="cust-2")
    assert ledger(agents, again, "agent.output")[0]["cached"] is False


def test_a_declared_rule_routes_to_a_larger_model_and_costs_are_accounted(
    agents: Accord, tmp_path: Path
) -> None:
    extra = """
    route:
      - when: "confidence < 0.6"
        provider: scripted
        name: script-large
        price: {input: 10.0, output: 20.0}
        script:
          - output: {action: replace, amount: 0.0}
            confidence: 0.93
            input_tokens: 100
            output_tokens: 10
    """
    deploy(agents, tmp_path, spec(extra=extra))
    run_id = run(agents, "my kettle")
    assert outcome(agents, run_id) == ("completed", "resolved")
    (entry,) = ledger(agents, run_id, "agent.output")
    assert (entry["model"], entry["band"]) == ("script-large", "auto")
    history = [e for e in agents.runtime.history(T, run_id) if e.kind == "agent.output"]
    models = [a["model"] for a in history[0].detail["attempts"]]
    assert models == ["script-small", "script-large"]
    small = history[0].detail["attempts"][0]
    expected = (
        small["input_tokens"] * 1.0 + small["output_tokens"] * 2.0 + 100 * 10.0 + 10 * 20.0
    ) / 1000
    assert agents.run_usage(run_id)["cost"] == pytest.approx(expected)
    (stats,) = agents.agent_stats("remedy")
    assert stats.cost == pytest.approx(expected)


# -- tools through the gateway ----------------------------------------------------------------


TOOLS = """
    - output: {action: refund, amount: 20.0}
      confidence: 0.95
      tool_calls:
        - {name: test.echo, arguments: {value: order 42}}
        - {name: test.charge, arguments: {amount: 1000.0}}
"""


def test_tool_calls_pass_the_gateway_with_the_agent_as_principal(
    agents: Accord, tmp_path: Path, calls: Calls
) -> None:
    deploy(agents, tmp_path, spec(script=TOOLS))
    run_id = run(agents, "refund please")
    assert outcome(agents, run_id) == ("completed", "resolved")
    assert calls.by_capability["test.echo"] == 1
    assert calls.by_capability["test.charge"] == 0
    found = {
        d.capability: (d.outcome, d.reason, d.record["principal"])
        for d in agents.runtime.decisions(T, run_id)
        if d.block == "triage"
    }
    assert found["test.echo"] == ("executed", None, {"type": "Agent", "id": "remedy"})
    assert found["test.charge"] == (
        "refused",
        "tool_not_allowed",
        {"type": "Agent", "id": "remedy"},
    )
    recorded = {e["capability"]: e["outcome"] for e in ledger(agents, run_id, "gateway.decision")}
    assert recorded["test.charge"] == "refused"
    (entry,) = ledger(agents, run_id, "agent.output")
    assert entry["tool_calls"] == [
        {"name": "test.echo", "ok": True, "reason": None},
        {"name": "test.charge", "ok": False, "reason": "tool_not_allowed"},
    ]


def test_least_privilege_per_agent_is_policy(agents: Accord, tmp_path: Path, calls: Calls) -> None:
    deploy_policies(
        agents,
        '@id("all")\npermit(principal, action, resource);\n'
        '@id("remedy-echoes-nothing")\n'
        'forbid(principal == Accord::Agent::"remedy", '
        'action == Accord::Action::"test.echo", resource);\n',
    )
    deploy(agents, tmp_path, spec(script=TOOLS))
    run_id = run(agents, "refund please")
    assert calls.by_capability["test.echo"] == 0
    (decision,) = [d for d in agents.runtime.decisions(T, run_id) if d.capability == "test.echo"]
    assert (decision.outcome, decision.reason) == ("refused", "policy_denied")
    assert decision.record["policy"]["determining"] == ["remedy-echoes-nothing"]


# -- redaction --------------------------------------------------------------------------------


def test_personal_data_the_purpose_may_not_use_stays_out_of_the_prompt(
    agents: Accord, tmp_path: Path
) -> None:
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "refund to ada@example.org or call +44 20 7946 0958 please")
    (entry,) = ledger(agents, run_id, "agent.output")
    prompt = entry["prompt"]
    text = prompt["instructions"] + prompt["message"]
    assert "ada@example.org" not in text and "7946" not in text
    assert "[withheld: pd:EmailAddress]" in prompt["instructions"]
    assert prompt["message"] == "refund to [email] or call [phone] please"
    assert (entry["withheld"], entry["redacted"]) == (["email"], ["email", "phone"])


def test_a_purpose_that_allows_the_category_sees_it(agents: Accord, tmp_path: Path) -> None:
    agents.consent.grant(T, SUBJECT, purpose=PURPOSE, categories=["pd:EmailAddress"], actor="test")
    deploy(agents, tmp_path, spec())
    run_id = run(agents, "refund to ada@example.org")
    prompt = ledger(agents, run_id, "agent.output")[0]["prompt"]
    assert "Customer e-mail on file: ada@example.org" in prompt["instructions"]
    assert prompt["message"] == "refund to ada@example.org"


# -- specs ------------------------------------------------------------------------------------


def test_a_deployed_version_never_changes(agents: Accord, tmp_path: Path) -> None:
    agents.deploy_agent(load(tmp_path, spec()))
    assert agents.deploy_agent(load(tmp_path, spec())).created is False
    with pytest.raises(AgentInvalid, match="already deployed with other content"):
        agents.deploy_agent(load(tmp_path, spec(), prompt=PROMPT + "Be brief.\n"))
    assert agents.deploy_agent(load(tmp_path, spec(version=2), prompt=PROMPT + "x")).created


def test_a_pinned_prompt_refuses_changed_text(tmp_path: Path) -> None:
    pinned = spec().replace("prompt: remedy", "prompt: remedy@sha256:00ff")
    with pytest.raises(AgentInvalid, match="pinned to sha256:00ff") as caught:
        load(tmp_path, pinned)
    assert caught.value.diagnostics[0].line is not None


def test_spec_mistakes_are_reported_together_and_located(tmp_path: Path) -> None:
    broken = spec().replace("bands: {auto: 0.9, confirm: 0.6}", "bands: {auto: 0.5, confirm: 0.6}")
    broken = broken.replace("prompt: remedy", "prompt: nothing")
    with pytest.raises(AgentInvalid) as caught:
        load(tmp_path, broken)
    assert "confirm must be the lower threshold" in str(caught.value)
    with pytest.raises(AgentInvalid) as caught:
        load(tmp_path, spec().replace("prompt: remedy", "prompt: nothing"))
    (problem,) = caught.value.diagnostics
    assert "no prompt 'nothing'" in problem.message and problem.hint and "remedy" in problem.hint


def test_a_journey_naming_an_undeployed_agent_does_not_deploy(agents: Accord) -> None:
    from accord.errors import JourneyInvalid

    with pytest.raises(JourneyInvalid, match="agent 'remedy' is not deployed"):
        agents.runtime.catalog.deploy(T, load_journey_text(SUPPORT))


def test_lint_checks_the_agent_block_input_against_the_spec(agents: Accord, tmp_path: Path) -> None:
    from accord.errors import JourneyInvalid

    agents.deploy_agent(load(tmp_path, spec()))
    wrong = SUPPORT.replace(
        "input: {message: input.message, email: input.email}", "input: {msg: input.message}"
    )
    with pytest.raises(JourneyInvalid, match="agent 'remedy' has no input field 'msg'"):
        agents.runtime.catalog.deploy(T, load_journey_text(wrong))


# -- shadow and canary ------------------------------------------------------------------------

CANDIDATE = """
    - output: {action: replace, amount: 0.0}
      confidence: 0.92
      tool_calls:
        - {name: test.echo, arguments: {value: look}}
        - {name: test.double, arguments: {amount: 5.0}}
"""

ESCALATES = """
    - output: {action: none, amount: 0.0}
      confidence: 0.2
"""


def two_versions(accord: Accord, tmp_path: Path, candidate: str, *, tools: str) -> None:
    accord.deploy_agent(load(tmp_path, spec(script=SCRIPT)))
    accord.deploy_agent(load(tmp_path, spec(version=2, script=candidate, tools=tools)))
    accord.runtime.catalog.deploy(T, load_journey_text(SUPPORT))


def arms(accord: Accord, run_id: str) -> list[str]:
    return [str(e["arm"]) for e in ledger(accord, run_id, "agent.output")]


def test_a_shadow_runs_beside_the_primary_with_its_effects_suppressed(
    agents: Accord, tmp_path: Path, calls: Calls
) -> None:
    two_versions(agents, tmp_path, CANDIDATE, tools="[test.echo, test.double]")
    rollout = agents.start_rollout("remedy", 2, mode="shadow")
    run_id = run(agents, "refund please")
    assert outcome(agents, run_id) == ("completed", "resolved")
    assert agents.runtime.get(T, run_id).output == {"amount": 40.0}
    # the journey's own task doubled once; the shadow's write never reached the system
    assert calls.by_capability["test.double"] == 1
    assert calls.by_capability["test.echo"] == 1
    recorded = {(e["arm"], e["version"]): e for e in ledger(agents, run_id, "agent.output")}
    assert set(recorded) == {("primary", 1), ("shadow", 2)}
    shadow = recorded[("shadow", 2)]
    assert shadow["output"] == {"action": "replace", "amount": 0.0}
    assert shadow["agrees"] is False
    assert shadow["tool_calls"] == [
        {"name": "test.echo", "ok": True, "reason": None},
        {"name": "test.double", "ok": False, "reason": "shadow"},
    ]
    by_arm = agents.agents.rollout_stats(T, rollout)
    assert (by_arm["primary"].outputs, by_arm["shadow"].outputs, by_arm["shadow"].compared) == (
        1,
        1,
        1,
    )
    assert agents.run_usage(run_id)["outputs"] == 1


def test_a_canary_assigns_subjects_stickily_and_only_adds_them_as_it_grows(
    agents: Accord, tmp_path: Path
) -> None:
    two_versions(agents, tmp_path, CANDIDATE.split("      tool_calls", 1)[0], tools="[test.echo]")
    rollout = agents.start_rollout("remedy", 2, percent=25.0)
    subjects = [f"cust-{i}" for i in range(40)]
    first = {s: arms(agents, run(agents, "refund please", subject=s)) for s in subjects}
    again = {s: arms(agents, run(agents, "refund please", subject=s)) for s in subjects}
    assert first == again
    candidates = {s for s, a in first.items() if a == ["candidate"]}
    assert 0 < len(candidates) < len(subjects)
    assert all(a in (["candidate"], ["primary"]) for a in first.values())
    agents.advance_rollout(rollout.rollout_id)
    grown = {
        s
        for s in subjects
        if arms(agents, run(agents, "refund please", subject=s)) == ["candidate"]
    }
    assert candidates <= grown and len(grown) > len(candidates)
    assigned = [
        e
        for e in agents.ledger.entries(T)
        if e.kind == "agent.assigned" and e.body["rollout_id"] == rollout.rollout_id
    ]
    assert len(assigned) == 3 * len(subjects)
    assert {e.body["percent"] for e in assigned} == {25.0, 50.0}
    changes = [e.body["change"] for e in agents.ledger.entries(T) if e.kind == "agent.rollout"]
    assert changes == ["started", "advanced"]


def test_a_canary_that_escalates_more_rolls_back_by_itself(agents: Accord, tmp_path: Path) -> None:
    two_versions(agents, tmp_path, ESCALATES, tools="[test.echo]")
    rollout = agents.start_rollout("remedy", 2, percent=50.0, margin=0.1, min_samples=3)
    for i in range(30):
        run(agents, "refund please", subject=f"cust-{i}")
    after = agents.agents.rollout(T, rollout.rollout_id)
    assert after.status == "rolled_back"
    assert after.reason is not None and "escalated 100.0%" in after.reason
    (entry,) = [
        e.body
        for e in agents.ledger.entries(T)
        if e.kind == "agent.rollout" and e.body["change"] == "rolled_back"
    ]
    assert entry["actor"] == "accord" and entry["state"]["status"] == "rolled_back"
    # every later run, for any subject, goes to the primary
    later = [arms(agents, run(agents, "refund please", subject=f"new-{i}")) for i in range(10)]
    assert later == [["primary"]] * 10
    assert {
        e["version"]
        for i in range(3)
        for e in ledger(agents, run(agents, "refund please", subject=f"x{i}"), "agent.output")
    } == {1}
