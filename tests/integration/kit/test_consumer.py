from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

import pytest
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit import bus
from services.kit.consumer import Envelope, EventConsumer, PermanentError
from services.kit.schema import dead_letters_table, inbox_table
from tests.integration.kit.helpers import sample_event
from tests.waiting import eventually


async def _record_effect(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
    await conn.execute(text("INSERT INTO effects (event_id) VALUES (:id)"), {"id": envelope.event_id})


async def _count(engine: AsyncEngine, query: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(query))).scalar_one())


async def _publish(
    nc: NatsClient, prefix: str, event_id: str, payload: bytes | None = None, traceparent: str = ""
) -> None:
    js = nc.jetstream()
    await bus.ensure_stream(js, prefix, "orders")
    traced = {"traceparent": traceparent} if traceparent else {}
    await js.publish(
        f"{prefix}.orders.created",
        sample_event(1).SerializeToString() if payload is None else payload,
        headers={bus.MSG_ID: event_id, bus.EVENT_TYPE: "oms.orders.v1.OrderCreated", **traced},
    )


def _consumer(nc: NatsClient, engine: AsyncEngine, prefix: str, handler, **options) -> EventConsumer:  # type: ignore[no-untyped-def]
    return EventConsumer(
        nc.jetstream(),
        engine,
        name="test-consumer",
        subject_prefix=prefix,
        subject="orders.created",
        handler=handler,
        **options,
    )


