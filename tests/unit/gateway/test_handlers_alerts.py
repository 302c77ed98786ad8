"""WatchAlerts on a fake feed and a fake orders: streams capped per principal, a scoped watcher shown
only alerts about orders it may see, asked once per order within the TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from services.gateway.domain.errors import UpstreamFailure
from services.gateway.handlers.alerts import Watchers
from services.kit.errors import ResourceExhausted
from tests.unit.gateway.fakes import FakeOrders, caller

AGENT = caller("agent-7", "cs_agent")
OPS = caller("ops-1", "ops")


@dataclass(frozen=True)
class Alert:
    order_id: str
    severity: int = 3


class FakeFeed:
    def __init__(self, *alerts: Alert) -> None:
        self.alerts = alerts
        self.asked: list[int] = []

    @asynccontextmanager
    async def subscribe(
        self, min_severity: int = 0, replay: bool = True
    ) -> AsyncIterator[AsyncIterator[Alert]]:
        self.asked.append(min_severity)

        async def alerts() -> AsyncIterator[Alert]:
            for alert in self.alerts:
                if alert.severity >= min_severity:
                    yield alert

        yield alerts()


class CountingOrders(FakeOrders):
    asked: int = 0

    async def sees(self, caller: object, order_id: str) -> bool:  # type: ignore[override]
        self.asked += 1
        return await super().sees(caller, order_id)  # type: ignore[arg-type]


async def watch(watchers: Watchers, who: object, min_severity: int = 0) -> list[str]:
    return [alert.order_id async for alert in watchers.watch(who, min_severity)]  # type: ignore[arg-type]


async def test_staff_see_every_alert_and_orders_is_not_asked() -> None:
    orders = CountingOrders()
    feed = FakeFeed(Alert("o-1"), Alert(""), Alert("o-2", severity=1))

    seen = await watch(Watchers(feed, orders, 5, lambda: 0.0), OPS, min_severity=2)

    assert seen == ["o-1", ""] and feed.asked == [2] and orders.asked == 0


async def test_a_scoped_watcher_sees_only_alerts_about_orders_it_may_see_asking_once_per_order() -> None:
    orders = CountingOrders(visible={"o-1"})
    feed = FakeFeed(Alert("o-1"), Alert("o-2"), Alert("o-1"), Alert(""))

    seen = await watch(Watchers(feed, orders, 5, lambda: 0.0), AGENT)

    assert seen == ["o-1", "o-1"] and orders.asked == 2


async def test_alerts_are_withheld_from_a_scoped_watcher_while_orders_cannot_answer() -> None:
    orders = CountingOrders(visible={"o-1"}, failure=UpstreamFailure("UNAVAILABLE", "down"))

    assert await watch(Watchers(FakeFeed(Alert("o-1")), orders, 5, lambda: 0.0), AGENT) == []


async def test_a_principal_past_its_stream_cap_is_refused_and_a_closed_stream_frees_its_place() -> None:
    watchers = Watchers(FakeFeed(Alert("o-1")), FakeOrders(), 1, lambda: 0.0)
    first = watchers.watch(OPS, 0)
    await anext(first)

    with pytest.raises(ResourceExhausted, match="at most 1 WatchAlerts streams"):
        await watch(watchers, OPS)
    await first.aclose()

    assert await watch(watchers, OPS) == ["o-1"]
