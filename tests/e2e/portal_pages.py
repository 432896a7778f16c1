"""The customer portal as a customer meets it in the browser: signing in through the pages with
the code from their sandbox inbox, and axe-core's accessibility check of the page on screen."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from accord.simulation import Enterprise

SERIOUS = ("serious", "critical")
CODE = re.compile(r"sign-in code is (\d{6})")


@dataclass(frozen=True, slots=True)
class Violation:
    """One axe-core rule a page breaks, and where."""

    rule: str
    impact: str
    help: str
    nodes: tuple[str, ...]

    def __str__(self) -> str:
        where = "".join(f"\n    {node}" for node in self.nodes)
        return f"{self.rule} ({self.impact}): {self.help}{where}"


def _node(found: Mapping[str, Any]) -> str:
    target = " ".join(str(part) for part in found.get("target", []))
    summary = " ".join(str(found.get("failureSummary") or "").split())
    return f"{target}: {found.get('html', '')} -- {summary}"


def violations(page: Page, *, impacts: tuple[str, ...] = SERIOUS) -> list[Violation]:
    """Run axe-core on the page as it is now; the violations of the given impacts (by default
    serious and critical), each with the nodes that break it."""
    results = Axe().run(page).response
    return [
        Violation(
            rule=str(found["id"]),
            impact=str(found.get("impact")),
            help=str(found.get("help", "")),
            nodes=tuple(_node(node) for node in found.get("nodes", [])),
        )
        for found in results["violations"]
        if found.get("impact") in impacts
    ]


def report(by_page: Mapping[str, list[Violation]]) -> str:
    """Violations by page, one rule and its nodes a paragraph, for an assertion message."""
    return "\n".join(
        f"{name}:\n" + "\n".join(f"  {v}" for v in found)
        for name, found in by_page.items()
        if found
    )


def email_of(enterprise: Enterprise, customer_id: str) -> str:
    """The e-mail address the sandbox CRM holds for a customer."""
    found = httpx.get(f"{enterprise.url('crm')}/customers/{customer_id}", timeout=10)
    found.raise_for_status()
    return str(found.json()["email"])


@dataclass(frozen=True, slots=True)
class Inbox:
    """The sandbox's e-mail outbox, read as the customer reads their mail.

    Mail is sent by runs (the portal's sign-in journey among them), so reading first drives
    the runtime until the runs waiting to send have sent.
    """

    enterprise: Enterprise

    def messages(self, email: str) -> list[dict[str, Any]]:
        """Every message to ``email``, oldest first."""
        found = httpx.get(
            f"{self.enterprise.url('notifications')}/messages",
            params={"recipient": email},
            timeout=10,
        )
        found.raise_for_status()
        messages: list[dict[str, Any]] = found.json()["messages"]
        return messages

    def subjects(self, email: str) -> list[str]:
        return [str(m.get("subject")) for m in self.messages(email)]

    def sign_in_code(self, email: str, *, after: int) -> str:
        """The code of the first sign-in message past the first ``after`` messages."""
        self.enterprise.accord.runtime.drive()
        for message in self.messages(email)[after:]:
            found = CODE.search(str(message.get("body", "")))
            if found:
                return found.group(1)
        raise AssertionError(f"no sign-in code reached {email}: {self.subjects(email)}")


def ask_for_code(page: Page, base: str, email: str) -> None:
    """Give the e-mail address on the sign-in page; ends on the page that asks for the code."""
    page.goto(f"{base}/portal/sign-in")
    page.get_by_label("Your e-mail address").fill(email)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()


def type_code(page: Page, code: str) -> None:
    page.get_by_label("The 6-digit code from the e-mail").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()


def sign_in(page: Page, base: str, email: str, inbox: Inbox) -> None:
    """Sign the customer with ``email`` in through the pages, with the code their inbox got;
    ends on My cases."""
    before = len(inbox.messages(email))
    ask_for_code(page, base, email)
    type_code(page, inbox.sign_in_code(email, after=before))
    expect(page).to_have_url(f"{base}/portal/cases")
    expect(page.get_by_role("heading", name="My cases")).to_be_visible()
