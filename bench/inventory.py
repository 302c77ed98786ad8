"""Inventory benchmark (`make bench-inventory`): the real service process on embedded Postgres and NATS.

- hot SKU: 500 concurrent buyers for 100 units of one SKU, five rounds → oversold units, reservations/s;
  then the same rounds on SKUs split into HOT_BUCKETS stock buckets (SetStockBuckets) → the same figures
  as hot_sku_bucketed_*, and their ratio to the unsplit ones
- mixed: 1,000 SKUs × 5 warehouses, 64 concurrent clients reserving 1–5 lines → reservations/s, p50/p99
- raw: the same conditional UPDATE straight through asyncpg, same concurrency → the service/raw ratio
- echo: the same Reserve calls from the same client to bench/echo.py (answered at once) → the gRPC
  ceiling and the service's share of it

The service runs with RESERVATION_CAP_PERCENT=100 so that "100 units" means 100 reservable units.
The run fails (exit 1) when any unit is oversold or a hot round sells other than its 100 units.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
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
HOT_BUCKETS = int(os.environ.get("BENCH_HOT_BUCKETS", "8"))
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
    hot = [(f"{prefix}-{r}", "WH1", HOT_UNITS) for prefix in ("HOT", "HOTB") for r in range(HOT_ROUNDS)]
    return rows + hot


def mixed_lines(rng: random.Random) -> list[tuple[str, str, int]]:
    skus = rng.sample(range(SKUS), rng.randint(1, 5))
    return [(f"SKU-{s:04d}", f"WH{rng.randint(1, WAREHOUSES)}", rng.randint(1, 3)) for s in skus]


async def hot_sku(
    stubs: list[inventory_pb2_grpc.InventoryServiceStub], prefix: str
) -> tuple[int, float, float]:
    """Returns units reserved, seconds until each round's stock was gone, seconds for all attempts."""
    successes, selling, elapsed = 0, 0.0, 0.0
    for round_ in range(HOT_ROUNDS):
        line = pb.ReservationLine(sku=f"{prefix}-{round_}", warehouse_id="WH1", quantity=1)

        async def buy(n: int, line: pb.ReservationLine = line, round_: int = round_) -> float | None:
            stub = stubs[n % len(stubs)]
            reply = await stub.Reserve(
                pb.ReserveRequest(order_id=f"{prefix.lower()}-{round_}-{n}", lines=[line]), timeout=60
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


async def oversold(url: str, prefix: str) -> tuple[int, int]:
    """Units oversold (rows reserved past on hand, buckets used past their allotment, units held by the
    rounds' reservations past their stock) and the units those reservations hold."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        over = await conn.fetchval("SELECT COALESCE(sum(GREATEST(reserved - on_hand, 0)), 0) FROM stock")
        over += await conn.fetchval(
            "SELECT COALESCE(sum(GREATEST(used - allotted, 0)), 0) FROM stock_buckets"
        )
        sold = await conn.fetchval(
            "SELECT COALESCE(sum(l.quantity), 0) FROM reservation_lines AS l JOIN reservations USING"
            " (reservation_id) WHERE status = 'ACTIVE' AND l.sku LIKE $1",
            f"{prefix}-%",
        )
    finally:
        await conn.close()
    return int(over) + max(0, int(sold) - HOT_UNITS * HOT_ROUNDS), int(sold)


async def hot_rounds(
    url: str, stubs: list[inventory_pb2_grpc.InventoryServiceStub], groups: dict[str, list[int]], prefix: str
) -> tuple[float, bool]:
    """The hot-SKU rounds on the `prefix` SKUs, their figures printed under `name`; returns the rate and
    whether the books are right (nothing oversold, every round's units sold, no more)."""
    name = "hot_sku" if prefix == "HOT" else "hot_sku_bucketed"
    watch = LockWatch(url)
    watching = asyncio.create_task(watch.run())
    cpu_before = cpu_seconds(groups)
    successes, selling, hot_elapsed = await hot_sku(stubs, prefix)
    hot_cpu = cpu_seconds(groups)["service"] - cpu_before["service"]
    watch.stop()
    await watching
    over, sold = await oversold(url, prefix)
    rate = successes / selling
    print(f"{name}_oversold: {over} units")
    print(f"{name}_reserved: {successes} of {HOT_UNITS * HOT_ROUNDS} units")
    print(f"{name}_reservations_per_s: {rate:.0f} reservations/s")
    print(f"{name}_attempts_per_s: {HOT_BUYERS * HOT_ROUNDS / hot_elapsed:.0f} attempts/s")
    # what limits the hot SKU: the service's CPU (one process is at most 100 % of a core) or the row lock
    print(f"{name}_service_cpu: {hot_cpu / hot_elapsed * 100 / REPLICAS:.0f} % of a core per replica")
    print(f"{name}_lock_wait_share: {watch.waiting * 100 / max(watch.samples, 1):.0f} % of samples")
    print(f"{name}_lock_waiters_avg: {watch.waiters / max(watch.samples, 1):.2f} backends")
    return rate, over == 0 and successes == sold == HOT_UNITS * HOT_ROUNDS


async def split_hot_skus(stubs: list[inventory_pb2_grpc.InventoryServiceStub]) -> None:
    for round_ in range(HOT_ROUNDS):
        await stubs[0].SetStockBuckets(
            pb.SetStockBucketsRequest(sku=f"HOTB-{round_}", warehouse_id="WH1", buckets=HOT_BUCKETS)
        )


async def run(url: str, address: str, service_pids: list[int], echo: str) -> bool:
    """The figures, printed; False when any hot round oversold or sold other than its units."""
    channels = [client_channel(address) for _ in range(4)]
    stubs = [inventory_pb2_grpc.InventoryServiceStub(channel) for channel in channels]
    groups = {"service": service_pids, "client": [os.getpid()]}
    hot_rate, plain_right = await hot_rounds(url, stubs, groups, "HOT")
    await split_hot_skus(stubs)
    bucketed_rate, bucketed_right = await hot_rounds(url, stubs, groups, "HOTB")
    print(f"hot_sku_bucketed_vs_unbucketed: {bucketed_rate / hot_rate:.2f} ratio")
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
    ceilings.ratio("hot_sku_reservations_per_s", hot_rate, "grpc_echo_per_s", echo_rate, "calls/s")
    ceilings.ratio(
        "hot_sku_bucketed_reservations_per_s", bucketed_rate, "grpc_echo_per_s", echo_rate, "calls/s"
    )
    return plain_right and bucketed_right


def main() -> None:
    with bench_stack() as bench:
        url = bench.database("inventory")
        asyncio.run(seed_stock(url, stock_rows()))
        address = bench.start("inventory", {"DATABASE_URL": url, "RESERVATION_CAP_PERCENT": "100"}, REPLICAS)
        pids = [p.pid for p in bench.processes]
        right = asyncio.run(run(url, address, pids, ceilings.start_echo(bench)))
    if not right:
        print("bench-inventory: a hot SKU was oversold or sold other than its stock", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
