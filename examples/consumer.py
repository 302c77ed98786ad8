"""A consumer of the platform's events, as an integration team would write one (docs/contracts/asyncapi.yaml).

A durable pull consumer on one subject of one stream (default `oms.orders.created` on `OMS_ORDERS`):
each message's binary protobuf body is decoded with the generated class its `Oms-Event-Type` header
names, handled once per `event_id` (delivery is at least once), acknowledged only after it was handled,
retried later (`nak` with a delay) when handling failed, and terminated (`term`) when it can never be
read. Ctrl-C drains the subscription and stops.

    eval "$(.venv/bin/python -m omsctl env)"     # OMS_NATS_URL, OMS_SUBJECT_PREFIX of the running stack
    PYTHONPATH=gen .venv/bin/python examples/consumer.py

Settings (environment): NATS_URL (or OMS_NATS_URL), OMS_SUBJECT_PREFIX (oms), SUBJECT (orders.created,
under the prefix), DURABLE (example-consumer), BATCH (20).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError, Message
from nats.errors import TimeoutError as FetchTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

# importing the generated modules registers their messages, so a header's type name finds its class
from oms.aftersales.v1 import events_pb2 as _aftersales  # noqa: F401
from oms.alerts.v1 import events_pb2 as _alerts  # noqa: F401
from oms.inventory.v1 import events_pb2 as _inventory  # noqa: F401
from oms.logistics.v1 import events_pb2 as _logistics  # noqa: F401
from oms.orders.v1 import events_pb2 as _orders  # noqa: F401
from oms.routing.v1 import events_pb2 as _routing  # noqa: F401

log = logging.getLogger("consumer")
RETRY_DELAY_SECONDS = 5.0


@dataclass(frozen=True)
class Settings:
    nats_url: str
    prefix: str
    subject: str
    durable: str
    batch: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        return cls(
            nats_url=env.get("NATS_URL") or env.get("OMS_NATS_URL") or "nats://127.0.0.1:4222",
            prefix=env.get("OMS_SUBJECT_PREFIX", "oms"),
            subject=env.get("SUBJECT", "orders.created"),
            durable=env.get("DURABLE", "example-consumer"),
            batch=int(env.get("BATCH", "20")),
        )

    @property
    def full_subject(self) -> str:
        return f"{self.prefix}.{self.subject}"

    @property
    def stream(self) -> str:
        """One stream per domain: `oms.orders.created` is kept in `OMS_ORDERS`."""
        return f"{self.prefix}_{self.subject.split('.', 1)[0]}".upper()


class Poison(Exception):
    """A message that will never be readable: retrying it cannot help."""


def decode(headers: dict[str, str] | None, body: bytes) -> Message:
    """The event the headers name (`Oms-Event-Type`), parsed from its binary protobuf body."""
    name = (headers or {}).get("Oms-Event-Type", "")
    try:
        cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))
    except KeyError as error:
        raise Poison(f"unknown event type {name!r}") from error
    try:
        message: Message = cls.FromString(body)
    except DecodeError as error:
        raise Poison(f"{name} body is not protobuf: {error}") from error
    return message


@dataclass
class Processor:
    """Handles each event once. `seen` stands in for your own store: keep the processed event ids in the
    same transaction as what handling wrote, and for longer than the stream keeps events."""

    handle: Callable[[Message], Awaitable[None]]
    seen: set[str] = field(default_factory=set)
    retry_delay: float = RETRY_DELAY_SECONDS

    async def process(self, msg: Any) -> str:
        """Ack, nak or term one delivered message; says which."""
        try:
            event = decode(msg.headers, msg.data)
        except Poison as error:
            log.error("terminating a poison message (%s): %s", msg.subject, error)
            await msg.term()
            return "term"
        event_id = getattr(event, "event_id", "") or (msg.headers or {}).get("Nats-Msg-Id", "")
        if event_id in self.seen:
            await msg.ack()  # a re-delivery of what was handled already
            return "duplicate"
        try:
            await self.handle(event)
        except Exception:
            log.exception("handling %s failed; it comes back in %.0f s", event_id, self.retry_delay)
            await msg.nak(delay=self.retry_delay)
            return "nak"
        self.seen.add(event_id)
        await msg.ack()
        return "ack"


async def subscribe(js: Any, settings: Settings) -> Any:
    """The durable pull consumer: explicit acks, from the first event the stream still holds."""
    return await js.pull_subscribe(
        settings.full_subject,
        durable=settings.durable,
        stream=settings.stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=30),
    )


async def run(settings: Settings, processor: Processor, stop: asyncio.Event) -> None:
    nc = await nats.connect(settings.nats_url, name=settings.durable, max_reconnect_attempts=-1)
    try:
        subscription = await subscribe(nc.jetstream(), settings)
        log.info("consuming %s from %s as %s", settings.full_subject, settings.stream, settings.durable)
        while not stop.is_set():
            try:
                messages = await subscription.fetch(settings.batch, timeout=1)
            except FetchTimeout:
                continue  # nothing new
            for msg in messages:
                await processor.process(msg)
    finally:
        await nc.drain()


async def print_event(event: Message) -> None:
    text = json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None)
    print(f"{event.DESCRIPTOR.full_name} {text}", flush=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = asyncio.Event()

    async def consume() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(Settings.from_env(), Processor(print_event), stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(consume())


if __name__ == "__main__":
    main()
