"""The portal's support chat in Debian's Chromium, served over loopback in front of the real
sandbox with a worker running beside the server as in `accord serve`: a message the model is
unsure of reaches a colleague, who answers it from the staff console, and the answer shows in
the conversation; consent is asked for in the conversation and agreeing records a grant on the
chat channel; and every chat page passes axe-core and reflows to 320 CSS px. Screenshots go to
``.artifacts/screenshots`` (``ACCORD_SCREENSHOTS``)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from accord.api import issue_token
from accord.service import Accord, Message
from accord.simulation import TENANT, Enterprise, open_enterprise
from tests.e2e.browser import chromium, screenshot_path, served
from tests.e2e.portal_pages import (
    CODE,
    Inbox,
    Violation,
    ask_for_code,
    email_of,
    report,
    type_code,
    violations,
)
from tests.integration.test_portal_chat import eventually

HISTORY = "dpv:ServicePersonalisation"
HISTORY_TITLE = "Looking through your orders in the support chat"
UNSURE = "asdf qwerty zxcv"
PASSED_ON = "passed your message to a colleague"
WITH_A_COLLEAGUE = "A colleague is looking at your message"
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

    def transcript(self, customer_id: str, conversation_id: str) -> list[Message]:
        found = self.accord.conversations.get(TENANT, customer_id, conversation_id)
        return self.accord.conversations.transcript(TENANT, found)

    def run_of(self, customer_id: str, conversation_id: str) -> str:
        run_id = self.accord.conversations.get(TENANT, customer_id, conversation_id).run_id
        assert run_id is not None
        return str(run_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        open_enterprise(tmp_path_factory.mktemp("portal-chat-browser")) as enterprise,
        served(enterprise.accord) as base,
        chromium() as browser,
    ):
        stop = threading.Event()
        worker = threading.Thread(
            target=enterprise.accord.runtime.worker().run, kwargs={"stop": stop}, daemon=True
        )
        worker.start()
        try:
            yield World(enterprise, base, browser, Inbox(enterprise))
        finally:
            stop.set()
            worker.join(timeout=30)


@pytest.fixture
def page(world: World) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = world.browser.new_context(viewport=WIDE)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, world: World, customer_id: str) -> None:
    """Sign the customer in through the pages. The worker thread sends the code, so the inbox
    is read until it arrives (rather than driving the runtime here); ends on My cases."""
    email = email_of(world.enterprise, customer_id)
    before = len(world.inbox.messages(email))
    ask_for_code(page, world.base, email)

    def code() -> str | None:
        for message in world.inbox.messages(email)[before:]:
            found = CODE.search(str(message.get("body", "")))
            if found:
                return found.group(1)
        return None

    type_code(page, eventually(code, f"the sign-in code for {customer_id}"))
    expect(page).to_have_url(f"{world.base}/portal/cases")
    expect(page.get_by_role("heading", name="My cases")).to_be_visible()


def open_conversation(page: Page, world: World) -> str:
    """From any portal page: Support chat in the nav, then Start a conversation; returns the
    new conversation's id once its page shows the greeting."""
    page.get_by_role("navigation", name="Portal").get_by_role("link", name="Support chat").click()
    expect(page).to_have_url(f"{world.base}/portal/chat")
    page.get_by_role("button", name="Start a conversation").click()
    expect(page).to_have_url(re.compile(re.escape(f"{world.base}/portal/chat/") + r"[^/#]+"))
    conversation = page.url.split("#")[0].rsplit("/", 1)[-1]
    shown(page, "how can we help?")
    return conversation


def shown(page: Page, text: str, *, seconds: float = 30.0) -> None:
    """Reload the page until ``text`` is on it: the run answers in the worker thread, and a
    page is rendered once, so a reply that comes later shows on the next load."""
    deadline = time.monotonic() + seconds
    while not page.get_by_role("main").get_by_text(text).count():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {text!r} on {page.url}")
        time.sleep(0.1)
        page.reload()
    expect(page.get_by_role("main").get_by_text(text).first).to_be_visible()


def say(page: Page, text: str) -> None:
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()


def messages(page: Page, by: str | None = None) -> Locator:
    """The conversation's messages, or those whose author is shown as ``by``."""
    found = page.get_by_role("list", name="Messages").get_by_role("listitem")
    return found if by is None else found.filter(has=page.get_by_text(by, exact=True))


def staff_token(accord: Accord, person: str, name: str) -> str:
    return issue_token(
        accord.settings.resolved_keys_dir(),
        subject=person,
        tenant=TENANT,
        roles=["reviewer"],
        now=time.time(),
        name=name,
    )


