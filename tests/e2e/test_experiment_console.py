"""The experiment pages of the staff console in Debian's Chromium: an author reads the verdict
and the always-valid intervals of an experiment with recorded outcomes and ships the better
variant with a reason; a supervisor reads the same page without a form to ship, and a post
made anyway is refused. Tenants never see each other's experiments. Screenshots go to
``.artifacts/screenshots`` (``ACCORD_SCREENSHOTS``)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from accord.api import issue_token
from accord.console import COOKIE, csrf_token
from accord.core import TenantId
from accord.experiments import parse_experiment
from accord.service import Accord
from tests.e2e.browser import chromium, screenshot_path, served
from tests.integration.test_experiment_api import DESIGN, NAME, seed_outcomes

T, OTHER = TenantId("default"), TenantId("other")
REASON = "generous keeps far more customers; the discount stays inside the guardrail"


def token(accord: Accord, role: str, subject: str, tenant: str = T) -> str:
    return issue_token(
        accord.settings.resolved_keys_dir(),
        subject=subject,
        tenant=tenant,
        roles=[role],
        now=time.time(),
        name=subject.capitalize(),
    )


def sign_in(page: Page, base: str, value: str) -> None:
    page.goto(f"{base}/console/sign-in")
    page.get_by_label("Access token").fill(value)
    page.get_by_role("button", name="Sign in").click()


def changes(accord: Accord) -> list[dict[str, object]]:
    return [e.body for e in accord.ledger.entries(T, kinds=["experiment.change"])]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_author_ships_the_better_variant_and_a_supervisor_may_only_read(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    accord.experiments.create(T, parse_experiment(DESIGN), actor="tests")
    seed_outcomes(accord, T, NAME, subjects=300, seed=5)
    assert accord.experiments.report(T, NAME).verdict == "ship generous"
    supervisor_token = token(accord, "supervisor", "sue")

    with served(accord) as base, chromium() as browser:
        supervisor = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(supervisor, base, supervisor_token)
        supervisor.get_by_role("link", name="Experiments").click()
        expect(supervisor).to_have_url(f"{base}/console/experiments")
        row = supervisor.get_by_role("row").filter(has_text=NAME)
        expect(row).to_contain_text("ship generous")
        expect(row).to_contain_text("usual (control), generous")
        row.get_by_role("link", name=NAME).click()
        expect(supervisor.locator("#verdict")).to_have_text("ship generous")
        expect(supervisor.get_by_role("button", name="Ship variant")).to_have_count(0)
        expect(supervisor.get_by_role("button", name="Stop experiment")).to_have_count(0)
        # the form is not shown, and a post made anyway is refused and changes nothing
        refused = supervisor.request.post(
            f"{base}/console/experiments/{NAME}/ship",
            form={
                "csrf": csrf_token(supervisor_token),
                "variant": "generous",
                "reason": "supervisors may not",
            },
            max_redirects=0,
        )
        assert refused.status == 403
        assert "experiments.ship" in refused.text()
        assert accord.experiments.report(T, NAME).status == "running"

        author = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(author, base, token(accord, "author", "ann"))
        # an author's roles open no dashboard: the console starts at the experiments
        expect(author).to_have_url(f"{base}/console/experiments")
        author.get_by_role("link", name=NAME).click()
        expect(author.get_by_role("heading", name=f"Experiment {NAME}")).to_be_visible()
        expect(author.locator("#verdict")).to_have_text("ship generous")
        expect(author.locator("#reasons")).to_contain_text("generous is better on retained")

        primary = author.get_by_role("table", name="retained: each variant against the control")
        generous = primary.get_by_role("row").filter(has_text="generous")
        expect(generous).to_contain_text("better")
        expect(generous.locator("td.ci-text")).to_have_text(re.compile(r"^\+[0-9.]+ to \+[0-9.]+$"))
        expect(
            generous.get_by_role("img", name=re.compile("generous against usual: .*excludes zero"))
        ).to_be_visible()
        guardrail = author.get_by_role("table", name="discount: each variant against the control")
        expect(guardrail.get_by_role("img", name=re.compile("tolerance \\+15"))).to_be_visible()
        expect(author.get_by_label("Variant to ship")).to_have_value("generous")
        author.screenshot(path=screenshot_path("experiment-report"), full_page=True)

        author.get_by_label("Reason for shipping").fill(REASON)
        author.get_by_role("button", name="Ship variant").click()
        expect(author.get_by_role("status")).to_contain_text("shipped generous")
        status = author.locator("#experiment-status")
        expect(status).to_contain_text("shipped: generous for everyone new, by ann")
        expect(status).to_contain_text(REASON)
        expect(author.get_by_role("button", name="Ship variant")).to_have_count(0)
        author.screenshot(path=screenshot_path("experiment-shipped"), full_page=True)

        supervisor.reload()
        expect(supervisor.locator("#experiment-status")).to_contain_text("shipped")
        supervisor.goto(f"{base}/console/experiments")
        expect(supervisor.get_by_role("row").filter(has_text=NAME)).to_contain_text(
            "shipped generous"
        )

    report = accord.experiments.report(T, NAME)
    assert report.status == "shipped"
    assert report.decision == {
        "status": "shipped",
        "variant": "generous",
        "by": "ann",
        "reason": REASON,
    }
    [shipped] = [c for c in changes(accord) if c["change"] == "shipped"]
    assert (shipped["actor"], shipped["reason"]) == ("ann", REASON)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_experiment_pages_keep_tenants_apart_and_forms_need_their_token(
    make_accord: Callable[..., Accord],
) -> None:
    accord = make_accord()
    accord.experiments.create(T, parse_experiment(DESIGN), actor="tests")
    seed_outcomes(accord, T, NAME, subjects=40)
    with served(accord) as base:
        theirs = httpx.Client(base_url=base, timeout=30)
        theirs.post("/console/sign-in", data={"token": token(accord, "admin", "bob", OTHER)})
        listed = theirs.get("/console/experiments")
        assert listed.status_code == 200 and NAME not in listed.text
        missing = theirs.get(f"/console/experiments/{NAME}")
        assert missing.status_code == 404
        assert "a generous offer" not in missing.text
        stop = theirs.post(
            f"/console/experiments/{NAME}/stop",
            data={"csrf": csrf_token(theirs.cookies[COOKIE]), "reason": "not ours"},
        )
        assert stop.status_code == 422

        ours = httpx.Client(base_url=base, timeout=30)
        ours.post("/console/sign-in", data={"token": token(accord, "operator", "olga")})
        forged = ours.post(
            f"/console/experiments/{NAME}/stop", data={"csrf": "0" * 32, "reason": "forged"}
        )
        assert forged.status_code == 422 and "did not come from this console" in forged.text
        blank = ours.post(
            f"/console/experiments/{NAME}/stop",
            data={"csrf": csrf_token(ours.cookies[COOKIE]), "reason": "  "},
        )
        assert blank.status_code == 422 and "needs a reason" in blank.text
        assert accord.experiments.report(T, NAME).status == "running"
        assert [c["change"] for c in changes(accord)] == ["created"]

        stopped = ours.post(
            f"/console/experiments/{NAME}/stop",
            data={"csrf": csrf_token(ours.cookies[COOKIE]), "reason": "the offer ended"},
        )
        assert stopped.status_code == 303
        assert stopped.headers["location"] == f"/console/experiments/{NAME}?done=stopped"
        page = ours.get(stopped.headers["location"]).text
        assert "stopped: the control for everyone new, by olga (the offer ended)" in page
        assert "Stop experiment" not in page
        theirs.close()
        ours.close()
    assert [c["change"] for c in changes(accord)] == ["created", "stopped"]
