"""A ledger for tests that build stores by hand: fixed keys, so runs are reproducible."""

from __future__ import annotations

import base64
from pathlib import Path

from accord.audit import Keyring, Ledger
from accord.core import Clock
from accord.storage import Database

SIGNING_KEY = base64.b64encode(bytes(range(32))).decode()
MASTER_KEY = base64.b64encode(bytes(range(32, 64))).decode()


def fixed_keyring() -> Keyring:
    """Keys from 'settings' (no keyring file is written)."""
    return Keyring.load(
        keys_dir=Path("/nonexistent"), signing_key=SIGNING_KEY, master_key=MASTER_KEY
    )


def ledger_for(db: Database, clock: Clock) -> Ledger:
    return Ledger(db, fixed_keyring(), clock=clock)
