"""Telemetry: tracing (OpenTelemetry), metrics (Prometheus) and structured logs (structlog).

Usable from every layer; it imports nothing of Accord but ``core``. An instance builds one
:class:`Telemetry` and hands it down, so two instances in a process never share a tracer or
a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.trace import Tracer

from accord.telemetry._logging import (
    Redactor,
    bound_run,
    configure_logging,
    get_logger,
    redact_text,
)
from accord.telemetry._metrics import Metrics
from accord.telemetry._tracing import (
    Tracing,
    context_of,
    inject_headers,
    new_traceparent,
    record_span,
    span,
    trace_ids,
    traceparent_of,
)


@dataclass
class Telemetry:
    """What an instance reports through: its tracing and its metrics."""

    tracing: Tracing = field(default_factory=Tracing.off)
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def tracer(self) -> Tracer:
        """The instance's tracer (a no-op one when export is off)."""
        return self.tracing.tracer


__all__ = [
    "Metrics",
    "Redactor",
    "Telemetry",
    "Tracing",
    "bound_run",
    "configure_logging",
    "context_of",
    "get_logger",
    "inject_headers",
    "new_traceparent",
    "record_span",
    "redact_text",
    "span",
    "trace_ids",
    "traceparent_of",
]
