"""Orders benchmark (`make bench-orders`): the real orders, routing and inventory processes.

1. Single-order ingest, 64 concurrent clients, while the process manager reserves behind it; then
   single orders offered at 400/s open loop (BENCH_OPEN_LOOP_RATE) for the latency at that rate.
2. Batch ingest of 100,000 orders (BENCH_BATCH_ORDERS) in batches of 500.
3. SQL statements per order, counted on a SQLAlchemy engine in this process: the ingest of one
   order, and the process manager's steps that reserve it at the live inventory.
4. Event latency during a burst of 2,000 single orders: an order's `orders.created` event at a raw
   NATS subscriber, from the time the event says it happened (the clock read inside the order's own
   transaction, so an upper bound of commit → subscriber).
5. The ceilings, measured in the same run (bench/ceilings.py): the gRPC echo rate of the same client
   with the same requests, one-statement asyncpg writes, acknowledged JetStream publishes; each figure
   is printed with its ratio to its ceiling.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import nats
from sqlalchemy import event

from bench import ceilings
from bench.common import (
    BENCH_CLIENT,
    bench_stack,
    client_channel,
    closed_loop,
    cpu_seconds,
    median,
    open_loop,
    percentile,
    seed_stock,
)
from oms.common.v1 import common_pb2
from oms.orders.v1 import events_pb2, orders_pb2, orders_pb2_grpc
from services.kit import grpc_client
from services.kit.db import make_engine
from services.kit.sealing import KeyRing
from services.orders import bootstrap, handlers, status_rules
from services.orders.domain.model import Address, Channel, IngestOrder, OrderLine
from services.orders.domain.timeline import Actor
from services.orders.orchestrator import Orchestrator
from services.orders.peers import Peers
from services.routing.domain.defaults import WAREHOUSES

SKUS = 200
CLIENTS = 64
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
BATCH_ORDERS = int(os.environ.get("BENCH_BATCH_ORDERS", "100000"))
BATCH_SIZE = 500
# the single-order goal's rate, offered open loop (arrivals do not wait for answers) for its p99
OPEN_LOOP_RATE = float(os.environ.get("BENCH_OPEN_LOOP_RATE", "400"))
PROVINCES = [
    ("Zhejiang", "Hangzhou"),
    ("Shanghai", "Shanghai"),
    ("Guangdong", "Shenzhen"),
    ("Beijing", "Beijing"),
]


def money(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=amount)


def order_request(ref: str, rng: random.Random) -> orders_pb2.IngestOrderRequest:
    province, city = rng.choice(PROVINCES)
    return orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_OWN_SHOP,
        channel_order_id=ref,
        buyer_id=f"buyer-{rng.randint(1, 10_000)}",
        lines=[
            orders_pb2.OrderLine(
                sku=f"SKU-{rng.randrange(SKUS):04d}",
                title="Item",
                quantity=1,
                unit_price=money(rng.randint(500, 9900)),
            )
            for _ in range(rng.randint(1, 3))
        ],
        discounts=[orders_pb2.Discount(kind=orders_pb2.DISCOUNT_KIND_COUPON, amount=money(300))],
        shipping_address=common_pb2.Address(
            recipient_name="李雷",
            phone=f"138{rng.randint(0, 99_999_999):08d}",
            country_code="CN",
            province=province,
            city=city,
            district="Central",
            detail="1 Bench Road",
        ),
        shipping_fee=money(800),
    )


async def single(address: str) -> tuple[float, list[float]]:
    rngs: dict[int, random.Random] = {}

    def ingest(stub: orders_pb2_grpc.OrdersServiceStub, n: int, count: int) -> object:
        request = order_request(f"single-{n}-{count}", rngs.setdefault(n, random.Random(n)))
        return stub.IngestOrder(request, timeout=30)

    return await closed_loop(address, orders_pb2_grpc.OrdersServiceStub, CLIENTS, SECONDS, ingest)


async def single_at_rate(address: str, rate: float, failed: dict[str, int]) -> tuple[float, list[float]]:
    """Single orders offered at a fixed rate (open loop), while the process manager reserves them; the
    calls that failed are counted in `failed` by code."""
    rng = random.Random(5)

    def ingest(stub: orders_pb2_grpc.OrdersServiceStub, n: int, count: int) -> object:
        return stub.IngestOrder(order_request(f"open-{n}", rng), timeout=30)

    return await open_loop(address, orders_pb2_grpc.OrdersServiceStub, rate, SECONDS, ingest, failed)


async def event_latencies(address: str, nats_url: str, orders: int = 2_000) -> list[float]:
    """A burst of `orders` single orders from 64 clients; each one's `orders.created` event timed at a
    raw (core NATS) subscriber against the event's own occurred_at."""
    nc = await nats.connect(nats_url)
    seen: list[float] = []
    done = asyncio.Event()

    async def received(msg: nats.aio.msg.Msg) -> None:
        arrived = time.time()
        created = events_pb2.OrderCreated.FromString(msg.data)
        seen.append(arrived - created.occurred_at.ToMicroseconds() / 1e6)
        if len(seen) >= orders:
            done.set()

    subscription = await nc.subscribe("bench.orders.created", cb=received)
    await nc.flush()
    rng = random.Random(3)
    queue = list(range(orders))
    async with client_channel(address) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)

        async def client() -> None:
            while queue:
                await stub.IngestOrder(order_request(f"burst-{queue.pop()}", rng), timeout=30)

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
    await asyncio.wait_for(done.wait(), timeout=60)
    await subscription.unsubscribe()
    await nc.close()
    return seen


