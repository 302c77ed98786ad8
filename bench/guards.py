"""Guards (`make bench-guards`): the risk rules' cost on the ingest path and the SLA job's due read.

- `risk_eval_p99_ms`: judging one order's facts by the default rules (pure code), p50/p99 over many
  varied orders; and on a real (embedded) Postgres the whole risk step of a single-order ingest
  (the phone's last hour read through its index, the facts, the rules, the evaluation written),
  p50/p99.
- `sla_due_scan_ms`: 1,000,000 open orders with SLA timers, 1 % of them due: the job's read of what
  is due, through the due-time index, against the same predicate without the index (a scan of every
  open order), with the rows each read examined (EXPLAIN ANALYZE). Then one batch of the job (500
  orders turned amber, saved with their events) for its rate.

Prints `name: value unit`, one figure a line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from datetime import UTC, datetime
from statistics import quantiles
from typing import Any

from sqlalchemy import text

from bench.common import bench_stack
from bench.orders import command
from services.kit.clock import FixedClock
from services.kit.db import make_engine
from services.kit.sealing import KeyRing
from services.orders import bootstrap, handlers, sla_rules, status_rules
from services.orders.domain import risk
from services.orders.domain.model import Address, Channel, accept
from services.orders.domain.timeline import Actor
from services.orders.handlers import risk as risk_handlers

EVALUATIONS = int(os.environ.get("BENCH_RISK_EVALUATIONS", "100000"))
INGESTS = int(os.environ.get("BENCH_RISK_INGESTS", "1000"))
OPEN_ORDERS = int(os.environ.get("BENCH_SLA_OPEN_ORDERS", "1000000"))
DUE_SHARE = 0.01


def p(values: list[float], q: int) -> float:
    return quantiles(values, n=100, method="inclusive")[q - 1]


def varied_facts(rng: random.Random) -> dict[str, Any]:
    return {
        "amount_minor": rng.randint(100, 200_000),
        "address": rng.choice(
            ["Xihu 1 Longjing Road", "Grand Hotel room 12", "丰巢快递柜 3", "Nanshan 8 Keyuan Road"]
        ),
        "max_line_discount_pct": rng.uniform(0, 95),
        "campaign": rng.random() < 0.3,
        "phone_orders_1h": rng.randint(1, 8),
        "phone_addresses_1h": rng.randint(1, 5),
        "channel": "TAOBAO",
    }


def pure_evaluation() -> tuple[float, float, float]:
    rules = risk.rule_set_from_document(1, risk.default_document())
    rng = random.Random(3)
    cases = [varied_facts(rng) for _ in range(EVALUATIONS)]
    took: list[float] = []
    held = 0
    for facts in cases:
        started = time.perf_counter_ns()
        judged = risk.evaluate(rules, facts)
        took.append((time.perf_counter_ns() - started) / 1e6)
        held += judged.outcome is risk.Outcome.HELD
    return p(took, 50), p(took, 99), held / len(cases)


async def risk_on_ingest(url: str, keys: KeyRing) -> tuple[float, float, float]:
    """The risk step of a single-order ingest, inside its transaction, on a real Postgres."""
    engine = make_engine(url)
    rng = random.Random(7)
    rules = risk.rule_set_from_document(1, risk.default_document())
    policy = handlers.Policy(keys=keys, rules=status_rules.shipped_rules())
    actor = Actor.service("bench")
    # an hour of history for the phones the judged orders use: 20 orders each for 200 phones
    for batch in range(8):
        commands = []
        for n in range(500):
            given = command(f"hist-{batch}-{n}", rng)
            phone = f"139{(batch * 500 + n) % 200:08d}"
            commands.append(
                dataclasses.replace(given, shipping_address=_with_phone(given.shipping_address, phone))
            )
        await handlers.ingest(bootstrap.unit_of_work(engine, keys), policy, commands, actor)
    took: list[float] = []
    judging: list[float] = []
    for n in range(INGESTS):
        given = command(f"judged-{n}", rng)
        phone = f"139{n % 200:08d}"
        order = accept(
            dataclasses.replace(given, shipping_address=_with_phone(given.shipping_address, phone)),
            f"o-{n}",
            datetime.now(UTC),
        )
        uow = bootstrap.unit_of_work(engine, keys)
        async with uow:
            started = time.perf_counter()
            judged = await risk_handlers.judge(uow, rules, [order], uow.clock.now())
            judging.append((time.perf_counter() - started) * 1000)
            await uow.risk.add_evaluations(judged, uow.clock.now())
            took.append((time.perf_counter() - started) * 1000)
            # not committed: the next order's window is the same
    await engine.dispose()
    return p(took, 50), p(took, 99), p(judging, 99)


async def ingest_with_and_without(url: str, keys: KeyRing) -> dict[str, float]:
    """Single-order ingests (the handler, one transaction each, on a real PostgreSQL) with the risk
    rules on and off, interleaved in rounds so the machine's noise falls on both alike: the risk
    step's cost on the ingest path is the difference."""
    engine = make_engine(url)
    rng = random.Random(9)
    actor = Actor.service("bench")
    base = handlers.Policy(keys=keys, rules=status_rules.shipped_rules())
    judged = dataclasses.replace(base, risk=handlers.RiskRules())
    took: dict[str, list[float]] = {"off": [], "on": []}
    for round_no in range(10):
        for name, policy in (("off", base), ("on", judged)):
            for n in range(INGESTS // 10):
                one = command(f"ab-{name}-{round_no}-{n}", rng)
                # a phone of its own: the common case, an order nothing holds (held ones write more)
                phone = f"135{round_no:03d}{n:05d}"
                one = dataclasses.replace(one, shipping_address=_with_phone(one.shipping_address, phone))
                started = time.perf_counter()
                await handlers.ingest(bootstrap.unit_of_work(engine, keys), policy, [one], actor)
                took[name].append((time.perf_counter() - started) * 1000)
    await engine.dispose()
    return {f"{name}_{q}": p(values, q) for name, values in took.items() for q in (50, 99)}


def _with_phone(address: Address, phone: str) -> Address:
    return dataclasses.replace(address, phone=phone)


async def sla_scan(url: str, keys: KeyRing) -> dict[str, float]:
    engine = make_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now)
    policy = handlers.Policy(keys=keys, rules=status_rules.shipped_rules(), sla=sla_rules.shipped_sla())
    actor = Actor.service("bench")
    template = dataclasses.replace(
        command("sla-template", random.Random(1)), paid_at=now, channel=Channel.TAOBAO
    )
    [made], _ = await handlers.ingest(bootstrap.unit_of_work(engine, keys, clock), policy, [template], actor)
    assert made.order is not None
    template_id = made.order.order_id
    due = int(OPEN_ORDERS * DUE_SHARE)
    started = time.perf_counter()
    async with engine.begin() as conn:
        columns = [
            row[0]
            for row in await conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders' "
                    "ORDER BY ordinal_position"
                )
            )
        ]
        at = "CAST(:now AS timestamptz)"
        every = round(1 / DUE_SHARE)
        soon = f"{at} + (n % 7200) * interval '1 second'"
        replaced = {
            "order_id": "md5('sla-' || n)::uuid::text",
            "channel_order_id": "'SLA-' || n",
            # 1 % due a minute ago, the rest due over the next two hours
            "sla_due_at": f"CASE WHEN n % {every} = 0 THEN {at} - interval '1 minute' ELSE {soon} END",
            "sla_warn_at": f"CASE WHEN n % {every} = 0 THEN {at} - interval '1 minute' ELSE {soon} END",
            "sla_deadline": f"{soon} + interval '15 minutes'",
            "sla_started_at": f"{at} - interval '30 minutes'",
        }
        select = ", ".join(replaced.get(name, name) for name in columns)
        await conn.execute(
            text(
                f"INSERT INTO orders ({', '.join(columns)}) SELECT {select} FROM orders, "
                f"generate_series(1, {OPEN_ORDERS}) AS n WHERE order_id = :template"
            ),
            {"now": now, "template": template_id},
        )
        # personal data is sealed to its order's id: seal the due orders' (the job opens them)
        sealed = await conn.scalar(
            text("SELECT pii_sealed FROM orders WHERE order_id = :t"), {"t": template_id}
        )
        private = keys.open(sealed, template_id)
        due_ids = (
            await conn.execute(text("SELECT order_id FROM orders WHERE sla_due_at <= :now"), {"now": now})
        ).scalars()
        await conn.execute(
            text("UPDATE orders SET pii_sealed = :sealed WHERE order_id = :order_id"),
            [{"order_id": oid, "sealed": keys.seal(private, oid)} for oid in due_ids],
        )
    load_seconds = time.perf_counter() - started
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE orders"))
    due_query = (
        "SELECT order_id FROM orders WHERE sla_due_at IS NOT NULL AND sla_due_at <= :now "
        "ORDER BY sla_due_at LIMIT :limit"
    )
    figures: dict[str, float] = {
        "sla_open_orders": OPEN_ORDERS,
        "sla_due_orders": due,
        "load_s": load_seconds,
    }

    async def timed(indexed: bool) -> tuple[float, int, float]:
        async with engine.connect() as conn:
            if not indexed:
                await conn.execute(text("SET enable_indexscan = off"))
                await conn.execute(text("SET enable_bitmapscan = off"))
            rounds = []
            found = 0
            for _ in range(5):
                started = time.perf_counter()
                found = len((await conn.execute(text(due_query), {"now": now, "limit": due + 1})).all())
                rounds.append((time.perf_counter() - started) * 1000)
            plan = await conn.execute(
                text(f"EXPLAIN (ANALYZE, FORMAT JSON) {due_query}"), {"now": now, "limit": due + 1}
            )
            document = plan.scalar_one()[0]["Plan"]
            if os.environ.get("BENCH_SHOW_PLANS"):
                print(document)
            await conn.rollback()
        examined = _rows_examined(document)
        return sorted(rounds)[len(rounds) // 2], found, examined

    figures["sla_due_scan_ms"], figures["sla_due_found"], figures["sla_due_rows_examined"] = await timed(True)
    figures["sla_scan_all_ms"], _, figures["sla_scan_all_rows_examined"] = await timed(False)
    # one batch of the job itself: 500 due timers read, turned amber, saved with their events
    started = time.perf_counter()
    run, _ = await handlers.check_sla(bootstrap.unit_of_work(engine, keys, clock), 500)
    figures["sla_job_batch_ms"] = (time.perf_counter() - started) * 1000
    figures["sla_job_batch_orders"] = run.due
    await engine.dispose()
    return figures


def _rows_examined(plan: dict[str, Any]) -> float:
    """Rows read by the plan's scans (what the read touched, not what it returned)."""
    own = 0.0
    # a bitmap heap scan reads the rows its bitmap index scan found: count them once
    if "Scan" in plan.get("Node Type", "") and plan.get("Node Type") != "Bitmap Index Scan":
        own = float(plan.get("Actual Rows", 0)) + float(plan.get("Rows Removed by Filter", 0))
        own *= float(plan.get("Actual Loops", 1))
    return own + sum(_rows_examined(child) for child in plan.get("Plans", []))


def main() -> None:
    p50, p99, held_share = pure_evaluation()
    print(f"risk_eval_p50_ms: {p50:.4f} ms")
    print(f"risk_eval_p99_ms: {p99:.4f} ms")
    print(f"risk_eval_held_share: {held_share * 100:.1f} %")
    keys = KeyRing.from_settings(f"b1:{KeyRing.generate_key()}", "b1", KeyRing.generate_key())
    with bench_stack() as bench:
        ingest_p50, ingest_p99, judge_p99 = asyncio.run(risk_on_ingest(bench.database("orders"), keys))
        print(f"risk_ingest_step_p50_ms: {ingest_p50:.3f} ms")
        print(f"risk_ingest_step_p99_ms: {ingest_p99:.3f} ms")
        print(f"risk_judge_with_phone_window_p99_ms: {judge_p99:.3f} ms")
        ab = asyncio.run(ingest_with_and_without(bench.database("orders", "_ab"), keys))
        print(f"ingest_single_risk_off_p50_ms: {ab['off_50']:.3f} ms")
        print(f"ingest_single_risk_on_p50_ms: {ab['on_50']:.3f} ms")
        print(f"ingest_single_risk_off_p99_ms: {ab['off_99']:.3f} ms")
        print(f"ingest_single_risk_on_p99_ms: {ab['on_99']:.3f} ms")
        print(f"risk_ingest_added_p50_ms: {ab['on_50'] - ab['off_50']:.3f} ms")
        figures = asyncio.run(sla_scan(bench.database("orders", "_sla"), keys))
    print(f"sla_open_orders: {figures['sla_open_orders']:.0f} orders")
    print(f"sla_due_orders: {figures['sla_due_orders']:.0f} orders")
    print(f"sla_due_found: {figures['sla_due_found']:.0f} orders")
    print(f"sla_due_scan_ms: {figures['sla_due_scan_ms']:.1f} ms")
    print(f"sla_due_rows_examined: {figures['sla_due_rows_examined']:.0f} rows")
    print(f"sla_scan_all_ms: {figures['sla_scan_all_ms']:.1f} ms")
    print(f"sla_scan_all_rows_examined: {figures['sla_scan_all_rows_examined']:.0f} rows")
    print(
        f"sla_due_scan_speedup: {figures['sla_scan_all_ms'] / max(figures['sla_due_scan_ms'], 0.001):.1f} x"
    )
    print(f"sla_job_batch_ms: {figures['sla_job_batch_ms']:.0f} ms")
    print(f"sla_job_batch_orders: {figures['sla_job_batch_orders']:.0f} orders")
    print(f"sla_load_s: {figures['load_s']:.1f} s")


if __name__ == "__main__":
    main()