async def test_an_event_redelivered_after_a_lost_ack_is_handled_once(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    consumer = _consumer(nc, effects, subject_prefix, _record_effect, ack_wait_seconds=1.0)
    subscription = await consumer.subscribe()
    await _publish(nc, subject_prefix, "evt-1")

    [first] = await subscription.fetch(1, timeout=5)

    async def lost_ack() -> None:
        return None

    first.ack = lost_ack  # the process dies after commit, before its ack reaches the server
    await consumer.process(first)
    [again] = await subscription.fetch(1, timeout=10)
    assert again.metadata.num_delivered == 2
    await consumer.process(again)

    assert await _count(effects, "SELECT count(*) FROM effects") == 1
    assert (consumer.processed, consumer.duplicates) == (1, 1)
    with pytest.raises(NatsTimeout):  # acked: nothing more to deliver
        await subscription.fetch(1, timeout=1.5)


async def test_a_transient_failure_is_retried_and_rolled_back_work_leaves_no_trace(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    calls = 0

    async def flaky(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        await _record_effect(conn, event, envelope)
        if calls == 1:
            raise ConnectionError("warehouse system timed out")

    consumer = _consumer(nc, effects, subject_prefix, flaky, backoff_seconds=(0.2,))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _publish(nc, subject_prefix, "evt-2")
    await eventually(lambda: consumer.processed == 1)
    stop.set()
    await task

    assert calls == 2
    assert await _count(effects, "SELECT count(*) FROM effects") == 1
    assert await _count(effects, "SELECT count(*) FROM inbox") == 1


@pytest.mark.parametrize("together", [False, True], ids=["alone", "together"])
async def test_poison_messages_are_terminated_and_recorded_as_dead_letters(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str, together: bool
) -> None:
    async def rejecting(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        if envelope.event_id == "evt-rejected":
            raise PermanentError("order belongs to another merchant")

    async def always_failing(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        raise RuntimeError("bug")

    consumer = _consumer(nc, effects, subject_prefix, rejecting, together=together)
    await _publish(nc, subject_prefix, "evt-garbage", payload=b"\xff\xff\xff not protobuf")
    await _publish(nc, subject_prefix, "evt-rejected")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await eventually(lambda: _at_least(_count(effects, "SELECT count(*) FROM dead_letters"), 2))
    stop.set()
    await task

    failing = EventConsumer(
        nc.jetstream(),
        effects,
        name="failing",
        subject_prefix=subject_prefix,
        subject="orders.created",
        handler=always_failing,
        max_deliveries=3,
        backoff_seconds=(0.1,),
        together=together,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(failing.run(stop))
    failed = "SELECT count(*) FROM dead_letters WHERE consumer = 'failing'"
    await eventually(lambda: _at_least(_count(effects, failed), 2))
    stop.set()
    await task

    async with effects.connect() as conn:
        rows = (await conn.execute(select(dead_letters_table).order_by(dead_letters_table.c.id))).all()
        inbox = await conn.scalar(select(func.count()).select_from(inbox_table))
    by_event = {(row.consumer, row.event_id): row for row in rows}
    assert "undecodable" in by_event[("test-consumer", "evt-garbage")].error
    assert "another merchant" in by_event[("test-consumer", "evt-rejected")].error
    assert by_event[("failing", "evt-rejected")].deliveries == 3
    assert by_event[("failing", "evt-garbage")].payload == b"\xff\xff\xff not protobuf"
    assert inbox == 0


async def test_a_batch_taken_together_is_one_transaction_and_handles_each_new_event_once(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    connections: set[int] = set()
    woken: list[str] = []

    async def recording(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        connections.add(id(conn))
        await _record_effect(conn, event, envelope)
        envelope.on_commit(lambda: woken.append(envelope.event_id))

    async with effects.begin() as conn:  # seen before: a duplicate
        await conn.execute(
            inbox_table.insert().values(consumer="test-consumer", event_id="evt-b-3", subject="x")
        )
    for number in range(12):
        await _publish(nc, subject_prefix, f"evt-b-{number}")
    await _publish(nc, subject_prefix, "evt-b-garbage", payload=b"\xff not protobuf")
    consumer = _consumer(nc, effects, subject_prefix, recording, together=True)
    subscription = await consumer.subscribe()
    batch = await subscription.fetch(13, timeout=5)
    assert len(batch) == 13
    await consumer.process_together(batch)

    assert len(connections) == 1, "the batch was not one transaction"
    effects_of = "SELECT count(*) FROM effects WHERE event_id LIKE 'evt-b-%'"
    assert await _count(effects, effects_of) == 11  # 12, less the one seen before
    assert sorted(woken) == sorted(f"evt-b-{n}" for n in range(12) if n != 3)
    assert (consumer.processed, consumer.duplicates) == (11, 1)
    async with effects.connect() as conn:
        dead = (await conn.execute(select(dead_letters_table.c.event_id))).scalars().all()
    assert list(dead) == ["evt-b-garbage"]
    with pytest.raises(NatsTimeout):  # every message acked or terminated
        await subscription.fetch(1, timeout=1.5)


async def test_a_batch_handler_gets_the_batch_s_new_events_at_once_in_order_and_falls_back_to_one_by_one(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    batches: list[list[tuple[str, str]]] = []
    alone: list[str] = []
    failing = False

    async def handle_all(conn: AsyncConnection, events: Sequence[tuple[Message, Envelope]]) -> None:
        batches.append([(envelope.event_id, envelope.traceparent) for _, envelope in events])
        for event, envelope in events:
            await _record_effect(conn, event, envelope)
        if failing:
            raise ConnectionError("Postgres went away")

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        alone.append(envelope.event_id)
        await _record_effect(conn, event, envelope)

    async with effects.begin() as conn:  # seen before: not handed over again
        await conn.execute(
            inbox_table.insert().values(consumer="test-consumer", event_id="evt-h-2", subject="x")
        )
    traces = [f"00-{n:032x}-{n:016x}-01" for n in range(1, 7)]
    for number in range(6):
        await _publish(nc, subject_prefix, f"evt-h-{number}", traceparent=traces[number])
    consumer = _consumer(nc, effects, subject_prefix, handle, together=True, batch_handler=handle_all)
    subscription = await consumer.subscribe()
    await consumer.process_together(await subscription.fetch(6, timeout=5))

    assert batches == [[(f"evt-h-{n}", traces[n]) for n in (0, 1, 3, 4, 5)]]
    assert alone == []
    assert await _count(effects, "SELECT count(*) FROM effects WHERE event_id LIKE 'evt-h-%'") == 5

    failing = True  # the batch's transaction fails: each event is handled alone, by the handler
    for number in range(6, 9):
        await _publish(nc, subject_prefix, f"evt-h-{number}")
    await consumer.process_together(await subscription.fetch(3, timeout=5))
    assert [len(batch) for batch in batches] == [5, 3]
    assert alone == ["evt-h-6", "evt-h-7", "evt-h-8"]
    assert await _count(effects, "SELECT count(*) FROM effects WHERE event_id LIKE 'evt-h-%'") == 8
    assert consumer.processed == 8


async def test_after_commit_work_runs_only_once_its_transaction_committed(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    seen: list[str] = []
    calls = 0

    async def handler(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        await _record_effect(conn, event, envelope)
        envelope.on_commit(lambda: seen.append(envelope.event_id))
        if calls == 3:  # the batch's third event: the whole batch's transaction rolls back
            raise ConnectionError("Postgres went away")

    for number in range(5):
        await _publish(nc, subject_prefix, f"evt-c-{number}")
    consumer = _consumer(nc, effects, subject_prefix, handler, together=True)
    subscription = await consumer.subscribe()
    batch = await subscription.fetch(5, timeout=5)
    await consumer.process_together(batch)  # fails together, then each is handled alone
    assert calls == 3 + 5
    assert sorted(seen) == [f"evt-c-{n}" for n in range(5)]  # the rolled-back two never woke anyone
    assert consumer.processed == 5
    assert await _count(effects, "SELECT count(*) FROM effects WHERE event_id LIKE 'evt-c-%'") == 5


async def _at_least(count: Awaitable[int], expected: int) -> bool:
    return await count >= expected


async def test_an_idle_consumer_logs_no_error_when_its_fetches_time_out(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a fetch whose wait is used up by its first probe ends in a bare TimeoutError, as on a busy loop
    consumer = _consumer(nc, effects, subject_prefix, _record_effect, fetch_seconds=0.001)
    stop = asyncio.Event()
    with caplog.at_level("DEBUG", logger="services.kit.consumer"):
        task = asyncio.create_task(consumer.run(stop))
        await asyncio.sleep(2.0)  # hundreds of empty fetches
        await _publish(nc, subject_prefix, "e-after-idle")
        await eventually(lambda: consumer.processed == 1)
        stop.set()
        await task
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == []
