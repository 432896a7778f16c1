"""The API's access policies and tokens, without a server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from accord.api import (
    OPERATIONS,
    TokenVerifier,
    Unauthenticated,
    compile_access,
    issue_token,
    role_matrix,
    role_table,
)
from accord.errors import ConfigurationError, InputError

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_role_matrix_is_the_one_the_policies_decide() -> None:
    assert role_table(compile_access(None)) in (ROOT / "docs" / "api.md").read_text()


def test_auditors_only_read_and_admins_do_everything() -> None:
    matrix = role_matrix(compile_access(None))
    assert all(OPERATIONS[name].kind == "read" for name in matrix["auditor"])
    assert set(matrix["admin"]) == set(OPERATIONS)
    assert "reviews.reassign" not in matrix["reviewer"]
    assert "reviews.reassign" in matrix["supervisor"]


def test_replacement_policies_that_name_no_operation_fail_at_start(tmp_path: Path) -> None:
    broken = tmp_path / "access.cedar"
    broken.write_text('permit (principal, action == Accord::Action::"runs.teleport", resource);')
    with pytest.raises(ConfigurationError, match="do not validate"):
        compile_access(broken)
    with pytest.raises(ConfigurationError, match="cannot read"):
        compile_access(tmp_path / "missing.cedar")


def test_a_local_token_verifies_and_names_its_tenant_and_known_roles(tmp_path: Path) -> None:
    made = issue_token(
        tmp_path, subject="ann", tenant="t1", roles=["reviewer", "auditor"], now=time.time()
    )
    verifier = TokenVerifier(issuer="accord", audience="accord", keys_dir=tmp_path)
    who = verifier.verify(made)
    assert (who.subject, who.tenant, who.roles) == ("ann", "t1", {"reviewer", "auditor"})
    other = TokenVerifier(issuer="accord", audience="accord", keys_dir=tmp_path / "elsewhere")
    with pytest.raises(Unauthenticated, match="no key"):
        other.verify(made)


def test_tokens_refuse_unknown_roles_and_empty_subjects(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown role"):
        issue_token(tmp_path, subject="a", tenant="t", roles=["wizard"], now=time.time())
    with pytest.raises(InputError, match="needs a role"):
        issue_token(tmp_path, subject="a", tenant="t", roles=[], now=time.time())
    with pytest.raises(InputError, match="subject and a tenant"):
        issue_token(tmp_path, subject=" ", tenant="t", roles=["admin"], now=time.time())


def test_a_server_that_trusts_no_signer_does_not_start() -> None:
    with pytest.raises(ConfigurationError, match="trusts no token signer"):
        TokenVerifier(issuer="accord", audience="accord")
