"""Simulation scenarios: cases with expected outcomes, run against a fresh sample enterprise.

A scenario file names cases (a journey, an input, a subject, how the person behaves, what staff
do, and what must come of it), optionally a synthetic crowd from the demo's mix, adversarial
messages (the project's own, plus a data set's read by path when it is there), connector
faults and experiments to start first. :func:`load_scenario` reads a file and checks it against
the sample enterprise (its journeys and their blocks, the sandbox's fault rules, the attack data
set, the experiments' designs) before anything runs;
:func:`run_scenario` runs it on a fresh database and sandbox and compares every case with its
expectation; a report lists each mismatch.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import httpx
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from accord.errors import InputError
from accord.experiments import ExperimentSpec, load_experiment
from accord.journeys import AnyBlock, MapBlock, ParallelBlock, load_journey_file
from accord.runtime import RunView
from accord.sandbox import SERVICES, FaultRule
from accord.simulation._driver import (
    Answer,
    Case,
    Driver,
    Finished,
    OtpBehaviour,
    Persona,
    StaffAction,
    refusals_by_reason,
    with_sub_runs,
)
from accord.simulation._enterprise import (
    TENANT,
    Enterprise,
    Manifest,
    find_manifest,
    load_manifest,
    open_enterprise,
)
from accord.simulation._mix import demo_mix
from accord.storage import DecisionRecord, RunStatus

STATUSES: tuple[str, ...] = (*get_args(RunStatus), "refused_at_start")
"""What a case can end as: a run's status, or ``refused_at_start`` when the runtime refused it."""
NO_ARM = "none"
"""The arm of a case whose runs read no arm of an experiment."""
ASSIGN = "experiment.assign"
RECORD = "experiment.record"


def _statuses(value: Any) -> Any:
    """One status, a list, or (older files) several joined by ``|``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split("|")]
    return value


def _known_statuses(value: list[str] | None) -> list[str] | None:
    unknown = [status for status in value or () if status not in STATUSES]
    if unknown:
        raise ValueError(
            f"unknown status {', '.join(map(repr, unknown))}; one of {', '.join(STATUSES)}"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expect(_Strict):
    status: list[str] | None = Field(
        default=None, description="the statuses the case may end with (a string, or a list)"
    )
    outcome: str | None = None
    outcome_in: list[str] | None = None
    refused: list[str] = Field(default_factory=list, description="refusal reasons that occur")
    policies: list[str] = Field(default_factory=list, description="policies that refused")
    executed: list[str] | None = Field(
        default=None, description="exactly these capabilities were executed (any order)"
    )
    never_executed: list[str] = Field(default_factory=list)
    output: dict[str, Any] | None = Field(
        default=None, description="values the run's output holds (other fields may be there too)"
    )
    recorded: int | None = Field(
        default=None,
        ge=0,
        description="how many experiment outcomes the case's runs recorded (experiment.record "
        "calls answered `recorded`, not `duplicate`, `not_assigned` or `closed`)",
    )
    arms: dict[str, Expect] | None = Field(
        default=None,
        description="by the arm the case's run read first (experiment.assign), `holdout`, or "
        "`none` when it read none: the arm must be one of these, and its expectations hold too",
    )

    _split = field_validator("status", mode="before")(_statuses)
    _known = field_validator("status")(_known_statuses)

    def arms_expected(self) -> list[Expect]:
        """The expectations given for each arm."""
        return list(self.arms.values()) if self.arms is not None else []

    @field_validator("arms")
    @classmethod
    def _flat_arms(cls, arms: dict[str, Expect] | None) -> dict[str, Expect] | None:
        nested = [arm for arm, expect in (arms or {}).items() if expect.arms is not None]
        if nested:
            raise ValueError(
                f"the expectations of arm {nested[0]!r} name arms again; an arm's "
                "expectations hold for that arm, so give them without `arms`"
            )
        return arms


class PersonaSpec(_Strict):
    otp: OtpBehaviour = "right"
    document_number: str = "X12345678"
    document_type: str = "passport"
    confirm: Answer = "confirm"
    draw: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="the person's own draw for `confirm: weigh`: they accept a discount of p "
        "percent when it is below the customers' response model's acceptance of p",
    )
    consents: list[str] = Field(default_factory=list)
    withdraw_at: str | None = None
    chat: list[str] = Field(
        default_factory=list, description="messages the person writes in a support conversation"
    )
    chat_consent: Literal["agree", "refuse"] = "agree"

    @model_validator(mode="after")
    def _weighs_with_a_draw(self) -> PersonaSpec:
        if self.confirm == "weigh" and self.draw is None:
            raise ValueError(
                "a person who weighs an offer (confirm: weigh) needs their own draw, a number "
                "from 0 up to 1 (draw: 0.4)"
            )
        return self


class CaseSpec(_Strict):
    name: str
    journey: str
    input: dict[str, Any]
    subject: str | None = None
    persona: PersonaSpec = Field(default_factory=PersonaSpec)
    staff: StaffAction = "approve"
    wave: int = Field(default=1, ge=1, le=3, description="later waves start once earlier settle")
    expect: Expect


class Fault(_Strict):
    service: str
    rules: list[FaultRule] = Field(description="the sandbox's own fault rules")


class Synthetic(_Strict):
    people: int = Field(ge=1, le=500)
    seed: int = 1
    journeys: list[str] | None = None
    expect_status_in: list[str] = Field(default_factory=lambda: ["completed", "waiting"])

    _split = field_validator("expect_status_in", mode="before")(_statuses)
    _known = field_validator("expect_status_in")(_known_statuses)


class Attacks(_Strict):
    journey: str = "support_resolution"
    customer: str = "cus_00001"
    input: dict[str, Any] = Field(
        default_factory=dict, description="more input for each run besides the message"
    )
    persona: PersonaSpec = Field(default_factory=PersonaSpec)
    staff: StaffAction = "leave"
    messages: list[str] = Field(default_factory=list)
    dataset: str | None = Field(
        default=None, description="a JSONL file of attacks, relative to the scenario, if present"
    )
    limit: int = Field(default=25, ge=0, le=1000)
    expect: Expect


class ScenarioSpec(_Strict):
    scenario: str
    description: str = ""
    region: str | None = None
    experiments: list[str] = Field(
        default_factory=list,
        description="experiment designs (YAML files, relative to the scenario) started before "
        "the first case",
    )
    faults: list[Fault] = Field(default_factory=list)
    cases: list[CaseSpec] = Field(default_factory=list)
    synthetic: Synthetic | None = None
    attacks: Attacks | None = None

    @field_validator("cases")
    @classmethod
    def _unique_names(cls, cases: list[CaseSpec]) -> list[CaseSpec]:
        counted = Counter(case.name for case in cases)
        repeated = [name for name, count in counted.items() if count > 1]
        if repeated:
            raise ValueError(
                "case names must be unique; repeated: " + ", ".join(map(repr, repeated))
            )
        return cases


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario file, read and checked against the sample enterprise."""

    path: Path
    spec: ScenarioSpec
    attack_messages: tuple[str, ...] = ()
    """The attack messages: the file's own, then the data set's (up to its ``limit``)."""
    experiments: tuple[ExperimentSpec, ...] = ()
    """The designs of ``spec.experiments``, read and checked."""


