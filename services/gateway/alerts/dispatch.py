"""Delivering one alert: the live feed first, then every sink once (de-duplicated per sink), with
retries per sink; a failing sink never blocks the others. Personal sinks (SMS) are sent the phones of
whoever the alert is assigned to, and nothing when it names none."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from oms.alerts.v1 import events_pb2
from services.gateway.alerts.dedupe import Deduper
from services.gateway.alerts.hub import AlertHub
from services.gateway.alerts.sinks import PersonalSink, Sink
from services.gateway.domain.alerts import dedupe_key

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF = (0.5, 1.0, 2.0)


class Dispatcher:
    """Deliver one alert to every sink once (dedupe per sink), with retries per sink (3 attempts by default,
    waiting backoff[i] before retry i+1); a failing sink never blocks the others; failures are logged and
    counted."""

    def __init__(
        self,
        sinks: Sequence[Sink | PersonalSink],
        deduper: Deduper | None,
        hub: AlertHub,
        attempts: int = 3,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            # The name is the dedupe channel: two sinks sharing one would suppress each other.
            raise ValueError(f"alert sink names must be unique, got {names}")
        self.sinks = list(sinks)
        self.deduper = deduper
        self.hub = hub
        self.attempts = attempts
        self.backoff = tuple(backoff) or (0.0,)
        self.sleep = sleep
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()

    async def handle(self, alert: events_pb2.AlertRaised, phones: Sequence[str] = ()) -> bool:
        """Publish to the live feed first (operators watching see it at once), then deliver to all sinks
        concurrently; returns when every sink has succeeded, been deduplicated or given up."""
        self.hub.publish(alert)
        sinks = [sink for sink in self.sinks if phones or not _personal(sink)]
        outcomes = await asyncio.gather(*(self._deliver(sink, alert, phones) for sink in sinks))
        return all(outcomes)  # True: every sink has it (delivered now or before)

    async def _deliver(
        self, sink: Sink | PersonalSink, alert: events_pb2.AlertRaised, phones: Sequence[str]
    ) -> bool:
        key = dedupe_key(alert.dedupe_key, alert.event_id)
        claimed = bool(key) and self.deduper is not None
        if claimed and self.deduper is not None and not await self.deduper.first(sink.name, key):
            self.suppressed[sink.name] += 1
            return True
        delivered = False
        try:
            delivered = await self._attempt(sink, alert, phones)
        finally:
            # Failed for good or cancelled mid-way: give the window back so the next occurrence (or the
            # bus's redelivery to another replica) is tried on this channel instead of being suppressed.
            if claimed and not delivered and self.deduper is not None:
                await self.deduper.release(sink.name, key)
        return delivered

    async def _attempt(
        self, sink: Sink | PersonalSink, alert: events_pb2.AlertRaised, phones: Sequence[str]
    ) -> bool:
        for attempt in range(1, self.attempts + 1):
            try:
                if _personal(sink):
                    await cast(PersonalSink, sink).send_to(alert, phones)
                else:
                    await cast(Sink, sink).send(alert)
            except Exception as error:
                if attempt < self.attempts:
                    self.retried[sink.name] += 1
                    await self.sleep(self.backoff[min(attempt - 1, len(self.backoff) - 1)])
                    continue
                self.failed[sink.name] += 1
                logger.error(
                    "alert delivery failed",
                    extra={
                        "sink": sink.name,
                        "event_id": alert.event_id,
                        "kind": alert.kind,
                        "attempts": attempt,
                        "error": str(error) or repr(error),
                    },
                )
                return False
            self.delivered[sink.name] += 1
            return True
        return False


def _personal(sink: Sink | PersonalSink) -> bool:
    return hasattr(sink, "send_to")