async def echo_rate(address: str) -> float:
    """The gRPC ceiling: the same single calls from the same client, answered at once by bench/echo.py."""
    rngs: dict[int, random.Random] = {}

    def ingest(stub: orders_pb2_grpc.OrdersServiceStub, n: int, count: int) -> object:
        request = order_request(f"echo-{n}-{count}", rngs.setdefault(n, random.Random(n)))
        return stub.IngestOrder(request, timeout=30)

    return await ceilings.grpc_echo_rate(address, orders_pb2_grpc.OrdersServiceStub, ingest, SECONDS)


async def batches(address: str, label: str) -> float:
    rng = random.Random(7)
    requests = [
        orders_pb2.IngestOrdersRequest(
            items=[
                orders_pb2.IngestItem(order=order_request(f"{label}-{b}-{i}", rng))
                for i in range(min(BATCH_SIZE, BATCH_ORDERS - b * BATCH_SIZE))
            ]
        )
        for b in range((BATCH_ORDERS + BATCH_SIZE - 1) // BATCH_SIZE)
    ]
    queue = list(reversed(requests))
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    async with client_channel(address, options) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        created = 0

        async def caller() -> None:
            nonlocal created
            while queue:
                reply = await stub.IngestOrders(queue.pop(), timeout=120)
                created += reply.created

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(2)))
        elapsed = time.perf_counter() - started
    if created != BATCH_ORDERS:
        raise RuntimeError(f"batch ingest created {created} of {BATCH_ORDERS}")
    return BATCH_ORDERS / elapsed


def command(ref: str, rng: random.Random) -> IngestOrder:
    province, city = rng.choice(PROVINCES)
    return IngestOrder(
        channel=Channel.OWN_SHOP,
        channel_order_id=ref,
        buyer_id="buyer",
        currency="CNY",
        lines=tuple(OrderLine(f"SKU-{rng.randrange(SKUS):04d}", "Item", 1, 1000) for _ in range(2)),
        shipping_address=Address("李雷", "13800000000", "CN", province, city, "Central", "1 Bench Road"),
        shipping_fee_minor=800,
        placed_at=None,
    )