@dataclass(frozen=True, slots=True)
class Check:
    case: str
    journey: str
    ok: bool
    got: str
    wanted: str


@dataclass
class ScenarioReport:
    scenario: str
    path: Path
    checks: list[Check] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def mismatches(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def load_scenario(path: Path, *, manifest: Manifest | None = None) -> Scenario:
    """Read a scenario file and check it against the sample enterprise before anything runs.

    Args:
        path: the scenario's YAML file.
        manifest: the enterprise whose journeys the cases name (default: the checkout's
            ``examples/enterprise``).

    Raises:
        InputError: naming the file and every field that is wrong (``cases[0].persona.otp``):
            unknown fields or values, repeated case names, fault rules the sandbox would
            refuse, unknown journeys or services, a ``withdraw_at`` that is not a block of the
            case's journey, a line of the attack data set that is not JSON (file:line), or an
            experiment's design that is missing or wrong (its file and field).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the scenario ({exc})") from exc
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{_location(error['loc'])}: {error['msg']}" for error in exc.errors()]
        raise _invalid(path, problems) from exc
    journeys = _journey_blocks(manifest or load_manifest(find_manifest()))
    problems = _check_names(spec, journeys)
    if problems:
        raise _invalid(path, problems)
    messages: tuple[str, ...] = ()
    if spec.attacks is not None:
        messages = tuple(_attack_messages(spec.attacks, path.parent))
    return Scenario(path, spec, messages, tuple(_designs(path, spec.experiments)))


def _designs(path: Path, files: list[str]) -> list[ExperimentSpec]:
    designs = []
    for index, name in enumerate(files):
        design = (path.parent / name).resolve()
        if not design.is_file():
            raise _invalid(path, [f"experiments[{index}]: {design} does not exist"])
        designs.append(load_experiment(design))
    names = Counter(design.experiment for design in designs)
    repeated = [name for name, count in names.items() if count > 1]
    if repeated:
        raise _invalid(
            path, [f"experiments: each experiment starts once; repeated: {', '.join(repeated)}"]
        )
    return designs


def _invalid(path: Path, problems: list[str]) -> InputError:
    return InputError(
        f"{path}: invalid scenario: {'; '.join(problems)}",
        hint="see docs/simulation.md for the scenario format",
    )


def _location(loc: Iterable[int | str]) -> str:
    """``('cases', 0, 'persona', 'otp')`` as ``cases[0].persona.otp``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(the file)"


def _journey_blocks(manifest: Manifest) -> dict[str, frozenset[str]]:
    """Every journey of the manifest, with the ids of all its blocks (branches included)."""
    found = {}
    for path in manifest.journeys:
        spec = load_journey_file(path).spec
        found[spec.journey] = frozenset(_block_ids(spec.blocks))
    return found


def _block_ids(blocks: Iterable[AnyBlock]) -> Iterable[str]:
    for block in blocks:
        yield block.id
        if isinstance(block, ParallelBlock):
            for branch in block.branches:
                yield from _block_ids(branch.blocks)
        elif isinstance(block, MapBlock):
            yield from _block_ids(block.do.blocks)


def _check_names(spec: ScenarioSpec, journeys: Mapping[str, frozenset[str]]) -> list[str]:
    """What the scenario names that the sample enterprise does not have."""
    known = ", ".join(sorted(journeys))
    problems = []
    for index, fault in enumerate(spec.faults):
        if fault.service not in SERVICES:
            problems.append(
                f"faults[{index}].service: unknown service {fault.service!r}; "
                f"one of {', '.join(SERVICES)}"
            )
    for index, case in enumerate(spec.cases):
        blocks = journeys.get(case.journey)
        if blocks is None:
            problems.append(
                f"cases[{index}].journey: unknown journey {case.journey!r}; one of {known}"
            )
        elif case.persona.chat and case.subject is None:
            problems.append(
                f"cases[{index}].subject: a case with chat messages is a customer's "
                "conversation, so it needs the customer's subject id"
            )
        elif case.persona.withdraw_at is not None and case.persona.withdraw_at not in blocks:
            problems.append(
                f"cases[{index}].persona.withdraw_at: {case.persona.withdraw_at!r} is not a "
                f"block of {case.journey}; its blocks: {', '.join(sorted(blocks))}"
            )
    if spec.synthetic is not None:
        for index, name in enumerate(spec.synthetic.journeys or ()):
            if name not in journeys:
                problems.append(
                    f"synthetic.journeys[{index}]: unknown journey {name!r}; one of {known}"
                )
    if spec.attacks is not None and spec.attacks.journey not in journeys:
        problems.append(
            f"attacks.journey: unknown journey {spec.attacks.journey!r}; one of {known}"
        )
    return problems


def _persona(spec: PersonaSpec) -> Persona:
    return Persona(
        otp=spec.otp,
        document_number=spec.document_number,
        document_type=spec.document_type,
        confirm=spec.confirm,
        draw=spec.draw,
        consents=tuple(spec.consents),
        withdraw_at=spec.withdraw_at,
        chat=tuple(spec.chat),
        chat_consent=spec.chat_consent,
    )


def _attack_messages(spec: Attacks, base: Path) -> list[str]:
    """The file's messages, then the data set's, when the data set is there."""
    messages = list(spec.messages)
    if not spec.dataset:
        return messages
    path = (base / spec.dataset).resolve()
    if not path.is_file():
        return messages
    try:
        lines = path.read_text(encoding="utf-8").splitlines()[: spec.limit]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the attack data set ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{number}:{exc.colno}: not a JSON line ({exc.msg})",
                hint="the data set holds one JSON object per line, with its text under "
                "`text`, `attack` or `prompt`",
            ) from exc
        if not isinstance(record, dict):
            raise InputError(
                f"{path}:{number}: a line of the attack data set must be a JSON object, "
                f"not {type(record).__name__}",
                hint="one JSON object per line, with its text under `text`, `attack` or `prompt`",
            )
        text = record.get("text") or record.get("attack") or record.get("prompt")
        if isinstance(text, str) and text.strip():
            messages.append(text[:2000])
    return messages


