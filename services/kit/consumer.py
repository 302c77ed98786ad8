"""The JetStream consumer: durable pull, inbox dedupe in the handler's transaction, ack after commit.

A consumer built `together` handles each fetched batch in one transaction (one inbox statement for
the batch, every handler on the same connection, in the stream's order); if that transaction fails,
each message of the batch is handled again alone, so only the failing message is retried or dead-
lettered. Given a `batch_handler` too, it hands that one the batch's new events at once, in the
stream's order (so events about the same thing, an order, can be applied to it with one read and one
write); `handler` still handles each event alone. A handler's work outside the database (waking a
loop) is registered with `Envelope.on_commit` and runs once its transaction has committed, in either mode.

Transient failures are nak'ed with a growing delay; a message that cannot be decoded, that a handler
rejects as permanent, or that keeps failing is terminated and recorded in `dead_letters`.

What it does with each message is counted (`oms_consumer_messages_total`), and every
`INFO_EVERY_SECONDS` it reads JetStream's own counts of its durable consumer (pending, redelivered)
for the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import context as otel_context
from opentelemetry import trace
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit import bus, metrics, tracing
from services.kit.outbox import event_row
from services.kit.schema import dead_letters_table, inbox_table, outbox_table

log = logging.getLogger(__name__)
# how often a consumer reads its own JetStream counts for the metrics
INFO_EVERY_SECONDS = 5.0
# the inbox is counted up to this many rows
INBOX_COUNT_CAP = 100_000


class PermanentError(Exception):
    """Raised by a handler for an event that will never succeed: it goes to the dead letters at once."""


@dataclass(frozen=True)
class Envelope:
    event_id: str
    subject: str
    event_type: str
    deliveries: int
    # the trace the event was published in (W3C traceparent; empty when it came without one)
    traceparent: str = ""
    committed: list[Callable[[], None]] = field(default_factory=list, compare=False, repr=False)

    def on_commit(self, then: Callable[[], None]) -> None:
        """Run `then` once the handler's transaction has committed (never if it rolls back)."""
        self.committed.append(then)

    def _run_committed(self) -> None:
        for then in self.committed:
            try:
                then()
            except Exception:
                log.exception("after-commit work of event %s failed", self.event_id)
        self.committed.clear()


Handler = Callable[[AsyncConnection, Message, Envelope], Awaitable[None]]
# the new events of a batch taken together, in the stream's order, in its one transaction
BatchHandler = Callable[[AsyncConnection, Sequence[tuple[Message, Envelope]]], Awaitable[None]]


@contextlib.contextmanager
def _consuming(msg: Msg, name: str) -> Iterator[None]:
    """A consumer span in the trace the message was published in."""
    token = otel_context.attach(tracing.context_from_headers(msg.headers or {}))
    try:
        with tracing.tracer().start_as_current_span(name, kind=trace.SpanKind.CONSUMER):
            yield
    finally:
        otel_context.detach(token)


def decode(event_type: str, payload: bytes) -> Message:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(event_type)
    message = message_factory.GetMessageClass(descriptor)()
    message.ParseFromString(payload)
    return message


class EventConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        engine: AsyncEngine,
        *,
        name: str,
        subject_prefix: str,
        subject: str,
        handler: Handler,
        max_deliveries: int = 5,
        backoff_seconds: Sequence[float] = (1.0, 5.0, 15.0, 60.0),
        batch_size: int = 50,
        ack_wait_seconds: float = 30.0,
        streams: bus.StreamLimits | None = None,
        fetch_seconds: float = 1.0,
        together: bool = False,
        batch_handler: BatchHandler | None = None,
        service: str = "",
    ) -> None:
        self.js = js
        # the service it runs in, the source of its dead letters' alerts (the runtime sets it)
        self.service = service
        self.engine = engine
        self.name = name
        self.prefix = subject_prefix
        self.subject = subject
        self.handler = handler
        self.max_deliveries = max_deliveries
        self.backoff = list(backoff_seconds)
        self.batch_size = batch_size
        self.ack_wait = ack_wait_seconds
        self.streams = streams
        self.fetch_seconds = fetch_seconds
        self.together = together
        self.batch_handler = batch_handler
        self.processed = 0
        self.duplicates = 0
        self._info_due = 0.0
        self._outcomes = {
            outcome: metrics.CONSUMED.labels(name, outcome)
            for outcome in ("processed", "duplicate", "retried", "dead_lettered")
        }

    async def subscribe(self) -> Any:
        stream = await bus.ensure_stream(self.js, self.prefix, bus.domain_of(self.subject), self.streams)
        return await self.js.pull_subscribe(
            bus.full_subject(self.prefix, self.subject),
            durable=self.name,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait,
                max_deliver=-1,
            ),
        )

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self.subscribe()
        try:
            while not stop.is_set():
                await self._read_info(subscription)
                try:
                    messages = await subscription.fetch(self.batch_size, timeout=self.fetch_seconds)
                except (NatsTimeout, TimeoutError):
                    # nothing arrived within the fetch's wait: an idle stream, not a failure (nats-py
                    # raises either, depending on where the wait ran out)
                    continue
                except Exception:
                    log.exception("fetch failed for consumer %s", self.name)
                    await asyncio.sleep(1.0)
                    continue
                if self.together and len(messages) > 1:
                    await self.process_together(messages)
                    continue
                for msg in messages:
                    await self.process(msg)
        finally:
            # the durable consumer stays on the server; only this client's interest ends
            await subscription.unsubscribe()

    async def _read_info(self, subscription: Any) -> None:
        """JetStream's counts of this durable consumer, for the metrics; now and then, never failing."""
        now = time.monotonic()
        if now < self._info_due:
            return
        self._info_due = now + INFO_EVERY_SECONDS
        try:
            info = await subscription.consumer_info()
        except Exception as error:
            log.debug("consumer info of %s not read: %r", self.name, error)
            return
        metrics.FIGURES.read_consumer(
            self.name,
            info.stream_name,
            info.num_pending or 0,
            info.num_ack_pending or 0,
            info.num_redelivered or 0,
        )

    def _counted(self, outcome: str) -> None:
        self._outcomes[outcome].inc()
        if outcome == "processed":
            self.processed += 1
        elif outcome == "duplicate":
            self.duplicates += 1

    @staticmethod
    def _envelope(msg: Msg) -> Envelope:
        headers: Mapping[str, str] = msg.headers or {}
        return Envelope(
            event_id=headers.get(bus.MSG_ID, ""),
            subject=msg.subject,
            event_type=headers.get(bus.EVENT_TYPE, ""),
            deliveries=msg.metadata.num_delivered if msg.metadata else 1,
            traceparent=next((v for k, v in headers.items() if k.lower() == "traceparent"), ""),
        )

    async def process_together(self, messages: Sequence[Msg]) -> None:
        """A fetched batch in one transaction; on any failure, each message alone (`process`)."""
        taken: list[tuple[Msg, Envelope, Message]] = []
        alone: list[Msg] = []
        for msg in messages:
            envelope = self._envelope(msg)
            try:
                if not envelope.event_id or not envelope.event_type:
                    raise KeyError("headers")
                taken.append((msg, envelope, decode(envelope.event_type, msg.data)))
            except (KeyError, DecodeError):
                alone.append(msg)  # dead-lettered by `process`, with its reason
        handled: set[int] = set()
        try:
            if taken:
                handled = await self._handle_all(taken)
        except Exception as error:
            log.info("a batch of %d events failed together (%r); each is handled alone", len(taken), error)
            for msg in messages:
                await self.process(msg)
            return
        for index, (msg, envelope, _) in enumerate(taken):
            envelope._run_committed()
            await msg.ack()
            self._counted("processed" if index in handled else "duplicate")
        for msg in alone:
            await self.process(msg)

    async def _handle_all(self, taken: Sequence[tuple[Msg, Envelope, Message]]) -> set[int]:
        """One transaction: the batch's inbox rows in one statement, then each new event's handler (or
        the batch handler once, given all of them); which of them were handled (the others were seen
        before)."""
        async with self.engine.begin() as conn:
            rows = [
                {"consumer": self.name, "event_id": e.event_id, "subject": e.subject} for _, e, _ in taken
            ]
            claimed = await conn.execute(
                insert(inbox_table).on_conflict_do_nothing().returning(inbox_table.c.event_id), rows
            )
            first = {row.event_id for row in claimed}
            handled: set[int] = set()
            for index, (_, envelope, _) in enumerate(taken):
                if envelope.event_id in first:
                    first.discard(envelope.event_id)  # the same event twice in one fetch: handled once
                    handled.add(index)
            new = [taken[index] for index in sorted(handled)]
            if self.batch_handler is not None and len(new) > 1:
                # one span for the batch, in the first event's trace
                with _consuming(new[0][0], f"consume {len(new)} × {self.subject}"):
                    await self.batch_handler(conn, [(event, envelope) for _, envelope, event in new])
                return handled
            for msg, envelope, event in new:
                with _consuming(msg, f"consume {msg.subject}"):
                    await self.handler(conn, event, envelope)
        return handled

    async def process(self, msg: Msg) -> None:
        envelope = self._envelope(msg)
        with _consuming(msg, f"consume {msg.subject}"):
            await self._process(msg, envelope)

    async def _process(self, msg: Msg, envelope: Envelope) -> None:
        if not envelope.event_id or not envelope.event_type:
            await self._dead_letter(msg, envelope, "missing Nats-Msg-Id or Oms-Event-Type header")
            return
        try:
            event = decode(envelope.event_type, msg.data)
        except (KeyError, DecodeError) as error:
            await self._dead_letter(msg, envelope, f"undecodable event: {error!r}")
            return
        try:
            first_time = await self._handle_once(event, envelope)
        except PermanentError as error:
            await self._dead_letter(msg, envelope, f"rejected: {error}")
            return
        except Exception as error:
            if envelope.deliveries >= self.max_deliveries:
                log.exception("event %s failed %d times", envelope.event_id, envelope.deliveries)
                await self._dead_letter(msg, envelope, f"failed {envelope.deliveries} times: {error!r}")
            else:
                delay = self.backoff[min(envelope.deliveries, len(self.backoff)) - 1]
                log.warning("event %s failed (%r); redelivery in %.1fs", envelope.event_id, error, delay)
                await msg.nak(delay=delay)
                self._counted("retried")
            return
        await msg.ack()
        self._counted("processed" if first_time else "duplicate")

    async def _handle_once(self, event: Message, envelope: Envelope) -> bool:
        async with self.engine.begin() as conn:
            if not await self.handle_in(conn, event, envelope):
                return False
        envelope._run_committed()
        return True

    async def handle_in(self, conn: AsyncConnection, event: Message, envelope: Envelope) -> bool:
        """In the caller's transaction: claim the event in the inbox and run the handler; False when
        this consumer handled it already (nothing run)."""
        claimed = await conn.execute(
            insert(inbox_table)
            .values(consumer=self.name, event_id=envelope.event_id, subject=envelope.subject)
            .on_conflict_do_nothing()
            .returning(inbox_table.c.event_id)
        )
        if claimed.first() is None:
            return False
        await self.handler(conn, event, envelope)
        return True

    async def _dead_letter(self, msg: Msg, envelope: Envelope, error: str) -> None:
        """Record first (with its alert), then terminate: if the record cannot be written the message
        stays in the stream."""
        try:
            async with self.engine.begin() as conn:
                await record_alert(conn, self.service, self.name, envelope, error)
                await conn.execute(
                    insert(dead_letters_table).values(
                        consumer=self.name,
                        subject=envelope.subject,
                        event_id=envelope.event_id,
                        event_type=envelope.event_type,
                        payload=msg.data,
                        headers=dict(msg.headers or {}),
                        error=error[:4000],
                        deliveries=envelope.deliveries,
                    )
                )
        except Exception:
            log.exception("could not record dead letter for %s; leaving it for redelivery", envelope.event_id)
            await msg.nak(delay=self.backoff[-1])
            return
        log.error("dead-lettered event %s: %s", envelope.event_id, error)
        await msg.term()
        self._counted("dead_lettered")


