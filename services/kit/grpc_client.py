"""Client channels: a default deadline on every call, retries on UNAVAILABLE only, trace context out."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from services.kit import tracing

DEFAULT_DEADLINE_SECONDS = 5.0
# gRPC's own reconnect back-off grows to 120 s: a peer back after an outage would stay unreachable for
# up to two minutes. Capped here, a restarted peer is reconnected within a couple of seconds.
RECONNECT_BACKOFF_MS = {"initial": 250, "min": 250, "max": 2000}


def service_config(deadline_seconds: float = DEFAULT_DEADLINE_SECONDS, max_attempts: int = 4) -> str:
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [
                {
                    "name": [{}],
                    "timeout": f"{deadline_seconds}s",
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ],
        }
    )


class _TraceClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request)

    async def intercept_stream_unary(
        self, continuation: Callable[..., Awaitable[Any]], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request_iterator)


def _with_trace(details: Any) -> grpc.aio.ClientCallDetails:
    metadata = [(k, v) for k, v in (details.metadata or ()) if k not in ("traceparent", "tracestate")]
    metadata.extend(tracing.outgoing_metadata())
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=grpc.aio.Metadata(*metadata),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


def channel(
    address: str, deadline_seconds: float = DEFAULT_DEADLINE_SECONDS, trace_interceptor: bool = True
) -> grpc.aio.Channel:
    """`trace_interceptor=False` is for callers that put the trace into their metadata themselves (the
    gateway's proxy): grpc.aio's interceptors cost a task per call on the hot path."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", service_config(deadline_seconds)),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS["initial"]),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS["min"]),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS["max"]),
        ],
        interceptors=[_TraceClientInterceptor()] if trace_interceptor else None,
    )
