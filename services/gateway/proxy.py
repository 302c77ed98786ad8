"""One generic handler for every public method: the gate first, then the owning service or the gateway.

Forwarded calls stay raw bytes (the gateway never re-encodes a request), so the HMAC over the
request body checks exactly what the caller sent. Adding an RPC to a service needs only a policy
entry: the handler finds the method's shape in the descriptor pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.trace import use_span

from services.gateway import json_fields
from services.gateway.domain.attempts import REFUSED_RESULTS, AttemptReason
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.policy import Reach, rule_for
from services.gateway.domain.principal import Caller, anonymous
from services.gateway.gate import Gate, Refused, client_address, trailing
from services.gateway.peers import OrderVisibility
from services.kit import inputs, tracing
from services.kit.errors import DomainError, InvalidArgument
from services.kit.identity import audience_of
from services.kit.status import DETAILS_KEY, to_status

log = logging.getLogger(__name__)


def parsed_request(request_class: Callable[[], Message], request: bytes) -> Message:
    """The request as its method's message. Garbage, and text Postgres cannot store (a NUL), is
    INVALID_ARGUMENT here, before it reaches a service or the audit log."""
    parsed = request_class()
    try:
        parsed.ParseFromString(request)
    except DecodeError:
        raise InvalidArgument("request", "is not a valid message of this method") from None
    if b"\x00" in request:  # no zero byte at all, no NUL in any string: skip the walk
        inputs.refuse_nul(parsed)
    return parsed


Local = Callable[..., Any]

PASSED_TRAILERS = frozenset({"retry-after", DETAILS_KEY})


@dataclass(frozen=True)
class LocalMethod:
    """A method the gateway serves itself; `handler(request, context, caller)`."""

    handler: Local
    # the audit wants the request's ids after the call (mutating methods); reveals audit themselves
    audits_itself: bool = False


class Dispatcher(grpc.GenericRpcHandler):
    def __init__(
        self,
        gate: Gate,
        upstreams: dict[str, grpc.aio.Channel],
        local_service: str,
        local: dict[str, LocalMethod],
        default_deadline_seconds: float,
        stream_deadline_seconds: float = 3600.0,
        visibility: OrderVisibility | None = None,
    ) -> None:
        self.gate = gate
        self.visibility = visibility
        self.upstreams = upstreams
        self.local_service = local_service
        self.local = local
        self.default_deadline = default_deadline_seconds
        self.stream_deadline = stream_deadline_seconds
        self.pool = descriptor_pool.Default()
        # one handler per public method, built on its first call (the set of methods is finite)
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        handler = self.handlers.get(method)
        if handler is None:
            handler = self._build(method)
            if handler is not None:
                self.handlers[method] = handler
        return handler

    def _build(self, method: str) -> grpc.RpcMethodHandler | None:
        service_name, _, method_name = method.lstrip("/").partition("/")
        if service_name != self.local_service and service_name not in self.upstreams:
            return None
        try:
            descriptor = self.pool.FindMethodByName(f"{service_name}.{method_name}")
        except KeyError:
            return None
        if service_name == self.local_service:
            return self._local(method, descriptor)
        return self._forward(method, descriptor, self.upstreams[service_name])

    # ---- admission shared by every kind of call -----------------------------------------------

    async def _admit(
        self, method: str, body: bytes, context: grpc.aio.ServicerContext
    ) -> tuple[Caller, dict[str, str]]:
        metadata = {
            key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
        }
        rule = rule_for(method)
        try:
            if rule is None:
                self.gate.failed_attempt_of(
                    anonymous(),
                    client_address(metadata, context.peer() or ""),
                    method,
                    "PERMISSION_DENIED",
                    AttemptReason.NOT_PUBLIC,
                )
                raise Refused(grpc.StatusCode.PERMISSION_DENIED, f"{method} is not a public method")
            caller = await self.gate.admit(method, rule, metadata, body, context.peer() or "")
            self._refuse_unknown_json_fields(method, metadata)
            return caller, metadata
        except Refused as refused:
            context.set_trailing_metadata(trailing(refused.retry_after))
            await context.abort(refused.code, refused.message)
            raise

    def _refuse_unknown_json_fields(self, method: str, metadata: dict[str, str]) -> None:
        listed = metadata.get(json_fields.HEADER)
        if not listed:
            return
        service_name, _, method_name = method.lstrip("/").partition("/")
        unknown = json_fields.unknown_field(
            self.pool.FindMethodByName(f"{service_name}.{method_name}"), listed
        )
        if unknown is not None:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"{unknown}: is not a field of this request")

    async def _audited(self, method: str, caller: Caller, request: bytes, call: Awaitable[bytes]) -> bytes:
        rule = rule_for(method)
        if rule is None or not rule.mutating:
            return await call
        try:
            response = await call
        except grpc.aio.AioRpcError as error:
            await self.gate.audit(caller, method, error.code().name, self.gate.targets(method, request, None))
            raise
        except UpstreamFailure as error:
            # a service the gateway's own method called failed: the audit names its code
            await self.gate.audit(caller, method, error.code, self.gate.targets(method, request, None))
            raise
        except DomainError as error:
            code, _ = to_status(error)
            await self.gate.audit(
                caller, method, code.name, self.gate.targets(method, request, None), str(error)
            )
            raise
        await self.gate.audit(caller, method, "OK", self.gate.targets(method, request, response))
        return response

    # ---- forwarded -----------------------------------------------------------------------------

    def _forward(self, method: str, descriptor: Any, channel: grpc.aio.Channel) -> grpc.RpcMethodHandler:
        dispatcher = self

        def deadline(context: grpc.aio.ServicerContext) -> float:
            remaining = context.time_remaining()
            return (
                dispatcher.default_deadline
                if remaining is None
                else min(remaining, dispatcher.default_deadline)
            )

        async def upstream_error(
            context: grpc.aio.ServicerContext, caller: Caller, error: grpc.aio.AioRpcError
        ) -> None:
            # the service's retry-after and field violations reach the caller (Envoy turns the
            # details into the JSON error body)
            if error.code().name in REFUSED_RESULTS:
                dispatcher.gate.failed_attempt(
                    caller, method, error.code().name, AttemptReason.SERVICE_REFUSED
                )
            passed = [
                (key, value) for key, value in error.trailing_metadata() or () if key in PASSED_TRAILERS
            ]
            await context.abort(
                error.code(),
                error.details() or "",
                trailing_metadata=(*(context.trailing_metadata() or ()), *passed),
            )

        request_class = message_factory.GetMessageClass(descriptor.input_type)
        audience = audience_of(method)
        rule = rule_for(method)
        about_an_order = rule is not None and rule.reach is Reach.ORDER
        if about_an_order and (
            self.visibility is None or "order_id" not in descriptor.input_type.fields_by_name
        ):
            raise RuntimeError(f"{method}: Reach.ORDER needs an order_id field and the orders service")

        async def well_formed(request: bytes, caller: Caller) -> None:
            """Garbage (and text Postgres cannot store) is refused here with INVALID_ARGUMENT instead of
            reaching the service or the audit log; a call about an order outside a scoped caller's rows
            is answered NOT_FOUND before it reaches the service that does not know whose order it is."""
            parsed = parsed_request(request_class, request)
            if about_an_order and dispatcher.visibility is not None:
                await dispatcher.visibility.check(caller, str(getattr(parsed, "order_id")))  # noqa: B009

        if not descriptor.client_streaming and not descriptor.server_streaming:
            call = channel.unary_unary(method)

            async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                caller, metadata = await dispatcher._admit(method, request, context)
                try:
                    await well_formed(request, caller)
                except grpc.aio.AioRpcError as error:
                    await upstream_error(context, caller, error)
                    raise
                try:
                    # the forwarded call's own span: the owner's work hangs under it
                    with tracing.client_call(method):
                        outgoing = dispatcher.gate.upstream_metadata(caller, metadata, audience)
                        answer = call(request, timeout=deadline(context), metadata=outgoing)
                        return await dispatcher._audited(method, caller, request, answer)
                except grpc.aio.AioRpcError as error:
                    await upstream_error(context, caller, error)
                    raise

            return grpc.unary_unary_rpc_method_handler(unary)

        if descriptor.server_streaming and not descriptor.client_streaming:
            stream = channel.unary_stream(method)

            async def server_stream(
                request: bytes, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[bytes]:
                caller, metadata = await dispatcher._admit(method, request, context)
                try:
                    await well_formed(request, caller)
                except grpc.aio.AioRpcError as error:
                    await upstream_error(context, caller, error)
                    return
                # not made current: a stream closed by the garbage collector ends in another context
                span = tracing.client_span(method)
                with use_span(span, end_on_exit=False):
                    outgoing = dispatcher.gate.upstream_metadata(caller, metadata, audience)
                try:
                    # the caller's deadline, whole: an export runs as long as its caller waits
                    remaining = context.time_remaining()
                    timeout = dispatcher.stream_deadline if remaining is None else remaining
                    async for item in stream(request, timeout=timeout, metadata=outgoing):
                        yield item
                except grpc.aio.AioRpcError as error:
                    await upstream_error(context, caller, error)
                finally:
                    span.end()

            return grpc.unary_stream_rpc_method_handler(server_stream)

        log.warning("client-streaming method %s is not forwarded", method)
        return grpc.unary_unary_rpc_method_handler(_unimplemented)

    # ---- served here ---------------------------------------------------------------------------

    def _local(self, method: str, descriptor: Any) -> grpc.RpcMethodHandler | None:
        entry = self.local.get(descriptor.name)
        if entry is None:
            return None
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        dispatcher = self

        def parse(data: bytes) -> Message:
            message: Message = request_class()
            try:
                message.ParseFromString(data)
            except DecodeError:
                raise InvalidArgument("request", "is not a valid message of this method") from None
            if b"\x00" in data:
                inputs.refuse_nul(message)
            return message

        if descriptor.client_streaming:

            async def client_stream(
                requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
            ) -> bytes:
                caller, _ = await dispatcher._admit(method, b"", context)
                parsed = (parse(item) async for item in requests)
                try:
                    response: Message = await entry.handler(parsed, context, caller)
                except DomainError as error:
                    code, _ = to_status(error)
                    await dispatcher.gate.audit(caller, method, code.name, [], str(error))
                    raise
                upload = getattr(response, "upload", None)
                targets = [upload.upload_id] if upload is not None else []
                await dispatcher.gate.audit(caller, method, "OK", targets)
                return response.SerializeToString()

            return grpc.stream_unary_rpc_method_handler(client_stream)

        if descriptor.server_streaming:

            async def server_stream(
                request: bytes, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[bytes]:
                caller, _ = await dispatcher._admit(method, request, context)
                async for item in entry.handler(parse(request), context, caller):
                    yield item.SerializeToString()

            return grpc.unary_stream_rpc_method_handler(server_stream)

        async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            caller, _ = await dispatcher._admit(method, request, context)

            async def run() -> bytes:
                response: Message = await entry.handler(parse(request), context, caller)
                return response.SerializeToString()

            if entry.audits_itself:
                return await run()
            return await dispatcher._audited(method, caller, request, run())

        return grpc.unary_unary_rpc_method_handler(unary)


async def _unimplemented(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "client streaming is not forwarded")
    raise AssertionError("unreachable")
