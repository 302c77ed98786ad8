"""W3C trace context through OpenTelemetry: in and out of gRPC metadata and NATS headers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_getter = DefaultGetter()
_configured = False


def setup_tracing(service_name: str) -> None:
    """Install a real tracer provider so spans get ids; exporters are added by deployment, not code."""
    global _configured
    if _configured:
        return
    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": service_name})))
    _configured = True
    global _tracer
    _tracer = trace.get_tracer("oms")


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    global _tracer
    if _tracer is None or not _configured:
        _tracer = trace.get_tracer("oms")
    return _tracer


def _as_text_map(pairs: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for key, value in pairs:
        if key.endswith("-bin"):
            continue
        carrier[key.lower()] = value.decode() if isinstance(value, bytes) else value
    return carrier


def context_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> otel_context.Context:
    return _propagator.extract(_as_text_map(metadata or ()), getter=_getter)


def context_from_headers(headers: Mapping[str, str] | None) -> otel_context.Context:
    return _propagator.extract({k.lower(): v for k, v in (headers or {}).items()}, getter=_getter)


def outgoing_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def outgoing_metadata() -> list[tuple[str, str]]:
    return list(outgoing_headers().items())


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def current_span_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.span_id, "016x") if ctx.is_valid else ""


def current_traceparent() -> str:
    return outgoing_headers().get("traceparent", "")


def trace_id_of(traceparent: str) -> str:
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else ""


def span_in(traceparent: str, name: str) -> AbstractContextManager[trace.Span]:
    """A span in the trace `traceparent` names (one item of a batch call, in its own order's trace),
    or under the current span when it names none."""
    origin = context_from_headers({"traceparent": traceparent}) if traceparent else None
    return tracer().start_as_current_span(name, context=origin)


@contextmanager
def attached(traceparent: str) -> Iterator[None]:
    """Make `traceparent` the current trace context for the block (no new span); nothing when empty.
    A batch's writer uses it to record each item in its own item's trace."""
    if not traceparent:
        yield
        return
    token = otel_context.attach(context_from_headers({"traceparent": traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)
