"""The staff console in Debian's Chromium: a reviewer approves an item with an edit and reads
the run's explanation; an auditor verifies an inclusion proof in the page. Screenshots go to
``.artifacts/screenshots`` (``ACCORD_SCREENSHOTS``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from accord.api import issue_token
from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord
from tests.e2e.browser import chromium, screenshot_path, served

T = TenantId("default")

CREDIT = """
journey: credit
purpose: dpv:ServiceProvision
input: {credit: number}
blocks:
  - id: sign_off
    kind: approve
    role: supervisor
    queue: goodwill
    title: Goodwill credit
    edit_schema: {credit: number}
    recommend:
      decision: '"approve"'
      value: {credit: input.credit}
      confidence: 0.55
      band: '"escalate"'
      rationale: '"long-standing customer, first complaint"'
      source: {kind: '"rule"', id: '"goodwill-table"', version: '"3"'}
  - {id: done, kind: end, outcome: credited, output: {credit: steps.sign_off.value.credit}}
"""


TRIAGE = """
journey: triage
input: {score: number}
blocks:
  - id: route
    kind: choice
    choices:
      - {when: "input.score < 0.5", next: ask}
    default: done
  - {id: ask, kind: escalate, queue: supervisors, reason: '"low score"', next: done}
  - {id: done, kind: end, outcome: resolved}
"""


def token(accord: Accord, role: str, subject: str) -> str:
    return issue_token(
        accord.settings.resolved_keys_dir(),
        subject=subject,
        tenant=T,
        roles=[role],
        now=time.time(),
        name=subject.capitalize(),
    )


def sign_in(page: Page, base: str, value: str) -> None:
    page.goto(f"{base}/console/sign-in")
    page.get_by_label("Access token").fill(value)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reviewer_approves_with_an_edit_and_an_auditor_verifies_the_proof(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CREDIT))
    accord.put_person("ann", roles=["supervisor"], name="Ann", actor="test")
    run_id = accord.runtime.start(T, "credit", input={"credit": 25}, subject="cus_7").run_id
    accord.runtime.drive()

    with served(accord) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, token(accord, "reviewer", "ann"))
        expect(page).to_have_url(f"{base}/console/reviews")
        page.get_by_role("link", name="Goodwill credit").click()
        expect(page.get_by_role("heading", name="Recommendation")).to_be_visible()
        expect(page.get_by_text("long-standing customer, first complaint")).to_be_visible()
        page.get_by_role("button", name="Claim this item").click()
        expect(page.get_by_role("status")).to_contain_text("claimed")

        page.get_by_label("approve with an edit").check()
        page.get_by_label("Edited value (JSON)").fill('{"credit": 40}')
        page.get_by_label("Reason").fill("forty covers the delivery fee too")
        page.screenshot(path=screenshot_path("reviewer-deciding"), full_page=True)
        page.get_by_role("button", name="Submit decision").click()
        expect(page.get_by_role("status")).to_contain_text("edit")

        accord.runtime.drive()
        page.get_by_role("link", name="credit v1").click()
        expect(page.locator("#run-status")).to_contain_text("completed")
        expect(page.locator("#run-status")).to_contain_text("credited")
        explanation = page.locator("#explanation")
        expect(explanation).to_contain_text("ann")
        expect(explanation).to_contain_text("forty covers the delivery fee too")
        page.screenshot(path=screenshot_path("run-timeline"), full_page=True)
        assert accord.runtime.get(T, run_id).output == {"credit": 40}

        auditor = browser.new_page(viewport={"width": 1280, "height": 900})
        auditor.goto(f"{base}/console/sign-in?token={token(accord, 'auditor', 'eve')}")
        accord.tree_head(T, fresh=True)
        auditor.goto(f"{base}/console/audit?run={run_id}")
        auditor.get_by_role("button", name="Verify inclusion").first.click()
        proof = auditor.locator("output.proof").first
        expect(proof).to_contain_text("✔ included")
        auditor.screenshot(path=screenshot_path("auditor-inclusion-proof"), full_page=True)

        # the auditor's role opens no form that writes
        auditor.goto(f"{base}/console/controls")
        expect(auditor.get_by_role("button", name="Set")).to_have_count(0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_console_asks_for_sign_in_and_refuses_a_forged_token(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    accord.runtime.catalog.deploy(T, load_journey_text(CREDIT))
    accord.runtime.catalog.deploy(T, load_journey_text(TRIAGE))
    for n in range(12):
        accord.runtime.start(T, "triage", input={"score": n / 12}, subject=f"cus_{n}")
    for n in range(3):
        accord.runtime.start(T, "credit", input={"credit": 10 + n}, subject=f"cus_{n}")
    accord.runtime.drive()
    with served(accord) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/console/runs")
        expect(page).to_have_url(
            f"{base}/console/sign-in?next=/console/runs&why=sign%20in%20to%20continue"
        )
        sign_in(page, base, token(accord, "operator", "olaf")[:-6] + "AAAAAA")
        expect(page.get_by_role("alert")).to_contain_text("refused")
        sign_in(page, base, token(accord, "operator", "olaf"))
        expect(page).to_have_url(f"{base}/console/dashboard")
        expect(page.get_by_role("img", name="Runs by outcome, last 24 h")).to_be_visible()
        expect(page.get_by_text("6 open in supervisors")).to_be_visible()
        page.get_by_text("Show the figures").nth(1).click()
        expect(page.get_by_role("cell", name="50.0%")).to_be_visible()
        page.screenshot(path=screenshot_path("operator-dashboard"), full_page=True)
        page.reload()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
