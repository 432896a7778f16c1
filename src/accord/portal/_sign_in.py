"""Customer sign-in: one-time challenges (a code and a link nonce, kept only as hashes) and the
signed session cookie a verified challenge opens.

A sign-in request is a run of the built-in journey ``portal_sign_in``: it finds the customer by
e-mail address in the CRM and sends the code and the link, both through the gateway under
``dpv:IdentityAuthentication``, so the lookup and the message are governed and recorded like any
other action. The customer a challenge signs in is the one that run found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from accord.core import TenantId
from accord.journeys import load_journey_text
from accord.service import Accord
from accord.storage._schema import portal_challenges

SIGN_IN_JOURNEY = "portal_sign_in"
CHALLENGE_SECONDS = 600.0
MAX_ATTEMPTS = 5
SESSION_SECONDS = 8 * 3600.0
SESSION_VERSION = "p1"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")

SIGN_IN_JOURNEY_TEXT = """\
journey: portal_sign_in
description: >
  A customer asks to sign in to the portal with their e-mail address. When the CRM knows the
  address, the customer is sent a one-time code and a sign-in link at the address the CRM
  holds; otherwise nothing is sent, and the portal answers the same either way.
purpose: dpv:IdentityAuthentication
input:
  email: {type: string, description: "the address the customer typed"}
  code: {type: string, description: "the one-time code (the portal keeps only its hash)"}
  link: {type: string, description: "the sign-in link (the portal keeps only its nonce's hash)"}
blocks:
  - id: customer
    kind: task
    capability: crm.find_customer
    input: {email: input.email}
    timeout: 10s
    on_error: unknown
  - id: send
    kind: task
    capability: notifications.send_email
    input:
      to: steps.customer.email
      customer_id: steps.customer.customer_id
      subject: '"Your sign-in code"'
      body: >-
        "Your sign-in code is " + input.code + ". Or open this link to sign in: " + input.link +
        " . The code and the link work once, for 10 minutes. If you did not ask to sign in,
        ignore this message."
    timeout: 10s
    on_refusal: {"*": not_sent}
    on_error: not_sent
  - id: sent
    kind: end
    outcome: sent
    output: {customer_id: steps.customer.customer_id}
  - id: not_sent
    kind: end
    outcome: not_sent
  - id: unknown
    kind: end
    outcome: unknown_customer
"""

Refusal = Literal["unknown", "expired", "used", "exhausted", "wrong", "not_sent"]

REFUSALS: dict[Refusal, str] = {
    "unknown": "That code or link is not valid. Ask for a new one.",
    "expired": "That code or link has expired. Ask for a new one.",
    "used": "That code or link was already used. Ask for a new one.",
    "exhausted": "Too many wrong codes. Ask for a new one.",
    "wrong": "That code is not right. Check the e-mail and try again.",
    "not_sent": "That code or link is not valid. Ask for a new one.",
}


class SignInRefused(Exception):
    """A code or link that does not sign anyone in; ``message`` is what the customer reads."""

    def __init__(self, why: Refusal) -> None:
        super().__init__(why)
        self.why = why
        self.message = REFUSALS[why]


def _digest(purpose: bytes, value: str) -> str:
    return hashlib.sha256(purpose + b"\0" + value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in customer: their tenant and subject, nothing else."""

    tenant: str
    subject: str
    expires_at: float


class SessionSigner:
    """Signs and checks session cookies with a key derived from the instance's master key."""

    def __init__(self, master: bytes) -> None:
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"accord/portal-session/v1"
        ).derive(master)

    def sign(self, session: Session) -> str:
        claims = {"t": session.tenant, "s": session.subject, "exp": session.expires_at}
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{SESSION_VERSION}.{body}.{self._mac(body)}"

    def verify(self, cookie: str, *, now: float) -> Session | None:
        """The session of a cookie this instance signed and that has not expired, else None."""
        parts = cookie.split(".")
        if len(parts) != 3 or parts[0] != SESSION_VERSION:
            return None
        if not hmac.compare_digest(self._mac(parts[1]), parts[2]):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return None
        tenant, subject, exp = claims.get("t"), claims.get("s"), claims.get("exp")
        if not isinstance(tenant, str) or not isinstance(subject, str):
            return None
        if not isinstance(exp, int | float) or exp <= now:
            return None
        return Session(tenant, subject, float(exp))

    def form_token(self, cookie: str) -> str:
        """The CSRF token of a session: only the holder of the cookie can compute it."""
        return hmac.new(self._key, b"portal form\0" + cookie.encode(), "sha256").hexdigest()[:32]

    def _mac(self, body: str) -> str:
        mac = hmac.new(self._key, f"{SESSION_VERSION}.{body}".encode(), hashlib.sha256).digest()
        return _b64(mac)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Challenge:
    challenge_id: str
    code: str
    nonce: str

    @property
    def link_token(self) -> str:
        return f"{self.challenge_id}.{self.nonce}"


