"""The portal's pages against the real sandbox: the consent centre's words from the purpose
catalogue, grants and withdrawals that the next gateway call of a running journey obeys,
receipts, forms without their token, and cases in plain language without internal ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.errors import ConfigurationError
from accord.portal import load_purposes
from accord.simulation import TENANT, Case, Driver
from tests.integration.test_portal_sign_in import Portal, portal_world

MARKETING = "dpv:DirectMarketing"
CUSTOMER = "cus_00002"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    yield from portal_world(tmp_path_factory.mktemp("portal-pages"))


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_consent_centre_speaks_from_the_catalogue(portal: Portal) -> None:
    client = portal.sign_in("cus_00015")
    page = client.get("/portal/consents")
    assert page.status_code == 200
    assert "Offers and news by e-mail" in page.text and "I agree" in page.text
    assert "Handling your refunds and claims" in page.text
    assert "rests on our contract with you" in page.text
    assert "Looking through your orders in the support chat" in page.text
    assert "Offers chosen for you" in page.text
    hidden = (
        'value="dpv:DirectMarketing"',
        'value="dpv:ServicePersonalisation"',
        'value="dpv:ProvidePersonalisedRecommendations"',
    )
    shown = page.text
    for value in hidden:
        shown = shown.replace(value, "")
    assert "dpv:" not in shown
    # a button for each purpose that rests on consent; the others rest on another basis
    assert page.text.count('action="/portal/consents/grant"') == 3


def test_a_form_without_its_token_changes_nothing(portal: Portal) -> None:
    client = portal.sign_in("cus_00016")
    accord = portal.enterprise.accord
    for data in ({"purpose": MARKETING}, {"purpose": MARKETING, "csrf": "0" * 32}):
        answer = client.post("/portal/consents/grant", data=data)
        assert answer.status_code == 403 and "nothing was changed" in answer.text
    assert accord.consent.grants(TENANT, "cus_00016") == []


def test_a_purpose_on_another_basis_has_nothing_to_grant(portal: Portal) -> None:
    client = portal.sign_in("cus_00017")
    csrf = csrf_of(client.get("/portal/consents").text)
    for purpose in ("dpv:CustomerClaimsManagement", "dpv:NoSuchPurpose"):
        answer = client.post("/portal/consents/grant", data={"csrf": csrf, "purpose": purpose})
        assert answer.status_code == 422
    assert "our contract with you" in answer.text or "not a purpose" in answer.text
    assert portal.enterprise.accord.consent.grants(TENANT, "cus_00017") == []


def test_consent_given_and_withdrawn_in_the_portal_steers_a_running_journey(
    portal: Portal,
) -> None:
    accord = portal.enterprise.accord
    client = portal.sign_in(CUSTOMER)
    csrf = csrf_of(client.get("/portal/consents").text)
    granted = client.post("/portal/consents/grant", data={"csrf": csrf, "purpose": MARKETING})
    assert granted.status_code == 303
    [grant] = accord.consent.grants(TENANT, CUSTOMER)
    assert (grant.channel, grant.notice_version) == ("portal", "2026-10")

    with Driver(portal.enterprise) as driver:
        run_id = driver.start(
            Case(
                name="portal consent",
                journey="retention_offer",
                input={"customer_id": CUSTOMER, "reason": "it has become too expensive"},
                subject=CUSTOMER,
            )
        )
        assert run_id is not None
        driver.settle(seconds=60)
        view = accord.runtime.get(TENANT, run_id)
        assert [p.block for p in view.positions] == ["settle_in"], view
        outreach = [d for d in accord.runtime.decisions(TENANT, run_id) if d.block == "outreach"]
        assert [d.outcome for d in outreach] == ["executed"]

        cases = client.get("/portal/cases").text
        assert "Discount applied to your plan" in cases and run_id in cases

        withdrawn = client.post(
            "/portal/consents/withdraw", data={"csrf": csrf, "purpose": MARKETING}
        )
        assert withdrawn.status_code == 303
        page = client.get("/portal/consents").text
        assert "You withdrew" in page and "You agreed" in page and "I agree" in page
        receipt = client.get(f"/portal/consents/receipts/{grant.grant_id}")
        assert receipt.status_code == 200
        assert "attachment" in receipt.headers["content-disposition"]
        assert json.loads(receipt.text)["piiPrincipalId"] == CUSTOMER

        portal.enterprise.clock.advance(31 * 86400)
        driver.settle(seconds=60)

    view = accord.runtime.get(TENANT, run_id)
    assert (view.status, view.outcome) == ("completed", "retained_without_follow_up")
    [follow_up] = [d for d in accord.runtime.decisions(TENANT, run_id) if d.block == "follow_up"]
    assert (follow_up.outcome, follow_up.reason) == ("refused", "consent_withdrawn")

    client = portal.sign_in(CUSTOMER)
    case = client.get(f"/portal/cases/{run_id}")
    assert case.status_code == 200
    assert "Discount applied to your plan" in case.text
    assert "We did not go ahead: to send you an e-mail, because you withdrew your consent" in (
        case.text
    )
    assert "We went ahead: to apply a discount to your plan" in case.text
    for internal in ("retention-", "policy", "dpv:", "discount_", "confidence", "grant_"):
        assert internal not in case.text, internal


def test_the_catalogue_loader_names_file_and_field(tmp_path: Path) -> None:
    broken = tmp_path / "purposes.yaml"
    broken.write_text(
        "catalogue: 1\npurposes:\n  - purpose: dpv:DirectMarketing\n    title: Offers\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError) as raised:
        load_purposes(broken)
    assert f"{broken}: purposes.0.description" in raised.value.message
    assert "purposes.0.notice_version" in raised.value.message
