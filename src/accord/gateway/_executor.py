"""The innermost step of the gateway: contract checks, the deadline and the call itself.

Only :class:`~accord.gateway.Gateway` uses an :class:`Executor`; governance (kill switch, lawful
basis, policy, approval, projection, record) wraps this call.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pydantic import BaseModel, ValidationError

from accord.connectors import CallContext, Capability, CapabilityRegistry
from accord.errors import BlockTimeout, CapabilityFailed, CapabilityNotFound, ExecutionError


class Executor:
    """Invokes capabilities by name with contract checks and deadlines."""

    def __init__(self, capabilities: CapabilityRegistry, *, max_timeout_threads: int = 32) -> None:
        self.capabilities = capabilities
        self._max_threads = max_timeout_threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def resolve(self, name: str) -> Capability:
        """The capability called ``name``.

        Raises:
            CapabilityFailed: no such capability; retryable, as during a rolling deploy.
        """
        try:
            return self.capabilities.get(name)
        except CapabilityNotFound as exc:
            raise CapabilityFailed(
                exc.message,
                error_type="CapabilityNotFound",
                hint="a worker without this capability ran the block; the block retries",
            ) from exc

    def execute(
        self, capability: Capability, payload: Mapping[str, Any], context: CallContext
    ) -> dict[str, Any]:
        """Validate ``payload``, call the capability, validate and return its output as JSON data.

        Raises:
            ExecutionError: the call failed; ``retryable`` says whether to try again.
        """
        name = capability.name
        try:
            request = capability.input_model.model_validate(payload)
        except ValidationError as exc:
            raise CapabilityFailed(
                f"input for {name!r} breaks its contract: {_summarise(exc)}",
                error_type="ContractViolation",
                retryable=False,
                hint="fix the block's input mapping",
            ) from exc
        result = self._call(capability, request, context)
        try:
            output = capability.output_model.model_validate(result)
        except ValidationError as exc:
            raise CapabilityFailed(
                f"output of {name!r} breaks its contract: {_summarise(exc)}",
                error_type="ContractViolation",
                retryable=False,
            ) from exc
        return output.model_dump(mode="json")

    def _call(self, capability: Capability, request: BaseModel, context: CallContext) -> Any:
        if context.deadline is None:
            return self._guarded(capability, request, context)
        remaining = context.deadline - time.time()
        if remaining <= 0:
            raise BlockTimeout(f"{capability.name!r} was not started: its deadline has passed")
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="accord-call")
            pool = self._pool
        # the call runs in the caller's context (its trace span, for traceparent headers)
        future = pool.submit(
            contextvars.copy_context().run, self._guarded, capability, request, context
        )
        try:
            return future.result(timeout=remaining)
        except FutureTimeout as exc:
            timeout = BlockTimeout(
                f"{capability.name!r} did not answer within its timeout",
                hint="raise the block's timeout or look at the system's health",
            )
            # the call is still running and may yet act
            timeout.outcome_unknown = True
            raise timeout from exc

    @staticmethod
    def _guarded(capability: Capability, request: BaseModel, context: CallContext) -> Any:
        try:
            return capability.handler(request, context)
        except ExecutionError:
            raise
        except Exception as exc:
            raise CapabilityFailed(
                f"{capability.name!r} raised {type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
            ) from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
