"""Orders polling the channel sandbox (a real process) and watching each channel's health, on real
Postgres: a lost push caught by the poll and never duplicated, tokens refreshed before they lapse, an
expired token alerted, silence alerted only within business hours, a growing payload, an error spike."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.alerts.v1 import events_pb2 as alert_events
from oms.orders.v1 import orders_pb2
from omsctl.stack import CHANNEL_APPS
from services.orders import bootstrap, channel_jobs, handlers
from services.orders.channel_apis import ChannelApis
from services.orders.channel_settings import ChannelSettings, parse_connections
from services.orders.domain.channel_health import BusinessHours, Connection, TokenState
from services.orders.domain.model import Channel
from services.orders.domain.timeline import Actor, ActorType
from services.orders.grpc_api import OrdersServicer
from services.orders.handlers import channel_health as health
from services.orders.store import OrdersUnitOfWork
from tests.channels_sandbox import ChannelSandbox, Hooks, hooks_running, running
from tests.integration.orders.conftest import make_policy

pytestmark = pytest.mark.timeout(60)
ALWAYS = BusinessHours(time(0), time(23, 59, 59, 999_999), UTC)


class ShiftedClock:
    """The wall clock moved by `offset` (the sandbox lives in real time; orders may be told later)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclasses.dataclass
class Orders:
    engine: AsyncEngine
    clock: ShiftedClock
    policy: handlers.Policy
    api: ChannelApis
    sandbox: ChannelSandbox
    watch: health.Watch

    def uow(self) -> OrdersUnitOfWork:
        return bootstrap.unit_of_work(self.engine, self.policy.keys, self.clock)

    async def connect(self, *channels: str, **given: str) -> None:
        entries = json.dumps([{**self.sandbox.connection(channel), **given} for channel in channels])
        settings = ChannelSettings(connections=parse_connections(entries))
        await health.connect(self.uow, channel_jobs.connections_of(settings, self.uow))

    async def stored(self, channel: str) -> Connection:
        uow = self.uow()
        async with uow:
            found = await uow.channels.get(channel)
        assert found is not None
        return found

    async def poll(self) -> dict[str, health.Polled]:
        polled = await health.poll(self.uow, self.policy, self.api, self.watch, lambda _: None)
        return {result.channel: result for result in polled}

    async def refresh(self) -> list[str]:
        return await health.refresh_due_tokens(self.uow, self.api, self.watch)

    async def check(self, hours: BusinessHours = ALWAYS) -> list[tuple[str, str]]:
        return await health.check_health(self.uow, dataclasses.replace(self.watch, hours=hours))

    async def health(self) -> dict[str, orders_pb2.ChannelHealth]:
        servicer = OrdersServicer(self.uow, self.policy, channel_health_window=self.watch.window)
        reply = await servicer.GetChannelHealth(orders_pb2.GetChannelHealthRequest(), None)
        return {orders_pb2.Channel.Name(entry.channel): entry for entry in reply.channels}

    async def rows(self, sql: str, **params: object) -> list[tuple[object, ...]]:
        async with self.engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql), params)]

    async def alerts(self) -> list[alert_events.AlertRaised]:
        rows = await self.rows("SELECT payload FROM outbox WHERE subject LIKE '%alerts.raised' ORDER BY id")
        return [alert_events.AlertRaised.FromString(bytes(payload)) for (payload,) in rows]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def hooks() -> AsyncIterator[Hooks]:
    async with hooks_running() as running_hooks:
        yield running_hooks


@pytest.fixture(scope="module")
async def running_sandbox(hooks: Hooks) -> AsyncIterator[ChannelSandbox]:
    async with running(hooks.url) as sandbox:
        yield sandbox


