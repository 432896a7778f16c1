"""Property: whatever the journey and whatever the order of time, decisions and failures, a run
ends (completed, or failed with an error) with a gap-free history, no leftover timers or
positions, and every block visit completed at most once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.connectors import CapabilityRegistry
from accord.core import TenantId
from accord.journeys import JourneySpec
from accord.service import Settings, build
from accord.testing import FrozenClock, SequentialIds
from tests.capabilities import Calls, register_test_capabilities
from tests.governance import PERMIT_ALL, deploy_policies

T = TenantId("default")


def _task(i: int, draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {
            "id": f"b{i}",
            "kind": "task",
            "capability": "test.echo",
            "input": {"value": f'"v{i}"'},
        }
    return {
        "id": f"b{i}",
        "kind": "task",
        "capability": "test.flaky",
        "input": {"fail_times": draw(st.integers(0, 3))},
        "retry": {"max_attempts": 3, "initial_interval": "10s", "jitter": 0.5},
        "on_error": "failed_end",
    }


@st.composite
def journeys(draw: st.DrawFn) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["task", "wait", "approve", "decide", "parallel", "map"]))
        if kind == "task":
            blocks.append(_task(i, draw))
        elif kind == "wait":
            blocks.append({"id": f"b{i}", "kind": "wait", "timer": draw(st.integers(1, 120))})
        elif kind == "approve":
            blocks.append({"id": f"b{i}", "kind": "approve", "on": {"reject": "declined"}})
        elif kind == "decide":
            blocks.append(
                {
                    "id": f"b{i}",
                    "kind": "decide",
                    "hit_policy": "first",
                    "inputs": {"n": "size(input.items)"},
                    "rules": [{"when": {"n": "> 2"}, "then": {"tier": "big"}}],
                    "default": {"tier": "small"},
                }
            )
        elif kind == "parallel":
            branches = [
                {"blocks": [_task(i * 10 + j, draw) | {"id": f"p{i}_{j}"}]}
                for j in range(draw(st.integers(1, 3)))
            ]
            for branch in branches:
                branch["blocks"][0].pop("on_error", None)
            blocks.append(
                {
                    "id": f"b{i}",
                    "kind": "parallel",
                    "branches": branches,
                    "join": draw(st.sampled_from(["all", "any"])),
                }
            )
        else:
            blocks.append(
                {
                    "id": f"b{i}",
                    "kind": "map",
                    "items": "input.items",
                    "max_concurrency": draw(st.integers(1, 3)),
                    "do": {
                        "blocks": [
                            {
                                "id": f"m{i}",
                                "kind": "task",
                                "capability": "test.echo",
                                "input": {"value": "string(item)"},
                            }
                        ]
                    },
                }
            )
    blocks.append({"id": "done", "kind": "end", "outcome": "done"})
    if any(b["kind"] == "approve" for b in blocks):
        blocks.append({"id": "declined", "kind": "end", "outcome": "declined"})
    if any("on_error" in b for b in blocks):
        blocks.append({"id": "failed_end", "kind": "end", "outcome": "failed_path"})
    return {"journey": "prop", "input": {"items": "array"}, "blocks": blocks}


def test_every_generated_journey_ends_cleanly(tmp_path: Path) -> None:
    clock = FrozenClock()
    calls = Calls()
    registry = CapabilityRegistry()
    register_test_capabilities(registry, calls)
    accord = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}"),
        capabilities=registry,
        clock=clock,
        ids=SequentialIds(),
    )
    deploy_policies(accord, PERMIT_ALL)
    runtime = accord.runtime

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        journey=journeys(),
        items=st.lists(st.integers(0, 9), max_size=4),
        choices=st.lists(st.sampled_from(["approve", "reject"]), min_size=8, max_size=8),
        waits=st.lists(st.integers(0, 200), min_size=8, max_size=8),
    )
    def check(
        journey: dict[str, Any], items: list[int], choices: list[str], waits: list[int]
    ) -> None:
        spec = JourneySpec.model_validate(journey)
        spec_text = yaml.safe_dump(journey)
        runtime.catalog.deploy(T, spec)
        run_id = runtime.start(T, "prop", input={"items": items}).run_id
        for step in range(40):
            runtime.drive()
            view = runtime.get(T, run_id)
            if view.status in ("completed", "failed", "cancelled"):
                break
            for position in view.positions:
                if position.waiting_for and position.waiting_for.startswith("human:"):
                    runtime.decide(T, run_id, position.block, choices[step % 8], by="prop")
            # a call that outlasted its retries waits for an operator; this one gives it up
            for letter in runtime.dead_letters(T, run_id=run_id):
                runtime.resolve_dead_letter(T, letter.letter_id, action="discard", by="prop")
            due = [p.until - clock.now() for p in view.positions if p.until is not None]
            clock.advance(max([waits[step % 8] + 1, *due]))
        view = runtime.get(T, run_id)
        assert view.status in ("completed", "failed"), (view, spec_text)
        assert (view.error is not None) == (view.status == "failed")
        history = runtime.history(T, run_id)
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert view.transitions == len(history)
        assert history[-1].kind == f"run.{view.status}"
        assert view.positions == () and runtime.timers(T, run_id) == []
        completed = Counter((e.block, e.visit) for e in history if e.kind == "block.completed")
        assert all(count == 1 for count in completed.values()), completed

    try:
        check()
    finally:
        accord.close()
