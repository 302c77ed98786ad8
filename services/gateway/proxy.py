"""Forwards public RPCs to their owning service as raw bytes, keeping the caller's deadline and trace."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import descriptor_pool

log = logging.getLogger(__name__)

FORWARDED_METADATA = frozenset({"x-request-id", "idempotency-key", "grpc-accept-encoding"})


class ProxyHandler(grpc.GenericRpcHandler):
    def __init__(self, upstreams: dict[str, grpc.aio.Channel], default_deadline_seconds: float) -> None:
        self.upstreams = upstreams
        self.default_deadline = default_deadline_seconds
        self.pool = descriptor_pool.Default()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        service_name, _, method_name = method.lstrip("/").partition("/")
        channel = self.upstreams.get(service_name)
        if channel is None:
            return None
        try:
            descriptor = self.pool.FindMethodByName(f"{service_name}.{method_name}")
        except KeyError:
            return None
        if descriptor.client_streaming or descriptor.server_streaming:
            log.warning("streaming method %s is not proxied", method)
            return None
        return grpc.unary_unary_rpc_method_handler(self._forwarder(channel, method))

    def _forwarder(self, channel: grpc.aio.Channel, method: str) -> Any:
        call = channel.unary_unary(method)

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            remaining = context.time_remaining()
            timeout = self.default_deadline if remaining is None else min(remaining, self.default_deadline)
            metadata = [(k, v) for k, v in context.invocation_metadata() or () if k in FORWARDED_METADATA]
            try:
                return await call(request, timeout=timeout, metadata=metadata)  # type: ignore[no-any-return]
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
                raise

        return forward
