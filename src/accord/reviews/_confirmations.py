"""Propose, confirm, execute: the subject's answer to a proposed action, by signed token.

A ``confirm`` block asks the subject to confirm a proposal. The runtime mints a token for it:
``v1.<claims>.<mac>``, base64url, where the claims name the tenant, run, block, visit,
confirmation id, the channels it may come back on and when it expires, and the MAC is
HMAC-SHA256 under a key derived (HKDF) from the instance's master key, so no token is stored
and none can be forged or altered. A token is single-use: the confirmation's row moves from
``pending`` once, in the transaction that delivers the answer to the run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from accord.audit import Ledger, entries
from accord.core import Clock, IdGenerator
from accord.errors import ConfirmationInvalid, InputError
from accord.storage import Database, signals
from accord.storage import reviews as stored

TOKEN_VERSION = "v1"
MAX_TOKEN = 4096
Answer = Literal["confirm", "refuse"]
_STATUS = {"confirm": "confirmed", "refuse": "refused"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConfirmationSigner:
    """Mints and checks confirmation tokens with a key only this instance's keys can derive."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a confirmation key has at least 32 bytes")
        self._key = key

    @classmethod
    def from_master(cls, master: bytes) -> ConfirmationSigner:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"accord/confirmation-token/v1"
        ).derive(master)
        return cls(derived)

    def sign(self, claims: dict[str, Any]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        mac = hmac.new(self._key, f"{TOKEN_VERSION}.{body}".encode(), hashlib.sha256).digest()
        return f"{TOKEN_VERSION}.{body}.{_b64(mac)}"

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token this instance minted.

        Raises:
            ConfirmationInvalid: the token is malformed or its MAC does not match.
        """
        parts = token.strip().split(".") if len(token) <= MAX_TOKEN else []
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise ConfirmationInvalid(
                "this is not an Accord confirmation token",
                hint="use the link or code exactly as it was sent",
            )
        try:
            mac = _unb64(parts[2])
            expected = hmac.new(
                self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256
            ).digest()
            if not hmac.compare_digest(mac, expected):
                raise ConfirmationInvalid("the confirmation token's signature does not match")
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError) as exc:
            raise ConfirmationInvalid("the confirmation token is damaged") from exc
        if not isinstance(claims, dict):
            raise ConfirmationInvalid("the confirmation token is damaged")
        return claims


@dataclass(frozen=True, slots=True)
class ConfirmationResult:
    confirmation_id: str
    run_id: str
    answer: str
    channel: str
    at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "confirmation_id": self.confirmation_id,
            "run_id": self.run_id,
            "answer": self.answer,
            "channel": self.channel,
            "at": self.at,
        }


class Confirmations:
    """The subject's side: answer a proposal with the token that was sent to them."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        ids: IdGenerator,
        ledger: Ledger,
        signer: ConfirmationSigner,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ids = ids
        self.ledger = ledger
        self.signer = signer

    def answer(self, token: str, answer: str, *, channel: str) -> ConfirmationResult:
        """Confirm or refuse the proposal ``token`` stands for, arriving on ``channel``.

        Raises:
            InputError: ``answer`` is neither confirm nor refuse.
            ConfirmationInvalid: the token is forged or damaged, expired, already used, or
                came on a channel the journey does not send it on. Nothing is changed.
        """
        if answer not in _STATUS:
            raise InputError(
                f"{answer!r} is not an answer to a confirmation", hint="confirm or refuse"
            )
        claims = self.signer.verify(token)
        now = self.clock.now()
        if float(claims.get("e", 0)) <= now:
            raise ConfirmationInvalid(
                "this confirmation has expired", hint="ask for the proposal to be sent again"
            )
        channels = claims.get("ch") or []
        if channel not in channels:
            raise ConfirmationInvalid(
                f"this confirmation is answered by {', '.join(channels)}, not {channel!r}"
            )
        tenant, confirmation_id = str(claims["t"]), str(claims["c"])
        with self.db.transaction() as connection:
            found = stored.get_confirmation(connection, tenant, confirmation_id)
            if found is None or found["run_id"] != claims.get("r"):
                raise ConfirmationInvalid("no such confirmation is waiting")
            if not stored.answer_confirmation(
                connection, tenant, confirmation_id, status=_STATUS[answer], channel=channel, at=now
            ):
                raise ConfirmationInvalid(
                    f"this confirmation was already {found['status']}",
                    hint="a confirmation token works once",
                )
            payload = {
                "confirmation": confirmation_id,
                "answer": _STATUS[answer],
                "channel": channel,
            }
            signal_id = self.ids.new_id("sig")
            signals.insert_signal(
                connection,
                signal_id=signal_id,
                tenant=tenant,
                run_id=found["run_id"],
                kind="decision",
                name=found["block"],
                payload={**payload, "visit": found["visit"]},
                correlation_key=None,
                at=now,
            )
            self.ledger.append(
                connection,
                tenant,
                [
                    entries.confirmation_answered(
                        confirmation_id=confirmation_id,
                        run_id=found["run_id"],
                        subject_id=found["subject_id"],
                        block=found["block"],
                        answer=_STATUS[answer],
                        channel=channel,
                        signal_id=signal_id,
                        at=now,
                    )
                ],
            )
            self.db.notify_ready(connection)
        return ConfirmationResult(confirmation_id, found["run_id"], _STATUS[answer], channel, now)


__all__ = ["ConfirmationResult", "ConfirmationSigner", "Confirmations"]
