from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit import grpc_client, tracing
from services.kit.errors import FailedPrecondition, Unavailable
from services.kit.grpc_server import GrpcServer
from services.kit.identity import current
from tests import identity

ROUTING = identity.service_identity("routing")


class Scripted(orders_pb2_grpc.OrdersServiceServicer):
    """Fails `unavailable_times` calls with UNAVAILABLE, then answers; records what it saw."""

    def __init__(self) -> None:
        self.calls = 0
        self.unavailable_times = 0
        self.delay = 0.0
        self.trace_ids: list[str] = []
        self.callers: list[str] = []

    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.trace_ids.append(tracing.current_trace_id())
        self.callers.append(f"{current().issuer}:{current().subject}")
        await asyncio.sleep(self.delay)
        if self.calls <= self.unavailable_times:
            raise Unavailable("warming up")
        if request.order_id == "frozen":
            raise FailedPrecondition("frozen")
        return orders_pb2.GetOrderResponse(order=orders_pb2.Order(order_id=request.order_id))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, int]]:
    tracing.setup_tracing("tests")
    servicer = Scripted()
    server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=["oms.orders.v1.OrdersService"],
        register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s),
        host="127.0.0.1",
        grace_seconds=0.1,
    )
    await server.start()
    yield servicer, server.port
    await server.stop()


async def test_unavailable_is_retried_until_it_answers(scripted: tuple[Scripted, int]) -> None:
    servicer, port = scripted
    servicer.unavailable_times = 2
    async with grpc_client.channel(f"127.0.0.1:{port}", identity=ROUTING) as channel:
        reply = await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
            orders_pb2.GetOrderRequest(order_id="a")
        )
    assert reply.order.order_id == "a"
    assert servicer.calls == 3


async def test_other_errors_are_never_retried(scripted: tuple[Scripted, int]) -> None:
    servicer, port = scripted
    async with grpc_client.channel(f"127.0.0.1:{port}", identity=ROUTING) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
                orders_pb2.GetOrderRequest(order_id="frozen")
            )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert servicer.calls == 1


async def test_calls_without_a_deadline_get_the_channels_default(scripted: tuple[Scripted, int]) -> None:
    servicer, port = scripted
    servicer.delay = 2.0
    async with grpc_client.channel(f"127.0.0.1:{port}", deadline_seconds=0.3, identity=ROUTING) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
                orders_pb2.GetOrderRequest(order_id="a")
            )
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_callers_trace_travels_with_the_call(scripted: tuple[Scripted, int]) -> None:
    servicer, port = scripted
    async with grpc_client.channel(f"127.0.0.1:{port}", identity=ROUTING) as channel:
        with tracing.tracer().start_as_current_span("caller"):
            await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
                orders_pb2.GetOrderRequest(order_id="a")
            )
            caller = tracing.current_trace_id()
    assert servicer.trace_ids == [caller]


async def test_each_call_carries_the_calling_services_own_assertion(scripted: tuple[Scripted, int]) -> None:
    servicer, port = scripted
    async with grpc_client.channel(f"127.0.0.1:{port}", identity=ROUTING) as channel:
        for order_id in ("a", "b"):
            await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
                orders_pb2.GetOrderRequest(order_id=order_id)
            )
    assert servicer.callers == ["routing:routing", "routing:routing"]


async def test_a_channel_without_an_identity_is_refused_by_a_verifying_server(
    scripted: tuple[Scripted, int],
) -> None:
    servicer, port = scripted
    async with grpc_client.channel(f"127.0.0.1:{port}", identity=None) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
                orders_pb2.GetOrderRequest(order_id="a")
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert servicer.calls == 0


async def test_a_peer_back_after_an_outage_is_reconnected_within_seconds_not_minutes() -> None:
    from omsctl.embedded import free_port

    port = free_port()
    servicer = Scripted()
    async with grpc_client.channel(f"127.0.0.1:{port}", identity=ROUTING) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        loop = asyncio.get_running_loop()
        down_until = loop.time() + 12  # long enough for gRPC's own back-off to grow past 5 s
        while loop.time() < down_until:
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="a"), timeout=0.2)
            await asyncio.sleep(0.5)
        server = GrpcServer(
            port=port,
            verifier=identity.verifier(),
            service_names=["oms.orders.v1.OrdersService"],
            register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s),
            host="127.0.0.1",
            grace_seconds=0.1,
        )
        await server.start()
        back = loop.time()
        try:
            reply = await stub.GetOrder(
                orders_pb2.GetOrderRequest(order_id="a"), timeout=10, wait_for_ready=True
            )
            waited = loop.time() - back
        finally:
            await server.stop()
    assert reply.order.order_id == "a"
    assert waited < 3.5, f"reconnected {waited:.1f}s after the peer came back"
