"""Outbox relay across a Postgres restart (`python -m bench.outbox`): embedded Postgres and NATS.

- commit → JetStream latency of one event at a time, before the restart and after it (p50, p99)
- how long after Postgres is back the relay leads (and listens) again; no process is restarted
"""

from __future__ import annotations

import asyncio
import time

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import bench_stack, median, percentile
from oms.common.v1 import common_pb2
from oms.orders.v1 import events_pb2
from omsctl import embedded
from services.kit import bus
from services.kit.db import UnitOfWork, make_engine
from services.kit.outbox import OutboxRelay

EVENTS = 300
PREFIX = "bench"


async def latencies(engine: AsyncEngine, js: JetStreamContext, count: int) -> list[float]:
    subscription = await js.subscribe(f"{PREFIX}.orders.created")
    found = []
    for n in range(count):
        started = time.perf_counter()
        async with UnitOfWork(engine) as uow:
            uow.publish(
                "orders.created",
                events_pb2.OrderCreated(
                    order_id=f"o{n}", total=common_pb2.Money(currency_code="CNY", amount_minor=n)
                ),
            )
            await uow.commit()
        await subscription.next_msg(timeout=10)
        found.append(time.perf_counter() - started)
    await subscription.unsubscribe()
    return found


async def leading(relay: OutboxRelay, within: float = 60.0) -> None:
    for _ in range(int(within / 0.01)):
        if relay.is_leader:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"the relay did not lead within {within:.0f}s")


def show(name: str, values: list[float]) -> None:
    print(f"{name}_p50_ms: {median(values) * 1000:.1f} ms")
    print(f"{name}_p99_ms: {percentile(values, 0.99) * 1000:.1f} ms")


async def run(url: str, nats_url: str, postgres: embedded.EmbeddedPostgres) -> None:
    engine = make_engine(url)
    nc = await bus.connect(nats_url, "bench-outbox")
    js = nc.jetstream()
    await bus.ensure_stream(js, PREFIX, "orders")
    relay = OutboxRelay(engine, js, service="bench", subject_prefix=PREFIX)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await leading(relay)
        await latencies(engine, js, 20)  # warm the pool and the stream
        show("before_restart", await latencies(engine, js, EVENTS))
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
        back = time.perf_counter()
        await leading(relay)
        print(f"relay_leading_again_after: {time.perf_counter() - back:.2f} s")
        show("after_restart", await latencies(engine, js, EVENTS))
    finally:
        stop.set()
        await task
        await nc.close()
        await engine.dispose()


def main() -> None:
    with bench_stack() as bench:
        url = bench.database("orders")
        postgres = next(s for s in bench.infra.started if isinstance(s, embedded.EmbeddedPostgres))
        asyncio.run(run(url, bench.infra.nats_url, postgres))


if __name__ == "__main__":
    main()
