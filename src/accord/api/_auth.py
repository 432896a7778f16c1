"""Who is calling: OIDC/JWT bearer tokens, verified against a JWKS URL, configured public keys,
or the local development key that ``accord token create`` signs with.

Only asymmetric algorithms are accepted (a shared secret would let anyone who can verify also
mint), ``iss``, ``aud``, ``sub``, ``exp`` and ``iat`` are required, and the tenant and roles come
from configurable claims. A token naming a tenant is the only way to reach that tenant: every
query the API makes is scoped to it.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from accord.errors import ConfigurationError, InputError

ROLES = ("operator", "author", "reviewer", "supervisor", "auditor", "admin")
"""The staff roles the API knows; a token's other roles are ignored."""

ALGORITHMS = ("EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
"""Asymmetric signature algorithms only: never ``none``, never a shared secret."""

LOCAL_KEY_FILE = "api-token-ed25519.pem"
LEEWAY_SECONDS = 30
MAX_TOKEN_BYTES = 16_384


class Unauthenticated(Exception):
    """The request carries no usable credentials. ``detail`` says what to fix, never which
    keys exist."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller.

    Attributes:
        subject: the token's ``sub``: the person (or service) acting, as staff records know it.
        tenant: the only tenant this caller reaches.
        roles: the known roles the token grants.
        name: a display name, when the token has one.
        token_id: the token's ``jti``, when it has one.
        issuer: who issued the token.
    """

    subject: str
    tenant: str
    roles: frozenset[str]
    name: str | None = None
    token_id: str | None = None
    issuer: str = ""


def _local_key_path(keys_dir: Path) -> Path:
    return keys_dir / LOCAL_KEY_FILE


def local_signing_key(keys_dir: Path, *, create: bool = False) -> Ed25519PrivateKey | None:
    """The development signing key kept in ``keys_dir``; made (mode 0600) when ``create``."""
    path = _local_key_path(keys_dir)
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigurationError(
                f"{path} does not hold an Ed25519 private key",
                hint="remove it; 'accord token create' makes a new one",
            )
        return loaded
    if not create:
        return None
    keys_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return key


def _key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "accord-local-" + raw.hex()[:16]


def issue_token(
    keys_dir: Path,
    *,
    subject: str,
    tenant: str,
    roles: Sequence[str],
    issuer: str = "accord",
    audience: str = "accord",
    ttl_seconds: float = 8 * 3600,
    now: float,
    name: str | None = None,
    roles_claim: str = "roles",
    tenant_claim: str = "tenant",
) -> str:
    """A bearer token signed by the local development key (made when missing).

    Raises:
        InputError: a role is unknown, none is given, or the subject or tenant is empty.
    """
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise InputError(
            f"unknown role(s) {', '.join(unknown)}" if unknown else "a token needs a role",
            hint=f"roles are {', '.join(ROLES)}",
        )
    if not subject.strip() or not tenant.strip():
        raise InputError("a token needs a subject and a tenant", hint="--subject ann --tenant t")
    if ttl_seconds <= 0:
        raise InputError("a token's lifetime must be positive", hint="e.g. --ttl 8h")
    key = local_signing_key(keys_dir, create=True)
    assert key is not None
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + ttl_seconds),
        "jti": uuid.uuid4().hex,
        tenant_claim: tenant,
        roles_claim: sorted(set(roles)),
    }
    if name:
        claims["name"] = name
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": _key_id(key.public_key())})


def _public_keys(pems: Iterable[str]) -> list[PublicKeyTypes]:
    keys = []
    for index, pem in enumerate(pems):
        try:
            keys.append(serialization.load_pem_public_key(pem.encode()))
        except ValueError as exc:
            raise ConfigurationError(
                f"ACCORD_API_KEYS[{index}] is not a PEM public key: {exc}",
                hint="give each key as '-----BEGIN PUBLIC KEY-----…'",
            ) from exc
    return keys


class TokenVerifier:
    """Verifies bearer tokens and turns them into :class:`Principal` s."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        public_keys: Iterable[str] = (),
        keys_dir: Path | None = None,
        roles_claim: str = "roles",
        tenant_claim: str = "tenant",
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.tenant_claim = tenant_claim
        self._keys = _public_keys(public_keys)
        self._jwks = jwt.PyJWKClient(jwks_url, lifespan=300) if jwks_url else None
        self._keys_dir = keys_dir
        self._local: tuple[str, Ed25519PublicKey] | None = None
        self._lock = threading.Lock()
        if self._jwks is None and not self._keys and keys_dir is None:
            raise ConfigurationError(
                "the API trusts no token signer",
                hint="set ACCORD_API_JWKS_URL or ACCORD_API_KEYS, or ACCORD_API_LOCAL_TOKENS",
            )

    def _local_key(self) -> tuple[str, Ed25519PublicKey] | None:
        # the key may be made after the server started (accord token create): look until found
        if self._local is None and self._keys_dir is not None:
            with self._lock:
                private = local_signing_key(self._keys_dir)
                if private is not None:
                    public = private.public_key()
                    self._local = (_key_id(public), public)
        return self._local

    def _candidates(self, header: dict[str, Any], token: str) -> list[Any]:
        kid = header.get("kid")
        local = self._local_key()
        if local is not None and kid == local[0]:
            return [local[1]]
        if self._jwks is not None and kid:
            try:
                return [self._jwks.get_signing_key_from_jwt(token).key]
            except jwt.PyJWKClientError as exc:
                if not self._keys:
                    raise Unauthenticated(f"the token's key is not known: {exc}") from exc
        return list(self._keys)

    def verify(self, token: str) -> Principal:
        """The caller a bearer token names.

        Raises:
            Unauthenticated: the token is malformed, signed by no trusted key, expired, not
                yet valid, for another issuer or audience, or lacks its tenant.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthenticated("the bearer token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise Unauthenticated(f"the bearer token is not a JWT: {exc}") from exc
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(
                f"tokens signed with {algorithm!r} are not accepted; "
                f"use one of {', '.join(ALGORITHMS)}"
            )
        candidates = self._candidates(header, token)
        if not candidates:
            raise Unauthenticated("the token is signed by no key this server trusts")
        claims: dict[str, Any] | None = None
        failure: jwt.PyJWTError | None = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                )
                break
            except jwt.InvalidSignatureError as exc:
                failure = exc
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"the bearer token is refused: {exc}") from exc
        if claims is None:
            raise Unauthenticated(f"the bearer token is refused: {failure}")
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated(f"the token has no {self.tenant_claim!r} claim naming a tenant")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("the token's 'sub' claim is empty")
        raw = claims.get(self.roles_claim, [])
        if isinstance(raw, str):
            raw = raw.split()
        roles = frozenset(r for r in raw if isinstance(r, str) and r in ROLES)
        name = claims.get("name")
        token_id = claims.get("jti")
        return Principal(
            subject=subject,
            tenant=tenant,
            roles=roles,
            name=name if isinstance(name, str) else None,
            token_id=token_id if isinstance(token_id, str) else None,
            issuer=str(claims["iss"]),
        )