class SignIns:
    """Issues challenges by running the sign-in journey, and turns a right answer into a
    customer's subject id."""

    def __init__(self, accord: Accord) -> None:
        self.accord = accord
        self._deployed: set[str] = set()

    def _deploy(self, tenant: TenantId) -> None:
        if tenant in self._deployed:
            return
        self.accord.runtime.catalog.deploy(
            tenant,
            load_journey_text(SIGN_IN_JOURNEY_TEXT, source_name="<accord portal>"),
            deployed_by="accord",
        )
        self._deployed.add(tenant)

    def request(self, tenant: TenantId, email: str, *, link_base: str) -> Challenge:
        """Record a challenge and start the run that finds the customer and sends it."""
        now = self.accord.runtime.clock.now()
        challenge = Challenge(
            self.accord.runtime.ids.new_id("signin"),
            f"{secrets.randbelow(10**6):06d}",
            secrets.token_urlsafe(24),
        )
        with self.accord.db.transaction() as connection:
            connection.execute(
                sa.insert(portal_challenges).values(
                    challenge_id=challenge.challenge_id,
                    tenant_id=tenant,
                    run_id=None,
                    code_hash=_digest(b"code", f"{challenge.challenge_id}:{challenge.code}"),
                    nonce_hash=_digest(b"nonce", challenge.nonce),
                    attempts=0,
                    created_at=now,
                    expires_at=now + CHALLENGE_SECONDS,
                    used_at=None,
                )
            )
        self._deploy(tenant)
        run = self.accord.runtime.start(
            tenant,
            SIGN_IN_JOURNEY,
            input={
                "email": email,
                "code": challenge.code,
                "link": f"{link_base}?token={challenge.link_token}",
            },
            idempotency_key=f"portal-sign-in/{challenge.challenge_id}",
        )
        with self.accord.db.transaction() as connection:
            connection.execute(
                sa.update(portal_challenges)
                .where(portal_challenges.c.challenge_id == challenge.challenge_id)
                .values(run_id=run.run_id)
            )
        return challenge

    def verify_code(self, tenant: TenantId, challenge_id: str, code: str) -> str:
        return self._answer(tenant, challenge_id, code=code, nonce=None)

    def verify_link(self, tenant: TenantId, token: str) -> str:
        challenge_id, _, nonce = token.partition(".")
        return self._answer(tenant, challenge_id, code=None, nonce=nonce)

    def _answer(
        self, tenant: TenantId, challenge_id: str, *, code: str | None, nonce: str | None
    ) -> str:
        """The subject a right, fresh, unused answer signs in; each wrong one counts.

        Raises:
            SignInRefused: the challenge is unknown, expired, used, out of attempts, or wrong,
                or its run did not send it to a customer.
        """
        now = self.accord.runtime.clock.now()
        table = portal_challenges
        with self.accord.db.transaction() as connection:
            row = (
                connection.execute(
                    sa.select(table)
                    .where(table.c.challenge_id == challenge_id, table.c.tenant_id == tenant)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if row is None:
                raise SignInRefused("unknown")
            if row["used_at"] is not None:
                raise SignInRefused("used")
            if row["expires_at"] <= now:
                raise SignInRefused("expired")
            if row["attempts"] >= MAX_ATTEMPTS:
                raise SignInRefused("exhausted")
            if code is not None:
                right = hmac.compare_digest(
                    row["code_hash"], _digest(b"code", f"{challenge_id}:{code}")
                )
            else:
                right = hmac.compare_digest(row["nonce_hash"], _digest(b"nonce", nonce or ""))
            subject = self._sent_to(tenant, row["run_id"]) if right else None
            if subject is None:
                connection.execute(
                    sa.update(table)
                    .where(table.c.challenge_id == challenge_id)
                    .values(attempts=row["attempts"] + 1)
                )
            else:
                connection.execute(
                    sa.update(table).where(table.c.challenge_id == challenge_id).values(used_at=now)
                )
        if subject is None:
            raise SignInRefused("wrong" if code is not None else "unknown")
        return subject

    def _sent_to(self, tenant: TenantId, run_id: str | None) -> str | None:
        if run_id is None:
            return None
        view = self.accord.runtime.get(tenant, run_id)
        if view.status != "completed" or view.outcome != "sent":
            return None
        found = view.output.get("customer_id") if isinstance(view.output, dict) else None
        return found if isinstance(found, str) and found else None
