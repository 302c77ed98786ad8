"""Routing benchmark (`make bench-routing`): the real routing and inventory processes, live availability
calls on every plan, 64 concurrent clients, single-line and 5-line orders."""

from __future__ import annotations

import asyncio
import os
import random

from bench import ceilings
from bench.common import bench_stack, closed_loop, cpu_seconds, median, percentile, seed_stock
from oms.common.v1 import common_pb2
from oms.routing.v1 import routing_pb2 as pb
from oms.routing.v1 import routing_pb2_grpc
from services.routing.domain.defaults import WAREHOUSES
from services.routing.domain.geography import MAJOR_CITIES, PROVINCES

SKUS = 1_000
CLIENTS = 64
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
DESTINATIONS = [(p.chinese, p.capital) for p in PROVINCES if not p.remote] + [
    (c[2], c[0]) for c in MAJOR_CITIES
]


def stock_rows() -> list[tuple[str, str, int]]:
    rng = random.Random(3)
    return [
        (f"SKU-{n:04d}", w.warehouse_id, rng.choice([0, 50, 1000])) for n in range(SKUS) for w in WAREHOUSES
    ]


async def load(address: str, lines_per_order: int, label: str) -> tuple[float, list[float]]:
    rngs: dict[int, random.Random] = {}

    def plan(stub: routing_pb2_grpc.RoutingServiceStub, n: int, count: int) -> object:
        rng = rngs.setdefault(n, random.Random(n))
        province, city = rng.choice(DESTINATIONS)
        request = pb.PlanFulfilmentRequest(
            order_id=f"{label}-{n}-{count}",
            address=common_pb2.Address(province=province, city=city),
            lines=[
                pb.RouteLine(sku=f"SKU-{s:04d}", quantity=rng.randint(1, 3), unit_weight_g=400)
                for s in rng.sample(range(SKUS), lines_per_order)
            ],
        )
        return stub.PlanFulfilment(request, timeout=30)

    return await closed_loop(address, routing_pb2_grpc.RoutingServiceStub, CLIENTS, SECONDS, plan)


def main() -> None:
    with bench_stack() as bench:
        inventory_url = bench.database("inventory")
        asyncio.run(seed_stock(inventory_url, stock_rows()))
        inventory = bench.start("inventory", {"DATABASE_URL": inventory_url})
        routing = bench.start(
            "routing", {"DATABASE_URL": bench.database("routing"), "INVENTORY_SERVICE_ADDR": inventory}
        )
        groups = {
            "routing": [p.pid for p in bench.processes if p.name.startswith("routing")],
            "inventory": [p.pid for p in bench.processes if p.name.startswith("inventory")],
            "client": [os.getpid()],
        }
        before = cpu_seconds(groups)
        rate, latencies = asyncio.run(load(routing, 1, "one"))
        spent = {name: seconds - before[name] for name, seconds in cpu_seconds(groups).items()}
        plans = len(latencies)
        print(f"plans_per_s: {rate:.0f} plans/s")
        print(f"plan_p50_ms: {median(latencies) * 1000:.1f} ms")
        print(f"plan_p99_ms: {percentile(latencies, 0.99) * 1000:.1f} ms")
        for name, seconds in spent.items():
            print(f"plan_{name}_cpu_ms_per_plan: {seconds * 1000 / max(plans, 1):.2f} ms")
        echo_rate, _ = asyncio.run(load(ceilings.start_echo(bench), 1, "echo"))
        ceilings.ratio("plans_per_s", rate, "grpc_echo_per_s", echo_rate, "calls/s")
        rate, latencies = asyncio.run(load(routing, 5, "five"))
        print(f"plans_5line_per_s: {rate:.0f} plans/s")
        print(f"plan_5line_p50_ms: {median(latencies) * 1000:.1f} ms")
        print(f"plan_5line_p99_ms: {percentile(latencies, 0.99) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
