"""The kit's figures as Prometheus reads them: RED per method, readings that go stale, the settings."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.kit import metrics, tracing
from services.kit.config import CommonSettings, InvalidSetting, default_metrics_port
from services.kit.metrics import KitFigures, RpcCollector
from tests import identity

ENV = {"DATABASE_URL": "postgresql://u@h:5/orders", "NATS_URL": "nats://h:4222", **identity.env("orders")}


def samples(collector: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_each_call_is_counted_by_code_and_timed_in_cumulative_buckets() -> None:
    collector = RpcCollector()
    figures = collector.figures("orders").of("/oms.orders.v1.OrdersService/GetOrder")
    figures.observe("OK", 0.003)
    figures.observe("OK", 0.2)
    figures.observe("NOT_FOUND", 20.0)
    seen = samples(collector)
    method = (
        ("grpc_method", "GetOrder"),
        ("grpc_service", "oms.orders.v1.OrdersService"),
        ("service", "orders"),
    )

    def bucket(le: str) -> float:
        return seen[("oms_grpc_server_handling_seconds_bucket", tuple(sorted((*method, ("le", le)))))]

    assert seen[("oms_grpc_server_handled_total", tuple(sorted((*method, ("grpc_code", "OK")))))] == 2
    assert seen[("oms_grpc_server_handled_total", tuple(sorted((*method, ("grpc_code", "NOT_FOUND")))))] == 1
    assert (bucket("0.001"), bucket("0.005"), bucket("0.25"), bucket("10.0"), bucket("+Inf")) == (
        0,
        1,
        2,
        2,
        3,
    )
    assert seen[("oms_grpc_server_handling_seconds_count", method)] == 3
    assert seen[("oms_grpc_server_handling_seconds_sum", method)] == pytest.approx(20.203)


def test_a_latency_on_a_bucket_bound_counts_in_that_bucket() -> None:
    collector = RpcCollector()
    collector.figures("inventory").of("/oms.inventory.v1.InventoryService/Reserve").observe("OK", 0.005)
    seen = samples(collector)
    labels = (
        ("grpc_method", "Reserve"),
        ("grpc_service", "oms.inventory.v1.InventoryService"),
        ("service", "inventory"),
    )
    assert seen[("oms_grpc_server_handling_seconds_bucket", tuple(sorted((*labels, ("le", "0.005")))))] == 1
    assert seen[("oms_grpc_server_handling_seconds_bucket", tuple(sorted((*labels, ("le", "0.0025")))))] == 0


def test_two_servers_of_one_service_add_up() -> None:
    collector = RpcCollector()
    assert collector.figures("orders") is collector.figures("orders")
    assert collector.figures("orders") is not collector.figures("routing")


def test_outbox_and_consumer_readings_are_served_until_they_go_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = KitFigures()
    figures.read_outbox("orders", unpublished=7, oldest_age_seconds=2.5, inbox=40)
    figures.read_consumer("orders-logistics", "OMS_LOGISTICS", pending=3, ack_pending=1, redelivered=2)
    seen = samples(figures)
    assert seen[("oms_outbox_unpublished", (("service", "orders"),))] == 7
    assert seen[("oms_outbox_oldest_age_seconds", (("service", "orders"),))] == 2.5
    assert seen[("oms_inbox_entries", (("service", "orders"),))] == 40
    consumer = (("consumer", "orders-logistics"), ("stream", "OMS_LOGISTICS"))
    assert seen[("oms_consumer_pending", consumer)] == 3
    assert seen[("oms_consumer_redelivered", consumer)] == 2
    later = time.monotonic() + metrics.STALE_SECONDS + 1
    monkeypatch.setattr(metrics.time, "monotonic", lambda: later)
    stale = samples(figures)
    assert not any(name.startswith(("oms_outbox", "oms_consumer", "oms_inbox")) for name, _ in stale)


def test_the_pool_is_read_when_scraped() -> None:
    class Pool:
        used = 3

        def size(self) -> int:
            return 30

        def checkedout(self) -> int:
            return self.used

    figures, pool = KitFigures(), Pool()
    figures.pools["orders"] = pool
    assert samples(figures)[("oms_db_pool_checked_out", (("service", "orders"),))] == 3
    pool.used = 12
    assert samples(figures)[("oms_db_pool_checked_out", (("service", "orders"),))] == 12
    assert samples(figures)[("oms_db_pool_size", (("service", "orders"),))] == 30


def test_the_metrics_port_sits_beside_the_grpc_port_unless_set() -> None:
    assert default_metrics_port(50051) == 51051
    assert default_metrics_port(0) == 0
    assert default_metrics_port(65000) == 0
    env = ENV
    assert CommonSettings.from_env("orders", 50051, env).metrics_port == 51051
    assert CommonSettings.from_env("orders", 50051, {**env, "METRICS_PORT": "0"}).metrics_port == 0
    assert CommonSettings.from_env("orders", 50051, {**env, "METRICS_PORT": "9464"}).metrics_port == 9464
    with pytest.raises(InvalidSetting, match="METRICS_PORT"):
        CommonSettings.from_env("orders", 50051, {**env, "METRICS_PORT": "70000"})


def test_spans_are_exported_only_when_an_otlp_endpoint_is_set() -> None:
    assert not tracing.exports({})
    assert not tracing.exports({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})
    assert tracing.exports({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.exports({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
