"""Client channels: a default deadline on every call, retries on UNAVAILABLE only, trace context and the
calling service's own identity assertion out."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from opentelemetry.trace import Span

from services.kit import tracing
from services.kit.identity import ASSERTION_HEADER, Assertions, audience_of

DEFAULT_DEADLINE_SECONDS = 5.0
# gRPC's own reconnect back-off grows to 120 s: a peer back after an outage would stay unreachable for
# up to two minutes. Capped here, a restarted peer is reconnected within a couple of seconds.
RECONNECT_BACKOFF_MS = {"initial": 250, "min": 250, "max": 2000}


def service_config(
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS, max_attempts: int = 4, streams: Sequence[str] = ()
) -> str:
    """`streams` (`package.Service/Method`) get no default deadline: a service config timeout caps
    every call's own, and a server stream (an export) lasts as long as its caller allows, not 5 s."""
    retry = {
        "maxAttempts": max_attempts,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    configs: list[dict[str, Any]] = [{"name": [{}], "timeout": f"{deadline_seconds}s", "retryPolicy": retry}]
    if streams:
        names = [dict(zip(("service", "method"), name.split("/"), strict=True)) for name in streams]
        configs.append({"name": names, "retryPolicy": retry})
    return json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": configs})


def server_streams(service: str) -> list[str]:
    """The server-streaming methods of `service` (its proto module imported), named for `service_config`."""
    described = descriptor_pool.Default().FindServiceByName(service)
    return [f"{service}/{method.name}" for method in described.methods if method.server_streaming]


class OutgoingInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
):
    """One interceptor for both concerns: each interceptor costs grpc.aio a task per call. With `trace`,
    each call is a client span, ended when the call is done, whose context the callee joins."""

    def __init__(self, trace: bool, assertions: Assertions | None) -> None:
        self.trace = trace
        self.assertions = assertions

    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], client_call_details: Any, request: Any
    ) -> Any:
        details, span = self._outgoing(client_call_details)
        if span is None:
            return await continuation(details, request)
        return _ended_with(span, await _started(continuation(details, request), span))

    async def intercept_stream_unary(
        self, continuation: Callable[..., Awaitable[Any]], client_call_details: Any, request_iterator: Any
    ) -> Any:
        details, span = self._outgoing(client_call_details)
        if span is None:
            return await continuation(details, request_iterator)
        return _ended_with(span, await _started(continuation(details, request_iterator), span))

    async def intercept_unary_stream(
        self, continuation: Callable[..., Awaitable[Any]], client_call_details: Any, request: Any
    ) -> Any:
        details, span = self._outgoing(client_call_details)
        if span is None:
            return await continuation(details, request)
        return _ended_with(span, await _started(continuation(details, request), span))

    def _outgoing(self, details: Any) -> tuple[grpc.aio.ClientCallDetails, Span | None]:
        metadata = list(details.metadata or ())
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        span = None
        if self.trace:
            metadata = [(k, v) for k, v in metadata if k not in ("traceparent", "tracestate")]
            if tracing.exporting():
                span = tracing.client_span(method)
                metadata.extend(tracing.metadata_of(span))
            else:  # nobody receives spans: the caller's context travels, as it did before
                metadata.extend(tracing.outgoing_metadata())
        # a call that already carries an assertion (the gateway's, minted for its caller) keeps it
        if self.assertions is not None and all(k != ASSERTION_HEADER for k, _ in metadata):
            metadata.append((ASSERTION_HEADER, self.assertions.assertion(audience_of(method))))
        outgoing = grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=grpc.aio.Metadata(*metadata),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )
        return outgoing, span


async def _started(call: Awaitable[Any], span: Span | None) -> Any:
    """The call as the continuation makes it; a call that fails to start ends its span at once."""
    try:
        return await call
    except BaseException:
        if span is not None:
            span.end()
        raise


def _ended_with(span: Span | None, call: Any) -> Any:
    if span is not None:
        call.add_done_callback(lambda _done: span.end())
    return call


def channel(
    address: str,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    trace_interceptor: bool = True,
    *,
    identity: Assertions | None,
    streams: Sequence[str] = (),
) -> grpc.aio.Channel:
    """`identity` gives each call its assertion (a service's `identity.ServiceIdentity`); None is for
    the gateway's proxy, which mints one per call for its caller and, like `trace_interceptor=False`,
    puts everything into the metadata itself: grpc.aio's interceptors cost a task per call."""
    interceptors = (
        [OutgoingInterceptor(trace_interceptor, identity)] if trace_interceptor or identity else None
    )
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", service_config(deadline_seconds, streams=streams)),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS["initial"]),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS["min"]),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS["max"]),
        ],
        interceptors=interceptors,
    )
