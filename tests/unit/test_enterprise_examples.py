"""The sample enterprise's files: its policy cases pass, its manifest loads, and a broken
manifest is refused with the file and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.errors import InputError
from accord.journeys import load_journey_file
from accord.offers import load_offer_catalogue
from accord.policy import PolicyBundle, load_cases_file, run_cases
from accord.simulation import load_manifest

ENTERPRISE = Path(__file__).resolve().parents[2] / "examples" / "enterprise"


def test_the_policy_cases_pass_against_the_enterprise_bundle() -> None:
    bundle = PolicyBundle.compile(
        (ENTERPRISE / "policies" / "enterprise.cedar").read_text(encoding="utf-8"),
        (ENTERPRISE / "policies" / "enterprise.cedarschema").read_text(encoding="utf-8"),
        source_name="enterprise.cedar",
    )
    results = run_cases(bundle, load_cases_file(ENTERPRISE / "policies" / "enterprise_cases.yaml"))
    assert len(results) >= 28
    assert [r.failures for r in results if not r.passed] == []


def test_the_manifest_names_eight_journeys_and_a_catalogue_that_load() -> None:
    manifest = load_manifest(ENTERPRISE / "enterprise.yaml")
    names = {load_journey_file(path).spec.journey for path in manifest.journeys}
    assert names == {
        "refund_request",
        "customer_onboarding",
        "support_resolution",
        "retention_offer",
        "access_provisioning",
        "account_recovery",
        "support_chat",
        "next_best_offer",
    }
    [catalogue] = manifest.offers
    assert load_offer_catalogue(catalogue).catalogue == "customer-offers"
    assert "dpv:DirectMarketing" not in {b.purpose for b in manifest.bases}
    assert "dpv:ProvidePersonalisedRecommendations" not in {b.purpose for b in manifest.bases}
    assert "dpv:ServicePersonalisation" not in {b.purpose for b in manifest.bases}
    assert {q.name for q in manifest.queues} >= {"supervisor", "senior", "support", "managers"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("enterprise: 2\n", "not an enterprise manifest"),
        ("enterprise: 1\npolicies: nope\n", "policies must map cedar and schema"),
        (
            "enterprise: 1\ncatalogue: missing.yaml\npolicies: {cedar: a, schema: b}\n",
            "catalogue: ",
        ),
        ("enterprise: 1\nqueues: [{roles: [x]}]\npolicies: {}\n", "queues[0] needs a name"),
        ("enterprise: 1\n  bad: [\n", "cannot read the manifest"),
    ],
)
def test_a_broken_manifest_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "enterprise.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as raised:
        load_manifest(path)
    assert str(path) in raised.value.message and message in raised.value.message
