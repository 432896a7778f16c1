"""Attribution of real runs on SQLite and PostgreSQL: a small journey with an experiment's arm,
a branch on the customer's tier and ends that keep or lose the customer is driven for many
subjects; the facade, ``accord attribution``, ``GET /v1/journeys/{name}/attribution`` and the
console's dashboard then give each run's decision points and the estimates, counted exactly as
the runs went; and bad input is refused naming the problem."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from typer.testing import CliRunner

from accord.api import create_app, issue_token
from accord.attribution import RANDOMISED, REMOVAL, STRATIFIED
from accord.cli import app as cli
from accord.console import COOKIE, web_app
from accord.core import TenantId
from accord.errors import InputError, JourneyNotFound
from accord.experiments import parse_experiment
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.testing import FrozenClock
from tests.served import serving

T = TenantId("default")
SUCCESS = "retained,retained_without_follow_up"
SUBJECTS = 120

DESIGN = """
experiment: keep-offer
target: {kind: journey, name: keep_customer}
control: usual
variants:
  - {name: usual}
  - {name: generous}
holdout: 0.0
primary: {name: retained, kind: binary, minimum_effect: 0.2, baseline: 0.4}
minimum_sample: 10
"""

JOURNEY = """
journey: keep_customer
purpose: dpv:CustomerCare
input:
  tier: {type: string}
  stays: {type: boolean}
blocks:
  - id: arm
    kind: task
    capability: experiment.assign
    input: {experiment: '"keep-offer"'}
  - id: route
    kind: choice
    choices:
      - {when: 'input.tier == "gold"', next: call_back}
    default: offer
  - id: call_back
    kind: choice
    choices:
      - {when: input.stays, next: kept}
    default: lost
  - id: offer
    kind: choice
    choices:
      - {when: input.stays, next: kept_quietly}
    default: lost
  - {id: kept, kind: end, outcome: retained}
  - {id: kept_quietly, kind: end, outcome: retained_without_follow_up}
  - {id: lost, kind: end, outcome: lost}
"""


def drive(accord: Accord) -> dict[str, tuple[str, str, bool]]:
    """Every subject's run: its arm, tier and whether it stays (generous arms keep more)."""
    accord.experiments.create(T, parse_experiment(DESIGN), actor="ann")
    accord.runtime.catalog.deploy(T, load_journey_text(JOURNEY, source_name="test"))
    rng = random.Random(4)
    truth = {}
    for i in range(SUBJECTS):
        subject = f"cus_{i:04d}"
        variant = accord.experiments.assign(T, "keep-offer", subject).variant
        tier = "gold" if rng.random() < 0.4 else "standard"
        chance = 0.3 + (0.3 if tier == "gold" else 0.0) + (0.25 if variant == "generous" else 0)
        stays = rng.random() < chance
        started = accord.runtime.start(
            T, "keep_customer", input={"tier": tier, "stays": stays}, subject=subject
        )
        truth[started.run_id] = (variant, tier, stays)
    accord.runtime.drive()
    return truth


@pytest.fixture
def world(accord: Accord) -> dict[str, tuple[str, str, bool]]:
    return drive(accord)


def test_each_runs_decision_points_are_read_in_order_with_its_outcome(
    accord: Accord, world: dict[str, tuple[str, str, bool]]
) -> None:
    paths = accord.decision_paths("keep_customer")
    assert {p.run_id for p in paths} == set(world)
    for path in paths:
        variant, tier, stays = world[path.run_id]
        second = "call_back" if tier == "gold" else "offer"
        assert [(s.point.block, s.point.kind, s.value) for s in path.steps] == [
            ("arm", "experiment", variant),
            ("route", "branch", second),
            (second, "branch", ("kept" if tier == "gold" else "kept_quietly") if stays else "lost"),
        ]
        assert path.steps[0].randomised and path.steps[0].experiment == "keep-offer"
        ended = (
            ("retained" if tier == "gold" else "retained_without_follow_up") if stays else "lost"
        )
        assert path.outcome == ended and path.version == 1
    assert [p.started_at for p in paths] == sorted(p.started_at for p in paths)
    assert len(accord.decision_paths("keep_customer", limit=5)) == 5