@pytest.fixture
async def orders(
    running_sandbox: ChannelSandbox, hooks: Hooks, orders_engine: AsyncEngine
) -> AsyncIterator[Orders]:
    await running_sandbox.reset()
    hooks.received.clear()
    api = ChannelApis(5.0)
    watch = health.Watch(window=timedelta(hours=1), overlap=timedelta(seconds=60), hours=ALWAYS)
    found = Orders(orders_engine, ShiftedClock(), make_policy(), api, running_sandbox, watch)

    async def ingest(sender: str, body: bytes) -> str:
        item = handlers.ChannelPayload(Channel(sender.upper()), json.loads(body))
        actor = Actor(ActorType.CHANNEL, f"channel/{sender}")
        results, _ = await handlers.ingest(found.uow(), found.policy, [item], actor)
        assert results[0].order is not None, results[0].error
        return results[0].order.order_id

    hooks.ingest = ingest
    yield found
    hooks.ingest = None
    await api.close()


async def test_a_lost_push_is_caught_by_the_poll_and_never_duplicated(orders: Orders) -> None:
    await orders.connect("taobao", "douyin")
    taobao = await orders.sandbox.make("taobao", 12, push=5)
    douyin = await orders.sandbox.make("douyin", 7, push=3)
    pushed = await orders.rows("SELECT channel, count(*) FROM orders GROUP BY channel ORDER BY channel")
    assert pushed == [("DOUYIN", 3), ("TAOBAO", 5)]

    first = await orders.poll()
    again = await orders.poll()

    assert (first["TAOBAO"].created, first["DOUYIN"].created) == (7, 4)
    assert (first["TAOBAO"].error, first["DOUYIN"].error) == ("", "")
    assert (again["TAOBAO"].created, again["DOUYIN"].created, again["TAOBAO"].seen) == (0, 0, 12)
    stored = await orders.rows("SELECT channel, channel_order_id, count(*) FROM orders GROUP BY 1, 2")
    assert all(count == 1 for _, _, count in stored)
    assert {(c, ref) for c, ref, _ in stored} == {("TAOBAO", o["order_id"]) for o in taobao} | {
        ("DOUYIN", o["order_id"]) for o in douyin
    }
    cursors = await orders.rows(
        "SELECT channel, poll_cursor IS NOT NULL, last_poll_error FROM channel_connections"
    )
    assert sorted(cursors) == [("DOUYIN", True, ""), ("TAOBAO", True, "")]


async def test_a_short_lived_token_is_refreshed_before_it_lapses(orders: Orders) -> None:
    # 4 s: the second token must outlive the sleeps and the poll with room to spare on a busy machine
    # (with 2 s it lapsed before the poll once in a clean-clone run)
    await orders.sandbox.control("taobao", token_lifetime_s=4)
    await orders.connect("taobao")
    assert await orders.refresh() == ["TAOBAO"]
    uow = orders.uow()
    async with uow:
        first = await uow.channels.get("TAOBAO")
    assert first is not None and first.token(orders.clock.now()) is TokenState.VALID
    assert await orders.refresh() == []

    await asyncio.sleep(2.1)  # half its life is left: the refresh is due
    assert await orders.refresh() == ["TAOBAO"]
    await asyncio.sleep(2.0)  # the first token has lapsed by now
    await orders.sandbox.make("taobao", 2, push=0)
    polled = await orders.poll()

    assert (polled["TAOBAO"].error, polled["TAOBAO"].created) == ("", 2)
    with pytest.raises(health.ChannelApiError) as refused:
        await orders.api.orders(first, orders.clock.now() - timedelta(minutes=1), orders.clock.now(), 0)
    assert (refused.value.code, refused.value.token) == ("27", True)
    assert (await orders.health())["CHANNEL_TAOBAO"].token_state == orders_pb2.CHANNEL_TOKEN_STATE_VALID


async def test_an_expired_token_is_alerted_once_not_left_silent(orders: Orders) -> None:
    await orders.connect("taobao")
    await orders.refresh()
    await orders.sandbox.revoke("taobao")
    await orders.sandbox.control("taobao", refuse_refresh=True)

    polled = await orders.poll()
    assert await orders.refresh() == []  # as the health job does: refresh what is due, then check
    raised = await orders.check()
    await orders.check()

    assert polled["TAOBAO"].error.startswith("27")
    assert raised == [("TAOBAO", "channel_token_expired")]
    (alert,) = await orders.alerts()
    assert (alert.kind, alert.channel, alert.dedupe_key) == (
        "channel_token_expired",
        "TAOBAO",
        "channel_token_expired:TAOBAO",
    )
    shown = (await orders.health())["CHANNEL_TAOBAO"]
    assert shown.token_state == orders_pb2.CHANNEL_TOKEN_STATE_EXPIRED
    assert list(shown.open_alerts) == ["channel_token_expired"]
    assert "invalid_grant" in shown.token_refresh_error


