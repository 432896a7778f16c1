"""Every portal route, for a customer signed in as A, refuses B's ids (404, the same answer as
an id that does not exist) and shows none of B's data; a route missing from the matrix fails
the suite, so a new route cannot ship untested."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from accord.consent import Grant
from accord.portal._channels import ANSWER_PATH, LinkSigner
from accord.simulation import TENANT
from accord.storage._schema import confirmations
from tests.integration.test_portal_sign_in import Portal, portal_world

A, B = "cus_00013", "cus_00014"
OTHER = "cus_00012"  # has a pending order to be asked about, as A has
MARKETING = "dpv:DirectMarketing"


@dataclass
class World:
    portal: Portal
    a: httpx.Client
    a_run: str
    b_run: str
    a_grant: str
    b_grant: str
    a_proposal: str
    other_proposal: str
    a_conversation: str
    b_conversation: str

    def grants(self, subject: str) -> list[Grant]:
        return self.portal.enterprise.accord.consent.grants(TENANT, subject)

    def active(self, subject: str) -> list[str]:
        return [g.grant_id for g in self.grants(subject) if g.withdrawn_at is None]

    def csrf(self) -> str:
        page = self.a.get("/portal/consents")
        marker = 'name="csrf" value="'
        return page.text.split(marker, 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for portal in portal_world(tmp_path_factory.mktemp("portal-access")):
        accord = portal.enterprise.accord
        runs, grants = {}, {}
        for subject in (A, B):
            grants[subject] = accord.consent.grant(
                TENANT,
                subject,
                purpose=MARKETING,
                categories=["pd:EmailAddress"],
                channel="web",
                notice_version="2026-10",
                actor=subject,
            ).grant_id
            runs[subject] = accord.runtime.start(
                TENANT,
                "retention_offer",
                input={"customer_id": subject, "reason": "I am moving abroad"},
                subject=subject,
            ).run_id
        proposals = {
            customer: accord.runtime.start(
                TENANT,
                "support_resolution",
                input={
                    "customer_id": customer,
                    "message": f"please cancel order {order}, I don't need it any more",
                    "order_id": order,
                },
                subject=customer,
            ).run_id
            for customer, order in ((A, "#W2443586"), (OTHER, "#W5493256"))
        }
        chats = {
            subject: accord.conversations.open(TENANT, subject, journey="support_chat")
            for subject in (A, B)
        }
        accord.runtime.drive()
        yield World(
            portal,
            portal.sign_in(A),
            runs[A],
            runs[B],
            grants[A],
            grants[B],
            proposals[A],
            proposals[OTHER],
            chats[A].conversation_id,
            chats[B].conversation_id,
        )


def own_and_others_case(w: World) -> None:
    assert w.a.get(f"/portal/cases/{w.a_run}").status_code == 200
    theirs = w.a.get(f"/portal/cases/{w.b_run}")
    missing = w.a.get("/portal/cases/run_does_not_exist")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text


def own_and_others_receipt(w: World) -> None:
    mine = w.a.get(f"/portal/consents/receipts/{w.a_grant}")
    assert mine.status_code == 200 and mine.json()["piiPrincipalId"] == A
    theirs = w.a.get(f"/portal/consents/receipts/{w.b_grant}")
    missing = w.a.get("/portal/consents/receipts/grant_does_not_exist")
    assert theirs.status_code == missing.status_code == 404
    assert B not in theirs.text and theirs.text == missing.text


def case_list(w: World) -> None:
    page = w.a.get("/portal/cases")
    assert page.status_code == 200
    assert w.a_run in page.text and w.b_run not in page.text and B not in page.text


def consent_page(w: World) -> None:
    page = w.a.get("/portal/consents")
    assert page.status_code == 200
    assert w.a_grant in page.text and w.b_grant not in page.text and B not in page.text


def withdraw_names_no_one_else(w: World) -> None:
    before = w.active(B)
    answer = w.a.post(
        "/portal/consents/withdraw",
        data={"csrf": w.csrf(), "purpose": MARKETING, "subject": B, "grant_id": w.b_grant},
    )
    assert answer.status_code == 303
    assert w.active(B) == before and w.a_grant not in w.active(A)


def grant_names_no_one_else(w: World) -> None:
    accord = w.portal.enterprise.accord
    accord.consent.withdraw_purpose(TENANT, A, MARKETING, actor=A, reason="to grant anew")
    before = [g.grant_id for g in w.grants(B)]
    answer = w.a.post(
        "/portal/consents/grant", data={"csrf": w.csrf(), "purpose": MARKETING, "subject": B}
    )
    assert answer.status_code == 303
    assert [g.grant_id for g in w.grants(B)] == before
    assert [g.channel for g in w.grants(A)][-1] == "portal"


def waiting_at(w: World, run_id: str) -> list[str | None]:
    view = w.portal.enterprise.accord.runtime.get(TENANT, run_id)
    return [p.waiting_for for p in view.positions]


def confirmation_list(w: World) -> None:
    assert waiting_at(w, w.a_proposal) == ["confirm:propose"]
    assert waiting_at(w, w.other_proposal) == ["confirm:propose"]
    page = w.a.get("/portal/confirmations")
    assert page.status_code == 200
    assert w.a_proposal in page.text and "#W2443586" in page.text
    assert w.other_proposal not in page.text and "#W5493256" not in page.text
    assert "v1." not in page.text, "a confirmation token left the server"


def answer_only_ones_own(w: World) -> None:
    csrf = w.csrf()
    theirs = w.a.post(
        "/portal/confirmations/answer",
        data={"csrf": csrf, "run_id": w.other_proposal, "block": "propose", "answer": "confirm"},
    )
    assert theirs.status_code == 404
    assert waiting_at(w, w.other_proposal) == ["confirm:propose"]
    mine = w.a.post(
        "/portal/confirmations/answer",
        data={"csrf": csrf, "run_id": w.a_proposal, "block": "propose", "answer": "refuse"},
    )
    assert mine.status_code == 303, mine.text
    accord = w.portal.enterprise.accord
    accord.runtime.drive()
    assert accord.runtime.get(TENANT, w.a_proposal).outcome == "declined_by_customer"


def home(w: World) -> None:
    answer = w.a.get("/portal")
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/cases"


def sign_in_pages(w: World) -> None:
    assert w.a.get("/portal/sign-in").status_code == 200


def asking_for_bs_code_signs_no_one_in(w: World) -> None:
    client = w.portal.client()
    challenge = w.portal.ask(client, w.portal.email_of(B))
    assert "accord_portal" not in client.cookies
    wrong = client.post("/portal/verify", data={"challenge": challenge, "code": "12345x"})
    assert wrong.status_code == 401
    link = client.get(f"/portal/link?token={challenge}.not-the-nonce")
    assert link.status_code == 401 and "accord_portal" not in client.cookies


def sign_out(w: World) -> None:
    client = w.portal.sign_in(A)
    out = client.post("/portal/sign-out")
    assert out.status_code == 303
    assert client.get("/portal/cases").status_code == 303


def transcript(w: World, subject: str, conversation_id: str) -> list[tuple[str, str | None]]:
    conversations = w.portal.enterprise.accord.conversations
    found = conversations.get(TENANT, subject, conversation_id)
    return [(m.kind, m.text) for m in conversations.transcript(TENANT, found)]


def chat_list(w: World) -> None:
    page = w.a.get("/portal/chat")
    assert page.status_code == 200
    assert w.a_conversation in page.text and w.b_conversation not in page.text


def own_and_others_conversation(w: World) -> None:
    mine = w.a.get(f"/portal/chat/{w.a_conversation}")
    assert mine.status_code == 200 and "Hello" in mine.text
    theirs = w.a.get(f"/portal/chat/{w.b_conversation}")
    missing = w.a.get("/portal/chat/conv_does_not_exist")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text and "Aarav Sanchez" not in theirs.text


def new_conversation_is_ones_own(w: World) -> None:
    conversations = w.portal.enterprise.accord.conversations
    before = [c.conversation_id for c in conversations.of_subject(TENANT, B)]
    opened = w.a.post("/portal/chat/new", data={"csrf": w.csrf(), "subject": B})
    assert opened.status_code == 303
    assert [c.conversation_id for c in conversations.of_subject(TENANT, B)] == before
    mine = str(opened.headers["location"]).removeprefix("/portal/chat/")
    assert conversations.get(TENANT, A, mine).subject_id == A


def writing_to_anothers_conversation(w: World) -> None:
    before = transcript(w, B, w.b_conversation)
    answer = w.a.post(
        f"/portal/chat/{w.b_conversation}/messages", data={"csrf": w.csrf(), "text": "hello"}
    )
    assert answer.status_code == 404
    assert transcript(w, B, w.b_conversation) == before


def consenting_in_anothers_conversation(w: World) -> None:
    before = transcript(w, B, w.b_conversation)
    answer = w.a.post(
        f"/portal/chat/{w.b_conversation}/consent",
        data={"csrf": w.csrf(), "purpose": "dpv:ServicePersonalisation", "answer": "agree"},
    )
    assert answer.status_code == 404
    assert transcript(w, B, w.b_conversation) == before
    assert not [g for g in w.grants(B) if g.purpose == "dpv:ServicePersonalisation"]


Check = Callable[[World], None]

MATRIX: dict[tuple[str, str], Check] = {
    ("GET", "/portal"): home,
    ("GET", "/portal/sign-in"): sign_in_pages,
    ("POST", "/portal/sign-in"): asking_for_bs_code_signs_no_one_in,
    ("POST", "/portal/verify"): asking_for_bs_code_signs_no_one_in,
    ("GET", "/portal/link"): asking_for_bs_code_signs_no_one_in,
    ("POST", "/portal/sign-out"): sign_out,
    ("GET", "/portal/cases"): case_list,
    ("GET", "/portal/cases/{run_id}"): own_and_others_case,
    ("GET", "/portal/confirmations"): confirmation_list,
    ("POST", "/portal/confirmations/answer"): answer_only_ones_own,
    ("GET", "/portal/consents"): consent_page,
    ("GET", "/portal/consents/receipts/{grant_id}"): own_and_others_receipt,
    ("POST", "/portal/consents/grant"): grant_names_no_one_else,
    ("POST", "/portal/consents/withdraw"): withdraw_names_no_one_else,
    ("GET", "/portal/chat"): chat_list,
    ("GET", "/portal/chat/{conversation_id}"): own_and_others_conversation,
    ("POST", "/portal/chat/new"): new_conversation_is_ones_own,
    ("POST", "/portal/chat/{conversation_id}/messages"): writing_to_anothers_conversation,
    ("POST", "/portal/chat/{conversation_id}/consent"): consenting_in_anothers_conversation,
}

PUBLIC = {
    ("GET", "/portal/sign-in"),
    ("POST", "/portal/sign-in"),
    ("POST", "/portal/verify"),
    ("GET", "/portal/link"),
    ("POST", "/portal/sign-out"),
}


def answer_links(w: World) -> tuple[str, str]:
    """A's e-mail link to their proposal (as the notice carries it, whether or not A has
    answered already), and the id of OTHER's waiting confirmation."""
    accord = w.portal.enterprise.accord
    with accord.db.read() as connection:
        mine, other = (
            connection.execute(
                sa.select(confirmations.c.confirmation_id).where(confirmations.c.run_id == run_id)
            ).scalar_one()
            for run_id in (w.a_proposal, w.other_proposal)
        )
    links = LinkSigner(accord.ledger.keyring.master)
    return f"{ANSWER_PATH}?{links.query(TENANT, mine, 'email')}", other