def test_the_facade_estimates_each_point_with_its_method_from_the_real_runs(
    accord: Accord, world: dict[str, tuple[str, str, bool]]
) -> None:
    found = accord.attribution("keep_customer", success=SUCCESS, min_runs=10)
    assert found.runs == SUBJECTS and found.success == ("retained", "retained_without_follow_up")
    assert found.successes == sum(stays for _, _, stays in world.values())

    arm = found.point("arm")
    assert arm.randomised and arm.reference == "usual"  # the experiment's control
    runs = Counter(v for v, _, _ in world.values())
    wins = Counter(v for v, _, stays in world.values() if stays)
    assert {v.value: (v.runs, v.successes) for v in arm.values} == {
        arm: (runs[arm], wins[arm]) for arm in ("usual", "generous")
    }
    [estimate] = arm.estimates
    assert estimate.method == RANDOMISED and estimate.causal
    expected = wins["generous"] / runs["generous"] - wins["usual"] / runs["usual"]
    assert estimate.difference == pytest.approx(expected)
    assert estimate.low is not None and estimate.high is not None
    assert estimate.low < estimate.difference < estimate.high

    route = found.point("route")
    [by_tier] = route.estimates
    assert by_tier.method == STRATIFIED and not by_tier.causal
    assert by_tier.adjusted_for == ("arm (experiment)",)  # the arm came before the route

    shares = [p.share for p in found.points]
    assert all(s is not None for s in shares)
    assert sum(s for s in shares if s is not None) == pytest.approx(100.0)
    assert found.removal.method == REMOVAL
    # the route is on every path: nothing succeeds without it
    assert route.removal_effect == pytest.approx(1.0)

    few = accord.attribution("keep_customer", success=SUCCESS, min_runs=1000)
    assert all(e.difference is None for p in few.points for e in p.estimates)
    assert all(
        e.note and e.note.startswith("too few runs") for p in few.points for e in p.estimates
    )

    window = accord.attribution(
        "keep_customer", success="retained", since=accord.runtime.clock.now() + 1, min_runs=10
    )
    assert window.runs == 0 and window.points == ()
    assert window.removal.note == "too few runs: 0 ended runs, 10 needed"


def test_bad_input_is_refused_naming_the_problem(
    accord: Accord, world: dict[str, tuple[str, str, bool]]
) -> None:
    with pytest.raises(JourneyNotFound, match="no journey named 'nope' is deployed"):
        accord.attribution("nope", success="retained")
    with pytest.raises(JourneyNotFound, match="journey 'keep_customer' has no version 7"):
        accord.attribution("keep_customer", success="retained", version=7)
    with pytest.raises(InputError, match="no success outcome given") as empty:
        accord.attribution("keep_customer", success=" , ")
    assert empty.value.hint is not None and "e.g. retained,converted" in empty.value.hint
    with pytest.raises(
        InputError, match="journey 'keep_customer' never ends with 'converted'"
    ) as bad:
        accord.attribution("keep_customer", success="retained,converted")
    assert bad.value.hint == "its outcomes: lost, retained, retained_without_follow_up"
    with pytest.raises(InputError, match="since 'last week' is neither an RFC 3339 time nor a"):
        accord.attribution("keep_customer", success="retained", since="last week")