async def test_a_refresh_that_does_not_reach_the_platform_is_tried_again_not_alerted(orders: Orders) -> None:
    await orders.connect("douyin")
    await orders.sandbox.control("douyin", fail_next=1)

    assert await orders.refresh() == []
    assert await orders.check() == []
    assert (await orders.stored("DOUYIN")).token(orders.clock.now()) is TokenState.MISSING
    assert await orders.refresh() == ["DOUYIN"]


async def test_an_app_authorised_again_is_refreshed_with_the_new_refresh_token(orders: Orders) -> None:
    await orders.connect("taobao")
    await orders.sandbox.control("taobao", refuse_refresh=True)
    await orders.refresh()
    assert await orders.check() == [("TAOBAO", "channel_token_expired")]
    await orders.sandbox.control("taobao", refuse_refresh=False)
    authorised = await orders.api.refresh(
        dataclasses.replace(
            await orders.stored("TAOBAO"), refresh_token=CHANNEL_APPS["taobao"]["refresh_token"]
        )
    )

    await orders.connect("taobao", refresh_token=authorised.refresh_token)
    assert await orders.refresh() == ["TAOBAO"]

    assert await orders.check() == []
    shown = (await orders.health())["CHANNEL_TAOBAO"]
    assert (shown.token_state, list(shown.open_alerts)) == (orders_pb2.CHANNEL_TOKEN_STATE_VALID, [])


async def test_a_silent_channel_is_alerted_within_business_hours_and_not_outside_them(orders: Orders) -> None:
    await orders.connect("taobao")
    await orders.sandbox.make("taobao", 1)  # pushed: the channel's last order is now
    orders.clock.offset = timedelta(minutes=11)
    later = orders.clock.now()
    closed = BusinessHours((later + timedelta(hours=1)).time(), (later + timedelta(hours=3)).time(), UTC)
    open_now = BusinessHours((later - timedelta(hours=1)).time(), (later + timedelta(hours=1)).time(), UTC)

    assert await orders.check(closed) == []
    assert await orders.check(open_now) == [("TAOBAO", "channel_silent")]
    (alert,) = await orders.alerts()
    assert (alert.dedupe_key, alert.severity) == ("channel_silent:TAOBAO", 3)

    orders.clock.offset = timedelta()
    assert await orders.check(open_now) == []
    assert list((await orders.health())["CHANNEL_TAOBAO"].open_alerts) == []


async def test_a_growing_payload_is_alerted_before_it_breaks(orders: Orders) -> None:
    await orders.connect("douyin")
    await orders.sandbox.control("douyin", pad_bytes=800_000)
    await orders.sandbox.make("douyin", 2, push=0)

    await orders.poll()
    raised = await orders.check()

    assert raised == [("DOUYIN", "channel_payload_growing")]
    shown = (await orders.health())["CHANNEL_DOUYIN"]
    assert shown.payload_p99_bytes > 0.75 * (1 << 20)
    assert shown.last_order_at.seconds > 0


async def test_an_error_spike_shows_in_health(orders: Orders) -> None:
    await orders.connect("taobao")
    await orders.refresh()
    await orders.sandbox.control("taobao", failure_rate=1.0, latency_ms=40)
    for _ in range(5):
        await orders.poll()

    raised = await orders.check()

    shown = (await orders.health())["CHANNEL_TAOBAO"]
    assert shown.api_calls == 6
    assert [(e.code, e.count) for e in shown.api_errors] == [("15", 5)]
    assert shown.api_error_rate == pytest.approx(5 / 6)
    assert shown.api_latency_p99_ms >= 40
    assert shown.last_poll_error.startswith("15")
    assert raised == [("TAOBAO", "channel_error_spike")]
