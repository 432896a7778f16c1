"""Accord's exception tree.

Every error Accord raises on purpose derives from :class:`AccordError` and carries a stable
:class:`ErrorCode`, which the API maps to RFC 9457 problem details and the CLI prints. The tree is
split by who must react::

    AccordError
    ├── InputError                  the caller sent something wrong; fix the input and retry
    │   ├── JourneyInvalid          a journey file failed to load or lint (carries Diagnostics)
    │   ├── JourneyNotFound
    │   ├── RunNotFound
    │   ├── RunFinished             a signal or cancel for a run that already ended
    │   ├── IdempotencyConflict     same idempotency key, different request
    │   ├── CapabilityNotFound
    │   ├── ContractViolation       a payload does not match a capability contract
    │   ├── LegalHold               a subject under legal hold cannot be erased
    │   ├── SubjectErased           the subject's data key was destroyed
    │   ├── ReviewNotFound
    │   ├── ReviewConflict          the item is decided differently, claimed by another, or closed
    │   ├── ReviewForbidden         the person may not do this (policy or queue), e.g. self-approval
    │   ├── ConfirmationInvalid     a confirmation token is forged, expired, used or misdirected
    │   ├── DeadLetterNotFound
    │   └── DeadLetterConflict      the dead letter was already retried or discarded
    ├── ExecutionError              a block failed while running; the type says if retryable
    │   ├── CapabilityFailed        the capability raised; retryable unless marked otherwise
    │   ├── BlockTimeout            the block exceeded its timeout (retryable)
    │   ├── ExpressionError         a CEL expression failed at run time (not retryable)
    │   └── DecisionError           a decision table produced no or conflicting results
    ├── ConcurrencyError            the storage layer refused a write to protect consistency
    │   └── LeaseLost               a worker's lease expired or was taken over; its commit is void
    └── ConfigurationError          settings or wiring are wrong; an operator must fix them
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AccordError",
    "BlockTimeout",
    "CapabilityFailed",
    "CapabilityNotFound",
    "ConcurrencyError",
    "ConfigurationError",
    "ConfirmationInvalid",
    "ContractViolation",
    "DeadLetterConflict",
    "DeadLetterNotFound",
    "DecisionError",
    "Diagnostic",
    "ErrorCode",
    "ExecutionError",
    "ExpressionError",
    "IdempotencyConflict",
    "InputError",
    "JourneyInvalid",
    "JourneyNotFound",
    "LeaseLost",
    "LegalHold",
    "ReviewConflict",
    "ReviewForbidden",
    "ReviewNotFound",
    "RunFinished",
    "RunNotFound",
    "SubjectErased",
]


class ErrorCode(StrEnum):
    """Stable, documented error codes. Never renumber or reuse one."""

    JOURNEY_INVALID = "journey_invalid"
    JOURNEY_NOT_FOUND = "journey_not_found"
    RUN_NOT_FOUND = "run_not_found"
    RUN_FINISHED = "run_finished"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    CAPABILITY_NOT_FOUND = "capability_not_found"
    CONTRACT_VIOLATION = "contract_violation"
    CAPABILITY_FAILED = "capability_failed"
    BLOCK_TIMEOUT = "block_timeout"
    EXPRESSION_ERROR = "expression_error"
    DECISION_ERROR = "decision_error"
    LEASE_LOST = "lease_lost"
    CONFIGURATION = "configuration"
    INVALID_INPUT = "invalid_input"
    LEGAL_HOLD = "legal_hold"
    SUBJECT_ERASED = "subject_erased"
    REVIEW_NOT_FOUND = "review_not_found"
    REVIEW_CONFLICT = "review_conflict"
    REVIEW_FORBIDDEN = "review_forbidden"
    CONFIRMATION_INVALID = "confirmation_invalid"
    DEAD_LETTER_NOT_FOUND = "dead_letter_not_found"
    DEAD_LETTER_CONFLICT = "dead_letter_conflict"


class AccordError(Exception):
    """Base of every error Accord raises deliberately."""

    code: ErrorCode = ErrorCode.INVALID_INPUT
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InputError(AccordError):
    """The caller sent something wrong. Nothing was changed."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a journey definition, located in its source file."""

    message: str
    file: str
    line: int | None = None
    column: int | None = None
    path: str = ""
    hint: str | None = None
    severity: str = "error"

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.severity}: {self.message}"
        if self.path:
            text += f" (at {self.path})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class JourneyInvalid(InputError):
    """A journey definition failed to load or lint. ``diagnostics`` lists every problem found."""

    code = ErrorCode.JOURNEY_INVALID

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        count = len(diagnostics)
        summary = "\n".join(d.render() for d in diagnostics)
        super().__init__(f"journey has {count} problem{'s' if count != 1 else ''}:\n{summary}")
        self.diagnostics = diagnostics

    def __str__(self) -> str:
        return self.message


