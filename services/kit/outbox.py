"""The transactional outbox: rows written with the change, a relay that publishes them to JetStream.

One relay per service is active at a time (a Postgres advisory lock, services.kit.leader); it wakes
on NOTIFY from the outbox trigger, publishes in batches with `Nats-Msg-Id` = event id (JetStream drops
re-sends after a crash), marks rows published, and backs off when NATS is unreachable. It confirms its
lock before every batch: after a lost connection it stops, and leads (and listens) again once it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.message import Message
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry import trace
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit import bus, metrics, tracing
from services.kit.db_errors import is_connection_failure
from services.kit.ids import new_id
from services.kit.leader import Leadership
from services.kit.schema import OUTBOX_CHANNEL, outbox_table

log = logging.getLogger(__name__)

__all__ = ["OutboxRelay", "event_row", "outbox_table", "purge_published"]


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


def relay_lock_name(service: str) -> str:
    return f"oms-outbox-relay:{service}"


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
        streams: bus.StreamLimits | None = None,
        retry_seconds: float = 1.0,
    ) -> None:
        self.engine = engine
        self.js = js
        self.service = service
        self.prefix = subject_prefix
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff_seconds
        self.stream_limits = streams
        self.retry_seconds = retry_seconds
        self.published_total = 0
        self._wakeup = asyncio.Event()
        self._streams: set[str] = set()
        self.leadership = Leadership(
            engine, relay_lock_name(service), listen=OUTBOX_CHANNEL, on_notify=self._wakeup.set
        )

    @property
    def is_leader(self) -> bool:
        return self.leadership.held

    async def run(self, stop: asyncio.Event) -> None:
        """Lead, publish while leading; after a lost lock (a dead connection) wait to lead again."""
        try:
            while await self.leadership.wait_to_lead(stop, self.retry_seconds):
                log.info("outbox relay is active", extra={"relay_service": self.service})
                await self._publish_while_leading(stop)
                # a standby, whose connection is alive, is the better leader now: give it the first try
                await _wait(stop, 1.5 * self.retry_seconds)
        finally:
            await self.leadership.release()

    async def _publish_while_leading(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._wakeup.clear()
            # before every batch: a relay that cannot confirm its lock publishes nothing more
            if not await self.leadership.lead():
                return
            try:
                sent = await self.publish_batch()
                failures = 0
            except Exception as error:
                failures += 1
                delay = min(self.max_backoff, 0.2 * 2**failures)
                if is_connection_failure(error):
                    log.warning("outbox publish failed (%r); retrying in %.1fs", error, delay)
                else:
                    log.exception("outbox publish failed; retrying in %.1fs", delay)
                await _wait(stop, delay)
                continue
            if sent < self.batch_size:
                await _first_of(self._wakeup, stop, self.leadership.lost, within=self.poll_seconds)

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
            await bus.ensure_stream(self.js, self.prefix, domain, self.stream_limits, owner=True)
            self._streams.add(domain)
        results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        published = [
            row for row, result in zip(rows, results, strict=True) if not isinstance(result, BaseException)
        ]
        done = [row.id for row in published]
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
        self._count([row.subject for row in published])
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(rows)} events not published: {failed[0][1]!r}")
        return len(done)

    def _count(self, subjects: list[str]) -> None:
        """Every domain event passes here once, committed (an event counted where it is written could
        still be rolled back, or, in inventory's one-statement reserve, never be written at all)."""
        for subject, count in Counter(subjects).items():
            metrics.EVENTS.labels(self.service, subject).inc(count)

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


OUTBOX_REPORT_SUBJECT = "ops.outbox"
# counted up to this many: past it the report says "at least"
OUTBOX_DEPTH_CAP = 100_000


async def outbox_state(engine: AsyncEngine) -> tuple[int, float]:
    """(events committed and not yet published, capped at OUTBOX_DEPTH_CAP; age of the oldest, s)."""
    waiting = select(outbox_table.c.created_at).where(outbox_table.c.published_at.is_(None))
    capped = waiting.limit(OUTBOX_DEPTH_CAP).subquery()
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.extract("epoch", func.now() - func.min(capped.c.created_at)))
            )
        ).one()
    return int(row[0]), float(row[1] or 0.0)


def outbox_report(service: str, unpublished: int, oldest_age_seconds: float, at: datetime) -> bytes:
    """What a service says of its outbox on core NATS (`<prefix>.ops.outbox`), for the dashboard."""
    return json.dumps(
        {
            "service": service,
            "unpublished": unpublished,
            "capped": unpublished >= OUTBOX_DEPTH_CAP,
            "oldest_age_seconds": round(oldest_age_seconds, 3),
            "at": at.isoformat(),
        }
    ).encode()


async def purge_published(engine: AsyncEngine, older_than_seconds: float, batch: int = 1000) -> int:
    """Delete rows published longer ago than the retention, a batch per statement (short locks)."""
    purged = 0
    while True:
        async with engine.begin() as conn:
            oldest = (
                select(outbox_table.c.id)
                .where(
                    outbox_table.c.published_at.is_not(None),
                    outbox_table.c.published_at < func.now() - timedelta(seconds=older_than_seconds),
                )
                .order_by(outbox_table.c.id)
                .limit(batch)
            )
            deleted = (await conn.execute(delete(outbox_table).where(outbox_table.c.id.in_(oldest)))).rowcount
        purged += deleted
        if deleted < batch:
            return purged


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _first_of(*events: asyncio.Event, within: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
