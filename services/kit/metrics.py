"""A service's Prometheus figures, served on their own port (METRICS_PORT) at `/metrics`.

What every service has, from the kit: RED per RPC (the server interceptor), the events its relay
published by subject, its outbox depth and oldest age, its inbox size, its JetStream consumers'
pending and redelivered counts and what they did with each message, and its database pool. A
service adds its own business counters in its adapters (servicers, consumers), never in its domain.

The HTTP server is prometheus_client's, in a thread of its own: a scrape never waits for the event
loop, and a busy loop never makes a scrape time out. Figures the event loop computes now and then
(the outbox report, consumer info) are kept as readings and served as they were last read; a reading
older than `STALE_SECONDS` is left out, so a replica that stopped reporting (it lost the report's
lock) shows nothing rather than a frozen figure.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# a reading older than this (six missed 5 s rounds) is not served
STALE_SECONDS = 30.0
# gRPC latency buckets, seconds: from a cached read (1 ms) to a slow batch (10 s)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS = Counter(
    "oms_events",
    "Domain events published from the outbox to JetStream, by subject (each committed event once)",
    ["service", "subject"],
)
CONSUMED = Counter(
    "oms_consumer_messages",
    "Messages a JetStream consumer took, by outcome: processed, duplicate (seen before, in the "
    "inbox), retried (nak'ed for redelivery), dead_lettered",
    ["consumer", "outcome"],
)


class MethodFigures:
    """One method's RED figures as plain integers: a call costs a dict update, a bisect and two
    additions (well under a microsecond), not prometheus_client's labelled children (a lock per
    counter and bucket, several microseconds). Only the event loop's thread writes them; the scrape's
    thread reads them, and may see a call counted whose latency is not summed yet, which Prometheus
    takes in its stride."""

    __slots__ = ("buckets", "grpc_method", "grpc_service", "handled", "seconds")

    def __init__(self, method: str) -> None:
        self.grpc_service, _, self.grpc_method = method.lstrip("/").rpartition("/")
        self.handled: dict[str, int] = {}
        # one count per bucket of LATENCY_BUCKETS (not cumulative), the last for slower calls
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0

    def observe(self, code: str, seconds: float) -> None:
        handled = self.handled
        handled[code] = handled.get(code, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds += seconds


class RpcFigures:
    """The RED figures of one service's gRPC server, per method (`/package.Service/Method`)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.methods: dict[str, MethodFigures] = {}

    def of(self, method: str) -> MethodFigures:
        figures = self.methods.get(method)
        if figures is None:
            figures = self.methods[method] = MethodFigures(method)
        return figures


class RpcCollector(Collector):
    """Serves every service's `RpcFigures` as a counter by code and a latency histogram by method."""

    def __init__(self) -> None:
        self.services: dict[str, RpcFigures] = {}

    def figures(self, service: str) -> RpcFigures:
        """One per service name: two servers of a service in one process (tests) add up."""
        return self.services.setdefault(service, RpcFigures(service))

    def collect(self) -> Iterator[Metric]:
        handled = CounterMetricFamily(
            "oms_grpc_server_handled",
            "gRPC calls answered, by method and status code",
            labels=["service", "grpc_service", "grpc_method", "grpc_code"],
        )
        latency = HistogramMetricFamily(
            "oms_grpc_server_handling_seconds",
            "Time from a call's arrival to its answer, by method",
            labels=["service", "grpc_service", "grpc_method"],
        )
        bounds = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
        for service, figures in list(self.services.items()):
            for method in list(figures.methods.values()):
                labels = [service, method.grpc_service, method.grpc_method]
                for code, count in list(method.handled.items()):
                    handled.add_metric([*labels, code], count)
                cumulative = list(accumulate(method.buckets))
                latency.add_metric(labels, list(zip(bounds, cumulative, strict=True)), method.seconds)
        yield from (handled, latency)


RPC = RpcCollector()
REGISTRY.register(RPC)