def confirmation_status(w: World, confirmation_id: str) -> str:
    with w.portal.enterprise.accord.db.read() as connection:
        status: str = connection.execute(
            sa.select(confirmations.c.status).where(
                confirmations.c.confirmation_id == confirmation_id
            )
        ).scalar_one()
    return status


def answer_link_shows_only_its_own(w: World) -> None:
    link, other = answer_links(w)
    stranger = w.portal.client()
    mine = stranger.get(link)
    assert mine.status_code == 200 and "#W2443586" in mine.text
    assert "#W5493256" not in mine.text and OTHER not in mine.text
    theirs = stranger.get(re.sub(r"confirmation=[^&]+", f"confirmation={other}", link))
    assert theirs.status_code == 400 and "#W5493256" not in theirs.text


def answer_link_answers_only_its_own(w: World) -> None:
    link, other = answer_links(w)
    fields = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    mine = fields["confirmation"]
    before = confirmation_status(w, mine)
    stranger = w.portal.client()
    for changed in ({"confirmation": other}, {"channel": "sms"}, {"channel": "portal"}):
        answer = stranger.post("/portal/answer", data={**fields, **changed, "answer": "confirm"})
        assert answer.status_code == 400
    assert confirmation_status(w, other) == "pending"
    assert waiting_at(w, w.other_proposal) == ["confirm:propose"]
    assert confirmation_status(w, mine) == before


