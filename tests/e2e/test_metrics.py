"""Every service's /metrics answers, and an order created through Envoy moves the figures: the
gateway's and orders' RPC counters, orders' ingest counter and the relay's events by subject. Envoy's
own stats are on its admin port."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from omsctl.stack import SERVICE_NAMES, Platform
from tests.conftest import random_ref
from tests.e2e.test_walking_skeleton import json_call, order_json
from tests.waiting import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
INGEST = {"grpc_service": "oms.orders.v1.OrdersService", "grpc_method": "IngestOrder", "grpc_code": "OK"}


async def scrape(address: str, path: str = "/metrics") -> Samples:
    def get() -> str:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as reply:
            return str(reply.read().decode())

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(await asyncio.to_thread(get))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_every_service_serves_metrics_and_an_order_through_envoy_moves_them(platform: Platform) -> None:
    assert set(platform.metrics) == SERVICE_NAMES
    before = {name: await scrape(address) for name, address in platform.metrics.items()}
    for name, samples in before.items():
        assert ("oms_db_pool_size", frozenset({("service", name)})) in samples, name

    created = await json_call(platform, "POST", "/v1/orders", order_json(random_ref("DY")))
    assert created["created"] is True, json.dumps(created)

    gateway = await scrape(platform.metrics["gateway"])
    orders = await scrape(platform.metrics["orders"])
    for name, after in (("gateway", gateway), ("orders", orders)):
        counted = value(after, "oms_grpc_server_handled_total", service=name, **INGEST)
        assert counted == value(before[name], "oms_grpc_server_handled_total", service=name, **INGEST) + 1
    ingested = {"channel": "DOUYIN", "outcome": "CREATED", "via": "api"}
    assert value(orders, "oms_orders_ingested_total", **ingested) == (
        value(before["orders"], "oms_orders_ingested_total", **ingested) + 1
    )

    events = {"service": "orders", "subject": "orders.created"}
    published_before = value(before["orders"], "oms_events_total", **events)

    async def published() -> bool:
        now = await scrape(platform.metrics["orders"])
        return value(now, "oms_events_total", **events) > published_before

    await eventually(published, within=15)


async def test_envoy_serves_its_stats_for_prometheus_on_its_admin_port(platform: Platform) -> None:
    stats = await scrape(platform.endpoints["envoy-admin"], "/stats/prometheus")
    assert any(name == "envoy_http_downstream_rq_total" for name, _ in stats)
