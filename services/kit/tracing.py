"""W3C trace context through OpenTelemetry: in and out of gRPC metadata and NATS headers, and the spans'
export over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
set. Without either nothing leaves the process: spans still get ids, so trace ids go on travelling in
headers, events and logs (what `omsctl trace` reads), at no cost but their creation."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_getter = DefaultGetter()
_configured = False
# spans leave the process (an OTLP endpoint is set): only then are calls and transactions spans of
# their own; otherwise they would cost each call tens of µs for nobody (measured: a kit channel's
# unary calls 25 % slower), and the caller's trace context travels as before
_exporting = False


def exporting() -> bool:
    return _exporting


EXPORT_SETTINGS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def setup_tracing(service_name: str, env: Mapping[str, str] | None = None) -> None:
    """Install a real tracer provider so spans get ids, exporting them when the OTLP endpoint is set."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    global _exporting
    if exports(os.environ if env is None else env):
        provider.add_span_processor(_otlp_processor())
        _exporting = True
    trace.set_tracer_provider(provider)
    _configured = True
    global _tracer
    _tracer = trace.get_tracer("oms")


def exports(env: Mapping[str, str]) -> bool:
    return any(env.get(name, "").strip() for name in EXPORT_SETTINGS)


def _otlp_processor() -> SpanProcessor:
    """Batched OTLP/HTTP (protobuf) export; the exporter reads its own OTEL_EXPORTER_OTLP_* settings
    (endpoint, headers, timeout) and the processor its OTEL_BSP_* ones. Imported only when used."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter())


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


def outgoing_headers(context: otel_context.Context | None = None) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier


def outgoing_metadata(context: otel_context.Context | None = None) -> list[tuple[str, str]]:
    return list(outgoing_headers(context).items())


def client_span(method: str) -> trace.Span:
    """The span of an outgoing call, not made current: the caller ends it when the call is done
    (a grpc.aio call outlives the interceptor that starts it). Not exporting: the current span's
    context, recording nothing, so the callee still joins the caller's trace."""
    if not _exporting:
        return trace.NonRecordingSpan(trace.get_current_span().get_span_context())
    return tracer().start_span(method, kind=trace.SpanKind.CLIENT)


def client_call(method: str) -> AbstractContextManager[object]:
    """The forwarded call's span made current while it runs (when exporting; otherwise nothing)."""
    if not _exporting:
        return nullcontext()
    return tracer().start_as_current_span(method, kind=trace.SpanKind.CLIENT)


def metadata_of(span: trace.Span) -> list[tuple[str, str]]:
    """`traceparent` naming `span` as the parent of what the callee does."""
    return outgoing_metadata(trace.set_span_in_context(span))


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


def transaction_span() -> trace.Span:
    """A unit of work's span, from its first statement to its commit or rollback (under the call's
    span, not made current: the transaction is entered and left in separate awaits)."""
    if not _exporting:
        return trace.INVALID_SPAN
    return tracer().start_span("db transaction", kind=trace.SpanKind.CLIENT, attributes=_DB)


def end_transaction(span: trace.Span, committed: bool) -> None:
    span.set_attribute("db.committed", committed)
    span.end()


_DB = {"db.system": "postgresql"}
