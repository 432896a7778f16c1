"""Ledger keys: from settings or a development keyring, rotation, and clear errors for bad keys."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from accord.audit import Keyring
from accord.audit.verifier import key_id
from accord.errors import ConfigurationError

RAW = base64.b64encode(bytes(range(32))).decode()
MASTER = base64.b64encode(bytes(32)).decode()


def test_development_keys_are_generated_once_and_private(tmp_path: Path) -> None:
    first = Keyring.load(keys_dir=tmp_path)
    again = Keyring.load(keys_dir=tmp_path)
    assert first.signing.key_id == again.signing.key_id
    assert first.master == again.master and len(first.master) == 32
    path = tmp_path / "ledger-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.source == str(path)
    assert list(tmp_path.iterdir()) == [path]


def test_rotation_keeps_only_the_public_half_of_the_old_key(tmp_path: Path) -> None:
    old = Keyring.load(keys_dir=tmp_path)
    new = old.rotate(tmp_path)
    assert new.signing.key_id != old.signing.key_id
    assert set(new.trusted) == {old.signing.key_id, new.signing.key_id}
    reloaded = Keyring.load(keys_dir=tmp_path)
    assert reloaded.signing.key_id == new.signing.key_id
    assert reloaded.trusted[old.signing.key_id] == old.signing.public_raw
    stored = json.loads((tmp_path / "ledger-keys.json").read_text())
    private = base64.b64encode(
        old.signing.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    ).decode()
    assert private not in json.dumps(stored)


def test_keys_from_settings_in_both_formats(tmp_path: Path) -> None:
    raw = Keyring.load(keys_dir=tmp_path, signing_key=RAW, master_key=MASTER)
    pem = (
        Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key_file = tmp_path / "signing.pem"
    key_file.write_text(pem)
    from_file = Keyring.load(keys_dir=tmp_path, signing_key_file=key_file, master_key=MASTER)
    assert raw.signing.key_id == from_file.signing.key_id == key_id(raw.signing.public_raw)
    assert raw.source == "settings"
    assert not (tmp_path / "ledger-keys.json").exists()
    with pytest.raises(ConfigurationError, match="comes from settings"):
        raw.rotate(tmp_path)
    trusted = base64.b64encode(from_file.signing.public_raw).decode()
    other = Keyring.load(
        keys_dir=tmp_path,
        signing_key=base64.b64encode(bytes(range(1, 33))).decode(),
        master_key=MASTER,
        trusted_keys=[trusted],
    )
    assert raw.signing.key_id in other.trusted


def test_keys_hide_their_secrets_from_repr(tmp_path: Path) -> None:
    keys = Keyring.load(keys_dir=tmp_path, signing_key=RAW, master_key=MASTER)
    text = repr(keys)
    assert MASTER not in text and repr(keys.master) not in text and "private" not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signing_key": "not base64!"}, "the ledger signing key is not valid base64"),
        ({"signing_key": base64.b64encode(b"short").decode()}, "has 5 bytes, expected 32"),
        ({"master_key": base64.b64encode(bytes(16)).decode()}, "master key has 16 bytes"),
        (
            {"trusted_keys": ["AAAA"]},
            r"ACCORD_LEDGER_TRUSTED_KEYS\[0\] has 3 bytes, expected 32",
        ),
        (
            {"signing_key_file": Path("/nonexistent/key")},
            "cannot read ACCORD_LEDGER_SIGNING_KEY_FILE",
        ),
        (
            {"signing_key": "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"},
            "not a readable PEM private key",
        ),
    ],
)
def test_bad_keys_are_refused_with_what_and_how(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"signing_key": RAW, "master_key": MASTER, **options}
    if "signing_key_file" in options:
        del settings["signing_key"]
    with pytest.raises(ConfigurationError, match=message) as caught:
        Keyring.load(keys_dir=tmp_path, **settings)  # type: ignore[arg-type]
    assert caught.value.hint


def test_a_key_of_the_wrong_algorithm_is_refused(tmp_path: Path) -> None:
    pem = (
        X25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ConfigurationError, match="not an Ed25519 key"):
        Keyring.load(keys_dir=tmp_path, signing_key=pem, master_key=MASTER)


def test_a_damaged_keyring_is_reported_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "ledger-keys.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot read the development keyring") as caught:
        Keyring.load(keys_dir=tmp_path)
    assert "restore it from a backup" in (caught.value.hint or "")
    assert (tmp_path / "ledger-keys.json").read_text() == "{not json"
