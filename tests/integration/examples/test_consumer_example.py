"""examples/consumer.py against a real NATS JetStream, fed by the platform's own outbox relay."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine

from examples import consumer
from omsctl.stack import Infra
from services.kit import bus
from services.kit.db import UnitOfWork
from services.kit.outbox import OutboxRelay
from tests.integration.kit.helpers import sample_event, stream_messages
from tests.waiting import eventually


class Recorded(consumer.Processor):
    outcomes: list[str]

    async def process(self, msg: Any) -> str:
        outcome = await super().process(msg)
        self.outcomes.append(outcome)
        return outcome


async def test_the_example_consumer_handles_each_event_once_retries_a_failure_and_terminates_poison(
    orders_engine: AsyncEngine, nc: NatsClient, infra: Infra, subject_prefix: str
) -> None:
    async with UnitOfWork(orders_engine) as uow:
        first, second = (uow.publish("orders.created", sample_event(n)) for n in (1, 2))
        await uow.commit()
    relay = OutboxRelay(orders_engine, nc.jetstream(), service="orders", subject_prefix=subject_prefix)
    while await relay.publish_batch():
        pass
    js = nc.jetstream()
    published = await stream_messages(js, subject_prefix, "orders")
    # the first event re-sent after JetStream's duplicate window (a new message id), and a body no
    # event type can read
    await js.publish(
        f"{subject_prefix}.orders.created",
        published[0].data or b"",
        headers={**(published[0].headers or {}), bus.MSG_ID: "a-late-resend"},
    )
    await js.publish(
        f"{subject_prefix}.orders.created", b"\xff\xff", headers={bus.EVENT_TYPE: "oms.orders.v1.NoSuchEvent"}
    )
    handled: list[str] = []
    failures = {second: 1}

    async def handle(event: Message) -> None:
        event_id = getattr(event, "event_id", "")
        if failures.get(event_id, 0):
            failures[event_id] -= 1
            raise RuntimeError("the team's database is down")
        handled.append(event_id)

    settings = consumer.Settings.from_env(
        {"NATS_URL": infra.nats_url, "OMS_SUBJECT_PREFIX": subject_prefix, "DURABLE": "example-test"}
    )
    processor = Recorded(handle, retry_delay=0.2)
    processor.outcomes = []
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(settings, processor, stop))
    try:
        await eventually(lambda: len(processor.outcomes) == 5, within=20)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert handled == [first, second]
    assert sorted(processor.outcomes) == ["ack", "ack", "duplicate", "nak", "term"]
    info = await js.consumer_info(settings.stream, settings.durable)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
