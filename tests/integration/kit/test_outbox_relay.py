from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client as NatsClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from omsctl.stack import Infra
from services.kit import bus, tracing
from services.kit.db import UnitOfWork
from services.kit.outbox import OutboxRelay, lag_seconds, outbox_report, outbox_state
from services.kit.schema import outbox_table
from tests.integration.kit.helpers import sample_event, stream_count, stream_messages
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[3]


async def _commit_events(engine: AsyncEngine, count: int) -> list[str]:
    async with UnitOfWork(engine) as uow:
        ids = [uow.publish("orders.created", sample_event(n)) for n in range(count)]
        await uow.commit()
    return ids


async def _drain(relay: OutboxRelay) -> None:
    while await relay.publish_batch():
        pass


async def _unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).select_from(outbox_table).where(outbox_table.c.published_at.is_(None))
            )
            or 0
        )


async def test_relay_publishes_each_committed_event_once_and_none_for_rolled_back_ones(
    orders_engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    committed = await _commit_events(orders_engine, 5)
    async with UnitOfWork(orders_engine) as uow:
        for n in range(3):
            uow.publish("orders.created", sample_event(100 + n))
    async with UnitOfWork(orders_engine) as uow:
        uow.publish("orders.created", sample_event(200))
        await uow.rollback()

    relay = OutboxRelay(
        orders_engine, nc.jetstream(), service="orders", subject_prefix=subject_prefix, batch_size=2
    )
    await _drain(relay)
    await _drain(relay)

    messages = await stream_messages(nc.jetstream(), subject_prefix, "orders")
    assert [m.headers[bus.MSG_ID] for m in messages] == committed
    assert {m.subject for m in messages} == {f"{subject_prefix}.orders.created"}
    assert messages[0].headers[bus.EVENT_TYPE] == "oms.orders.v1.OrderCreated"
    assert await _unpublished(orders_engine) == 0
    assert await lag_seconds(orders_engine) == 0.0


async def test_event_carries_the_trace_of_the_transaction_that_wrote_it(
    orders_engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    tracing.setup_tracing("tests")
    with tracing.tracer().start_as_current_span("request"):
        trace_id = tracing.current_trace_id()
        await _commit_events(orders_engine, 1)
    relay = OutboxRelay(orders_engine, nc.jetstream(), service="orders", subject_prefix=subject_prefix)
    await _drain(relay)
    [message] = await stream_messages(nc.jetstream(), subject_prefix, "orders")
    assert tracing.trace_id_of(message.headers["traceparent"]) == trace_id


async def test_relay_killed_mid_batch_and_restarted_delivers_every_event_exactly_once(
    orders_db: str, orders_engine: AsyncEngine, infra: Infra, nc: NatsClient, subject_prefix: str
) -> None:
    event_ids = await _commit_events(orders_engine, 1000)
    crash = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(Path(__file__).with_name("relay_crash.py")),
            orders_db,
            infra.nats_url,
            subject_prefix,
            "250",
            "100",
        ],
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}"},
        capture_output=True,
        timeout=60,
    )
    assert crash.returncode == -9, crash.stderr.decode()[-2000:]
    js = nc.jetstream()
    # the crash came inside the third batch: two batches marked, part of the third already in JetStream
    assert await _unpublished(orders_engine) == 800
    assert 250 <= await stream_count(js, subject_prefix, "orders") <= 300

    relay = OutboxRelay(orders_engine, js, service="orders", subject_prefix=subject_prefix, batch_size=100)
    await _drain(relay)

    messages = await stream_messages(js, subject_prefix, "orders")
    assert len(messages) == 1000
    assert [m.headers[bus.MSG_ID] for m in messages] == event_ids
    assert await _unpublished(orders_engine) == 0


async def test_only_one_relay_per_service_is_active_and_a_standby_takes_over(
    orders_engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    first = OutboxRelay(orders_engine, js, service="orders", subject_prefix=subject_prefix, poll_seconds=0.1)
    second = OutboxRelay(orders_engine, js, service="orders", subject_prefix=subject_prefix, poll_seconds=0.1)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    await eventually(lambda: first.is_leader)
    second_task = asyncio.create_task(second.run(stop_second))
    await asyncio.sleep(0.5)
    assert not second.is_leader

    stop_first.set()
    await first_task
    await _commit_events(orders_engine, 3)
    await eventually(lambda: second.published_total == 3)
    assert second.is_leader
    stop_second.set()
    await second_task
    assert await stream_count(js, subject_prefix, "orders") == 3


async def test_relay_wakes_on_commit_without_waiting_for_its_poll(
    orders_engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    relay = OutboxRelay(
        orders_engine, nc.jetstream(), service="orders", subject_prefix=subject_prefix, poll_seconds=60
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await eventually(lambda: relay.is_leader)
    await asyncio.sleep(0.2)
    await _commit_events(orders_engine, 1)
    await eventually(lambda: relay.published_total == 1)
    stop.set()
    await task


async def test_the_outbox_state_counts_what_waits_and_its_age_and_nothing_once_published(
    orders_engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    relay = OutboxRelay(orders_engine, nc.jetstream(), service="orders", subject_prefix=subject_prefix)
    await _drain(relay)
    assert await outbox_state(orders_engine) == (0, 0.0)
    await _commit_events(orders_engine, 4)
    await asyncio.sleep(0.05)
    waiting, oldest = await outbox_state(orders_engine)
    assert waiting == 4 and 0.05 <= oldest < 30
    report = json.loads(outbox_report("orders", waiting, oldest, datetime.now(UTC)))
    assert report["service"] == "orders" and report["unpublished"] == 4 and report["capped"] is False
    await _drain(relay)
    assert await outbox_state(orders_engine) == (0, 0.0)
