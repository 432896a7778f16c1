"""Confirmations by e-mail and SMS against the real sandbox: one governed message per
confirmation and channel, with a signed link that answers on its own channel only; an answer on
any channel shows on the others; a changed link changes nothing; consent decides a notice as it
decides any message; a failed send is tried again without a second message."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from accord.journeys import load_journey_text
from accord.portal._channels import ANSWER_PATH, ConfirmationNotices
from accord.service import Accord
from accord.simulation import TENANT
from accord.storage._schema import confirmations, decisions, portal_notices
from tests.integration.test_portal_sign_in import Portal, portal_world

LINK = re.compile(r"(http://\S+/portal/answer\?\S+)")
MARKETING = "dpv:DirectMarketing"

SLOT_JOURNEY = """\
journey: delivery_slot
description: The customer confirms a delivery slot by e-mail or text message.
purpose: dpv:CustomerCare
input:
  customer_id: {type: string}
blocks:
  - id: slot
    kind: confirm
    proposal:
      delivery: '"Tuesday between 9:00 and 12:00"'
    channels: [email, sms]
    expires: 1h
    on: {refused: declined, expired: lapsed}
  - id: booked
    kind: end
    outcome: booked
  - id: declined
    kind: end
    outcome: declined
  - id: lapsed
    kind: end
    outcome: lapsed
