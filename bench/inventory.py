"""Inventory benchmark (`make bench-inventory`): the real service process on embedded Postgres and NATS.

- hot SKU: 500 concurrent buyers for 100 units of one SKU, five rounds → oversold units, reservations/s
- mixed: 1,000 SKUs × 5 warehouses, 64 concurrent clients reserving 1–5 lines → reservations/s, p50/p99
- raw: the same conditional UPDATE straight through asyncpg, same concurrency → the service/raw ratio
- echo: the same Reserve calls from the same client to bench/echo.py (answered at once) → the gRPC
  ceiling and the service's share of it

The service runs with RESERVATION_CAP_PERCENT=100 so that "100 units" means 100 reservable units.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import asyncpg

from bench import ceilings
from bench.common import bench_stack, client_channel, cpu_seconds, median, percentile, seed_stock
from oms.inventory.v1 import inventory_pb2 as pb
from oms.inventory.v1 import inventory_pb2_grpc
from services.kit.db import plain_url

SKUS = 1_000
WAREHOUSES = 5
HOT_UNITS = 100
HOT_BUYERS = 500
HOT_ROUNDS = 5
MIXED_CLIENTS = 64
MIXED_SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
# replicas of the service on one port (SO_REUSEPORT), as Kubernetes would run several pods
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "1"))

_RAW_RESERVE = """
    UPDATE stock AS s SET reserved = s.reserved + w.quantity, updated_at = now()
      FROM unnest($1::text[], $2::text[], $3::bigint[]) AS w(sku, warehouse_id, quantity)
     WHERE s.sku = w.sku AND s.warehouse_id = w.warehouse_id AND s.sellable
       AND s.reserved + w.quantity <= (s.on_hand * 10000) / 10000
 RETURNING s.sku
"""


def stock_rows() -> list[tuple[str, str, int]]:
    warehouses = [f"WH{w}" for w in range(1, WAREHOUSES + 1)]
    rows = [(f"SKU-{n:04d}", w, 1_000_000) for n in range(SKUS) for w in warehouses]
    return rows + [(f"HOT-{r}", "WH1", HOT_UNITS) for r in range(HOT_ROUNDS)]


def mixed_lines(rng: random.Random) -> list[tuple[str, str, int]]:
    skus = rng.sample(range(SKUS), rng.randint(1, 5))
    return [(f"SKU-{s:04d}", f"WH{rng.randint(1, WAREHOUSES)}", rng.randint(1, 3)) for s in skus]


async def hot_sku(stubs: list[inventory_pb2_grpc.InventoryServiceStub]) -> tuple[int, float, float]:
    """Returns units reserved, seconds until each round's stock was gone, seconds for all attempts."""
    successes, selling, elapsed = 0, 0.0, 0.0
    for round_ in range(HOT_ROUNDS):
        line = pb.ReservationLine(sku=f"HOT-{round_}", warehouse_id="WH1", quantity=1)

        async def buy(n: int, line: pb.ReservationLine = line, round_: int = round_) -> float | None:
            stub = stubs[n % len(stubs)]
            reply = await stub.Reserve(
                pb.ReserveRequest(order_id=f"hot-{round_}-{n}", lines=[line]), timeout=60
            )
            return time.perf_counter() if reply.reserved else None

        started = time.perf_counter()
        results = [r for r in await asyncio.gather(*(buy(n) for n in range(HOT_BUYERS))) if r is not None]
        elapsed += time.perf_counter() - started
        selling += max(results) - started
        successes += len(results)
    return successes, selling, elapsed


class LockWatch:
    """Samples the inventory database every `every` seconds while the hot-SKU rounds run: how often any
    backend was waiting for a lock (a row lock on the hot SKU's stock row shows as wait_event_type
    'Lock'). If the row's lock were the limit, buyers' statements would queue on it most of the time;
    splitting the row into buckets (DESIGN.md) pays only then."""

    def __init__(self, url: str, every: float = 0.01) -> None:
        self.url, self.every = url, every
        self.samples = self.waiting = self.waiters = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(plain_url(self.url))
        try:
            while not self._stop.is_set():
                count = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                self.samples += 1
                self.waiting += count > 0
                self.waiters += count
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    def stop(self) -> None:
        self._stop.set()


async def mixed(stubs: list[inventory_pb2_grpc.InventoryServiceStub]) -> tuple[int, list[float], float]:
    latencies: list[float] = []
    reserved = 0
    deadline = time.perf_counter() + MIXED_SECONDS

    async def client(n: int) -> None:
        nonlocal reserved
        rng = random.Random(n)
        stub = stubs[n % len(stubs)]
        count = 0
        while time.perf_counter() < deadline:
            lines = [pb.ReservationLine(sku=s, warehouse_id=w, quantity=q) for s, w, q in mixed_lines(rng)]
            started = time.perf_counter()
            reply = await stub.Reserve(
                pb.ReserveRequest(order_id=f"mix-{n}-{count}", lines=lines), timeout=30
            )
            latencies.append(time.perf_counter() - started)
            reserved += reply.reserved
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(MIXED_CLIENTS)))
    return reserved, latencies, time.perf_counter() - started


