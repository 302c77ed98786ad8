from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit import tracing
from services.kit.errors import FailedPrecondition
from services.kit.grpc_server import TRACE_ID_HEADER, GrpcServer
from services.kit.identity import current
from tests import identity
from tests.identity import as_gateway

SERVICE = "oms.orders.v1.OrdersService"


class Exploding(orders_pb2_grpc.OrdersServiceServicer):
    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        if request.order_id == "whoami":
            caller = current()
            return orders_pb2.GetOrderResponse(
                order=orders_pb2.Order(order_id=caller.subject, buyer_id=",".join(sorted(caller.roles)))
            )
        if request.order_id == "frozen":
            raise FailedPrecondition("order is frozen in EXCEPTION")
        raise KeyError("secret internal detail")


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    tracing.setup_tracing("tests")
    server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=[SERVICE],
        register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(Exploding(), s),
        grace_seconds=0.5,
        host="127.0.0.1",
    )
    await server.start()
    yield server
    await server.stop()


async def test_health_reports_serving_per_service_then_not_serving_on_shutdown(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await server.set_serving(False)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_services(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name async for reply in call for s in reply.list_services_response.service]
    assert SERVICE in names and "grpc.health.v1.Health" in names


async def test_errors_map_to_status_codes_without_leaking_internals(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="frozen"), metadata=as_gateway())
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.details() == "order is frozen in EXCEPTION"
        with pytest.raises(grpc.aio.AioRpcError) as crashed:
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="other"), metadata=as_gateway())
        assert crashed.value.code() == grpc.StatusCode.INTERNAL
        assert "secret" not in (crashed.value.details() or "")


async def test_the_callers_trace_is_joined_and_its_id_returned(server: GrpcServer) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
            orders_pb2.GetOrderRequest(order_id="frozen"),
            metadata=[("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"), *as_gateway()],
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
    assert dict(refused.value.trailing_metadata())[TRACE_ID_HEADER] == trace_id


async def test_a_call_without_a_valid_assertion_is_refused_before_the_handler_runs(
    server: GrpcServer,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        for metadata in ((), (("x-oms-roles", "admin"), ("x-oms-principal", "root"))):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="other"), metadata=metadata)
            # the handler would have crashed with INTERNAL
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert TRACE_ID_HEADER in dict(refused.value.trailing_metadata())


async def test_the_handler_sees_the_principal_of_the_verified_assertion(server: GrpcServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await orders_pb2_grpc.OrdersServiceStub(channel).GetOrder(
            orders_pb2.GetOrderRequest(order_id="whoami"),
            metadata=(*as_gateway("ops", "finance", subject="alice"), ("x-oms-roles", "admin")),
        )
    assert (reply.order.order_id, reply.order.buyer_id) == ("alice", "finance,ops")


async def test_a_server_listens_on_loopback_only_unless_told_otherwise() -> None:
    server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=[SERVICE],
        register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(Exploding(), s),
        grace_seconds=0.1,
    )
    await server.start()
    try:
        assert identity.listening_hosts(server.port) == {"127.0.0.1"}
    finally:
        await server.stop()