async def statements(
    url: str, routing: str, inventory: str, keys: KeyRing, orders: int = 200
) -> dict[str, float]:
    """Count the statements the orders service's own code sends for `orders` orders."""
    engine = make_engine(url)
    counts = {"statements": 0, "transactions": 0}

    def on_execute(*_: object) -> None:
        counts["statements"] += 1

    def on_begin(*_: object) -> None:
        counts["transactions"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    event.listen(engine.sync_engine, "begin", on_begin)
    policy = handlers.Policy(keys=keys, rules=status_rules.shipped_rules())
    rng = random.Random(11)
    figures: dict[str, float] = {}

    def take() -> tuple[int, int]:
        result = (counts["statements"], counts["transactions"])
        counts["statements"] = counts["transactions"] = 0
        return result

    for n in range(orders):
        await handlers.ingest(
            bootstrap.unit_of_work(engine, keys), policy, [command(f"count-{n}", rng)], Actor.service("bench")
        )
    figures["single"], figures["single_tx"] = (value / orders for value in take())
    await handlers.ingest(
        bootstrap.unit_of_work(engine, keys),
        policy,
        [command(f"count-b-{n}", rng) for n in range(BATCH_SIZE)],
        Actor.service("bench"),
    )
    figures["batch"], figures["batch_tx"] = (value / BATCH_SIZE for value in take())
    routing_channel, inventory_channel = (
        grpc_client.channel(routing, identity=BENCH_CLIENT),
        grpc_client.channel(inventory, identity=BENCH_CLIENT),
    )
    orchestrator = Orchestrator(
        lambda: bootstrap.unit_of_work(engine, keys), policy, Peers(routing_channel, inventory_channel, 0)
    )
    take()
    while await orchestrator.run_due():
        pass
    figures["steps"], figures["steps_tx"] = (value / (orders + BATCH_SIZE) for value in take())
    await routing_channel.close()
    await inventory_channel.close()
    await engine.dispose()
    return figures


def main() -> None:
    keys = {
        "PII_KEYS": f"b1:{KeyRing.generate_key()}",
        "PII_ACTIVE_KEY": "b1",
        "PII_HASH_KEY": KeyRing.generate_key(),
    }
    ring = KeyRing.from_settings(keys["PII_KEYS"], keys["PII_ACTIVE_KEY"], keys["PII_HASH_KEY"])
    with bench_stack() as bench:
        inventory_url = bench.database("inventory")
        asyncio.run(
            seed_stock(
                inventory_url,
                [(f"SKU-{n:04d}", w.warehouse_id, 1_000_000) for n in range(SKUS) for w in WAREHOUSES],
            )
        )
        inventory = bench.start("inventory", {"DATABASE_URL": inventory_url})
        routing = bench.start(
            "routing", {"DATABASE_URL": bench.database("routing"), "INVENTORY_SERVICE_ADDR": inventory}
        )
        orders_url = bench.database("orders")
        orders = bench.start(
            "orders",
            {
                "DATABASE_URL": orders_url,
                "ROUTING_SERVICE_ADDR": routing,
                "INVENTORY_SERVICE_ADDR": inventory,
                **keys,
            },
        )
        groups = {
            name: [p.pid for p in bench.processes if p.name.startswith(name)]
            for name in ("orders", "routing", "inventory")
        }
        before = cpu_seconds(groups)
        rate, latencies = asyncio.run(single(orders))
        spent = {name: seconds - before[name] for name, seconds in cpu_seconds(groups).items()}
        print(f"single_orders_per_s: {rate:.0f} orders/s")
        print(f"single_p50_ms: {median(latencies) * 1000:.1f} ms")
        print(f"single_p99_ms: {percentile(latencies, 0.99) * 1000:.1f} ms")
        for name, seconds in spent.items():
            print(f"single_{name}_cpu_ms_per_order: {seconds * 1000 / max(len(latencies), 1):.2f} ms")
        single_rate = rate
        single_cpu_ms = {name: seconds * 1000 / max(len(latencies), 1) for name, seconds in spent.items()}
        open_failed: dict[str, int] = {}
        answered, at_rate = asyncio.run(single_at_rate(orders, OPEN_LOOP_RATE, open_failed))
        print(f"single_open_loop_offered: {OPEN_LOOP_RATE:.0f} orders/s")
        print(f"single_open_loop_answered_per_s: {answered:.0f} orders/s")
        # past what the machine sustains, calls wait until they fail; an order whose call failed may
        # still have been created (the batch run below is where orders are counted)
        print(f"single_open_loop_failed: {sum(open_failed.values())} calls {open_failed or ''}".rstrip())
        print(f"single_open_loop_p50_ms: {median(at_rate) * 1000:.1f} ms")
        print(f"single_open_loop_p99_ms: {percentile(at_rate, 0.99) * 1000:.1f} ms")
        burst = asyncio.run(event_latencies(orders, bench.infra.nats_url))
        print(f"event_latency_p50_ms: {median(burst) * 1000:.1f} ms")
        print(f"event_latency_p99_ms: {percentile(burst, 0.99) * 1000:.1f} ms")
        batch_rate = asyncio.run(batches(orders, "batch"))
        print(f"batch_orders_per_s: {batch_rate:.0f} orders/s")
        # the same two loads on a replica that only takes requests (PROCESS_MANAGER_CONCURRENCY=0):
        # what the ingest path costs by itself, with the process manager's work left for later
        ingest_only = bench.start(
            "orders",
            {
                "DATABASE_URL": bench.database("orders", "_ingest"),
                "ROUTING_SERVICE_ADDR": routing,
                "INVENTORY_SERVICE_ADDR": inventory,
                "PROCESS_MANAGER_CONCURRENCY": "0",
                **keys,
            },
        )
        rate, latencies = asyncio.run(single(ingest_only))
        print(f"ingest_only_single_orders_per_s: {rate:.0f} orders/s")
        print(f"ingest_only_single_p99_ms: {percentile(latencies, 0.99) * 1000:.1f} ms")
        print(f"ingest_only_batch_orders_per_s: {asyncio.run(batches(ingest_only, 'only')):.0f} orders/s")
        echo = ceilings.start_echo(bench)
        figure = "single_orders_per_s"
        ceilings.ratio(figure, single_rate, "grpc_echo_per_s", asyncio.run(echo_rate(echo)), "calls/s")
        raw_sql = asyncio.run(ceilings.asyncpg_statement_rate(bench.scratch_database("ceiling"), SECONDS))
        ceilings.ratio(figure, single_rate, "asyncpg_statements_per_s", raw_sql, "statements/s")
        raw_js = asyncio.run(ceilings.jetstream_publish_rate(bench.infra.nats_url, SECONDS))
        ceilings.ratio(figure, single_rate, "jetstream_publishes_per_s", raw_js, "publishes/s")
        print(f"single_cpu_ms_per_order_all_services: {sum(single_cpu_ms.values()):.2f} ms")
        counted = asyncio.run(statements(bench.database("orders", "_counted"), routing, inventory, ring))
        per_order = counted["single"] + counted["steps"]
        print(f"sql_statements_per_order: {per_order:.1f} statements")
        print(f"sql_statements_ingest_single: {counted['single']:.2f} statements")
        print(f"sql_statements_ingest_batch: {counted['batch']:.3f} statements")
        print(f"sql_statements_orchestration: {counted['steps']:.2f} statements")
        print(f"sql_transactions_per_order: {counted['single_tx'] + counted['steps_tx']:.1f} transactions")


if __name__ == "__main__":
    main()
