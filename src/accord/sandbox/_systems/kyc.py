"""KYC: identity verification by one-time code or identity document, and a fraud score.

Outcomes are deterministic so journeys and tests can plan for them:

* the one-time code of a verification is derived from its id; ``GET /verifications/{id}/otp``
  (sandbox only) tells it. Three wrong codes fail the verification.
* a document whose number ends in ``0`` is rejected as unreadable; any other is accepted.
* the fraud score is derived from the customer id alone.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Path as PathParam
from pydantic import Field
from starlette.responses import Response

from accord.core import Clock
from accord.sandbox._fields import CustomerId, CustomerIdPath, not_found
from accord.sandbox._problems import ProblemError, problems
from accord.sandbox._seed import people, stable_number
from accord.sandbox._service import SandboxService, Strict, StrictInput, Write, next_id

MAX_OTP_ATTEMPTS = 3
Method = Literal["otp", "document"]
VerificationStatus = Literal["pending", "verified", "failed"]
FailureReason = Literal["code_mismatch", "too_many_attempts", "document_unreadable"]
VerificationIdPath = Annotated[
    str, PathParam(pattern=r"^ver_[0-9]{6}$", description="e.g. ver_000001")
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS verifications (
    verification_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failure_reason TEXT,
    document_type TEXT,
    document_last_digits TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class NewVerification(StrictInput):
    """A verification to start."""

    customer_id: CustomerId
    method: Method


class Verification(Strict):
    """An identity verification and its outcome so far."""

    verification_id: str
    customer_id: str
    method: Method
    status: VerificationStatus
    attempts: int = Field(description="codes or documents submitted")
    failure_reason: FailureReason | None = Field(
        description="why the last submission did not verify"
    )
    document_type: str | None
    document_last_digits: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class OtpSubmission(StrictInput):
    """The one-time code the customer typed."""

    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]


class DocumentSubmission(StrictInput):
    """The identity document the customer showed."""

    document_type: Literal["passport", "driving_licence", "national_id"]
    document_number: Annotated[str, Field(pattern=r"^[A-Z0-9]{6,20}$")]


class SandboxOtp(Strict):
    """The code a verification expects (the sandbox's stand-in for the customer's phone)."""

    verification_id: str
    code: str


class FraudScore(Strict):
    """How likely a customer is to be fraudulent, from 0 (not) to 1."""

    customer_id: str
    score: Annotated[float, Field(ge=0, le=1)]
    band: Literal["low", "medium", "high"]


def expected_code(verification_id: str) -> str:
    """The one-time code of ``verification_id``."""
    return f"{stable_number('otp', verification_id) % 1_000_000:06d}"


def create_service(database: Path, *, clock: Clock) -> SandboxService:
    """The KYC service on ``database``."""
    service = SandboxService(
        "kyc",
        database,
        title="Sandbox KYC",
        description="Identity verification (one-time code or document) and fraud scores.",
        schema=SCHEMA,
        seed=_seed,
        clock=clock,
    )
    app = service.app
    store = service.store

    @app.post(
        "/verifications",
        operation_id="start_verification",
        summary="Start verifying a customer's identity by one-time code or document",
        status_code=201,
        response_model=Verification,
        responses=problems(404, 422),
    )
    def start_verification(request: NewVerification, mutation: Write) -> Response:
        def effect(tx: sqlite3.Connection) -> Verification:
            _known_customer(tx, request.customer_id)
            verification_id = next_id(tx, "verifications", "ver")
            now = service.timestamp()
            tx.execute(
                "INSERT INTO verifications VALUES (?, ?, ?, 'pending', 0, NULL, NULL, NULL, ?, ?)",
                (verification_id, request.customer_id, request.method, now, now),
            )
            return _verification(tx, verification_id)

        return mutation.apply(effect)

    @app.get(
        "/verifications/{verification_id}",
        operation_id="get_verification",
        summary="Get a verification",
        response_model=Verification,
        responses=problems(404, 422),
    )
    def get_verification(verification_id: VerificationIdPath) -> Verification:
        with store.transaction() as tx:
            return _verification(tx, verification_id)

    @app.get(
        "/verifications/{verification_id}/otp",
        operation_id="get_sandbox_otp",
        summary="Sandbox only: the one-time code a verification expects",
        description="Stands in for the code the customer would receive; no real system has it.",
        response_model=SandboxOtp,
        responses=problems(404, 409, 422),
        openapi_extra={"x-sandbox-only": True},
    )
    def get_sandbox_otp(verification_id: VerificationIdPath) -> SandboxOtp:
        with store.transaction() as tx:
            verification = _verification(tx, verification_id)
        if verification.method != "otp":
            raise ProblemError(
                409, "wrong_method", f"verification {verification_id} is by document, not code"
            )
        return SandboxOtp(verification_id=verification_id, code=expected_code(verification_id))

    @app.post(
        "/verifications/{verification_id}/otp",
        operation_id="submit_otp",
        summary="Submit the one-time code the customer received",
        response_model=Verification,
        responses=problems(404, 409, 422),
    )
    def submit_otp(
        verification_id: VerificationIdPath, submission: OtpSubmission, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Verification:
            current = _pending(tx, verification_id, "otp")
            attempts = current.attempts + 1
            status: VerificationStatus = "verified"
            reason: FailureReason | None = None
            if submission.code != expected_code(verification_id):
                reason = "code_mismatch" if attempts < MAX_OTP_ATTEMPTS else "too_many_attempts"
                status = "pending" if attempts < MAX_OTP_ATTEMPTS else "failed"
            tx.execute(
                "UPDATE verifications SET status = ?, attempts = ?, failure_reason = ?, "
                "updated_at = ? WHERE verification_id = ?",
                (status, attempts, reason, service.timestamp(), verification_id),
            )
            return _verification(tx, verification_id)

        return mutation.apply(effect)

    @app.post(
        "/verifications/{verification_id}/document",
        operation_id="submit_document",
        summary="Submit an identity document (numbers ending in 0 are unreadable)",
        response_model=Verification,
        responses=problems(404, 409, 422),
    )
    def submit_document(
        verification_id: VerificationIdPath, submission: DocumentSubmission, mutation: Write
    ) -> Response:
        def effect(tx: sqlite3.Connection) -> Verification:
            current = _pending(tx, verification_id, "document")
            unreadable = submission.document_number.endswith("0")
            tx.execute(
                "UPDATE verifications SET status = ?, attempts = ?, failure_reason = ?, "
                "document_type = ?, document_last_digits = ?, updated_at = ? "
                "WHERE verification_id = ?",
                (
                    "failed" if unreadable else "verified",
                    current.attempts + 1,
                    "document_unreadable" if unreadable else None,
                    submission.document_type,
                    submission.document_number[-4:],
                    service.timestamp(),
                    verification_id,
                ),
            )
            return _verification(tx, verification_id)

        return mutation.apply(effect)

    @app.get(
        "/customers/{customer_id}/fraud-score",
        operation_id="fraud_score",
        summary="Score how likely a customer is to be fraudulent",
        response_model=FraudScore,
        responses=problems(404, 422),
    )
    def fraud_score(customer_id: CustomerIdPath) -> FraudScore:
        with store.transaction() as tx:
            _known_customer(tx, customer_id)
        score = (stable_number("fraud", customer_id) % 1001) / 1000
        band: Literal["low", "medium", "high"] = (
            "low" if score < 0.3 else "medium" if score < 0.7 else "high"
        )
        return FraudScore(customer_id=customer_id, score=score, band=band)

    return service


def _known_customer(tx: sqlite3.Connection, customer_id: str) -> None:
    if tx.execute("SELECT 1 FROM customers WHERE customer_id = ?", (customer_id,)).fetchone():
        return
    raise not_found("customer", customer_id)


def _verification(tx: sqlite3.Connection, verification_id: str) -> Verification:
    row = tx.execute(
        "SELECT * FROM verifications WHERE verification_id = ?", (verification_id,)
    ).fetchone()
    if row is None:
        raise not_found("verification", verification_id)
    return Verification.model_validate(dict(row))


def _pending(tx: sqlite3.Connection, verification_id: str, method: Method) -> Verification:
    current = _verification(tx, verification_id)
    if current.method != method:
        raise ProblemError(
            409,
            "wrong_method",
            f"verification {verification_id} is by {current.method}, not {method}",
        )
    if current.status != "pending":
        raise ProblemError(
            409,
            "verification_closed",
            f"verification {verification_id} is already {current.status}; start a new one",
        )
    return current


def _seed(tx: sqlite3.Connection) -> None:
    for person in people():
        tx.execute("INSERT INTO customers VALUES (?)", (person.customer_id,))
