"""Tracing: one tracer per Accord instance, W3C trace context that outlives a process.

A run keeps its trace context (a ``traceparent``) in its row, so every visit of every worker,
days apart, adds its spans to the same trace. Export is OTLP/HTTP, configured by settings and
off by default; with export off, trace ids are still made and propagated (to connectors, into
events and logs), they are just not recorded.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
TRACER_NAME = "accord"


@dataclass
class Tracing:
    """The instance's tracer, and the provider to flush and shut down (None when off)."""

    tracer: Tracer
    provider: object | None = field(default=None, repr=False)

    @classmethod
    def off(cls) -> Tracing:
        """Spans cost nothing and are not exported; trace context is still propagated."""
        return cls(trace.NoOpTracer())

    @classmethod
    def otlp(
        cls,
        endpoint: str,
        *,
        service_name: str = "accord",
        headers: Mapping[str, str] | None = None,
        batch: bool = True,
    ) -> Tracing:
        """Export spans over OTLP/HTTP to ``endpoint`` (e.g. ``http://collector:4318``)."""
        # the SDK and protobuf load only when export is configured
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor  # noqa: PLC0415

        url = endpoint.rstrip("/")
        if not url.endswith("/v1/traces"):
            url += "/v1/traces"
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        exporter = OTLPSpanExporter(endpoint=url, headers=dict(headers or {}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider.get_tracer(TRACER_NAME), provider)

    def flush(self) -> None:
        """Send every finished span now."""
        flush = getattr(self.provider, "force_flush", None)
        if flush is not None:
            flush()

    def shutdown(self) -> None:
        """Flush and stop the exporter."""
        stop = getattr(self.provider, "shutdown", None)
        if stop is not None:
            stop()


def context_of(traceparent: str | None) -> Context | None:
    """The trace context a stored ``traceparent`` names, or None for none or a malformed one."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def traceparent_of(context: Context | None = None) -> str | None:
    """The ``traceparent`` of the current span (or of ``context``), None when there is none."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent")


def new_traceparent() -> str:
    """A fresh, unsampled trace context, for work that starts while export is off."""
    span = SpanContext(
        trace_id=secrets.randbits(128) or 1,
        span_id=secrets.randbits(64) or 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    found = traceparent_of(trace.set_span_in_context(NonRecordingSpan(span)))
    assert found is not None
    return found


def inject_headers(headers: dict[str, str], context: Context | None = None) -> None:
    """Add ``traceparent`` (and ``tracestate``) of the current span to outgoing headers."""
    _PROPAGATOR.inject(headers, context=context)


def trace_ids(context: Context | None = None) -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for logs; None outside any trace."""
    span = trace.get_current_span(context).get_span_context()
    if not span.is_valid:
        return None
    return format(span.trace_id, "032x"), format(span.span_id, "016x")


@contextmanager
def span(
    tracer: Tracer,
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    start_time: int | None = None,
) -> Iterator[Span]:
    """A span named ``name``, current for the block, child of ``parent`` (a stored
    ``traceparent``) or else of the current span.

    With a no-op tracer nothing is recorded, but the parent's context is made current, so
    propagation (to connectors, events and logs) still carries the run's trace id.
    """
    context = context_of(parent) if parent else None
    if isinstance(tracer, trace.NoOpTracer):
        if context is None:
            yield trace.get_current_span()
            return
        token = attach(context)
        try:
            yield trace.get_current_span(context)
        finally:
            detach(token)
        return
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=dict(attributes or {}),
        start_time=start_time,
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def record_span(
    tracer: Tracer,
    name: str,
    *,
    parent: str | None,
    start: float,
    end: float,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> None:
    """Record a span that already happened, from ``start`` to ``end`` (epoch seconds), as a
    child of ``parent`` (a stored ``traceparent``): for waits longer than any one process."""
    if isinstance(tracer, trace.NoOpTracer):
        return
    done = tracer.start_span(
        name,
        context=context_of(parent) if parent else None,
        start_time=int(start * 1e9),
        attributes=dict(attributes or {}),
    )
    done.end(end_time=int(max(start, end) * 1e9))