@dataclass(frozen=True)
class OutboxReading:
    unpublished: int
    oldest_age_seconds: float
    inbox: int
    at: float


@dataclass(frozen=True)
class ConsumerReading:
    """JetStream's own counts for a durable consumer (`consumer_info`)."""

    stream: str
    pending: int
    ack_pending: int
    redelivered: int
    at: float


class KitFigures(Collector):
    """The readings the event loop leaves for the scrape: outbox and inbox per service, consumers by
    name, and each service's database pool (read live: a few integer attributes)."""

    def __init__(self) -> None:
        self.outbox: dict[str, OutboxReading] = {}
        self.consumers: dict[str, ConsumerReading] = {}
        self.pools: dict[str, Any] = {}

    def read_outbox(self, service: str, unpublished: int, oldest_age_seconds: float, inbox: int) -> None:
        self.outbox[service] = OutboxReading(unpublished, oldest_age_seconds, inbox, time.monotonic())

    def read_consumer(self, name: str, stream: str, pending: int, ack_pending: int, redelivered: int) -> None:
        self.consumers[name] = ConsumerReading(stream, pending, ack_pending, redelivered, time.monotonic())

    def collect(self) -> Iterator[Metric]:
        fresh_after = time.monotonic() - STALE_SECONDS
        yield from self._outbox(fresh_after)
        yield from self._consumers(fresh_after)
        yield from self._pools()

    def _outbox(self, fresh_after: float) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "oms_outbox_unpublished",
            "Events committed and not yet published (capped at 100,000)",
            labels=["service"],
        )
        age = GaugeMetricFamily(
            "oms_outbox_oldest_age_seconds",
            "Age of the oldest unpublished event: the relay's lag, 0 when caught up",
            labels=["service"],
        )
        inbox = GaugeMetricFamily(
            "oms_inbox_entries", "Processed event ids kept for dedupe (capped at 100,000)", labels=["service"]
        )
        for service, reading in list(self.outbox.items()):
            if reading.at >= fresh_after:
                depth.add_metric([service], reading.unpublished)
                age.add_metric([service], reading.oldest_age_seconds)
                inbox.add_metric([service], reading.inbox)
        yield from (depth, age, inbox)

    def _consumers(self, fresh_after: float) -> Iterator[Metric]:
        names = ["consumer", "stream"]
        pending = GaugeMetricFamily(
            "oms_consumer_pending", "Messages in the stream the consumer has not been given yet", labels=names
        )
        ack_pending = GaugeMetricFamily(
            "oms_consumer_ack_pending", "Messages given out and not acknowledged yet", labels=names
        )
        redelivered = GaugeMetricFamily(
            "oms_consumer_redelivered", "Unacknowledged messages given out more than once", labels=names
        )
        for name, reading in list(self.consumers.items()):
            if reading.at >= fresh_after:
                pending.add_metric([name, reading.stream], reading.pending)
                ack_pending.add_metric([name, reading.stream], reading.ack_pending)
                redelivered.add_metric([name, reading.stream], reading.redelivered)
        yield from (pending, ack_pending, redelivered)

    def _pools(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "oms_db_pool_size", "Connections the pool keeps open (DB_POOL_SIZE)", labels=["service"]
        )
        used = GaugeMetricFamily(
            "oms_db_pool_checked_out",
            "Connections in use now (past the size: the overflow)",
            labels=["service"],
        )
        for service, pool in list(self.pools.items()):
            size.add_metric([service], pool.size())
            used.add_metric([service], pool.checkedout())
        yield from (size, used)


FIGURES = KitFigures()
REGISTRY.register(FIGURES)


class MetricsEndpoint:
    """`GET /metrics` on its own port, served from a thread (prometheus_client's WSGI server)."""

    def __init__(self, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: Thread
        self._server, self._thread = start_http_server(port, addr=host)
        self.port: int = self._server.server_port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
