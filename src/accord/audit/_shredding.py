"""Crypto-shredding: personal parts of ledger entries are sealed per subject.

Each subject gets a random 256-bit data key, stored only wrapped by the master key (AES key
wrap, RFC 3394). Personal parts are sealed with AES-256-GCM under that key, bound by the
associated data to the tenant, subject, entry kind and run, so a sealed part cannot be moved to
another entry. Erasing a subject deletes its wrapped key: the ciphertext stays in the ledger (so
the ledger still verifies) and nothing can open it again. Entries written after an erasure
keep no personal part at all.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Collection
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from sqlalchemy.engine import Connection

from accord.errors import ConfigurationError
from accord.storage import ledger as stored

_NONCE = 12
_CACHE_LIMIT = 4096


class Erased:
    """The personal part of an entry whose subject was erased."""

    def __repr__(self) -> str:
        return "<erased>"


ERASED = Erased()


def associated_data(tenant: str, subject: str, kind: str, run_id: str | None) -> bytes:
    return "\x1f".join(("accord-ledger-v1", tenant, subject, kind, run_id or "")).encode()


class SubjectVault:
    """Subject data keys: created on first use, unwrapped on demand, destroyed on erasure."""

    def __init__(self, master: bytes, master_id: str) -> None:
        self._master = master
        self._master_id = master_id
        # unwrapped keys by (tenant, subject, wrapped bytes): an erased key's wrapped bytes
        # never come back from the database, so a cached entry can never outlive erasure there
        self._cache: dict[tuple[str, str, bytes], bytes] = {}

    def keys(
        self,
        connection: Connection,
        tenant: str,
        subjects: Collection[str],
        *,
        now: float,
        create: bool,
    ) -> dict[str, bytes | None]:
        """Each subject's data key; None for an erased subject (or an unknown one when not
        ``create``). New keys are stored in the caller's transaction."""
        rows = stored.subject_key_rows(connection, tenant, subjects)
        keys: dict[str, bytes | None] = {}
        new_rows: list[dict[str, Any]] = []
        for subject in subjects:
            row = rows.get(subject)
            if row is None:
                if not create:
                    keys[subject] = None
                    continue
                key = os.urandom(32)
                new_rows.append(
                    {
                        "tenant_id": tenant,
                        "subject_id": subject,
                        "wrapped_key": aes_key_wrap(self._master, key),
                        "master_key_id": self._master_id,
                        "created_at": now,
                        "erased_at": None,
                    }
                )
                keys[subject] = key
            elif row.wrapped_key is None:
                keys[subject] = None
            else:
                keys[subject] = self._unwrap(tenant, subject, row.wrapped_key, row.master_key_id)
        stored.insert_subject_keys(connection, new_rows)
        return keys

    def _unwrap(self, tenant: str, subject: str, wrapped: bytes, master_id: str) -> bytes:
        cache_key = (tenant, subject, wrapped)
        key = self._cache.get(cache_key)
        if key is not None:
            return key
        if master_id != self._master_id:
            raise ConfigurationError(
                f"subject {subject!r}'s data key is wrapped by master key {master_id}, "
                f"but this instance has master key {self._master_id}",
                hint="configure the master key the ledger was written with "
                "(ACCORD_LEDGER_MASTER_KEY)",
            )
        try:
            key = aes_key_unwrap(self._master, wrapped)
        except InvalidUnwrap as exc:
            raise ConfigurationError(
                f"subject {subject!r}'s data key does not unwrap with the master key",
                hint="the stored key was altered, or the master key is not the one used",
            ) from exc
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[cache_key] = key
        return key

    def forget(self, tenant: str, subject: str) -> None:
        """Drop the subject's unwrapped key from this process."""
        for cache_key in [k for k in self._cache if k[0] == tenant and k[1] == subject]:
            del self._cache[cache_key]


def seal(key: bytes, plaintext: bytes, aad: bytes) -> dict[str, str]:
    nonce = os.urandom(_NONCE)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, aad)
    return {
        "n": base64.b64encode(nonce).decode(),
        "c": base64.b64encode(ciphertext).decode(),
    }


def open_sealed(key: bytes, sealed: dict[str, Any], aad: bytes) -> bytes:
    """Decrypt a sealed part. Raises ``InvalidTag`` when it was altered or moved."""
    nonce = base64.b64decode(sealed["n"])
    ciphertext = base64.b64decode(sealed["c"])
    return AESGCM(key).decrypt(nonce, ciphertext, aad)


__all__ = ["ERASED", "Erased", "InvalidTag", "SubjectVault", "associated_data", "open_sealed"]
