"""Source records read from the sandbox's CRM and billing over HTTP, through the gateway, and
resolved to one subject per customer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.connectors import load_catalogue
from accord.consent import validate_categories
from accord.core import TenantId
from accord.service import Accord
from tests.governance import PERMIT_ALL, deploy_policies
from tests.sandbox_process import ORDER, sandbox_process

ROOT = Path(__file__).parents[2]
CATALOGUE = ROOT / "examples" / "capabilities" / "sandbox.yaml"
T = TenantId("default")
PURPOSE = "dpv:CustomerRelationshipManagement"
CUSTOMERS = [f"cus_{n:05d}" for n in range(1, 21)]


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with sandbox_process(tmp_path_factory.mktemp("sandbox"), ORDER) as urls:
        yield urls


def _wire(accord: Accord, urls: dict[str, str]) -> None:
    load_catalogue(
        CATALOGUE,
        accord.capabilities,
        check_categories=validate_categories,
        connector_urls=urls,
        endpoints=accord.endpoints,
    )
    deploy_policies(accord, PERMIT_ALL)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_crm_and_billing_records_of_each_customer_resolve_to_one_subject(
    accord: Accord, systems: dict[str, str]
) -> None:
    _wire(accord, systems)
    accord.consent.set_basis(
        T,
        PURPOSE,
        "legitimate_interest",
        categories=["pd:Name", "pd:EmailAddress", "pd:TelephoneNumber"],
        actor="dpo",
    )
    crm = accord.sync_identities(
        "crm.get_customer",
        [{"customer_id": c} for c in CUSTOMERS],
        source="crm",
        id_field="customer_id",
        region_field="region",
    )
    assert crm.problems == ()
    assert crm.resolved.counts() == {"created": 20}
    billing = accord.sync_identities(
        "billing.find_account",
        [{"customer_id": c} for c in CUSTOMERS],
        source="billing",
        id_field="account_id",
    )
    assert billing.problems == ()
    assert billing.resolved.counts() == {"linked": 20}

    for customer in CUSTOMERS:
        subject = accord.identity.subject_of("default", "crm", customer)
        assert subject is not None
        sources = {r.source for r in accord.identity.show("default", subject).records}
        assert sources == {"crm", "billing"}
    first = accord.identity.show(
        "default", accord.identity.subject_of("default", "crm", "cus_00001") or ""
    )
    assert first.subject.region is not None and first.subject.region.startswith("us-")

    # every read went through the gateway, about nobody in particular, under the configured basis
    decisions = accord.ledger.entries("default", kinds=["gateway.decision"])
    assert len(decisions) == 40
    assert {e.body["outcome"] for e in decisions} == {"executed"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_configured_basis_nothing_is_read_and_each_refusal_is_reported(
    accord: Accord, systems: dict[str, str]
) -> None:
    _wire(accord, systems)
    report = accord.sync_identities(
        "crm.get_customer",
        [{"customer_id": c} for c in CUSTOMERS[:3]],
        source="crm",
        id_field="customer_id",
    )
    assert report.resolved.resolutions == ()
    assert [p.reason for p in report.problems] == ["subject_missing"] * 3
    assert "no lawful basis configured" in report.problems[0].message
    # consent cannot stand in for a configured basis: there is no subject to have given it
    accord.consent.set_basis(T, PURPOSE, "legitimate_interest", categories=["pd:Name"], actor="dpo")
    partial = accord.sync_identities(
        "crm.get_customer", [{"customer_id": "cus_00001"}], source="crm", id_field="customer_id"
    )
    assert [p.reason for p in partial.problems] == ["subject_missing"]
