"""The live alert feed: an in-process fan-out hub for the WatchAlerts stream (one per replica; every
replica feeds its own watchers from the bus)."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Self

from oms.alerts.v1 import events_pb2
from services.gateway.domain.alerts import watched


class Subscription:
    """One WatchAlerts stream's view of the hub: an async iterator of alerts, closed with `aclose()`.

    It is registered when created (not on first iteration, as an async generator would be), so nothing
    published between `subscribe()` and the first `await` is lost. The hub holds it weakly, so a stream
    that is dropped without being closed stops receiving as soon as it is garbage.
    """

    def __init__(self, hub: AlertHub, min_severity: int, queue_size: int) -> None:
        self._hub = hub
        self.min_severity = min_severity
        self._queue: deque[events_pb2.AlertRaised] = deque(maxlen=queue_size)
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def _offer(self, alert: events_pb2.AlertRaised) -> int:
        """Queue the alert if it passes the filter; returns how many old alerts were dropped for it."""
        if self._closed or not watched(alert.severity, self.min_severity):
            return 0
        # A full bounded deque discards from the left on append: the oldest alert goes, publish never waits.
        lost = 1 if len(self._queue) == self._queue.maxlen else 0
        self._queue.append(alert)
        self.dropped += lost
        self._ready.set()
        return lost

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> events_pb2.AlertRaised:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving (the reader is done); alerts already queued are discarded, a waiting read ends."""
        self._queue.clear()
        self._finish()

    def _finish(self) -> None:
        # Takes no new alerts; the reader still gets what is queued, then the iteration ends.
        self._closed = True
        self._hub._subscribers.discard(self)
        self._ready.set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


class AlertHub:
    """In-process fan-out for the server-streaming WatchAlerts RPC: every subscriber gets every alert
    published after it subscribed (plus the last N for a late joiner), optionally filtered by minimum
    severity. Single event loop; `publish` is synchronous and never blocks."""

    def __init__(self, replay: int = 100, queue_size: int = 1000) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self._recent: deque[events_pb2.AlertRaised] = deque(maxlen=max(replay, 0))
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self.published = 0
        self.dropped = 0  # over all subscribers: how many alerts slow streams lost

    def publish(self, alert: events_pb2.AlertRaised) -> None:
        """Deliver to every current subscriber; a slow subscriber's queue drops its oldest alert."""
        self.published += 1
        self._recent.append(alert)
        for subscription in list(self._subscribers):
            self.dropped += subscription._offer(alert)

    def subscribe(self, min_severity: int = 0, replay: bool = True) -> Subscription:
        """Alerts with severity >= min_severity; with replay, first the recent ones that pass the filter."""
        subscription = Subscription(self, min_severity, self.queue_size)
        if replay:
            for alert in self._recent:
                subscription._offer(alert)
            # Replay is history, not loss: older replayed alerts pushed out by a small queue are not counted.
            subscription.dropped = 0
        self._subscribers.add(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every stream (server shutdown): each reader gets what is already queued, then stops."""
        for subscription in list(self._subscribers):
            subscription._finish()
