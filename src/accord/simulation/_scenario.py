"""Simulation scenarios: cases with expected outcomes, run against a fresh sample enterprise.

A scenario file names cases (a journey, an input, a subject, how the person behaves, what staff
do, and what must come of it), optionally a synthetic crowd from the demo's mix, adversarial
messages (the project's own, plus a data set's read by path when it is there) and connector
faults. :func:`run_scenario` runs it on a fresh database and sandbox and compares every case
with its expectation; a report lists each mismatch.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accord.errors import InputError
from accord.simulation._driver import (
    Answer,
    Case,
    Driver,
    Finished,
    OtpBehaviour,
    Persona,
    StaffAction,
    refusals_by_reason,
)
from accord.simulation._enterprise import TENANT, Enterprise, open_enterprise
from accord.simulation._mix import demo_mix


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expect(_Strict):
    status: str | None = None
    outcome: str | None = None
    outcome_in: list[str] | None = None
    refused: list[str] = Field(default_factory=list, description="refusal reasons that occur")
    policies: list[str] = Field(default_factory=list, description="policies that refused")
    executed: list[str] | None = Field(
        default=None, description="exactly these capabilities were executed (any order)"
    )
    never_executed: list[str] = Field(default_factory=list)


class PersonaSpec(_Strict):
    otp: OtpBehaviour = "right"
    document_number: str = "X12345678"
    document_type: str = "passport"
    confirm: Answer = "confirm"
    consents: list[str] = Field(default_factory=list)
    withdraw_at: str | None = None


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
    rules: list[dict[str, Any]]


class Synthetic(_Strict):
    people: int = Field(ge=1, le=500)
    seed: int = 1
    journeys: list[str] | None = None
    expect_status_in: list[str] = Field(default_factory=lambda: ["completed", "waiting"])


class Attacks(_Strict):
    journey: str = "support_resolution"
    customer: str = "cus_00001"
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
    faults: list[Fault] = Field(default_factory=list)
    cases: list[CaseSpec] = Field(default_factory=list)
    synthetic: Synthetic | None = None
    attacks: Attacks | None = None


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


def load_scenario(path: Path) -> ScenarioSpec:
    """Read a scenario file; a mistake names the file, the field and what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the scenario ({exc})") from exc
    try:
        return ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise InputError(
            f"{path}: invalid scenario: {problems}",
            hint="see docs/simulation.md for the scenario format",
        ) from exc


def _persona(spec: PersonaSpec) -> Persona:
    return Persona(
        otp=spec.otp,
        document_number=spec.document_number,
        document_type=spec.document_type,
        confirm=spec.confirm,
        consents=tuple(spec.consents),
        withdraw_at=spec.withdraw_at,
    )


def _attack_messages(spec: Attacks, base: Path) -> list[str]:
    messages = list(spec.messages)
    if spec.dataset:
        path = (base / spec.dataset).resolve()
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines()[: spec.limit]:
                if not line.strip():
                    continue
                record = json.loads(line)
                text = record.get("text") or record.get("attack") or record.get("prompt")
                if isinstance(text, str) and text.strip():
                    messages.append(text[:2000])
    return messages


def run_scenario(path: Path, *, workdir: Path | None = None) -> ScenarioReport:
    """Run one scenario on a fresh sample enterprise and compare what happened."""
    spec = load_scenario(path)
    report = ScenarioReport(spec.scenario, path)
    with tempfile.TemporaryDirectory(prefix="accord-sim-") as scratch:
        root = workdir or Path(scratch)
        with open_enterprise(root, region=spec.region) as enterprise:
            _apply_faults(enterprise, spec.faults)
            driver = Driver(enterprise, advance_time=True)
            try:
                expectations = _start_all(driver, enterprise, spec, path.parent)
                driver.settle(seconds=180)
                results = {f.case.name: f for f in driver.results()}
                for name, (journey, expect) in expectations.items():
                    report.checks.append(
                        _check(enterprise, results.get(name), name, journey, expect)
                    )
                report.refusals = refusals_by_reason(
                    enterprise.accord, [f.run_id for f in results.values() if f.run_id]
                )
                report.actions = driver.actions
            finally:
                driver.close()
    return report


def _apply_faults(enterprise: Enterprise, faults: list[Fault]) -> None:
    for fault in faults:
        if fault.service not in enterprise.sandbox.urls:
            raise InputError(
                f"faults: unknown service {fault.service!r}",
                hint="one of " + ", ".join(enterprise.sandbox.urls),
            )
        httpx.put(
            f"{enterprise.url(fault.service)}/_sandbox/faults", json=fault.rules, timeout=10
        ).raise_for_status()


def _start_all(
    driver: Driver, enterprise: Enterprise, spec: ScenarioSpec, base: Path
) -> dict[str, tuple[str, Expect]]:
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
            expected = Expect(status=None, outcome_in=None)
            expectations[generated.name] = (
                generated.journey,
                expected.model_copy(update={"status": "|".join(spec.synthetic.expect_status_in)}),
            )
    if spec.attacks is not None:
        for index, message in enumerate(_attack_messages(spec.attacks, base)):
            name = f"attack-{index:03d}"
            driver.start(
                Case(
                    name,
                    spec.attacks.journey,
                    {"customer_id": spec.attacks.customer, "message": message},
                    spec.attacks.customer,
                    staff="leave",
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
    wanted_parts = []
    ok = True
    if expect.status is not None:
        wanted_parts.append(expect.status)
        ok &= finished.status in expect.status.split("|")
    if expect.outcome is not None:
        wanted_parts.append(expect.outcome)
        ok &= finished.outcome == expect.outcome
    if expect.outcome_in is not None:
        wanted_parts.append("one of " + "/".join(expect.outcome_in))
        ok &= finished.outcome in expect.outcome_in
    if finished.run_id and (
        expect.refused or expect.policies or expect.executed is not None or expect.never_executed
    ):
        decisions = enterprise.accord.runtime.decisions(TENANT, finished.run_id)
        reasons = {d.reason or "" for d in decisions if d.outcome == "refused"}
        policies = {
            p
            for d in decisions
            if d.outcome == "refused"
            for p in (d.record.get("policy") or {}).get("determining") or []
        }
        executed = sorted({d.capability for d in decisions if d.outcome == "executed"})
        for reason in expect.refused:
            wanted_parts.append(f"refused {reason}")
            ok &= reason in reasons
        for policy in expect.policies:
            wanted_parts.append(f"by {policy}")
            ok &= policy in policies
        if expect.executed is not None:
            wanted_parts.append("executed " + ",".join(sorted(expect.executed)))
            ok &= executed == sorted(expect.executed)
        for capability in expect.never_executed:
            wanted_parts.append(f"never {capability}")
            ok &= capability not in executed
        refused_text = ",".join(sorted(reasons)) or "-"
        by_text = ",".join(sorted(policies)) or "-"
        got += f" [refused: {refused_text}; by {by_text}]"
    if finished.error and finished.status == "refused_at_start":
        got += f" ({finished.error})"
    return Check(name, journey, bool(ok), got, ", ".join(wanted_parts) or "anything")
