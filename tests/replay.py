"""Case reconstruction, checked: every run rebuilt from the ledger alone equals the runtime
tables. ``tests/conftest.py`` runs this after every test that builds Accord."""

from __future__ import annotations

import sqlalchemy as sa

from accord.core import TenantId
from accord.service import Accord
from accord.storage import TERMINAL
from accord.storage._schema import runs


def assert_replays_match(instance: Accord) -> int:
    """Compare every run in the database with its replay; returns how many were compared."""
    with instance.db.read() as connection:
        found = connection.execute(sa.select(runs.c.tenant_id, runs.c.run_id)).all()
    for tenant, run_id in found:
        view = instance.runtime.get(TenantId(tenant), run_id)
        history = instance.runtime.history(TenantId(tenant), run_id)
        decisions = instance.runtime.decisions(TenantId(tenant), run_id)
        replayed = instance.replay(run_id, tenant=tenant)
        assert replayed.history == history, f"history of {run_id} differs from its replay"
        assert replayed.journey == view.journey and replayed.version == view.version
        assert replayed.subject_id == view.subject_id
        if replayed.erased:
            assert replayed.input is None and view.input == {}, f"{run_id} was not scrubbed"
        else:
            assert replayed.input == view.input, f"input of {run_id} differs from its replay"
        if view.status in TERMINAL:
            assert (replayed.status, replayed.outcome, replayed.error) == (
                view.status,
                view.outcome,
                view.error,
            ), f"end of {run_id} differs from its replay"
        else:
            assert replayed.status == "active"
        assert [
            (d.decision_id, d.capability, d.outcome, d.reason, d.record) for d in replayed.decisions
        ] == [(d.decision_id, d.capability, d.outcome, d.reason, d.record) for d in decisions], (
            f"decisions of {run_id} differ from their replay"
        )
    return len(found)
