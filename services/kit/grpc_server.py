"""The gRPC server every service runs: health, reflection, interceptors and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.kit import identity, inputs, metrics, reflection, tracing
from services.kit.db_errors import database_error
from services.kit.errors import DomainError, Unauthenticated
from services.kit.status import status_of

log = logging.getLogger(__name__)

TRACE_ID_HEADER = "x-trace-id"


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Joins the caller's trace, answers with the trace id, verifies who is calling, logs each call,
    maps errors in one place.

    With a verifier, every call but health and reflection must carry a valid identity assertion; it
    is refused with UNAUTHENTICATED before the handler runs, and handlers read the verified principal
    with `identity.current()`. Without one (the gateway, which authenticates its callers itself) no
    principal is set. Each call is counted and timed in `figures` (services.kit.metrics).
    """

    def __init__(self, verifier: identity.Verifier | None, figures: metrics.RpcFigures) -> None:
        self.verifier = verifier
        self.figures = figures

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        metadata = handler_call_details.invocation_metadata  # type: ignore[attr-defined]
        if method.startswith("/grpc.health.") or method.startswith("/grpc.reflection."):
            return handler
        verifier = self.verifier
        figures = self.figures.of(method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, metadata, verifier, figures),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method, metadata, verifier, figures),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, metadata, verifier, figures),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream(handler.stream_stream, method, metadata, verifier, figures),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _CallScope:
    """The span, initial metadata, access log and error mapping around one call."""

    def __init__(
        self,
        method: str,
        metadata: Any,
        context: grpc.aio.ServicerContext,
        verifier: identity.Verifier | None,
        figures: metrics.MethodFigures,
    ) -> None:
        self.method = method
        self.figures = figures
        self.metadata = metadata
        self.context = context
        self.verifier = verifier
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.bound: Any = None

    async def __aenter__(self) -> _CallScope:
        self.token = otel_context.attach(tracing.context_from_metadata(self.metadata))
        self.span_cm = tracing.tracer().start_as_current_span(self.method, kind=trace.SpanKind.SERVER)
        self.span_cm.__enter__()
        self.trace_metadata = (
            (TRACE_ID_HEADER, tracing.current_trace_id()),
            ("traceparent", tracing.current_traceparent()),
        )
        # failures carry the trace id in their trailers, whoever aborts the call
        self.context.set_trailing_metadata(self.trace_metadata)
        return self

    def authenticate(self) -> None:
        """Inside the scope, so a refusal is answered, traced and logged like any other error."""
        if self.verifier is None:
            return
        try:
            principal = self.verifier.verify(
                identity.assertion_in(self.metadata), identity.audience_of(self.method)
            )
        except identity.IdentityError as error:
            raise Unauthenticated(f"identity assertion refused: {error}") from None
        self.bound = identity.bind(principal)

    @staticmethod
    def refuse_bad_text(request: Any) -> None:
        """Before any handler (and so before any SQL): a NUL in a string field is a 400 naming the field."""
        if isinstance(request, Message):
            inputs.refuse_nul(request)

    async def answer_with_trace(self) -> None:
        """Headers go out only with the answer: a call whose headers were sent can no longer be retried."""
        await self.context.send_initial_metadata(self.trace_metadata)

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc is None:
                return False
            if isinstance(exc, grpc.aio.AbortError):
                self.code = self.context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[assignment]
                return False
            if isinstance(exc, asyncio.CancelledError):
                self.code = grpc.StatusCode.CANCELLED
                return False
            if not isinstance(exc, Exception):
                return False
            status = status_of(exc)
            self.code = status.code
            if isinstance(exc, DomainError) or status.code == grpc.StatusCode.UNIMPLEMENTED:
                log.info("rejected %s: %s", self.method, status.message)
            elif status.code == grpc.StatusCode.UNAVAILABLE:
                # an outage, not a bug: one line per call, no traceback
                log.warning("%s answered UNAVAILABLE: %s", self.method, database_error(exc) or repr(exc))
            else:
                # a database error's traceback is logged without its text (services.kit.logs)
                log.exception("unhandled error in %s", self.method, exc_info=exc)
            await self.context.abort(
                status.code, status.message, trailing_metadata=(*self.trace_metadata, *status.trailers)
            )
            return False
        finally:
            elapsed = time.perf_counter() - self.started
            self.figures.observe(self.code.name, elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "rpc %s", self.method, extra={"code": self.code.name, "ms": round(elapsed * 1000, 2)}
                )
            if self.bound is not None:
                # a stream closed by the garbage collector ends in another context
                with contextlib.suppress(ValueError):
                    identity.unbind(self.bound)
            self.span_cm.__exit__(None, None, None)
            otel_context.detach(self.token)


