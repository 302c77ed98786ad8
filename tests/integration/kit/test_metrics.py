"""A service's /metrics on a real gRPC server and runtime: the RPC counters move with the calls, the
outbox, inbox, pool and consumer figures are there, and the relay counts events by subject."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl.embedded import free_port
from omsctl.stack import Infra
from services.kit import bus, tracing
from services.kit.consumer import EventConsumer
from services.kit.db import UnitOfWork
from services.kit.errors import NotFound
from services.kit.grpc_server import GrpcServer
from services.kit.metrics import MetricsEndpoint
from services.kit.runtime import Runtime
from tests import identity
from tests.conftest import random_ref
from tests.identity import as_gateway
from tests.integration.kit.helpers import sample_event
from tests.integration.kit.test_jobs import _settings
from tests.waiting import eventually

SERVICE = "oms.orders.v1.OrdersService"


class Answering(orders_pb2_grpc.OrdersServiceServicer):
    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        if request.order_id == "missing":
            raise NotFound("order missing")
        return orders_pb2.GetOrderResponse(order=orders_pb2.Order(order_id=request.order_id))


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    text = await asyncio.to_thread(get)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(seen: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return seen.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Served:
    server: GrpcServer
    metrics: MetricsEndpoint
    service: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    tracing.setup_tracing("tests")
    service = random_ref("svc")
    server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=[SERVICE],
        register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(Answering(), s),
        grace_seconds=0.5,
        service=service,
    )
    endpoint = MetricsEndpoint("127.0.0.1", 0)
    await server.start()
    yield Served(server, endpoint, service)
    await server.stop()
    await asyncio.to_thread(endpoint.stop)


async def test_metrics_answer_and_the_rpc_counters_move_with_each_call(served: Served) -> None:
    method = {"service": served.service, "grpc_service": SERVICE, "grpc_method": "GetOrder"}
    before = await scrape(served.metrics.port)
    assert value(before, "oms_grpc_server_handled_total", **method, grpc_code="OK") == 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.server.port}") as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        for _ in range(3):
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="o-1"), metadata=as_gateway())
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="missing"), metadata=as_gateway())
        with pytest.raises(grpc.aio.AioRpcError):  # no identity assertion: refused before the handler
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="o-1"))
    after = await scrape(served.metrics.port)
    assert value(after, "oms_grpc_server_handled_total", **method, grpc_code="OK") == 3
    assert value(after, "oms_grpc_server_handled_total", **method, grpc_code="NOT_FOUND") == 1
    assert value(after, "oms_grpc_server_handled_total", **method, grpc_code="UNAUTHENTICATED") == 1
    assert value(after, "oms_grpc_server_handling_seconds_count", **method) == 5
    assert value(after, "oms_grpc_server_handling_seconds_bucket", **method, le="+Inf") == 5
    assert 0 < value(after, "oms_grpc_server_handling_seconds_sum", **method) < 5
    # health checks are not business: they are not counted
    assert not any(labels and ("grpc_service", "grpc.health.v1.Health") in labels for _, labels in after)


async def test_a_runtime_serves_its_outbox_inbox_pool_consumer_and_event_figures(
    orders_db: str, infra: Infra, subject_prefix: str
) -> None:
    service = random_ref("svc")
    settings = replace(_settings(orders_db, infra, subject_prefix, service), metrics_port=free_port())
    async with Runtime(settings) as runtime:
        assert runtime.metrics is not None and runtime.metrics.port == settings.metrics_port
        async with UnitOfWork(runtime.engine) as uow:
            for n in range(3):
                uow.publish("orders.created", sample_event(n))
            await uow.commit()
        handled: list[str] = []

        async def handler(conn, event, envelope):  # type: ignore[no-untyped-def]
            handled.append(envelope.event_id)

        consumer_name = random_ref("metrics-consumer")
        consumer = EventConsumer(
            runtime.js,
            runtime.engine,
            name=consumer_name,
            subject_prefix=subject_prefix,
            subject="orders.created",
            handler=handler,
            fetch_seconds=0.2,
        )
        runtime.spawn("consumer", consumer.run)
        await eventually(lambda: len(handled) == 3, within=20)

        async def relay_counted() -> bool:
            seen = await scrape(settings.metrics_port)
            return value(seen, "oms_events_total", service=service, subject="orders.created") == 3

        await eventually(relay_counted, within=10)
        await runtime.report_outbox()
        seen = await scrape(settings.metrics_port)
        assert value(seen, "oms_consumer_messages_total", consumer=consumer_name, outcome="processed") == 3
        assert ("oms_outbox_unpublished", frozenset({("service", service)})) in seen
        assert value(seen, "oms_inbox_entries", service=service) >= 3
        assert value(seen, "oms_db_pool_size", service=service) == settings.db_pool_size
        stream = bus.stream_name(subject_prefix, "orders")
        assert ("oms_consumer_pending", frozenset({("consumer", consumer_name), ("stream", stream)})) in seen


async def test_a_runtime_whose_metrics_port_is_taken_still_runs_without_figures(
    orders_db: str, infra: Infra, subject_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = replace(
            _settings(orders_db, infra, subject_prefix, random_ref("svc")),
            host="127.0.0.1",
            metrics_port=port,
        )
        async with Runtime(settings) as runtime:
            assert runtime.metrics is None
            assert await runtime.ready()
    assert any(f"port {port} is not free" in record.getMessage() for record in caplog.records)