def test_a_message_the_model_is_unsure_of_is_answered_by_a_colleague_from_the_console(
    world: World, page: Page
) -> None:
    customer, reason = "cus_00013", "Hello, I am Ada from support: which order do you mean?"
    accord = world.accord
    sign_in(page, world, customer)
    conversation = open_conversation(page, world)
    expect(messages(page).first).to_contain_text("Hello Aarav Nguyen")

    say(page, UNSURE)
    run_id = world.run_of(customer, conversation)
    [item] = eventually(
        lambda: [i for i in accord.review_items(queue="support") if i.run_id == run_id],
        "the review item",
    )
    assert (item.kind, item.queue, item.status) == ("escalation", "support", "open")
    assert UNSURE in str(item.packet["recommendation"]["rationale"]), item.packet
    shown(page, PASSED_ON)
    expect(messages(page, "You")).to_contain_text(UNSURE)
    expect(page.get_by_role("status").filter(has_text=WITH_A_COLLEAGUE)).to_be_visible()
    page.screenshot(path=screenshot_path("portal-chat-with-a-colleague"), full_page=True)

    # a member of the support team signs in to the console and answers in the item's form
    staff = world.browser.new_context(viewport=WIDE)
    try:
        console = staff.new_page()
        console.goto(f"{world.base}/console/sign-in")
        console.get_by_label("Access token").fill(staff_token(accord, "ada.support", "Ada"))
        console.get_by_role("button", name="Sign in").click()
        expect(console).to_have_url(f"{world.base}/console/reviews")
        console.locator(f'a[href="/console/reviews/{item.item_id}"]').click()
        expect(console.locator("#item-status")).to_contain_text("open")
        expect(console.get_by_role("main")).to_contain_text(UNSURE)
        console.get_by_role("button", name="Claim this item").click()
        expect(console.get_by_role("status")).to_contain_text("claimed")
        console.get_by_label("approve", exact=True).check()
        console.get_by_label("Reason").fill(reason)
        console.screenshot(path=screenshot_path("console-chat-handoff"), full_page=True)
        console.get_by_role("button", name="Submit decision").click()
        expect(console.get_by_role("status")).to_contain_text("approve")
    finally:
        staff.close()

    decided = accord.review_item(item.item_id)
    assert (decided.status, decided.outcome, decided.decided_by) == (
        "decided",
        "accepted",
        "ada.support",
    ), decided
    eventually(
        lambda: [m for m in world.transcript(customer, conversation) if m.author == "staff"],
        "the colleague's reply",
    )
    page.reload()
    expect(messages(page, "Our team")).to_contain_text(reason)
    expect(page.get_by_role("status").filter(has_text=WITH_A_COLLEAGUE)).to_have_count(0)
    page.screenshot(path=screenshot_path("portal-chat-colleague-answered"), full_page=True)


def test_consent_asked_for_in_the_conversation_is_recorded_on_the_chat_channel(
    world: World, page: Page
) -> None:
    customer = "cus_00015"  # one delivered order, #W9552705
    accord = world.accord
    assert not [g for g in accord.consent.grants(TENANT, customer) if g.purpose == HISTORY]
    sign_in(page, world, customer)
    open_conversation(page, world)

    say(page, "where is my order?")
    shown(page, HISTORY_TITLE)
    question = page.get_by_role("region", name=f"May we? {HISTORY_TITLE}")
    expect(question.get_by_role("button", name="I agree")).to_be_visible()
    expect(question.get_by_role("button", name="No, thank you")).to_be_visible()
    expect(messages(page).last).to_contain_text("never for marketing")
    page.screenshot(path=screenshot_path("portal-chat-consent-question"), full_page=True)

    question.get_by_role("button", name="I agree").click()
    [grant] = eventually(
        lambda: [g for g in accord.consent.grants(TENANT, customer) if g.purpose == HISTORY],
        "the grant",
    )
    assert (grant.channel, grant.notice_version, grant.withdrawn_at) == ("chat", "2026-12", None)
    assert grant.categories == ("pd:Purchase",)
    shown(page, "Your latest order, #W9552705, is delivered.")
    expect(messages(page, "You").last).to_contain_text("I agree")
    expect(page.get_by_role("region", name=f"May we? {HISTORY_TITLE}")).to_have_count(0)
    page.screenshot(path=screenshot_path("portal-chat-order-status"), full_page=True)


def test_every_chat_page_passes_axe_and_reflows_to_320_px(world: World, page: Page) -> None:
    customer = "cus_00012"  # one pending order, #W5493256
    base = world.base
    found: dict[str, list[Violation]] = {}
    too_wide: dict[str, int] = {}

    def check(name: str) -> None:
        found[name] = violations(page)
        page.screenshot(path=screenshot_path(f"portal-chat-a11y-{name}"), full_page=True)
        # reflow (WCAG 1.4.10): at 320 CSS px nothing needs scrolling sideways
        page.set_viewport_size({"width": NARROW, "height": 900})
        width = int(page.evaluate("document.documentElement.scrollWidth"))
        if width > NARROW:
            too_wide[name] = width
            page.screenshot(path=screenshot_path(f"portal-chat-a11y-{name}-narrow"), full_page=True)
        page.set_viewport_size(WIDE)

    sign_in(page, world, customer)
    page.get_by_role("link", name="Support chat").click()
    expect(page.get_by_role("button", name="Start a conversation")).to_be_visible()
    check("list-empty")

    conversation = open_conversation(page, world)
    check("greeting")

    say(page, "please cancel my order")
    shown(page, HISTORY_TITLE)
    check("consent-question")

    page.get_by_role("button", name="I agree").click()
    shown(page, "I am looking at your order #W5493256")
    shown(page, "Waiting for your answer:")
    proposal = page.get_by_role("region", name="Waiting for your answer")
    expect(proposal.get_by_role("button", name="Confirm")).to_be_visible()
    check("pending-confirmation")

    proposal.get_by_role("button", name="Decline").click()
    expect(page).to_have_url(f"{base}/portal/chat/{conversation}#latest")
    shown(page, "Nothing was changed.")
    check("declined")

    say(page, UNSURE)
    shown(page, PASSED_ON)
    expect(page.get_by_role("status").filter(has_text=WITH_A_COLLEAGUE)).to_be_visible()
    check("with-a-colleague")

    say(page, "   ")
    expect(page.get_by_role("alert")).to_contain_text("Write a message first")
    check("refused-message")

    page.goto(f"{base}/portal/chat")
    expect(page.locator(f'a[href="/portal/chat/{conversation}"]')).to_be_visible()
    check("list")

    assert not any(found.values()), "serious or critical axe violations:\n" + report(found)
    assert too_wide == {}, f"pages wider than {NARROW} px at a {NARROW} px viewport: {too_wide}"
