"""Inventory benchmark (`make bench-inventory`): the real service process on embedded Postgres and NATS.

- hot SKU: 500 concurrent buyers for 100 units of one SKU, five rounds → oversold units, reservations/s
- mixed: 1,000 SKUs × 5 warehouses, 64 concurrent clients reserving 1–5 lines → reservations/s, p50/p99
- raw: the same conditional UPDATE straight through asyncpg, same concurrency → the service/raw ratio

The service runs with RESERVATION_CAP_PERCENT=100 so that "100 units" means 100 reservable units.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import asyncpg
import grpc
import psutil

from oms.inventory.v1 import inventory_pb2 as pb
from oms.inventory.v1 import inventory_pb2_grpc
from omsctl import embedded
from omsctl.stack import ROOT, Infra, create_databases, health_status
from services.kit.db import plain_url, with_database
from services.kit.migrate import upgrade

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


async def seed(url: str) -> None:
    conn = await asyncpg.connect(plain_url(url))
    try:
        warehouses = [f"WH{w}" for w in range(1, WAREHOUSES + 1)]
        skus = [f"SKU-{n:04d}" for n in range(SKUS)] + [f"HOT-{r}" for r in range(HOT_ROUNDS)]
        await conn.executemany(
            "INSERT INTO warehouses (warehouse_id, name) VALUES ($1, $2)", [(w, w) for w in warehouses]
        )
        await conn.executemany("INSERT INTO skus (sku, title) VALUES ($1, $2)", [(s, s) for s in skus])
        rows = [(s, w, 1_000_000) for s in skus if s.startswith("SKU") for w in warehouses]
        rows += [(s, "WH1", HOT_UNITS) for s in skus if s.startswith("HOT")]
        await conn.copy_records_to_table("stock", records=rows, columns=["sku", "warehouse_id", "on_hand"])
        await conn.executemany(
            "INSERT INTO ledger (at, sku, warehouse_id, kind, on_hand_delta, reserved_delta, reference) "
            "VALUES (now(), $1, $2, 'receipt', $3, 0, 'bench-seed')",
            rows,
        )
    finally:
        await conn.close()


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


def cpu_seconds(service_pids: list[int]) -> Counter[str]:
    """CPU used so far by the service process and by this load generator."""
    used: Counter[str] = Counter()
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        if process.pid in service_pids:
            used["service"] += times.user + times.system
        elif process.pid == os.getpid():
            used["client"] += times.user + times.system
    return used


async def run(url: str, address: str, service_pids: list[int]) -> None:
    channels = [grpc.aio.insecure_channel(address) for _ in range(4)]
    stubs = [inventory_pb2_grpc.InventoryServiceStub(channel) for channel in channels]
    successes, selling, hot_elapsed = await hot_sku(stubs)
    print(f"hot_sku_oversold: {await oversold(url)} units")
    print(f"hot_sku_reserved: {successes} of {HOT_UNITS * HOT_ROUNDS} units")
    print(f"hot_sku_reservations_per_s: {successes / selling:.0f} reservations/s")
    print(f"hot_sku_attempts_per_s: {HOT_BUYERS * HOT_ROUNDS / hot_elapsed:.0f} attempts/s")
    cpu_before = cpu_seconds(service_pids)
    reserved, latencies, elapsed = await mixed(stubs)
    cpu = cpu_seconds(service_pids) - cpu_before
    latencies.sort()
    service_rate = reserved / elapsed
    print(f"mixed_reservations_per_s: {service_rate:.0f} reservations/s")
    print(f"mixed_p50_ms: {statistics.median(latencies) * 1000:.1f} ms")
    print(f"mixed_p99_ms: {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms")
    for name, seconds in cpu.items():
        print(f"mixed_{name}_cpu_ms_per_reservation: {seconds * 1000 / max(reserved, 1):.2f} ms")
    for channel in channels:
        await channel.close()
    raw_rate = await raw(url)
    print(f"raw_reservations_per_s: {raw_rate:.0f} reservations/s")
    print(f"service_vs_raw_ratio: {service_rate / raw_rate:.2f} ratio")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    home.chmod(0o755)
    infra = Infra(home, durable=False)
    replicas: list[embedded.Process] = []
    try:
        infra.start()
        url = with_database(infra.database_url, "bench_inventory")
        asyncio.run(create_databases(infra.database_url, ["bench_inventory"]))
        upgrade(ROOT / "services" / "inventory" / "migrations", url)
        asyncio.run(seed(url))
        port = embedded.free_port()
        env = embedded.python_env(
            ROOT,
            {
                "PORT": str(port),
                "DATABASE_URL": url,
                "NATS_URL": infra.nats_url,
                "RESERVATION_CAP_PERCENT": "100",
                "LOG_LEVEL": "WARNING",
                "OMS_SUBJECT_PREFIX": "bench",
            },
        )
        for n in range(REPLICAS):
            replica = embedded.spawn(
                f"inventory-{n}",
                [sys.executable, "-m", "services.inventory"],
                home / "logs",
                env=env,
                cwd=ROOT,
                port=port,
            )
            replicas.append(replica)
            deadline = time.monotonic() + 30
            while health_status(f"127.0.0.1:{port}") != "SERVING":
                if time.monotonic() > deadline or replica.popen.poll() is not None:
                    raise RuntimeError(f"inventory did not start; see {replica.log_path}")
                time.sleep(0.1)
        asyncio.run(run(url, f"127.0.0.1:{port}", [replica.pid for replica in replicas]))
    finally:
        for replica in replicas:
            replica.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