def _wrap_unary(
    behaviour: Any,
    method: str,
    metadata: Any,
    verifier: identity.Verifier | None,
    figures: metrics.MethodFigures,
) -> Any:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _CallScope(method, metadata, context, verifier, figures) as scope:
            scope.authenticate()
            scope.refuse_bad_text(request)
            response = await behaviour(request, context)
            await scope.answer_with_trace()
            return response

    return wrapper


def _wrap_stream(
    behaviour: Any,
    method: str,
    metadata: Any,
    verifier: identity.Verifier | None,
    figures: metrics.MethodFigures,
) -> Any:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with _CallScope(method, metadata, context, verifier, figures) as scope:
            scope.authenticate()
            scope.refuse_bad_text(request)
            first = True
            async for item in behaviour(request, context):
                if first:
                    await scope.answer_with_trace()
                    first = False
                yield item

    return wrapper


READINESS = "readiness"

Readiness = Callable[[], Awaitable[bool]]


class GrpcServer:
    """A grpc.aio server with the standard health service and reflection.

    Health names: "" is liveness, SERVING while the process runs (restart it only when it stops
    answering); "readiness" and each service name are readiness, NOT_SERVING while `readiness` (the
    database and NATS reachable) fails, checked every `readiness_seconds`.

    `verifier` is required on purpose: None (no identity check) is for the gateway alone. It listens
    on loopback unless told otherwise (`HOST=0.0.0.0` in Kubernetes). Its calls are counted under
    `service` in the metrics (default: the first of `service_names`).
    """

    def __init__(
        self,
        *,
        port: int,
        verifier: identity.Verifier | None,
        service_names: Sequence[str],
        register: Callable[[grpc.aio.Server], None],
        grace_seconds: float = 5.0,
        generic_handlers: Sequence[grpc.GenericRpcHandler] = (),
        host: str = "127.0.0.1",
        readiness: Readiness | None = None,
        readiness_seconds: float = 2.0,
        service: str = "",
    ) -> None:
        self.service_names = list(service_names)
        self.grace_seconds = grace_seconds
        self.readiness = readiness
        self.readiness_seconds = readiness_seconds
        self.ready: bool | None = None
        self._watch: asyncio.Task[None] | None = None
        self.health = health.aio.HealthServicer()
        # the figures are named after the service (or its first gRPC service; "grpc" for a bare server)
        named = service or (self.service_names[0] if self.service_names else "grpc")
        self.server = grpc.aio.server(
            interceptors=[ObservabilityInterceptor(verifier, metrics.RPC.figures(named))],
            options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)],
        )
        register(self.server)
        if generic_handlers:
            self.server.add_generic_rpc_handlers(tuple(generic_handlers))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable([*self.service_names, health.SERVICE_NAME], self.server)
        self.port = self.server.add_insecure_port(f"{host}:{port}")

    async def start(self) -> int:
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.check_readiness()
        if self.readiness is not None:
            self._watch = asyncio.create_task(self._watch_readiness(), name="readiness")
        log.info("serving on port %d", self.port, extra={"services": self.service_names})
        return self.port

    async def check_readiness(self) -> bool:
        ready = True
        if self.readiness is not None:
            try:
                ready = await self.readiness()
            except Exception:
                ready = False
        if ready != self.ready:
            if self.ready is not None:
                log.warning("readiness is now %s", "SERVING" if ready else "NOT_SERVING")
            self.ready = ready
            await self._set(self._readiness_names(), ready)
        return ready

    async def _watch_readiness(self) -> None:
        while True:
            await asyncio.sleep(self.readiness_seconds)
            await self.check_readiness()

    def _readiness_names(self) -> list[str]:
        return [READINESS, *self.service_names]

    async def set_serving(self, serving: bool) -> None:
        await self._set(["", *self._readiness_names()], serving)

    async def _set(self, names: Sequence[str], serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in names:
            await self.health.set(name, status)

    async def stop(self) -> None:
        """Tell load balancers first, then let in-flight calls finish within the grace period."""
        if self._watch is not None:
            self._watch.cancel()
        await self.set_serving(False)
        await self.server.stop(self.grace_seconds)
        log.info("stopped")


async def wait_for_shutdown_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
