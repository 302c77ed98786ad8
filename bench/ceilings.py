"""What the machine itself allows, measured in the same run as each figure (bench/README.md):

- `grpc_echo_per_s`: the same client, sending the same requests, to a server that answers at once
  (bench/echo.py: the services' interceptor, identity check included, and nothing behind it);
- `asyncpg_statements_per_s`: one-row INSERTs, each its own transaction, straight through asyncpg
  from 64 connections: the most single writes a second this Postgres takes;
- `jetstream_publishes_per_s`: acknowledged publishes to a file-backed JetStream stream, 64 in flight.

A figure divided by its ceiling is printed as `<figure>_vs_<ceiling>: ratio`, so a noisy machine does
not hide progress: the ratio moves only when the platform's own cost does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import nats

from bench.common import Bench, closed_loop
from services.kit.db import plain_url

CLIENTS = 64


def start_echo(bench: Bench) -> str:
    return bench.start("echo", {}, module="bench.echo")


async def grpc_echo_rate(
    address: str,
    stub_class: Callable[[Any], Any],
    call: Callable[[Any, int, int], Awaitable[object]],
    seconds: float,
    clients: int = CLIENTS,
) -> float:
    rate, _ = await closed_loop(address, stub_class, clients, seconds, call)
    return rate


async def asyncpg_statement_rate(url: str, seconds: float, clients: int = CLIENTS) -> float:
    pool = await asyncpg.create_pool(plain_url(url), min_size=clients, max_size=clients)
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, at timestamptz, body text)"
        )
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                await conn.execute("INSERT INTO bench_ceiling (at, body) VALUES (now(), $1)", "x" * 200)
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return done / elapsed


async def jetstream_publish_rate(nats_url: str, seconds: float, clients: int = CLIENTS) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="BENCH_CEILING", subjects=["bench.ceiling.>"])
    done = 0
    deadline = time.perf_counter() + seconds
    payload = b"x" * 300

    async def client(n: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await js.publish(f"bench.ceiling.{n}", payload)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    await js.delete_stream("BENCH_CEILING")
    await nc.close()
    return done / elapsed


def ratio(figure: str, value: float, ceiling: str, ceiling_value: float, unit: str) -> None:
    """Print the ceiling and the figure's share of it."""
    print(f"{ceiling}: {ceiling_value:.0f} {unit}")
    print(f"{figure}_vs_{ceiling}: {value / ceiling_value if ceiling_value else 0:.2f} ratio")
