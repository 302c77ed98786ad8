"""WatchAlerts: the live alert feed, capped per principal, a scoped watcher shown only alerts about
orders it may see (`Reach.ORDER`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.principal import Caller, is_scoped
from services.gateway.handlers.ports import AlertFeed, Orders
from services.kit.errors import ResourceExhausted


class SeenOrders:
    """One alert stream's memory of which orders its watcher may see, for `ttl_seconds`: a burst of
    alerts about one order asks orders once, and a changed assignment is honoured within the TTL."""

    def __init__(
        self,
        orders: Orders,
        caller: Caller,
        clock: Callable[[], float],
        ttl_seconds: float = 10.0,
        size: int = 4096,
    ) -> None:
        self.orders = orders
        self.caller = caller
        self.ttl = ttl_seconds
        self.size = size
        self.clock = clock
        self.seen: dict[str, tuple[bool, float]] = {}

    async def sees(self, order_id: str) -> bool:
        if not is_scoped(self.caller.principal):
            return True
        if not order_id:
            # an alert about no order concerns no customer of a scoped watcher: staff only
            return False
        now = self.clock()
        known = self.seen.get(order_id)
        if known is not None and known[1] > now:
            return known[0]
        try:
            visible = await self.orders.sees(self.caller, order_id)
        except UpstreamFailure:
            # orders unreachable: withhold (the alert is not lost for staff; this watcher is scoped)
            return False
        if len(self.seen) >= self.size:
            self.seen.clear()
        self.seen[order_id] = (visible, now + self.ttl)
        return visible


class Watchers:
    def __init__(
        self,
        feed: AlertFeed,
        orders: Orders,
        streams_per_principal: int,
        monotonic: Callable[[], float],
    ) -> None:
        self.feed = feed
        self.orders = orders
        self.cap = streams_per_principal
        self.monotonic = monotonic
        # open WatchAlerts streams per principal on this replica
        self.watching: dict[str, int] = {}

    async def watch(self, caller: Caller, min_severity: int) -> AsyncIterator[Any]:
        """The alerts from now on (after the recent ones), as long as the caller watches."""
        who = f"{caller.principal.kind}:{caller.principal.subject}"
        if self.watching.get(who, 0) >= self.cap:
            raise ResourceExhausted(
                f"at most {self.cap} WatchAlerts streams per caller; close one before opening another"
            )
        self.watching[who] = self.watching.get(who, 0) + 1
        seen = SeenOrders(self.orders, caller, self.monotonic)
        try:
            async with self.feed.subscribe(min_severity=min_severity) as alerts:
                async for alert in alerts:
                    if await seen.sees(alert.order_id):
                        yield alert
        finally:
            left = self.watching.pop(who) - 1
            if left:
                self.watching[who] = left
