"""What every benchmark needs: embedded servers, migrated databases, service processes, percentiles."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import psutil

from omsctl import embedded
from omsctl.stack import ROOT, Infra, create_databases, health_status
from services.kit.db import plain_url, with_database
from services.kit.grpc_client import OutgoingInterceptor
from services.kit.identity import (
    IdentitySettings,
    ServiceIdentity,
    Signer,
    generate_key,
    public_key_of,
    trusted_keys_json,
)
from services.kit.migrate import upgrade

# every process of a benchmark trusts every other; the bench client calls as a service of its own
ISSUERS = ("gateway", "orders", "inventory", "routing", "logistics", "aftersales", "bench", "echo")
KEYS = {issuer: generate_key() for issuer in ISSUERS}


def identity_env(issuer: str) -> dict[str, str]:
    return {
        "IDENTITY_SIGNING_KID": f"bench-{issuer}",
        "IDENTITY_SIGNING_KEY": KEYS[issuer],
        "IDENTITY_TRUSTED_KEYS": trusted_keys_json(
            (f"bench-{name}", name, public_key_of(key)) for name, key in KEYS.items()
        ),
    }


BENCH_CLIENT = ServiceIdentity(Signer(IdentitySettings.from_env("bench", identity_env("bench"))))


def client_channel(address: str, options: Iterable[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """A plain channel whose calls carry the bench client's own assertion, as a peer service's do."""
    return grpc.aio.insecure_channel(
        address, options=list(options), interceptors=[OutgoingInterceptor(False, BENCH_CLIENT)]
    )


class Bench:
    def __init__(self, home: Path, infra: Infra) -> None:
        self.home = home
        self.infra = infra
        self.processes: list[embedded.Process] = []

    def database(self, service: str, suffix: str = "") -> str:
        name = f"bench_{service}{suffix}"
        url = with_database(self.infra.database_url, name)
        asyncio.run(create_databases(self.infra.database_url, [name]))
        upgrade(ROOT / "services" / service / "migrations", url)
        return url

    def scratch_database(self, name: str) -> str:
        """An empty database of its own (the ceilings' scratch tables)."""
        url = with_database(self.infra.database_url, f"bench_{name}")
        asyncio.run(create_databases(self.infra.database_url, [f"bench_{name}"]))
        return url

    def start(self, service: str, env: dict[str, str], replicas: int = 1, module: str = "") -> str:
        """Start the service (on one port, SO_REUSEPORT, when replicated); returns its address.
        `module`: another program to run in the service's place (the echo server of bench.ceilings)."""
        port = embedded.free_port()
        full_env = embedded.python_env(
            ROOT,
            {
                "PORT": str(port),
                "NATS_URL": self.infra.nats_url,
                "LOG_LEVEL": "WARNING",
                "OMS_SUBJECT_PREFIX": "bench",
                **identity_env(service),
                **env,
            },
        )
        for n in range(replicas):
            process = embedded.spawn(
                f"{service}-{n}",
                [sys.executable, "-m", module or f"services.{service}"],
                self.home / "logs",
                env=full_env,
                cwd=ROOT,
                port=port,
            )
            self.processes.append(process)
            deadline = time.monotonic() + 30
            while health_status(f"127.0.0.1:{port}") != "SERVING":
                if time.monotonic() > deadline or process.popen.poll() is not None:
                    raise RuntimeError(f"{service} did not start; see {process.log_path}")
                time.sleep(0.1)
        return f"127.0.0.1:{port}"


@contextmanager
def bench_stack() -> Iterator[Bench]:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    home.chmod(0o755)
    infra = Infra(home, durable=False)
    bench = Bench(home, infra)
    try:
        infra.start()
        yield bench
    finally:
        for process in reversed(bench.processes):
            process.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


async def seed_stock(url: str, rows: list[tuple[str, str, int]]) -> None:
    """Warehouses, SKUs and on-hand stock straight into the inventory database, with ledger entries
    so that the books balance as if every unit had been received."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        warehouses = sorted({w for _, w, _ in rows})
        skus = sorted({s for s, _, _ in rows})
        await conn.executemany(
            "INSERT INTO warehouses (warehouse_id, name) VALUES ($1, $2)", [(w, w) for w in warehouses]
        )
        await conn.executemany("INSERT INTO skus (sku, title) VALUES ($1, $2)", [(s, s) for s in skus])
        await conn.copy_records_to_table("stock", records=rows, columns=["sku", "warehouse_id", "on_hand"])
        await conn.executemany(
            "INSERT INTO ledger (at, sku, warehouse_id, kind, on_hand_delta, reserved_delta, reference) "
            "VALUES (now(), $1, $2, 'receipt', $3, 0, 'bench-seed')",
            rows,
        )
    finally:
        await conn.close()


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU used so far by named groups of processes (user + system)."""
    used: dict[str, float] = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        used[name] = total
    return used


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def median(values: list[float]) -> float:
    return statistics.median(values)


async def closed_loop(
    address: str,
    stub_class: Callable[[grpc.aio.Channel], Any],
    clients: int,
    seconds: float,
    call: Callable[[Any, int, int], Awaitable[object]],
    own_assertion: bool = True,
) -> tuple[float, list[float]]:
    """`clients` callers over 4 channels, each sending its next call when the last one answered,
    for `seconds`; `call(stub, client, count)` makes one call. Returns calls/s and the latencies.
    `own_assertion=False`: the calls bring their own credentials (plain channels)."""
    channels = [
        client_channel(address) if own_assertion else grpc.aio.insecure_channel(address) for _ in range(4)
    ]
    stubs = [stub_class(channel) for channel in channels]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        count = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call(stubs[n % len(stubs)], n, count)
            latencies.append(time.perf_counter() - started)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return len(latencies) / elapsed, latencies


async def open_loop(
    address: str,
    stub_class: Callable[[grpc.aio.Channel], Any],
    rate: float,
    seconds: float,
    call: Callable[[Any, int, int], Awaitable[object]],
    failed: dict[str, int] | None = None,
) -> tuple[float, list[float]]:
    """Calls sent at a fixed `rate` per second for `seconds` whatever the answers' speed (arrivals do
    not wait for answers, as a shop's buyers do not), over 4 channels. Returns the answered rate and
    each answered call's latency, so a p99 says how long a call takes at that load. A call that fails
    (past a machine's capacity some time out or are cancelled) is counted in `failed` by its code."""
    channels = [client_channel(address) for _ in range(4)]
    stubs = [stub_class(channel) for channel in channels]
    latencies: list[float] = []
    total = int(rate * seconds)

    async def one(n: int) -> None:
        started = time.perf_counter()
        try:
            await call(stubs[n % len(stubs)], n, 0)
        except grpc.aio.AioRpcError as error:
            if failed is not None:
                failed[error.code().name] = failed.get(error.code().name, 0) + 1
                return
            raise
        latencies.append(time.perf_counter() - started)

    tasks = []
    started = time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for channel in channels:
        await channel.close()
    return len(latencies) / elapsed, latencies