async def raw(url: str) -> float:
    pool = await asyncpg.create_pool(plain_url(url), min_size=MIXED_CLIENTS, max_size=MIXED_CLIENTS)
    done = 0
    deadline = time.perf_counter() + MIXED_SECONDS

    async def client(n: int) -> None:
        nonlocal done
        rng = random.Random(1000 + n)
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                lines = sorted(mixed_lines(rng))
                updated = await conn.fetch(
                    _RAW_RESERVE, [s for s, _, _ in lines], [w for _, w, _ in lines], [q for _, _, q in lines]
                )
                done += len(updated) == len(lines)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(MIXED_CLIENTS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return done / elapsed


async def oversold(url: str) -> int:
    conn = await asyncpg.connect(plain_url(url))
    try:
        over = await conn.fetchval("SELECT COALESCE(sum(GREATEST(reserved - on_hand, 0)), 0) FROM stock")
        hot = await conn.fetchval("SELECT sum(reserved) FROM stock WHERE sku LIKE 'HOT-%'")
    finally:
        await conn.close()
    return int(over) + max(0, int(hot) - HOT_UNITS * HOT_ROUNDS)


async def run(url: str, address: str, service_pids: list[int], echo: str) -> None:
    channels = [client_channel(address) for _ in range(4)]
    stubs = [inventory_pb2_grpc.InventoryServiceStub(channel) for channel in channels]
    groups = {"service": service_pids, "client": [os.getpid()]}
    watch = LockWatch(url)
    watching = asyncio.create_task(watch.run())
    cpu_before = cpu_seconds(groups)
    successes, selling, hot_elapsed = await hot_sku(stubs)
    hot_cpu = cpu_seconds(groups)["service"] - cpu_before["service"]
    watch.stop()
    await watching
    print(f"hot_sku_oversold: {await oversold(url)} units")
    print(f"hot_sku_reserved: {successes} of {HOT_UNITS * HOT_ROUNDS} units")
    print(f"hot_sku_reservations_per_s: {successes / selling:.0f} reservations/s")
    print(f"hot_sku_attempts_per_s: {HOT_BUYERS * HOT_ROUNDS / hot_elapsed:.0f} attempts/s")
    # what limits the hot SKU: the service's CPU (one process is at most 100 % of a core) or the row lock
    print(f"hot_sku_service_cpu: {hot_cpu / hot_elapsed * 100 / REPLICAS:.0f} % of a core per replica")
    print(f"hot_sku_lock_wait_share: {watch.waiting * 100 / max(watch.samples, 1):.0f} % of samples")
    print(f"hot_sku_lock_waiters_avg: {watch.waiters / max(watch.samples, 1):.2f} backends")
    cpu_before = cpu_seconds(groups)
    reserved, latencies, elapsed = await mixed(stubs)
    cpu = {name: seconds - cpu_before[name] for name, seconds in cpu_seconds(groups).items()}
    service_rate = reserved / elapsed
    print(f"mixed_reservations_per_s: {service_rate:.0f} reservations/s")
    print(f"mixed_p50_ms: {median(latencies) * 1000:.1f} ms")
    print(f"mixed_p99_ms: {percentile(latencies, 0.99) * 1000:.1f} ms")
    for name, seconds in cpu.items():
        print(f"mixed_{name}_cpu_ms_per_reservation: {seconds * 1000 / max(reserved, 1):.2f} ms")
    for channel in channels:
        await channel.close()
    raw_rate = await raw(url)
    print(f"raw_reservations_per_s: {raw_rate:.0f} reservations/s")
    print(f"service_vs_raw_ratio: {service_rate / raw_rate:.2f} ratio")
    echo_channels = [client_channel(echo) for _ in range(4)]
    echo_stubs = [inventory_pb2_grpc.InventoryServiceStub(channel) for channel in echo_channels]
    _, echo_latencies, echo_elapsed = await mixed(echo_stubs)
    for channel in echo_channels:
        await channel.close()
    echo_rate = len(echo_latencies) / echo_elapsed
    ceilings.ratio("mixed_reservations_per_s", service_rate, "grpc_echo_per_s", echo_rate, "calls/s")
    ceilings.ratio("hot_sku_reservations_per_s", successes / selling, "grpc_echo_per_s", echo_rate, "calls/s")


def main() -> None:
    with bench_stack() as bench:
        url = bench.database("inventory")
        asyncio.run(seed_stock(url, stock_rows()))
        address = bench.start("inventory", {"DATABASE_URL": url, "RESERVATION_CAP_PERCENT": "100"}, REPLICAS)
        pids = [p.pid for p in bench.processes]
        asyncio.run(run(url, address, pids, ceilings.start_echo(bench)))


if __name__ == "__main__":
    main()
