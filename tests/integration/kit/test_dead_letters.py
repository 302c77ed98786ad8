"""The bus's dead letters on a real Postgres and NATS: a terminated event is kept with one alert in the
outbox, listed through the service's desk on core NATS, and replayed through its consumer's handler
once it can succeed: processed once, marked, never replayed twice; what still fails stays."""

from __future__ import annotations

import asyncio
import json

import pytest
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oms.alerts.v1 import events_pb2 as alerts_pb
from services.kit.consumer import Envelope, EventConsumer
from services.kit.dead_letters import DeadLetterDesk, requests_subject
from tests.integration.kit.test_consumer import _at_least, _count, _publish
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


async def test_a_dead_letter_is_alerted_listed_and_replayed_once_when_its_handler_works_again(
    effects: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    broken = {"yes": True}

    async def handler(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        if broken["yes"]:
            raise RuntimeError("the peer's schema changed")
        await conn.execute(text("INSERT INTO effects (event_id) VALUES (:id)"), {"id": envelope.event_id})

    consumer = EventConsumer(
        nc.jetstream(),
        effects,
        name="dl-consumer",
        subject_prefix=subject_prefix,
        subject="orders.created",
        handler=handler,
        max_deliveries=2,
        backoff_seconds=(0.05,),
        service="orders",
    )
    await _publish(nc, subject_prefix, "evt-dl-1")
    await _publish(nc, subject_prefix, "evt-dl-garbage", payload=b"\xff\xff not protobuf")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await eventually(lambda: _at_least(_count(effects, "SELECT count(*) FROM dead_letters"), 2))
    stop.set()
    await task

    # one alert each, for ops, naming the consumer and the event, through the outbox
    async with effects.connect() as conn:
        alerts = (
            (
                await conn.execute(
                    text("SELECT payload FROM outbox WHERE subject = 'alerts.raised' ORDER BY id")
                )
            )
            .scalars()
            .all()
        )
    raised = [alerts_pb.AlertRaised.FromString(payload) for payload in alerts]
    assert [(a.kind, a.source, list(a.roles)) for a in raised] == [
        ("event_dead_letter", "orders", ["ops"])
    ] * 2
    assert any("evt-dl-1" in a.message and "dl-consumer" in a.message for a in raised)

    desk = DeadLetterDesk(nc, effects, subject_prefix, "orders", lambda: {"dl-consumer": consumer})
    await desk.start()

    async def ask(request: dict[str, object]) -> dict[str, object]:
        reply = await nc.request(requests_subject(subject_prefix, "orders"), json.dumps(request).encode(), 5)
        return dict(json.loads(reply.data))

    listed = (await ask({"action": "list"}))["dead_letters"]
    assert isinstance(listed, list)
    by_event = {row["event_id"]: row for row in listed}
    assert set(by_event) == {"evt-dl-1", "evt-dl-garbage"}
    assert "schema changed" in by_event["evt-dl-1"]["error"] and by_event["evt-dl-1"]["deliveries"] == 2
    good, garbage = by_event["evt-dl-1"]["id"], by_event["evt-dl-garbage"]["id"]

    # still broken: the replay fails, the dead letter stays as it was
    answer = await ask({"action": "replay", "ids": [good]})
    assert answer["replayed"] == [] and "failed again" in answer["failed"][str(good)]  # type: ignore[index]
    assert await _count(effects, "SELECT count(*) FROM effects") == 0
    # fixed: replayed once, and a second replay changes nothing
    broken["yes"] = False
    answer = await ask({"action": "replay", "ids": [good, garbage, 999999]})
    assert answer["replayed"] == [good]
    failed = answer["failed"]
    assert (
        isinstance(failed, dict) and "undecodable" in failed[str(garbage)] and "no such" in failed["999999"]
    )
    again = await ask({"action": "replay", "ids": [good]})
    assert "replayed already" in again["failed"][str(good)]  # type: ignore[index]
    assert await _count(effects, "SELECT count(*) FROM effects WHERE event_id = 'evt-dl-1'") == 1
    assert [row["event_id"] for row in (await ask({"action": "list"}))["dead_letters"]] == [  # type: ignore[union-attr]
        "evt-dl-garbage"
    ]
    assert "unknown action" in str((await ask({"action": "drop"}))["error"])