"""


@dataclass
class World:
    portal: Portal
    notices: ConfirmationNotices

    @property
    def accord(self) -> Accord:
        return self.portal.enterprise.accord

    def customer(self, customer_id: str) -> dict[str, str]:
        found = httpx.get(f"{self.portal.enterprise.url('crm')}/customers/{customer_id}")
        found.raise_for_status()
        customer: dict[str, str] = found.json()
        return customer

    def asked(self, recipient: str) -> list[dict[str, str]]:
        """The confirmation notices sent to an e-mail address or phone number."""
        return [m for m in self.portal.messages(recipient) if "/portal/answer?" in m["body"]]

    def propose(self, customer: str, order: str) -> str:
        """A support run waiting for the customer to confirm a remedy for ``order``."""
        run_id = self.accord.runtime.start(
            TENANT,
            "support_resolution",
            input={
                "customer_id": customer,
                "message": f"please cancel order {order}, I don't need it any more",
                "order_id": order,
            },
            subject=customer,
        ).run_id
        self.accord.runtime.drive()
        assert self.waiting(run_id) == ["confirm:propose"]
        return run_id

    def waiting(self, run_id: str) -> list[str | None]:
        return [p.waiting_for for p in self.accord.runtime.get(TENANT, run_id).positions]

    def confirmation(self, run_id: str) -> dict[str, object]:
        with self.accord.db.read() as connection:
            [row] = connection.execute(
                sa.select(confirmations)
                .where(confirmations.c.run_id == run_id)
                .order_by(confirmations.c.created_at.desc())
                .limit(1)
            ).mappings()
        return dict(row)

    def notice(self, confirmation_id: object, channel: str) -> dict[str, object] | None:
        with self.accord.db.read() as connection:
            row = (
                connection.execute(
                    sa.select(portal_notices).where(
                        portal_notices.c.confirmation_id == confirmation_id,
                        portal_notices.c.channel == channel,
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def link(self, recipient: str, needle: str) -> str:
        """The path and query of the answer link in the last notice mentioning ``needle``."""
        [message, *_] = [m for m in reversed(self.asked(recipient)) if needle in m["body"]]
        found = LINK.search(message["body"])
        assert found, message["body"]
        parts = urlsplit(found.group(1))
        assert f"{parts.scheme}://{parts.netloc}" == self.portal.base
        return f"{parts.path}?{parts.query}"

    def client(self) -> httpx.Client:
        return self.portal.client()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for portal in portal_world(tmp_path_factory.mktemp("portal-channels")):
        accord = portal.enterprise.accord
        accord.runtime.catalog.deploy(
            TENANT, load_journey_text(SLOT_JOURNEY, source_name="<test>"), deployed_by="test"
        )
        yield World(portal, ConfirmationNotices(accord, base_url=portal.base))


def fields_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'type="hidden" name="([a-z]+)" value="([^"]*)"', page))


def answer_by_link(client: httpx.Client, path: str, answer: str) -> httpx.Response:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(ANSWER_PATH, data={**fields_of(page.text), "answer": answer})


def fields_of_link(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


def with_query(path: str, **changes: str) -> str:
    return f"{ANSWER_PATH}?{urlencode({**fields_of_link(path), **changes})}"


def test_a_proposal_goes_out_once_by_e_mail_and_its_link_answers_on_that_channel(
    world: World,
) -> None:
    customer, order = "cus_00013", "#W2443586"
    email = world.customer(customer)["email"]
    run_id = world.propose(customer, order)
    confirmation = world.confirmation(run_id)

    assert world.notices.deliver() >= 1
    assert world.notices.deliver() == 0
    [message] = [m for m in world.asked(email) if order in m["body"]]
    assert "cancel the order and refund every payment" in message["body"]
    assert "You can answer until" in message["body"]
    assert "v1." not in message["body"], "the confirmation token left the server"
    notice = world.notice(confirmation["confirmation_id"], "email")
    assert notice is not None
    assert (notice["status"], notice["reason"], notice["run_id"]) == ("sent", None, run_id)
    with world.accord.db.read() as connection:
        sent = (
            connection.execute(
                sa.select(decisions).where(decisions.c.decision_id == notice["decision_id"])
            )
            .mappings()
            .one()
        )
    assert (sent["capability"], sent["outcome"], sent["purpose"]) == (
        "notifications.send_email",
        "executed",
        "dpv:CustomerCare",
    )
    assert json.loads(sent["record"])["principal"] == {
        "type": "Service",
        "id": "journey/support_resolution",
    }

    client = world.client()
    path = world.link(email, order)
    for _ in range(2):  # a GET never answers: mail scanners open links
        page = client.get(path)
        assert page.status_code == 200
        assert order in page.text and "Confirm" in page.text and "Decline" in page.text
        assert page.headers["cache-control"] == "no-store"
    assert world.confirmation(run_id)["status"] == "pending"

    answered = answer_by_link(client, path, "confirm")
    assert answered.status_code == 303 and answered.headers["location"] == path
    row = world.confirmation(run_id)
    assert (row["status"], row["channel"]) == ("confirmed", "email")
    world.accord.runtime.drive()
    assert world.waiting(run_id) != ["confirm:propose"]
    assert "orders.cancel_pending_order" in [
        d.capability
        for d in world.accord.runtime.decisions(TENANT, run_id)
        if d.outcome == "executed"
    ]

    after = client.get(path)
    assert after.status_code == 200
    assert "You already confirmed this by e-mail" in after.text
    assert 'value="confirm"' not in after.text
    signed_in = world.portal.sign_in(customer)
    assert run_id not in signed_in.get("/portal/confirmations").text
    again = client.post(ANSWER_PATH, data={**fields_of(page.text), "answer": "refuse"})
    assert again.status_code == 303
    assert world.confirmation(run_id)["status"] == "confirmed"


def test_an_answer_in_the_portal_shows_on_the_e_mail_link(world: World) -> None:
    customer, order = "cus_00012", "#W5493256"
    email = world.customer(customer)["email"]
    run_id = world.propose(customer, order)
    world.notices.deliver()
    path = world.link(email, order)

    signed_in = world.portal.sign_in(customer)
    page = signed_in.get("/portal/confirmations").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    declined = signed_in.post(
        "/portal/confirmations/answer",
        data={"csrf": csrf, "run_id": run_id, "block": "propose", "answer": "refuse"},
    )
    assert declined.status_code == 303

    link = world.client().get(path)
    assert link.status_code == 200
    assert "You already declined this in your account" in link.text
    assert 'value="confirm"' not in link.text
    late = world.client().post(ANSWER_PATH, data={**fields_of_link(path), "answer": "confirm"})
    assert late.status_code == 303
    row = world.confirmation(run_id)
    assert (row["status"], row["channel"]) == ("refused", "portal")
    world.accord.runtime.drive()
    assert world.accord.runtime.get(TENANT, run_id).outcome == "declined_by_customer"


def test_a_changed_link_is_refused_and_changes_nothing(world: World) -> None:
    customer, order = "cus_00012", "#W5493256"
    email = world.customer(customer)["email"]
    run_id = world.propose(customer, order)
    world.notices.deliver()
    path = world.link(email, order)
    mac = fields_of_link(path)["mac"]
    other = start_slot(world, "cus_00023")
    changed = [
        with_query(path, channel="sms"),
        with_query(path, channel="portal"),
        with_query(path, mac=("A" if mac[0] != "A" else "B") + mac[1:]),
        with_query(path, mac=""),
        with_query(path, confirmation=str(world.confirmation(other)["confirmation_id"])),
        with_query(path, mac=mac + "\u00e9"),
    ]
    client = world.client()
    for tampered in changed:
        page = client.get(tampered)
        assert page.status_code == 400, tampered
        assert "This link does not work" in page.text and "Nothing was changed" in page.text
        posted = client.post(ANSWER_PATH, data={**fields_of_link(tampered), "answer": "confirm"})
        assert posted.status_code == 400
    world.accord.runtime.drive()
    for waiting, block in ((run_id, "propose"), (other, "slot")):
        assert world.confirmation(waiting)["status"] == "pending"
        assert world.waiting(waiting) == [f"confirm:{block}"]
    assert client.get(path).status_code == 200


def test_a_notice_after_consent_is_withdrawn_is_refused_and_never_sent(world: World) -> None:
    customer = "cus_00002"
    accord = world.accord
    email = world.customer(customer)["email"]
    accord.consent.grant(
        TENANT,
        customer,
        purpose=MARKETING,
        categories=["pd:EmailAddress"],
        channel="web",
        notice_version="2026-10",
        actor=customer,
    )
    run_id = accord.runtime.start(
        TENANT,
        "retention_offer",
        input={"customer_id": customer, "reason": "it has become too expensive"},
        subject=customer,
    ).run_id
    accord.runtime.drive()
    assert world.waiting(run_id) == ["confirm:accept"]
    offers = world.portal.messages(email)
    accord.consent.withdraw_purpose(TENANT, customer, MARKETING, actor=customer, reason="test")

    world.notices.deliver()
    confirmation = world.confirmation(run_id)["confirmation_id"]
    notice = world.notice(confirmation, "email")
    assert notice is not None
    assert notice["status"] == "refused"
    assert notice["reason"] in ("consent_withdrawn", "consent_missing")
    assert world.portal.messages(email) == offers
    with accord.db.read() as connection:
        refused = (
            connection.execute(
                sa.select(decisions).where(decisions.c.decision_id == notice["decision_id"])
            )
            .mappings()
            .one()
        )
    assert (refused["outcome"], refused["purpose"]) == ("refused", MARKETING)

    world.notices.deliver()
    assert world.notice(confirmation, "email") == notice, "a refused notice is tried again"
    assert world.portal.messages(email) == offers


def set_faults(world: World, *rules: dict[str, object]) -> None:
    url = f"{world.portal.enterprise.url('notifications')}/_sandbox/faults"
    httpx.put(url, json=list(rules), timeout=10).raise_for_status()


def start_slot(world: World, customer: str) -> str:
    run_id = world.accord.runtime.start(
        TENANT, "delivery_slot", input={"customer_id": customer}, subject=customer
    ).run_id
    world.accord.runtime.drive()
    assert world.waiting(run_id) == ["confirm:slot"]
    return run_id


def test_sms_is_tried_again_after_a_failure_and_its_link_answers_on_sms(world: World) -> None:
    customer = "cus_00020"
    address = world.customer(customer)
    run_id = start_slot(world, customer)
    confirmation = world.confirmation(run_id)["confirmation_id"]
    set_faults(world, {"operation": "send_sms", "error_rate": 1.0})
    try:
        world.notices.deliver()
    finally:
        set_faults(world)
    assert (world.notice(confirmation, "email") or {})["status"] == "sent"
    failed = world.notice(confirmation, "sms")
    assert failed is not None and failed["status"] == "failed" and failed["reason"]
    assert world.asked(address["phone"]) == []

    assert world.notices.deliver() == 1
    assert (world.notice(confirmation, "sms") or {})["status"] == "sent"
    [sms] = world.asked(address["phone"])
    assert "Tuesday between 9:00 and 12:00" in sms["body"] and len(sms["body"]) < 400
    assert len(world.asked(address["email"])) == 1

    client = world.client()
    sms_link = world.link(address["phone"], "Tuesday")
    assert answer_by_link(client, sms_link, "confirm").status_code == 303
    row = world.confirmation(run_id)
    assert (row["status"], row["channel"]) == ("confirmed", "sms")
    world.accord.runtime.drive()
    assert world.accord.runtime.get(TENANT, run_id).outcome == "booked"
    email_link = client.get(world.link(address["email"], "Tuesday"))
    assert "You already confirmed this by text message" in email_link.text


def test_a_send_whose_answer_was_lost_is_not_sent_twice(world: World) -> None:
    customer = "cus_00021"
    email = world.customer(customer)["email"]
    run_id = start_slot(world, customer)
    confirmation = world.confirmation(run_id)["confirmation_id"]
    set_faults(world, {"operation": "send_email", "drop_rate": 1.0, "when": "after"})
    try:
        world.notices.deliver()
    finally:
        set_faults(world)
    assert (world.notice(confirmation, "email") or {})["status"] == "failed"
    assert len(world.asked(email)) == 1, "the sandbox kept the message whose answer was lost"

    world.notices.deliver()
    assert (world.notice(confirmation, "email") or {})["status"] == "sent"
    assert len(world.asked(email)) == 1


def test_an_expired_proposal_says_so(world: World) -> None:
    customer = "cus_00022"
    email = world.customer(customer)["email"]
    run_id = start_slot(world, customer)
    world.notices.deliver()
    path = world.link(email, "Tuesday")
    world.portal.enterprise.clock.advance(2 * 3600)
    client = world.client()
    page = client.get(path)
    assert page.status_code == 200 and "This request expired on" in page.text
    assert 'value="confirm"' not in page.text
    late = client.post(ANSWER_PATH, data={**fields_of_link(path), "answer": "confirm"})
    assert late.status_code == 409 and "expired" in late.text
    world.accord.runtime.drive()
    assert world.accord.runtime.get(TENANT, run_id).outcome == "lapsed"
    assert "This request expired on" in client.get(path).text
