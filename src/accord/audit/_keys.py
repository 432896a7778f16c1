"""The ledger's keys: the Ed25519 key that signs tree heads and the master key that wraps
per-subject data keys.

In production both come from settings, as an environment secret or a file. Without them,
development keys are generated once into a keyring file (``ledger-keys.json``, mode 0600) in
the keys directory, where :meth:`Keyring.rotate` also keeps the public halves of retired signing
keys so old heads still verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from accord.audit.verifier import key_id as signing_key_id
from accord.errors import ConfigurationError

KEYRING_FILE = "ledger-keys.json"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 signing key and its id (the first 8 bytes of SHA-256 of the public key)."""

    key_id: str
    private: Ed25519PrivateKey = field(repr=False)
    public_raw: bytes = field(repr=False)

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> SigningKey:
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(signing_key_id(public), private, public)


@dataclass(frozen=True, slots=True)
class Keyring:
    """The keys one Accord instance uses.

    Attributes:
        signing: the key new tree heads are signed with.
        trusted: every public key whose heads verification accepts (id to raw bytes): the
            current key, retired development keys and ``ACCORD_LEDGER_TRUSTED_KEYS``.
        master: the 256-bit key that wraps subject data keys (AES key wrap, RFC 3394).
        master_id: a non-secret fingerprint of the master key, stored beside wrapped keys.
        source: where the keys came from, for operators ("settings" or the keyring path).
    """

    signing: SigningKey
    trusted: dict[str, bytes] = field(repr=False)
    master: bytes = field(repr=False)
    master_id: str = ""
    source: str = ""

    @classmethod
    def load(
        cls,
        *,
        keys_dir: Path,
        signing_key: str | None = None,
        signing_key_file: Path | None = None,
        trusted_keys: list[str] | None = None,
        master_key: str | None = None,
        master_key_file: Path | None = None,
    ) -> Keyring:
        """Keys from settings where given, else from (or into) the development keyring.

        Raises:
            ConfigurationError: a configured key cannot be read or is not a valid key.
        """
        signing_text = signing_key or _read_file(signing_key_file, "ACCORD_LEDGER_SIGNING_KEY_FILE")
        master_text = master_key or _read_file(master_key_file, "ACCORD_LEDGER_MASTER_KEY_FILE")
        trusted: dict[str, bytes] = {}
        source = "settings"
        if signing_text is None or master_text is None:
            dev = _DevKeyring.open(keys_dir)
            source = str(dev.path)
            signing = dev.signing() if signing_text is None else _parse_signing(signing_text)
            master = dev.master() if master_text is None else _parse_master(master_text)
            trusted.update(dev.retired())
        else:
            signing = _parse_signing(signing_text)
            master = _parse_master(master_text)
        for i, text in enumerate(trusted_keys or []):
            public = _parse_public(text, where=f"ACCORD_LEDGER_TRUSTED_KEYS[{i}]")
            trusted[signing_key_id(public)] = public
        trusted[signing.key_id] = signing.public_raw
        return cls(signing, trusted, master, _fingerprint(master), source)

    def rotate(self, keys_dir: Path) -> Keyring:
        """A new development signing key; the old one's public half stays trusted.

        Raises:
            ConfigurationError: the signing key comes from settings; rotate it there (set the
                new key and add the old public key to ``ACCORD_LEDGER_TRUSTED_KEYS``).
        """
        if self.source == "settings":
            raise ConfigurationError(
                "the ledger signing key comes from settings and cannot be rotated here",
                hint="set ACCORD_LEDGER_SIGNING_KEY to the new key and add the old public key "
                "to ACCORD_LEDGER_TRUSTED_KEYS",
            )
        dev = _DevKeyring.open(keys_dir)
        new = dev.rotate()
        trusted = {**self.trusted, new.key_id: new.public_raw}
        return Keyring(new, trusted, self.master, self.master_id, self.source)


def public_key_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _fingerprint(master: bytes) -> str:
    return hashlib.sha256(b"accord master key\n" + master).hexdigest()[:16]


def _read_file(path: Path | None, setting: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read {setting} {str(path)!r}: {exc.strerror}",
            hint="point it at a readable file holding the key",
        ) from exc


def _decode_b64(text: str, *, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(
            f"{what} is not valid base64", hint=f"give {length} raw bytes, base64-encoded"
        ) from exc
    if len(raw) != length:
        raise ConfigurationError(
            f"{what} has {len(raw)} bytes, expected {length}",
            hint=f"give {length} raw bytes, base64-encoded",
        )
    return raw


def _parse_signing(text: str) -> SigningKey:
    """A base64 raw 32-byte Ed25519 private key, or a PEM (PKCS#8) one."""
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except ValueError as exc:
            raise ConfigurationError(
                "the ledger signing key is not a readable PEM private key",
                hint="generate one with: openssl genpkey -algorithm ed25519",
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(
                "the ledger signing key is not an Ed25519 key",
                hint="generate one with: openssl genpkey -algorithm ed25519",
            )
        return SigningKey.from_private(key)
    raw = _decode_b64(text, length=32, what="the ledger signing key")
    return SigningKey.from_private(Ed25519PrivateKey.from_private_bytes(raw))


def _parse_master(text: str) -> bytes:
    return _decode_b64(text, length=32, what="the ledger master key")


def _parse_public(text: str, *, where: str) -> bytes:
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise ConfigurationError(f"{where} is not a readable PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError(f"{where} is not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _decode_b64(text, length=32, what=where)


class _DevKeyring:
    """The development keyring file: current and retired signing keys and the master key."""

    def __init__(self, path: Path, data: dict[str, object]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, keys_dir: Path) -> _DevKeyring:
        path = keys_dir / KEYRING_FILE
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigurationError(
                    f"cannot read the development keyring {str(path)!r}: {exc}",
                    hint="restore it from a backup; without it old heads cannot be checked",
                ) from exc
            return cls(path, data)
        keyring = cls(
            path,
            {
                "signing": [{"private_key": _new_b64(Ed25519PrivateKey.generate())}],
                "retired": [],
                "master": base64.b64encode(os.urandom(32)).decode(),
            },
        )
        keyring._save(create=True)
        return keyring

    def _save(self, *, create: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(temporary, flags, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.data, handle, indent=2)
        if create:
            try:
                # another process may have created the keyring meanwhile: keep the first one
                os.link(temporary, self.path)
            except FileExistsError:
                self.data = json.loads(self.path.read_text())
            finally:
                temporary.unlink()
        else:
            temporary.replace(self.path)

    def signing(self) -> SigningKey:
        current = self.data["signing"]
        assert isinstance(current, list)
        return _parse_signing(str(current[-1]["private_key"]))

    def master(self) -> bytes:
        return _parse_master(str(self.data["master"]))

    def retired(self) -> dict[str, bytes]:
        retired = self.data.get("retired") or []
        assert isinstance(retired, list)
        keys = {}
        for i, text in enumerate(retired):
            public = _parse_public(str(text), where=f"{self.path} retired[{i}]")
            keys[signing_key_id(public)] = public
        return keys

    def rotate(self) -> SigningKey:
        old = self.signing()
        retired = list(self.data.get("retired") or [])  # type: ignore[call-overload]
        retired.append(public_key_text(old.public_raw))
        new_private = Ed25519PrivateKey.generate()
        # the retired private key is dropped: nothing may sign as it again
        self.data = {
            **self.data,
            "signing": [{"private_key": _new_b64(new_private)}],
            "retired": retired,
        }
        self._save()
        return SigningKey.from_private(new_private)


def _new_b64(private: Ed25519PrivateKey) -> str:
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()
