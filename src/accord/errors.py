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
    │   ├── DeadLetterConflict      the dead letter was already retried or discarded
    │   ├── AgentInvalid            an agent spec, prompt or model file failed to load
    │   ├── AgentNotFound
    │   ├── RolloutConflict         a rollout for the agent is already active, or none is
    │   ├── EventInvalid            an inbound CloudEvent is malformed or cannot act as it asks
    │   └── ResidencyRefused        the policy keeps the subject's data in another region
    ├── ExecutionError              a block failed while running; the type says if retryable
    │   ├── CapabilityFailed        the capability raised; retryable unless marked otherwise
    │   ├── BlockTimeout            the block exceeded its timeout (retryable)
    │   ├── ExpressionError         a CEL expression failed at run time (not retryable)
    │   ├── ProviderFailed          a model provider failed or answered out of protocol
    │   ├── BudgetExceeded          an agent ran out of tokens, cost, time or tool calls
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
    "AgentInvalid",
    "AgentNotFound",
    "BlockTimeout",
    "BudgetExceeded",
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
    "EventInvalid",
    "ExecutionError",
    "ExpressionError",
    "IdempotencyConflict",
    "InputError",
    "JourneyInvalid",
    "JourneyNotFound",
    "LeaseLost",
    "LegalHold",
    "ProviderFailed",
    "ResidencyRefused",
    "ReviewConflict",
    "ReviewForbidden",
    "ReviewNotFound",
    "RolloutConflict",
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
    AGENT_INVALID = "agent_invalid"
    AGENT_NOT_FOUND = "agent_not_found"
    ROLLOUT_CONFLICT = "rollout_conflict"
    PROVIDER_FAILED = "provider_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    RESIDENCY_REFUSED = "residency_refused"
    EVENT_INVALID = "event_invalid"


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


class AgentInvalid(InputError):
    """An agent spec, its prompt or its trained model is invalid, or differs from the one
    already deployed under the same version. ``diagnostics`` lists every problem found
    (one, without a location, when raised with a message)."""

    code = ErrorCode.AGENT_INVALID

    def __init__(self, problems: str | list[Diagnostic], *, hint: str | None = None) -> None:
        if isinstance(problems, str):
            super().__init__(problems, hint=hint)
            self.diagnostics = [Diagnostic(problems, "<agent>", hint=hint)]
            return
        count = len(problems)
        summary = "\n".join(d.render() for d in problems)
        super().__init__(
            f"agent spec has {count} problem{'s' if count != 1 else ''}:\n{summary}", hint=hint
        )
        self.diagnostics = problems


class AgentNotFound(InputError):
    code = ErrorCode.AGENT_NOT_FOUND


class RolloutConflict(InputError):
    """A rollout is already active for the agent, or there is none to change."""

    code = ErrorCode.ROLLOUT_CONFLICT


class EventInvalid(InputError):
    """An inbound CloudEvent is malformed (a required attribute missing, not JSON, data of the
    wrong shape) or its trigger cannot act on it. ``attribute`` names the culprit if one does."""

    code = ErrorCode.EVENT_INVALID

    def __init__(
        self, message: str, *, hint: str | None = None, attribute: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.attribute = attribute


class ResidencyRefused(InputError):
    """The policy bundle does not let this deployment run a journey for the subject: their data
    lives in another region. The refusal is recorded; start the run where the data lives."""

    code = ErrorCode.RESIDENCY_REFUSED


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


class ProviderFailed(ExecutionError):
    """A model provider failed (unreachable, an error status) or answered out of protocol.
    Retryable unless the provider says the request itself is wrong."""

    code = ErrorCode.PROVIDER_FAILED


class BudgetExceeded(ExecutionError):
    """An agent used up its budget: ``limit`` names which (tokens, cost, wall_time,
    tool_calls); ``used`` and ``allowed`` are the amounts. Not retryable."""

    code = ErrorCode.BUDGET_EXCEEDED
    retryable = False

    def __init__(self, message: str, *, limit: str, used: float, allowed: float) -> None:
        super().__init__(
            message, hint="raise the agent's budget in a new version, or shorten its input"
        )
        self.limit = limit
        self.used = used
        self.allowed = allowed


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
