"""The demo's summary: what counts as open, and a what-if that has nothing to change."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from accord.cli._demo import _is_open, _what_if
from accord.service import Accord
from accord.simulation import Case, Finished

CASE = Case("c", "refund_request", {}, None)


@pytest.mark.parametrize(
    ("status", "is_open"),
    [
        ("ready", True),
        ("waiting", True),
        ("completed", False),
        ("failed", False),
        ("cancelled", False),
        ("compensated", False),
        ("refused_at_start", False),
    ],
)
def test_open_runs_are_those_that_have_not_ended(status: str, is_open: bool) -> None:
    assert _is_open(Finished(CASE, "run", status, None, None, (), None)) is is_open


def test_a_what_if_that_changes_nothing_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "enterprise.cedar"
    bundle.write_text("permit (principal, action, resource) when { context.amount < 20 };\n")
    _what_if(bundle, cast(Accord, None), tmp_path)
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped:" in out and 'decimal("100.00")' in out
    assert not list(tmp_path.glob("candidate-*"))