class JourneyNotFound(InputError):
    code = ErrorCode.JOURNEY_NOT_FOUND


class RunNotFound(InputError):
    code = ErrorCode.RUN_NOT_FOUND


class RunFinished(InputError):
    code = ErrorCode.RUN_FINISHED


class IdempotencyConflict(InputError):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class CapabilityNotFound(InputError):
    code = ErrorCode.CAPABILITY_NOT_FOUND


class ContractViolation(InputError):
    code = ErrorCode.CONTRACT_VIOLATION


class LegalHold(InputError):
    """The subject is under legal hold: erasure is refused (and the refusal recorded)."""

    code = ErrorCode.LEGAL_HOLD


class SubjectErased(InputError):
    """The subject was erased; there is nothing left to erase or open."""

    code = ErrorCode.SUBJECT_ERASED


class ReviewNotFound(InputError):
    code = ErrorCode.REVIEW_NOT_FOUND


class ReviewConflict(InputError):
    """The item was decided differently already, is claimed by someone else, or is closed."""

    code = ErrorCode.REVIEW_CONFLICT


class ReviewForbidden(InputError):
    """The person may not act on the item: a policy forbids it, or the queue is not theirs."""

    code = ErrorCode.REVIEW_FORBIDDEN


class ConfirmationInvalid(InputError):
    """A confirmation token that is not ours, has expired, was used, or came the wrong way."""

    code = ErrorCode.CONFIRMATION_INVALID


class DeadLetterNotFound(InputError):
    code = ErrorCode.DEAD_LETTER_NOT_FOUND


class DeadLetterConflict(InputError):
    """The dead letter is no longer pending: someone retried or discarded it first."""

    code = ErrorCode.DEAD_LETTER_CONFLICT


class ExecutionError(AccordError):
    """A block failed while running. ``retryable`` tells the runtime whether to try again."""

    code = ErrorCode.CAPABILITY_FAILED
    retryable = True
    #: the call may have acted even though it failed: its answer was lost or never came
    outcome_unknown = False

    def __init__(
        self, message: str, *, hint: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        if retryable is not None:
            self.retryable = retryable

    @property
    def error_type(self) -> str:
        """The name journeys use in ``retry.non_retryable`` and ``on_error`` filters."""
        return type(self).__name__


class CapabilityFailed(ExecutionError):
    """The capability failed. ``retry_after`` is the wait (seconds) the system asked for, if
    any; ``outcome_unknown`` says the request may have taken effect (the answer was lost), so
    only an idempotent call or a reconciliation can safely follow; ``status`` is the HTTP status
    of the system's answer, if there was one."""

    code = ErrorCode.CAPABILITY_FAILED

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "CapabilityFailed",
        hint: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
        attempts: int = 1,
        status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self._error_type = error_type
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.attempts = attempts
        self.status = status

    @property
    def error_type(self) -> str:
        return self._error_type


class BlockTimeout(ExecutionError):
    code = ErrorCode.BLOCK_TIMEOUT


class ExpressionError(ExecutionError):
    code = ErrorCode.EXPRESSION_ERROR
    retryable = False


class DecisionError(ExecutionError):
    code = ErrorCode.DECISION_ERROR
    retryable = False


class ConcurrencyError(AccordError):
    code = ErrorCode.LEASE_LOST
    retryable = True


class LeaseLost(ConcurrencyError):
    """The worker no longer holds the run's lease; the transition it tried to commit is void."""

    code = ErrorCode.LEASE_LOST


class ConfigurationError(AccordError):
    code = ErrorCode.CONFIGURATION
