"""`omsctl status`'s figures from a service's /metrics text, and the port book's metrics ports."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from omsctl import figures, stack
from services.kit.metrics import KitFigures, RpcCollector


def scraped(rpc: RpcCollector, kit: KitFigures | None = None) -> str:
    registry = CollectorRegistry()
    registry.register(rpc)
    if kit is not None:
        registry.register(kit)
    return generate_latest(registry).decode()


def test_requests_errors_and_refusals_are_told_apart() -> None:
    rpc = RpcCollector()
    get = rpc.figures("orders").of("/oms.orders.v1.OrdersService/GetOrder")
    ingest = rpc.figures("orders").of("/oms.orders.v1.OrdersService/IngestOrder")
    for code in ("OK", "OK", "OK", "NOT_FOUND", "INTERNAL"):
        get.observe(code, 0.002)
    ingest.observe("UNAVAILABLE", 0.01)
    ingest.observe("INVALID_ARGUMENT", 0.001)
    kit = KitFigures()
    kit.read_outbox("orders", unpublished=4, oldest_age_seconds=1.5, inbox=0)
    read = figures.figures_of(scraped(rpc, kit))
    assert (read.requests, read.errors, read.refused) == (7, 2, 2)
    assert (read.outbox_unpublished, read.outbox_oldest_seconds) == (4, 1.5)


def test_the_99th_percentile_is_interpolated_within_its_bucket_as_prometheus_does() -> None:
    rpc = RpcCollector()
    method = rpc.figures("inventory").of("/oms.inventory.v1.InventoryService/Reserve")
    for _ in range(98):
        method.observe("OK", 0.0008)  # ≤ 1 ms
    for _ in range(2):
        method.observe("OK", 0.04)  # in (25 ms, 50 ms]
    # the 99th of 100 calls is the first of the two in (0.025, 0.05]: half-way through that bucket
    assert figures.figures_of(scraped(rpc)).p99_seconds == pytest.approx(0.0375)


def test_no_calls_no_percentile() -> None:
    assert figures.quantile(0.99, []) is None
    assert figures.quantile(0.99, [(0.001, 0.0), (float("inf"), 0.0)]) is None
    assert figures.quantile(0.99, [(0.001, 0.0), (10.0, 0.0), (float("inf"), 5.0)]) == 10.0


def test_a_service_whose_metrics_do_not_answer_says_so() -> None:
    [line] = figures.lines([("orders", "127.0.0.1:9")])
    assert "do not answer" in line and "orders" in line


def test_metrics_ports_sit_beside_the_grpc_ports_and_never_on_a_standard_one() -> None:
    book = stack.PortBook(prefer_defaults=True)
    grpc = book.choose("orders", 50051)
    metrics = book.choose(stack.metrics_name("orders"), 50051 + stack.METRICS_PORT_OFFSET)
    assert metrics != grpc
    assert metrics not in stack.STANDARD_PORTS
    # a default that is a standard port, or another process's port, is never handed out
    assert book.choose("routing-metrics", 9090) != 9090
    assert book.choose("inventory-metrics", grpc) != grpc


def test_the_metrics_port_settings_pin_each_service() -> None:
    assert stack.PORT_SETTINGS[stack.metrics_name("gateway")] == "OMS_GATEWAY_METRICS_PORT"
    assert all(stack.metrics_name(name) in stack.PORT_SETTINGS for name in stack.SERVICE_NAMES)
