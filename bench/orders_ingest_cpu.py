"""Orders ingest CPU (`make bench-orders-cpu`): the CPU the orders code spends per ingest, in process.

The handler runs in this process against a real (embedded) Postgres, so `time.process_time` counts
only our side: domain rules, sealing, row building, statement building, asyncpg encoding. Measured
for a batch of 500 and for single orders; each figure is the median of several rounds, so another
process on the machine moves it less than it moves wall-clock rates.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from statistics import median

from bench.common import bench_stack
from bench.orders import BATCH_SIZE, command
from services.kit.db import make_engine
from services.kit.sealing import KeyRing
from services.orders import bootstrap, handlers, status_rules
from services.orders.domain.timeline import Actor

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
SINGLES = 200


async def measure(url: str) -> tuple[float, float]:
    keys = KeyRing.from_settings(f"b1:{KeyRing.generate_key()}", "b1", KeyRing.generate_key())
    engine = make_engine(url)
    policy = handlers.Policy(keys=keys, rules=status_rules.shipped_rules())
    actor = Actor.service("bench")
    rng = random.Random(5)

    async def batch(tag: str) -> float:
        commands = [command(f"cpu-{tag}-{n}", rng) for n in range(BATCH_SIZE)]
        started = time.process_time()
        await handlers.ingest(bootstrap.unit_of_work(engine, keys), policy, commands, actor)
        return time.process_time() - started

    async def singles(tag: str) -> float:
        commands = [command(f"cpu-{tag}-{n}", rng) for n in range(SINGLES)]
        started = time.process_time()
        for one in commands:
            await handlers.ingest(bootstrap.unit_of_work(engine, keys), policy, [one], actor)
        return (time.process_time() - started) / SINGLES

    await batch("warm")  # the first batch compiles statements and fills the pool
    await singles("warm")
    batches = [await batch(f"b{n}") for n in range(ROUNDS)]
    single = [await singles(f"s{n}") for n in range(max(ROUNDS // 3, 3))]
    await engine.dispose()
    return median(batches), median(single)


def main() -> None:
    with bench_stack() as bench:
        batch, single = asyncio.run(measure(bench.database("orders")))
    print(f"ingest_batch_cpu_ms_per_{BATCH_SIZE}: {batch * 1000:.1f} ms")
    print(f"ingest_batch_cpu_us_per_order: {batch * 1e6 / BATCH_SIZE:.0f} us")
    print(f"ingest_single_cpu_ms_per_order: {single * 1000:.3f} ms")


if __name__ == "__main__":
    main()
