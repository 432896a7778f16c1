"""The customer portal in Debian's Chromium, served over loopback in front of the real sandbox:
a customer signs in with the code from their inbox, withdraws marketing consent by a click and
a running retention offer sends no follow-up; another confirms a refund and billing pays it;
and on every page a customer sees axe-core finds nothing serious and nothing scrolls sideways
at 320 CSS px. Screenshots go to ``.artifacts/screenshots`` (``ACCORD_SCREENSHOTS``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from accord.service import Accord
from accord.simulation import TENANT, Case, Driver, Enterprise, open_enterprise
from tests.e2e.browser import chromium, screenshot_path, served
from tests.e2e.portal_pages import (
    Inbox,
    Violation,
    ask_for_code,
    email_of,
    report,
    sign_in,
    type_code,
    violations,
)

MARKETING = "dpv:DirectMarketing"
OFFERS = "Offers and news by e-mail"
REFUNDED = "Refund approved, money back in 3\u20135 days"
WIDE: ViewportSize = {"width": 1280, "height": 900}
NARROW = 320


@dataclass
class World:
    enterprise: Enterprise
    base: str
    browser: Browser
    inbox: Inbox

    @property
    def accord(self) -> Accord:
        return self.enterprise.accord

    def email(self, customer_id: str) -> str:
        return email_of(self.enterprise, customer_id)

    def waiting(self, run_id: str) -> list[tuple[str, str | None]]:
        view = self.accord.runtime.get(TENANT, run_id)
        return [(p.block, p.waiting_for) for p in view.positions]

    def billing(self, path: str) -> httpx.Response:
        answer = httpx.get(f"{self.enterprise.url('billing')}{path}", timeout=10)
        answer.raise_for_status()
        return answer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        open_enterprise(tmp_path_factory.mktemp("portal-browser")) as enterprise,
        served(enterprise.accord) as base,
        chromium() as browser,
    ):
        yield World(enterprise, base, browser, Inbox(enterprise))


@pytest.fixture
def page(world: World) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = world.browser.new_context(viewport=WIDE)
    try:
        yield context.new_page()
    finally:
        context.close()


def support_request(world: World, customer_id: str, order_id: str, message: str) -> str:
    """A support_resolution run for the customer, driven until it waits for their answer."""
    run_id = world.accord.runtime.start(
        TENANT,
        "support_resolution",
        input={"customer_id": customer_id, "message": message, "order_id": order_id},
        subject=customer_id,
    ).run_id
    world.accord.runtime.drive()
    assert world.waiting(run_id) == [("propose", "confirm:propose")]
    return run_id


def test_consent_withdrawn_by_a_click_stops_a_running_retention_offer(
    world: World, page: Page
) -> None:
    customer = "cus_00002"
    accord, email = world.accord, world.email(customer)
    sign_in(page, world.base, email, world.inbox)

    page.get_by_role("link", name="My consents").click()
    offers = page.get_by_role("region", name=OFFERS)
    offers.get_by_role("button", name="I agree").click()
    expect(page.get_by_role("status")).to_contain_text("your consent is recorded")
    [grant] = accord.consent.grants(TENANT, customer)
    assert (grant.purpose, grant.channel, grant.withdrawn_at) == (MARKETING, "portal", None)

    with Driver(world.enterprise) as driver:
        run_id = driver.start(
            Case(
                name="portal browser consent",
                journey="retention_offer",
                input={"customer_id": customer, "reason": "it has become too expensive"},
                subject=customer,
            )
        )
        assert run_id is not None
        driver.settle(seconds=60)
        assert world.waiting(run_id) == [("settle_in", "timer")]
        assert "An offer before you go" in world.inbox.subjects(email)

        page.get_by_role("link", name="My cases").click()
        expect(page.get_by_role("listitem").filter(has_text="Your plan")).to_contain_text(
            "Discount applied to your plan"
        )
        page.get_by_role("link", name="My consents").click()
        offers.get_by_role("button", name="Withdraw my consent").click()
        expect(page).to_have_url(f"{world.base}/portal/consents?done=withdrawn")
        expect(page.get_by_role("status")).to_contain_text("Your consent is withdrawn")
        expect(offers.get_by_role("button", name="I agree")).to_be_visible()
        expect(page.get_by_role("cell", name="You withdrew")).to_be_visible()
        page.screenshot(path=screenshot_path("portal-consent-withdrawn"), full_page=True)
        [grant] = accord.consent.grants(TENANT, customer)
        assert grant.withdrawn_at is not None

        world.enterprise.clock.advance(31 * 86400)
        driver.settle(seconds=60)

    view = accord.runtime.get(TENANT, run_id)
    assert (view.status, view.outcome) == ("completed", "retained_without_follow_up")
    assert view.output["reason"] == "consent_withdrawn", view.output
    [follow_up] = [d for d in accord.runtime.decisions(TENANT, run_id) if d.block == "follow_up"]
    assert (follow_up.outcome, follow_up.reason) == ("refused", "consent_withdrawn")
    subjects = world.inbox.subjects(email)
    assert "An offer before you go" in subjects
    assert "How is your plan going?" not in subjects, subjects

    # a month on, the session has ended: the customer signs in again to read the case
    sign_in(page, world.base, email, world.inbox)
    page.get_by_role("link", name="Your plan").click()
    expect(page).to_have_url(f"{world.base}/portal/cases/{run_id}")
    expect(page.get_by_role("heading", name="Your plan", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(
        "We did not go ahead: to send you an e-mail, because you withdrew your consent"
    )
    page.screenshot(path=screenshot_path("portal-retention-case"), full_page=True)


def test_a_customer_confirms_a_refund_in_the_portal_and_billing_pays_it(
    world: World, page: Page
) -> None:
    customer, order = "cus_00008", "#W5497052"
    accord = world.accord
    run_id = support_request(world, customer, order, f"the item in order {order} arrived broken")
    account = world.billing(f"/accounts/search?customer_id={customer}").json()["account_id"]
    refunds = f"/accounts/{account}/refunds"
    assert [r for r in world.billing(refunds).json()["refunds"] if r["order_id"] == order] == []

    sign_in(page, world.base, world.email(customer), world.inbox)
    page.get_by_role("link", name="Waiting for your answer").click()
    expect(page).to_have_url(f"{world.base}/portal/confirmations")
    proposal = page.get_by_role("listitem").filter(has_text=order)
    expect(proposal).to_contain_text("refund the first item to the original payment method")
    expect(proposal).to_contain_text("46.0")
    page.screenshot(path=screenshot_path("portal-refund-proposal"), full_page=True)
    proposal.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(f"{world.base}/portal/confirmations?done=confirmed")
    expect(page.get_by_role("status")).to_contain_text("we go ahead as you confirmed")

    accord.runtime.drive()
    view = accord.runtime.get(TENANT, run_id)
    assert (view.status, view.outcome) == ("completed", "resolved"), view
    [refund_run] = [
        v
        for v in accord.runtime.list_runs(TENANT, subject=customer, limit=100)
        if v.parent_run_id == run_id
    ]
    assert (refund_run.journey, refund_run.outcome) == ("refund_request", "refunded")
    issued = [d for d in accord.runtime.decisions(TENANT, refund_run.run_id)]
    assert [d.outcome for d in issued if d.capability == "billing.issue_refund"] == ["executed"]
    refund = world.billing(f"/refunds/{refund_run.output['refund_id']}").json()
    assert (refund["order_id"], refund["amount"], refund["status"]) == (order, 46.0, "issued")
    assert [r["refund_id"] for r in world.billing(refunds).json()["refunds"]] == [
        refund["refund_id"]
    ]

    page.reload()
    expect(page.get_by_text("Nothing is waiting for your answer.")).to_be_visible()
    page.get_by_role("link", name="My cases").click()
    expect(page.get_by_role("listitem").filter(has_text="Refund request")).to_contain_text(REFUNDED)
    expect(page.get_by_role("listitem").filter(has_text="Your question")).to_contain_text(
        "Resolved"
    )
    page.get_by_role("link", name="Refund request").click()
    expect(page).to_have_url(f"{world.base}/portal/cases/{refund_run.run_id}")
    main = page.get_by_role("main")
    expect(main).to_contain_text(REFUNDED)
    expect(main).to_contain_text("We went ahead: to pay your refund")
    page.screenshot(path=screenshot_path("portal-refund-case"), full_page=True)


def test_the_accessibility_check_reports_what_a_page_breaks(page: Page) -> None:
    page.set_content(
        "<!doctype html><html><head><title>Broken</title></head><body><main>"
        '<img src="/missing.png"><button></button>'
        '<p style="color:#bbb;background:#fff">faint words</p></main></body></html>'
    )
    found = violations(page)
    assert {v.rule for v in found} >= {"image-alt", "button-name", "color-contrast"}, found
    assert all(v.impact in ("serious", "critical") and v.nodes for v in found)
    assert "image-alt (critical)" in report({"broken": found})


def test_every_page_a_customer_sees_passes_axe_and_reflows_to_320_px(
    world: World, page: Page
) -> None:
    customer = "cus_00001"
    accord, email, base = world.accord, world.email(customer), world.base
    refund = accord.runtime.start(
        TENANT,
        "refund_request",
        input={"customer_id": customer, "order_id": "#W4316152", "amount": 20.0},
        subject=customer,
    ).run_id
    accord.runtime.drive()
    assert accord.runtime.get(TENANT, refund).outcome == "refunded"
    support_request(
        world, customer, "#W9300146", "please cancel order #W9300146, I changed my mind"
    )

    found: dict[str, list[Violation]] = {}
    too_wide: dict[str, int] = {}

    def check(name: str) -> None:
        found[name] = violations(page)
        page.screenshot(path=screenshot_path(f"portal-a11y-{name}"), full_page=True)
        # reflow (WCAG 1.4.10): at 320 CSS px nothing needs scrolling sideways
        page.set_viewport_size({"width": NARROW, "height": 900})
        width = int(page.evaluate("document.documentElement.scrollWidth"))
        if width > NARROW:
            too_wide[name] = width
            page.screenshot(path=screenshot_path(f"portal-a11y-{name}-narrow"), full_page=True)
        page.set_viewport_size(WIDE)

    page.goto(f"{base}/portal/cases")
    expect(page).to_have_url(f"{base}/portal/sign-in?why=Sign%20in%20to%20continue.")
    expect(page.get_by_role("alert")).to_contain_text("Sign in to continue")
    check("sign-in")
    page.get_by_label("Your e-mail address").fill("a@b")
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("alert")).to_contain_text("does not look like an e-mail address")
    check("sign-in-malformed-address")

    before = len(world.inbox.messages(email))
    ask_for_code(page, base, email)
    check("verify")
    code = world.inbox.sign_in_code(email, after=before)
    type_code(page, "000000" if code != "000000" else "111111")
    expect(page.get_by_role("alert")).to_contain_text("not right")
    check("verify-wrong-code")
    type_code(page, code)
    expect(page).to_have_url(f"{base}/portal/cases")
    check("cases")

    page.get_by_role("link", name="Refund request").click()
    expect(page.get_by_role("main")).to_contain_text(REFUNDED)
    check("case")

    page.get_by_role("link", name="My consents").click()
    check("consents")
    page.get_by_role("region", name=OFFERS).get_by_role("button", name="I agree").click()
    expect(page.get_by_role("status")).to_contain_text("your consent is recorded")
    expect(page.get_by_role("link", name="Download receipt")).to_be_visible()
    check("consents-agreed")

    page.get_by_role("link", name="Waiting for your answer").click()
    proposal = page.get_by_role("listitem").filter(has_text="#W9300146")
    expect(proposal.get_by_role("button", name="Decline")).to_be_visible()
    check("confirmations")
    proposal.get_by_role("button", name="Decline").click()
    expect(page.get_by_role("status")).to_contain_text("we will not do it")
    accord.runtime.drive()
    page.reload()
    expect(page.get_by_text("Nothing is waiting for your answer.")).to_be_visible()
    check("confirmations-answered")

    page.goto(f"{base}/portal/cases/run_does_not_exist")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    check("not-found")

    assert not any(found.values()), "serious or critical axe violations:\n" + report(found)
    assert too_wide == {}, f"pages wider than {NARROW} px at a {NARROW} px viewport: {too_wide}"