def run_scenario(scenario: Scenario | Path, *, workdir: Path | None = None) -> ScenarioReport:
    """Run one scenario on a sample enterprise and compare what happened.

    Args:
        scenario: a scenario :func:`load_scenario` read, or the path of its file.
        workdir: where the sandbox's databases and Accord's SQLite file live. A given directory
            is reused as it is, not emptied: what an earlier run left there (customers' refunds,
            runs) is still there, and the expectations may no longer hold. By default a fresh
            temporary directory, removed afterwards.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    spec = scenario.spec
    report = ScenarioReport(spec.scenario, scenario.path)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accord-sim-")))
        enterprise = stack.enter_context(open_enterprise(workdir, region=spec.region))
        for design in scenario.experiments:
            enterprise.accord.experiments.create(TENANT, design, actor="scenario")
        _apply_faults(enterprise, spec.faults)
        driver = stack.enter_context(Driver(enterprise, advance_time=True))
        expectations = _start_all(driver, enterprise, scenario)
        driver.settle(seconds=180)
        results = {f.case.name: f for f in driver.results()}
        for name, (journey, expect) in expectations.items():
            report.checks.append(_check(enterprise, results.get(name), name, journey, expect))
        report.refusals = refusals_by_reason(
            enterprise.accord, [f.run_id for f in results.values() if f.run_id]
        )
        report.actions = driver.actions
    return report


def _apply_faults(enterprise: Enterprise, faults: list[Fault]) -> None:
    for fault in faults:
        httpx.put(
            f"{enterprise.url(fault.service)}/_sandbox/faults",
            json=[rule.model_dump(mode="json", exclude_unset=True) for rule in fault.rules],
            timeout=10,
        ).raise_for_status()


def _start_all(
    driver: Driver, enterprise: Enterprise, scenario: Scenario
) -> dict[str, tuple[str, Expect]]:
    spec = scenario.spec
    expectations: dict[str, tuple[str, Expect]] = {}
    wave = 1
    for case in sorted(spec.cases, key=lambda c: c.wave):
        if case.wave != wave:
            driver.settle(seconds=120)
            wave = case.wave
        driver.start(
            Case(
                case.name,
                case.journey,
                case.input,
                case.subject,
                persona=_persona(case.persona),
                staff=case.staff,
            )
        )
        expectations[case.name] = (case.journey, case.expect)
    if spec.synthetic is not None:
        first, repeats = demo_mix(
            enterprise, people=spec.synthetic.people, seed=spec.synthetic.seed
        )
        del repeats  # duplicates are the refund scenario's own cases
        for generated in first:
            if spec.synthetic.journeys and generated.journey not in spec.synthetic.journeys:
                continue
            driver.start(generated)
            expectations[generated.name] = (
                generated.journey,
                Expect(status=list(spec.synthetic.expect_status_in)),
            )
    if spec.attacks is not None:
        for index, message in enumerate(scenario.attack_messages):
            name = f"attack-{index:03d}"
            driver.start(
                Case(
                    name,
                    spec.attacks.journey,
                    {
                        **spec.attacks.input,
                        "customer_id": spec.attacks.customer,
                        "message": message,
                    },
                    spec.attacks.customer,
                    persona=_persona(spec.attacks.persona),
                    staff=spec.attacks.staff,
                )
            )
            expectations[name] = (spec.attacks.journey, spec.attacks.expect)
    return expectations


def _check(
    enterprise: Enterprise, finished: Finished | None, name: str, journey: str, expect: Expect
) -> Check:
    if finished is None:
        return Check(name, journey, False, "never started", "a run")
    got = f"{finished.status}" + (f" {finished.outcome}" if finished.outcome else "")
    wanted: list[str] = []
    decisions = _decisions(enterprise, finished) if _reads_decisions(expect) else []
    arm = _arm(enterprise, decisions) if expect.arms is not None else NO_ARM
    ok = _holds(enterprise, finished, expect, decisions, wanted)
    if expect.arms is not None:
        wanted.append("arm " + "/".join(expect.arms))
        for_arm = expect.arms.get(arm)
        if for_arm is None:
            ok = False
        else:
            in_arm: list[str] = []
            ok &= _holds(enterprise, finished, for_arm, decisions, in_arm)
            if in_arm:
                wanted.append(f"as {arm}: " + ", ".join(in_arm))
    every = [expect, *expect.arms_expected()]
    if finished.run_id and any(
        e.refused or e.policies or e.executed is not None or e.never_executed for e in every
    ):
        reasons = {d.reason or "" for d in decisions if d.outcome == "refused"}
        policies = {
            p
            for d in decisions
            if d.outcome == "refused"
            for p in (d.record.get("policy") or {}).get("determining") or []
        }
        got += (
            f" [refused: {','.join(sorted(reasons)) or '-'}; by {','.join(sorted(policies)) or '-'}"
        )
        executed = _executed(decisions)
        if any(e.executed is not None and executed != sorted(e.executed) for e in every):
            got += f"; executed {','.join(executed) or 'nothing'}"
        got += "]"
    if expect.arms is not None:
        got += f", arm {arm}"
    if any(e.output is not None for e in every):
        got += f", output {json.dumps(_output(enterprise, finished), sort_keys=True)}"
    if any(e.recorded is not None for e in every):
        got += f", recorded {_recorded(enterprise, decisions)}"
    if finished.error:
        got += f" ({finished.error})"
    return Check(name, journey, bool(ok), got, ", ".join(wanted) or "anything")


def _holds(
    enterprise: Enterprise,
    finished: Finished,
    expect: Expect,
    decisions: list[DecisionRecord],
    wanted: list[str],
) -> bool:
    """Whether ``finished`` meets ``expect`` (its arms aside); what it wants goes to ``wanted``."""
    ok = True
    if expect.status is not None:
        wanted.append(" or ".join(expect.status))
        ok &= finished.status in expect.status
    if expect.outcome is not None:
        wanted.append(expect.outcome)
        ok &= finished.outcome == expect.outcome
    if expect.outcome_in is not None:
        wanted.append("one of " + "/".join(expect.outcome_in))
        ok &= finished.outcome in expect.outcome_in
    if expect.output is not None:
        wanted.append("output " + json.dumps(expect.output, sort_keys=True))
        output = _output(enterprise, finished)
        ok &= all(key in output and output[key] == v for key, v in expect.output.items())
    if not finished.run_id:
        return ok
    refused = [d for d in decisions if d.outcome == "refused"]
    reasons = {d.reason or "" for d in refused}
    policies = {p for d in refused for p in (d.record.get("policy") or {}).get("determining") or []}
    for reason in expect.refused:
        wanted.append(f"refused {reason}")
        ok &= reason in reasons
    for policy in expect.policies:
        wanted.append(f"by {policy}")
        ok &= policy in policies
    if expect.executed is not None:
        wanted.append("executed " + ",".join(sorted(expect.executed)))
        ok &= _executed(decisions) == sorted(expect.executed)
    for capability in expect.never_executed:
        wanted.append(f"never {capability}")
        ok &= capability not in _executed(decisions)
    if expect.recorded is not None:
        wanted.append(f"recorded {expect.recorded}")
        ok &= _recorded(enterprise, decisions) == expect.recorded
    return ok


def _reads_decisions(expect: Expect) -> bool:
    return bool(
        expect.refused
        or expect.policies
        or expect.executed is not None
        or expect.never_executed
        or expect.recorded is not None
        or expect.arms is not None
        or any(_reads_decisions(nested) for nested in expect.arms_expected())
    )


def _decisions(enterprise: Enterprise, finished: Finished) -> list[DecisionRecord]:
    """The gateway decisions of the case's run and of every run it started, however deep."""
    if not finished.run_id:
        return []
    runtime = enterprise.accord.runtime
    return [
        decision
        for run_id in sorted(with_sub_runs(enterprise.accord, [finished.run_id]))
        for decision in runtime.decisions(TENANT, run_id)
    ]


