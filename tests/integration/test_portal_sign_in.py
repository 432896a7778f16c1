"""Customer sign-in to the portal over real HTTP, against the real sandbox: a one-time code or
link sent by a governed run, single use, expiring, limited attempts, the same answer for
unknown addresses, and sessions that open the portal only (and staff tokens that do not)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from accord.api import issue_token
from accord.console import web_app
from accord.portal import COOKIE, SIGN_IN_JOURNEY
from accord.simulation import TENANT, Enterprise, open_enterprise
from accord.storage._schema import portal_challenges
from tests.served import serving

CODE = re.compile(r"sign-in code is (\d{6})")
LINK = re.compile(r"(http://\S+/portal/link\?token=\S+)")
CHALLENGE = re.compile(r'name="challenge" value="([^"]+)"')


@dataclass
class Portal:
    enterprise: Enterprise
    base: str
    app: FastAPI

    def email_of(self, customer_id: str) -> str:
        found = httpx.get(f"{self.enterprise.url('crm')}/customers/{customer_id}", timeout=10)
        found.raise_for_status()
        email: str = found.json()["email"]
        return email

    def messages(self, email: str) -> list[dict[str, str]]:
        found = httpx.get(
            f"{self.enterprise.url('notifications')}/messages",
            params={"recipient": email},
            timeout=10,
        )
        found.raise_for_status()
        messages: list[dict[str, str]] = found.json()["messages"]
        return messages

    def ask(self, client: httpx.Client, email: str) -> str:
        """Ask for a code; returns the challenge id of the page that asks for it."""
        page = client.post("/portal/sign-in", data={"email": email})
        assert page.status_code == 200, page.text
        self.enterprise.accord.runtime.drive()
        found = CHALLENGE.search(page.text)
        assert found, page.text
        return found.group(1)

    def code_and_link(self, email: str) -> tuple[str, str]:
        body = self.messages(email)[-1]["body"]
        code, link = CODE.search(body), LINK.search(body)
        assert code and link, body
        return code.group(1), link.group(1)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30)

    def sign_in(self, customer_id: str) -> httpx.Client:
        """A client signed in as ``customer_id`` with the code it was sent."""
        client = self.client()
        email = self.email_of(customer_id)
        challenge = self.ask(client, email)
        code, _ = self.code_and_link(email)
        signed = client.post("/portal/verify", data={"challenge": challenge, "code": code})
        assert signed.status_code == 303, signed.text
        assert COOKIE in signed.cookies
        return client


def portal_world(workdir: Path) -> Iterator[Portal]:
    with open_enterprise(workdir) as enterprise:
        app = web_app(enterprise.accord)
        with serving(app) as base:
            yield Portal(enterprise, base, app)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    yield from portal_world(tmp_path_factory.mktemp("portal"))


def challenges(portal: Portal) -> list[dict[str, object]]:
    with portal.enterprise.accord.db.read() as connection:
        rows = connection.execute(sa.select(portal_challenges)).mappings().all()
    return [dict(row) for row in rows]


def test_a_code_by_e_mail_signs_a_customer_in_through_a_governed_run(portal: Portal) -> None:
    accord = portal.enterprise.accord
    email = portal.email_of("cus_00005")
    client = portal.client()
    challenge = portal.ask(client, email)
    code, _ = portal.code_and_link(email)

    [row] = [r for r in challenges(portal) if r["challenge_id"] == challenge]
    assert code not in str(row["code_hash"]) and row["used_at"] is None
    assert float(str(row["expires_at"])) - float(str(row["created_at"])) == 600
    run = accord.runtime.get(TENANT, str(row["run_id"]))
    assert (run.journey, run.status, run.outcome) == (SIGN_IN_JOURNEY, "completed", "sent")
    decisions = accord.runtime.decisions(TENANT, run.run_id)
    assert [(d.capability, d.outcome, d.purpose) for d in decisions] == [
        ("crm.find_customer", "executed", "dpv:IdentityAuthentication"),
        ("notifications.send_email", "executed", "dpv:IdentityAuthentication"),
    ]

    signed = client.post("/portal/verify", data={"challenge": challenge, "code": code})
    assert signed.status_code == 303 and signed.headers["location"] == "/portal/cases"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/portal" in cookie
    assert client.get("/portal/cases").status_code == 200

    again = portal.client().post("/portal/verify", data={"challenge": challenge, "code": code})
    assert again.status_code == 401 and "already used" in again.text
    assert COOKIE not in again.cookies


def test_the_magic_link_signs_in_once(portal: Portal) -> None:
    email = portal.email_of("cus_00006")
    portal.ask(portal.client(), email)
    _, link = portal.code_and_link(email)
    path = link.split(portal.base.removeprefix("http://").split("/")[0], 1)[1]
    tampered = portal.client().get(path[:-2] + ("AA" if not path.endswith("AA") else "BB"))
    assert tampered.status_code == 401 and "not valid" in tampered.text
    assert COOKIE not in tampered.cookies
    first = portal.client().get(path)
    assert first.status_code == 303 and COOKIE in first.cookies
    second = portal.client().get(path)
    assert second.status_code == 401 and "already used" in second.text


def test_an_unknown_address_gets_the_same_answer_and_no_message(portal: Portal) -> None:
    known = portal.client().post("/portal/sign-in", data={"email": portal.email_of("cus_00007")})
    unknown = portal.client().post("/portal/sign-in", data={"email": "nobody@nowhere.example"})
    assert known.status_code == unknown.status_code == 200
    assert CHALLENGE.sub("", known.text) == CHALLENGE.sub("", unknown.text)
    portal.enterprise.accord.runtime.drive()
    assert portal.messages("nobody@nowhere.example") == []
    challenge = CHALLENGE.search(unknown.text)
    assert challenge
    wrong = portal.client().post(
        "/portal/verify", data={"challenge": challenge.group(1), "code": "123456"}
    )
    assert wrong.status_code == 401 and "not right" in wrong.text


def test_a_malformed_address_is_refused_and_nothing_is_written(portal: Portal) -> None:
    before = len(challenges(portal))
    for bad in ("", "not-an-address", "a@b", "two@@example.com", "x" * 300 + "@example.com"):
        page = portal.client().post("/portal/sign-in", data={"email": bad})
        assert page.status_code == 422, bad
        assert "does not look like an e-mail address" in page.text
    assert len(challenges(portal)) == before


def test_wrong_codes_count_and_five_end_the_challenge(portal: Portal) -> None:
    email = portal.email_of("cus_00008")
    client = portal.client()
    challenge = portal.ask(client, email)
    code, _ = portal.code_and_link(email)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        answer = client.post("/portal/verify", data={"challenge": challenge, "code": wrong})
        assert answer.status_code == 401 and "not right" in answer.text
    last = client.post("/portal/verify", data={"challenge": challenge, "code": code})
    assert last.status_code == 401 and "Too many wrong codes" in last.text
    assert COOKIE not in client.cookies


def test_an_expired_code_is_refused(portal: Portal) -> None:
    email = portal.email_of("cus_00009")
    client = portal.client()
    challenge = portal.ask(client, email)
    code, _ = portal.code_and_link(email)
    portal.enterprise.clock.advance(601)
    late = client.post("/portal/verify", data={"challenge": challenge, "code": code})
    assert late.status_code == 401 and "expired" in late.text
    assert COOKIE not in client.cookies


def test_a_tampered_or_foreign_cookie_opens_nothing(portal: Portal) -> None:
    signed = portal.sign_in("cus_00010")
    cookie = signed.cookies[COOKIE]
    version, body, mac = cookie.split(".")
    forged_body = body[:-1] + ("A" if body[-1] != "A" else "B")
    staff = issue_token(
        portal.enterprise.accord.settings.resolved_keys_dir(),
        subject="cus_00010",
        tenant=TENANT,
        roles=["admin"],
        now=time.time(),
    )
    for value in (f"{version}.{forged_body}.{mac}", f"{version}.{body}.x{mac[1:]}", staff, "junk"):
        client = portal.client()
        client.cookies.set(COOKIE, value, path="/portal")
        page = client.get("/portal/cases")
        assert page.status_code == 303, value
        assert page.headers["location"].startswith("/portal/sign-in")


def test_a_customer_session_opens_neither_the_console_nor_the_api(portal: Portal) -> None:
    cookie = portal.sign_in("cus_00012").cookies[COOKIE]
    api = portal.client().get("/v1/runs", headers={"Authorization": f"Bearer {cookie}"})
    assert api.status_code == 401
    console = portal.client()
    console.cookies.set("accord_session", cookie, path="/console")
    page = console.get("/console/runs")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/sign-in")
    refused = portal.client().post("/console/sign-in", data={"token": cookie})
    assert refused.status_code == 401
