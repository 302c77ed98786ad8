"""A circuit breaker per carrier: purgatory runs each circuit (open, its time-to-live, the half-open
probe, state-change hooks); it is tripped here by a failure ratio over the carrier's recent calls.

purgatory (like aiobreaker and pybreaker) opens on a count of consecutive failures, which a carrier
failing one call in three never reaches. So each circuit has a threshold of one, and a failure is
handed to it only when the ratio of failures in the sliding window reaches the setting (or while it
probes half open, when one failure opens it again); any other failure is absorbed as a success.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import HALF_OPENED, OPENED, OpenedState

from services.logistics.carriers.config import BreakerSettings
from services.logistics.carriers.http import CarrierDown
from services.logistics.domain.carriers import BreakerState

log = logging.getLogger(__name__)
T = TypeVar("T")

STATES = {"closed": BreakerState.CLOSED, OPENED: BreakerState.OPEN, HALF_OPENED: BreakerState.HALF_OPEN}


class CircuitOpen(Exception):
    """The carrier's circuit is open: the call was not made."""


class _Absorbed(Exception):
    """A failure the ratio does not hold against the carrier yet (excluded from purgatory's count)."""

    def __init__(self, down: CarrierDown) -> None:
        super().__init__(down.reason)
        self.down = down


class Breakers:
    def __init__(self, settings: BreakerSettings, on_change: Callable[[str, BreakerState], None]) -> None:
        self.settings = settings
        self.on_change = on_change
        self.factory = AsyncCircuitBreakerFactory(
            default_threshold=1, default_ttl=settings.open_seconds, exclude=[_Absorbed]
        )
        self.factory.add_listener(self._hook)
        self.windows: dict[str, deque[bool]] = defaultdict(lambda: deque(maxlen=settings.window))
        self.states: dict[str, tuple[BreakerState, datetime | None]] = {}

    def _hook(self, name: str, kind: str, event: Any) -> None:
        if kind != "state_changed":
            return
        state = STATES.get(event.state, BreakerState.CLOSED)
        self.states[name] = (state, datetime.now(UTC))
        if state is not BreakerState.HALF_OPEN:
            self.windows[name].clear()
        log.warning("circuit breaker of carrier %s is now %s", name, state.value)
        self.on_change(name, state)

    def state(self, name: str) -> tuple[BreakerState, datetime | None]:
        return self.states.get(name, (BreakerState.CLOSED, None))

    def _tripped(self, window: deque[bool]) -> bool:
        if len(window) < self.settings.min_calls:
            return False
        return window.count(False) / len(window) >= self.settings.failure_ratio

    async def call(self, name: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` through the carrier's circuit: CircuitOpen when it is open; a CarrierDown from
        `work` counts as a failure, any other answer as a success."""
        breaker = await self.factory.get_breaker(name)
        try:
            async with breaker:
                probing = breaker.context.state == HALF_OPENED
                window = self.windows[name]
                try:
                    result = await work()
                except CarrierDown as down:
                    window.append(False)
                    if probing or self._tripped(window):
                        raise
                    raise _Absorbed(down) from None
                window.append(True)
                return result
        except OpenedState:
            raise CircuitOpen(f"{name} circuit open") from None
        except _Absorbed as absorbed:
            raise absorbed.down from None