def _executed(decisions: list[DecisionRecord]) -> list[str]:
    return sorted({d.capability for d in decisions if d.outcome == "executed"})


def _output(enterprise: Enterprise, finished: Finished) -> dict[str, Any]:
    if not finished.run_id:
        return {}
    output = enterprise.accord.runtime.get(TENANT, finished.run_id).output
    return dict(output) if isinstance(output, dict) else {}


def _answers(
    enterprise: Enterprise, decisions: list[DecisionRecord], capability: str
) -> list[dict[str, Any]]:
    """What the executed calls of ``capability`` answered: the outputs of their blocks, in
    the order they were decided."""
    views: dict[str, RunView] = {}
    answers = []
    for decision in sorted(decisions, key=lambda d: d.at):
        run_id, block = decision.run_id, decision.block
        if decision.capability != capability or decision.outcome != "executed":
            continue
        if not run_id or not block:
            continue
        view = views.get(run_id) or enterprise.accord.runtime.get(TENANT, run_id)
        views[run_id] = view
        step = view.steps.get(block)
        if isinstance(step, dict):
            answers.append(step)
    return answers


def _arm(enterprise: Enterprise, decisions: list[DecisionRecord]) -> str:
    """The arm the case's runs read first (``holdout`` among them), or ``none``."""
    for answer in _answers(enterprise, decisions, ASSIGN):
        return str(answer.get("variant") or NO_ARM)
    return NO_ARM


def _recorded(enterprise: Enterprise, decisions: list[DecisionRecord]) -> int:
    return sum(1 for a in _answers(enterprise, decisions, RECORD) if a.get("result") == "recorded")
