"""The transactional outbox: rows written with the change, a relay that publishes them to JetStream.

One relay per service is active at a time (a Postgres advisory lock); it wakes on NOTIFY from the
outbox trigger, publishes in batches with `Nats-Msg-Id` = event id (JetStream drops re-sends after
a crash), marks rows published, and backs off when NATS is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry import trace
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit import bus, tracing
from services.kit.ids import new_id
from services.kit.schema import OUTBOX_CHANNEL, outbox_table

log = logging.getLogger(__name__)

__all__ = ["OutboxRelay", "event_row", "outbox_table"]


def event_row(subject: str, event: Message, now: datetime) -> dict[str, Any]:
    """Stamp the event with its id and time (when the message has those fields) and build its row."""
    fields = event.DESCRIPTOR.fields_by_name
    event_id = getattr(event, "event_id", "") if "event_id" in fields else ""
    if not event_id:
        event_id = new_id()
        if "event_id" in fields:
            event.event_id = event_id  # type: ignore[attr-defined]
    if "occurred_at" in fields and not event.HasField("occurred_at"):
        event.occurred_at.FromDatetime(now)  # type: ignore[attr-defined]
    return {
        "event_id": event_id,
        "subject": subject,
        "event_type": event.DESCRIPTOR.full_name,
        "payload": event.SerializeToString(),
        "traceparent": tracing.current_traceparent(),
        "occurred_at": now,
    }


def _lock_key(service: str) -> int:
    return zlib.crc32(f"oms-outbox-relay:{service}".encode())


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        js: JetStreamContext,
        *,
        service: str,
        subject_prefix: str,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.js = js
        self.service = service
        self.prefix = subject_prefix
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff_seconds
        self.is_leader = False
        self.published_total = 0
        self._wakeup = asyncio.Event()
        self._streams: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        async with self.engine.connect() as lock_conn:
            lock_conn = await lock_conn.execution_options(isolation_level="AUTOCOMMIT")
            await self._become_leader(lock_conn, stop)
            if stop.is_set():
                return
            await self._listen(lock_conn)
            try:
                await self._publish_until(stop)
            finally:
                self.is_leader = False
                await lock_conn.execute(select(func.pg_advisory_unlock(_lock_key(self.service))))

    async def _become_leader(self, conn: AsyncConnection, stop: asyncio.Event) -> None:
        key = _lock_key(self.service)
        while not stop.is_set():
            if await conn.scalar(select(func.pg_try_advisory_lock(key))):
                self.is_leader = True
                log.info("outbox relay is active", extra={"relay_service": self.service})
                return
            await _wait(stop, 2.0)

    async def _listen(self, conn: AsyncConnection) -> None:
        raw = await conn.get_raw_connection()
        await raw.driver_connection.add_listener(OUTBOX_CHANNEL, lambda *_: self._wakeup.set())  # type: ignore[union-attr]

    async def _publish_until(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._wakeup.clear()
            try:
                sent = await self.publish_batch()
                failures = 0
            except Exception:
                failures += 1
                delay = min(self.max_backoff, 0.2 * 2**failures)
                log.exception("outbox publish failed; retrying in %.1fs", delay)
                await _wait(stop, delay)
                continue
            if sent < self.batch_size:
                waiter = asyncio.create_task(self._wakeup.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait(
                    {waiter, stopper}, timeout=self.poll_seconds, return_when="FIRST_COMPLETED"
                )
                waiter.cancel()
                stopper.cancel()

    async def publish_batch(self) -> int:
        """Publish the oldest unpublished rows; returns how many were published."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        outbox_table.c.id,
                        outbox_table.c.event_id,
                        outbox_table.c.subject,
                        outbox_table.c.event_type,
                        outbox_table.c.payload,
                        outbox_table.c.traceparent,
                    )
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.id)
                    .limit(self.batch_size)
                )
            ).all()
            await conn.rollback()
        if not rows:
            return 0
        for domain in {bus.domain_of(row.subject) for row in rows} - self._streams:
            await bus.ensure_stream(self.js, self.prefix, domain)
            self._streams.add(domain)
        results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        done = [
            row.id for row, result in zip(rows, results, strict=True) if not isinstance(result, BaseException)
        ]
        failed = [
            (row.id, result)
            for row, result in zip(rows, results, strict=True)
            if isinstance(result, BaseException)
        ]
        async with self.engine.begin() as conn:
            if done:
                await conn.execute(
                    update(outbox_table).where(outbox_table.c.id.in_(done)).values(published_at=func.now())
                )
            for row_id, error in failed:
                await conn.execute(
                    update(outbox_table)
                    .where(outbox_table.c.id == row_id)
                    .values(attempts=outbox_table.c.attempts + 1, last_error=repr(error)[:1000])
                )
        self.published_total += len(done)
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(rows)} events not published: {failed[0][1]!r}")
        return len(done)

    async def _publish(self, row: Any) -> None:
        parent = tracing.context_from_headers({"traceparent": row.traceparent} if row.traceparent else {})
        token = otel_context.attach(parent)
        try:
            subject = bus.full_subject(self.prefix, row.subject)
            with tracing.tracer().start_as_current_span(f"publish {subject}", kind=trace.SpanKind.PRODUCER):
                headers = {
                    bus.MSG_ID: row.event_id,
                    bus.EVENT_TYPE: row.event_type,
                    bus.CONTENT_TYPE: bus.PROTOBUF,
                    **tracing.outgoing_headers(),
                }
                await self.js.publish(subject, row.payload, headers=headers, timeout=5)
        finally:
            otel_context.detach(token)


async def lag_seconds(engine: AsyncEngine) -> float:
    """Age of the oldest unpublished event: the relay's lag, 0 when it is caught up."""
    async with engine.connect() as conn:
        oldest = await conn.scalar(
            select(func.extract("epoch", func.now() - func.min(outbox_table.c.created_at))).where(
                outbox_table.c.published_at.is_(None)
            )
        )
    return float(oldest or 0.0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