async def inbox_size(engine: AsyncEngine) -> int:
    """Processed event ids kept (all consumers of the service), counted up to INBOX_COUNT_CAP."""
    capped = select(inbox_table.c.event_id).limit(INBOX_COUNT_CAP).subquery()
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(capped)) or 0)


ALERTS_SUBJECT = "alerts.raised"
# found by name in the protobuf pool (every service's mappers import oms.alerts.v1), so that the kit
# itself imports no generated code
ALERT_TYPE = "oms.alerts.v1.AlertRaised"
SEVERITY_HIGH = 3


async def record_alert(
    conn: AsyncConnection, service: str, consumer: str, envelope: Envelope, error: str
) -> None:
    """One `event_dead_letter` alert in the dead letter's own transaction (through the outbox, so it is
    published once the record is kept). Not for an alert that could not be handled: its own alert would
    meet the same fate, over and over."""
    if envelope.subject == ALERTS_SUBJECT or envelope.subject.endswith(f".{ALERTS_SUBJECT}"):
        return
    try:
        # the class is found at run time: its fields are not known to the type checker
        alert_class: Any = message_factory.GetMessageClass(
            descriptor_pool.Default().FindMessageTypeByName(ALERT_TYPE)
        )
    except KeyError:
        log.error(
            "no %s in this process: the dead letter of %s is kept without an alert", ALERT_TYPE, consumer
        )
        return
    alert = alert_class(
        kind="event_dead_letter",
        severity=SEVERITY_HIGH,
        source=service or consumer,
        message=(
            f"{consumer} terminated event {envelope.event_id or '(no id)'} on {envelope.subject} after "
            f"{envelope.deliveries} deliveries: {error[:300]}; `omsctl dead-letters replay` once fixed"
        ),
        dedupe_key=f"{service}:dead_letter:{consumer}:{envelope.event_id}"[:200],
        roles=["ops"],
    )
    await conn.execute(insert(outbox_table).values(**event_row(ALERTS_SUBJECT, alert, datetime.now(UTC))))


async def purge_inbox(engine: AsyncEngine, older_than_seconds: float, batch: int = 1000) -> int:
    """Forget processed event ids older than the retention, a batch per statement (short locks)."""
    purged = 0
    while True:
        async with engine.begin() as conn:
            oldest = (
                select(inbox_table.c.consumer, inbox_table.c.event_id)
                .where(inbox_table.c.processed_at < func.now() - timedelta(seconds=older_than_seconds))
                .limit(batch)
            )
            deleted = (
                await conn.execute(
                    delete(inbox_table).where(
                        tuple_(inbox_table.c.consumer, inbox_table.c.event_id).in_(oldest)
                    )
                )
            ).rowcount
        purged += deleted
        if deleted < batch:
            return purged