# the e-mail and SMS link pages need no session: the signed link is the credential
MATRIX[("GET", "/portal/answer")] = answer_link_shows_only_its_own
MATRIX[("POST", "/portal/answer")] = answer_link_answers_only_its_own
PUBLIC |= {("GET", "/portal/answer"), ("POST", "/portal/answer")}


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every route of an application, looking inside the routers it includes."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def portal_routes(world: World) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in api_routes(world.portal.app.routes)
        if route.path.startswith("/portal")
        for method in route.methods or ()
    }


def test_every_portal_route_is_in_the_matrix(world: World) -> None:
    assert portal_routes(world) == set(MATRIX)


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_customer_reaches_only_their_own_subject(world: World, route: tuple[str, str]) -> None:
    MATRIX[route](world)


@pytest.mark.parametrize("route", sorted(set(MATRIX) - PUBLIC), ids=lambda r: f"{r[0]} {r[1]}")
def test_every_private_route_sends_a_stranger_to_sign_in(
    world: World, route: tuple[str, str]
) -> None:
    method, path = route
    path = path.replace("{run_id}", world.b_run).replace("{grant_id}", world.b_grant)
    stranger = world.portal.client()
    answer = stranger.request(
        method, path, data={"purpose": MARKETING} if method == "POST" else None
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/sign-in")
    assert world.b_run not in answer.text and world.b_grant not in answer.text