def invoke(accord: Accord, *args: str) -> tuple[int, str]:
    settings = accord.settings
    env = {
        "ACCORD_DATABASE_URL": settings.database_url,
        "ACCORD_KEYS_DIR": str(settings.keys_dir),
        "COLUMNS": "220",
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_the_command_line_prints_the_table_and_a_final_json_line(
    accord: Accord, world: dict[str, tuple[str, str, bool]]
) -> None:
    since = "2025-12-31T00:00:00Z"  # before the test clock's runs, long after none
    code, out = invoke(
        accord, "attribution", "keep_customer", "--success", SUCCESS, "--since", since,
        "--min-runs", "10", "--json",
    )  # fmt: skip
    assert code == 0, out
    # the table's cells and header wrap (or shorten) at the terminal's width: the words are
    # checked in the header, the figures in the JSON line
    flat = " ".join(out.split())
    assert "attribution of keep_customer" in flat and f"{SUBJECTS} ended runs" in flat
    assert f"credit: {REMOVAL}" in flat
    last = json.loads(out.strip().splitlines()[-1])
    assert last["runs"] == SUBJECTS and last["journey"] == "keep_customer"
    assert {(p["block_id"], p["kind"]) for p in last["points"]} >= {
        ("arm", "experiment"),
        ("route", "branch"),
    }
    [arm] = [p for p in last["points"] if p["block_id"] == "arm"]
    assert arm["estimates"][0]["method"] == RANDOMISED and arm["estimates"][0]["causal"] is True
    assert sum(p["share"] for p in last["points"]) == pytest.approx(100.0)

    assert {e["method"] for p in last["points"] for e in p["estimates"]} >= {RANDOMISED}
    assert any("not causal" in e["method"] for p in last["points"] for e in p["estimates"])

    code, out = invoke(accord, "attribution", "keep_customer", "--success", SUCCESS, "--json")
    # at 30 a figure, 120 runs split four ways
    notes = [e["note"] or "" for p in json.loads(out.strip().splitlines()[-1])["points"]
             for e in p["estimates"]]  # fmt: skip
    assert code == 0 and any(note.startswith("too few runs") for note in notes), notes
    code, out = invoke(accord, "attribution", "keep_customer", "--success", SUCCESS)
    assert code == 0 and not out.strip().splitlines()[-1].startswith("{")

    code, out = invoke(accord, "attribution", "nope", "--success", "retained")
    assert code == 2 and "no journey named 'nope' is deployed" in out
    code, out = invoke(accord, "attribution", "keep_customer", "--success", "")
    assert code == 2 and "no success outcome given" in out
    code, out = invoke(accord, "attribution", "keep_customer", "--success", "won")
    assert code == 2 and "never ends with 'won'" in out and "its outcomes: lost" in out


def bearer(accord: Accord, role: str) -> dict[str, str]:
    token = issue_token(
        accord.settings.resolved_keys_dir(),
        subject="ann",
        tenant=T,
        roles=[role],
        now=time.time(),
    )
    return {"Authorization": f"Bearer {token}"}


def test_the_api_answers_the_estimates_to_the_roles_allowed(
    accord: Accord, world: dict[str, tuple[str, str, bool]]
) -> None:
    path = "/v1/journeys/keep_customer/attribution"
    query = {"success": SUCCESS, "min_runs": 10}
    with serving(create_app(accord)) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = client.get(path, params=query, headers=bearer(accord, "author"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body == accord.attribution("keep_customer", success=SUCCESS, min_runs=10).to_json()
        [arm] = [p for p in body["points"] if p["block_id"] == "arm"]
        assert arm["estimates"][0]["method"] == RANDOMISED
        [route] = [p for p in body["points"] if p["block_id"] == "route"]
        assert route["estimates"][0]["causal"] is False

        supervisor = client.get(path, params=query, headers=bearer(accord, "supervisor"))
        assert supervisor.status_code == 200
        refused = client.get(path, params=query, headers=bearer(accord, "reviewer"))
        assert refused.status_code == 403
        assert refused.json()["operation"] == "journeys.attribution"

        author = bearer(accord, "author")
        missing = client.get("/v1/journeys/nope/attribution", params=query, headers=author)
        assert missing.status_code == 404 and missing.json()["code"] == "journey_not_found"
        for success, detail in (
            ("", "no success outcome given"),
            ("converted", "never ends with 'converted'"),
        ):
            bad = client.get(path, params={"success": success}, headers=author)
            assert bad.status_code == 422, bad.text
            assert bad.headers["content-type"] == "application/problem+json"
            assert detail in bad.json()["detail"]
        unnamed = client.get(path, headers=author)
        assert unnamed.status_code == 422 and unnamed.json()["code"] == "validation_failed"


def sign_in(client: httpx.Client, accord: Accord, role: str) -> None:
    token = bearer(accord, role)["Authorization"].removeprefix("Bearer ")
    assert client.post("/console/sign-in", data={"token": token}).status_code == 303
    assert client.cookies[COOKIE] == token


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_dashboard_shows_each_estimate_its_interval_and_method(
    accord: Accord, world: dict[str, tuple[str, str, bool]]
) -> None:
    with serving(web_app(accord)) as url, httpx.Client(base_url=url, timeout=30) as client:
        sign_in(client, accord, "operator")
        plain = client.get("/console/dashboard")
        assert plain.status_code == 200
        assert "Outcomes attributed to decisions" in plain.text
        assert '<option value="keep_customer"' in plain.text
        page = client.get(
            "/console/dashboard",
            params={
                "attribution": "keep_customer",
                "success": SUCCESS,
                "min_runs": "10",
                "hours": "720",
            },
        )
        assert page.status_code == 200
        text = page.text
        assert "arm (experiment)" in text and "route (branch)" in text
        assert RANDOMISED in text and "(not causal)" in text
        assert "reference" in text and f"{SUBJECTS} ended runs" in text
        assert f"Credit: {REMOVAL}" in text
        wrong = client.get(
            "/console/dashboard", params={"attribution": "keep_customer", "success": "won"}
        )
        assert wrong.status_code == 200
        assert 'role="alert"' in wrong.text and "never ends with &#39;won&#39;" in wrong.text

    with serving(web_app(accord)) as url, httpx.Client(base_url=url, timeout=30) as client:
        sign_in(client, accord, "reviewer")
        assert client.get("/console/dashboard").status_code == 403  # no runs.list


def test_runs_of_an_erased_subject_are_left_out(make_accord: Callable[..., Accord]) -> None:
    accord = make_accord()
    erased_run = next(iter(drive(accord)))
    subject = accord.runtime.get(T, erased_run).subject_id
    assert subject is not None
    accord.erase_subject(subject, actor="dpo", reason="request")
    found = accord.attribution("keep_customer", success=SUCCESS, min_runs=10)
    assert found.runs == SUBJECTS - 1 and found.erased == 1
    assert any("1 runs of erased subjects are left out" in n for n in found.notes)
    assert erased_run not in {p.run_id for p in accord.decision_paths("keep_customer")}


SLOW_DESIGN = """
experiment: slow-offer
target: {kind: journey, name: keep_slow}
control: usual
variants:
  - {name: usual}
  - {name: generous}
primary: {name: retained, kind: binary, minimum_effect: 0.2, baseline: 0.4}
minimum_sample: 10
"""

SLOW_JOURNEY = """
journey: keep_slow
purpose: dpv:CustomerCare
input:
  stays: {type: boolean}
blocks:
  - id: arm
    kind: task
    capability: experiment.assign
    input: {experiment: '"slow-offer"'}
  - id: outcome
    kind: choice
    choices:
      - {when: input.stays, next: settle_in}
    default: lost
  - id: settle_in
    kind: wait
    timer: 30d
  - {id: kept, kind: end, outcome: retained}
  - {id: lost, kind: end, outcome: lost}
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_arm_is_not_called_causal_while_runs_it_may_delay_are_still_open(
    accord: Accord, clock: FrozenClock
) -> None:
    # retained customers' runs end 30 days later: until then only the lost ones have ended,
    # and the arms' difference among ended runs is not the arm's effect
    accord.experiments.create(T, parse_experiment(SLOW_DESIGN), actor="ann")
    accord.runtime.catalog.deploy(T, load_journey_text(SLOW_JOURNEY))
    rng = random.Random(3)
    for i in range(160):
        subject = f"cus_{i:04d}"
        variant = accord.experiments.assign(T, "slow-offer", subject).variant
        stays = rng.random() < (0.7 if variant == "generous" else 0.2)
        accord.runtime.start(T, "keep_slow", input={"stays": stays}, subject=subject)
    accord.runtime.drive()
    early = accord.attribution("keep_slow", success="retained,lost", min_runs=5)
    still_open = 160 - early.runs
    assert still_open > 0
    [estimate] = early.point("arm").estimates
    assert estimate.method == RANDOMISED and not estimate.causal
    assert estimate.note is not None and f"{still_open} runs" in estimate.note
    assert any(f"{still_open} runs started in the window have not ended" in n for n in early.notes)

    clock.advance(31 * 86_400)
    accord.runtime.drive()
    late = accord.attribution("keep_slow", success="retained", min_runs=5)
    assert late.runs == 160
    [estimate] = late.point("arm").estimates
    assert estimate.method == RANDOMISED and estimate.causal and estimate.note is None
    assert estimate.difference is not None and estimate.difference > 0.2
    assert not any("have not ended" in n for n in late.notes)


ONLY_TASKS = """
journey: only_tasks
purpose: dpv:CustomerCare
input: {n: integer}
blocks:
  - id: arm
    kind: task
    capability: experiment.assign
    input: {experiment: '"tasks-offer"'}
  - {id: kept, kind: end, outcome: retained}
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_erased_run_whose_path_holds_only_completed_blocks_is_left_out(
    accord: Accord,
) -> None:
    design = SLOW_DESIGN.replace("slow-offer", "tasks-offer").replace("keep_slow", "only_tasks")
    accord.experiments.create(T, parse_experiment(design), actor="ann")
    accord.runtime.catalog.deploy(T, load_journey_text(ONLY_TASKS))
    for i in range(3):
        accord.runtime.start(T, "only_tasks", input={"n": i}, subject=f"cus_{i}")
    accord.runtime.drive()
    assert accord.attribution("only_tasks", success="retained", min_runs=1).runs == 3
    accord.erase_subject("cus_0", actor="dpo", reason="request")
    found = accord.attribution("only_tasks", success="retained", min_runs=1)
    assert (found.runs, found.erased) == (2, 1)
    assert sum(v.runs for v in found.point("arm").values) == 2
