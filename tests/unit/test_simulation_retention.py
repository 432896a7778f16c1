"""The customers' response to a retention offer, and how scenario files use it and the
experiments: acceptance rises with the percent, a person who weighs an offer needs a draw, and
a scenario's experiments and arm expectations are checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.errors import InputError
from accord.simulation import RetentionResponse, find_manifest, load_manifest, load_scenario

MANIFEST = load_manifest(find_manifest())
DESIGNS = find_manifest().parent / "experiments"
RETENTION = (
    "    journey: retention_offer\n"
    "    subject: cus_00002\n"
    "    input: {customer_id: cus_00002, reason: the price went up twice this year}\n"
)


def test_acceptance_rises_with_the_percent_and_a_draw_decides() -> None:
    response = RetentionResponse()
    rates = [response.acceptance(p) for p in (10.0, 15.0, 20.0, 25.0, 30.0)]
    assert rates == sorted(rates) and rates[2] == 0.5
    assert [round(r, 2) for r in rates] == [0.12, 0.27, 0.5, 0.73, 0.88]
    # the same person, with the same draw, stays for 25% and not for 20%
    assert not response.accepts(20.0, draw=0.6) and response.accepts(25.0, draw=0.6)
    steep = RetentionResponse(slope=5.0)
    assert (steep.acceptance(-1000.0), steep.acceptance(1000.0)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="slope above 0"):
        RetentionResponse(slope=0.0)


def scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(InputError) as raised:
        load_scenario(path, manifest=MANIFEST)
    return raised.value.message


def test_a_scenario_reads_its_experiments_and_arm_expectations(tmp_path: Path) -> None:
    (tmp_path / "design.yaml").write_text((DESIGNS / "retention-offer.yaml").read_text())
    path = scenario(
        tmp_path,
        "scenario: arms\nexperiments: [design.yaml]\ncases:\n"
        f"  - name: one\n{RETENTION}"
        "    persona: {confirm: weigh, draw: 0.25}\n"
        "    expect:\n"
        "      recorded: 2\n"
        "      arms: {usual: {output: {percent: 20.0}}, generous: {outcome: retained}}\n",
    )
    loaded = load_scenario(path, manifest=MANIFEST)
    assert [d.experiment for d in loaded.experiments] == ["retention-offer"]
    [case] = loaded.spec.cases
    assert case.persona.draw == 0.25 and case.expect.recorded == 2
    assert case.expect.arms is not None and set(case.expect.arms) == {"usual", "generous"}


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (
            f"cases:\n  - name: one\n{RETENTION}    persona: {{confirm: weigh}}\n"
            "    expect: {status: completed}\n",
            "cases[0].persona: Value error, a person who weighs an offer (confirm: weigh) "
            "needs their own draw",
        ),
        (
            f"cases:\n  - name: one\n{RETENTION}    persona: {{confirm: weigh, draw: 1.5}}\n"
            "    expect: {status: completed}\n",
            "cases[0].persona.draw: Input should be less than 1",
        ),
        (
            f"cases:\n  - name: one\n{RETENTION}"
            "    expect: {arms: {usual: {arms: {generous: {}}}}}\n",
            "cases[0].expect.arms: Value error, the expectations of arm 'usual' name arms again",
        ),
        ("experiments: [missing.yaml]\n", "experiments[0]: "),
    ],
)
def test_scenario_mistakes_about_experiments_are_located(
    tmp_path: Path, lines: str, says: str
) -> None:
    message = refused(scenario(tmp_path, f"scenario: s\n{lines}"))
    assert says in message, message


def test_a_design_with_a_mistake_is_refused_with_its_file(tmp_path: Path) -> None:
    design = tmp_path / "design.yaml"
    design.write_text(
        (DESIGNS / "retention-offer.yaml").read_text().replace("control: usual", "control: x")
    )
    message = refused(scenario(tmp_path, "scenario: s\nexperiments: [design.yaml]\n"))
    assert str(design) in message and "control 'x' is not one of the variants" in message
