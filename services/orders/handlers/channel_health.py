"""Connected channels: tokens refreshed before they lapse, orders polled by modified time (a push that
never came is caught; the ingest path makes a polled order and its push one order), and health checked
against its rules, raising alerts once per channel and kind while they stay open.

Channel API calls are made outside any transaction; what they taught is written afterwards to the
connection's row, read again under its lock (the poll and the health check run as separate jobs).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.orders.domain.channel_health import (
    SEVERITIES,
    AlertKind,
    ApiStats,
    BusinessHours,
    Call,
    Connection,
    Reading,
    Thresholds,
    TokenState,
    api_stats,
    open_alerts,
    poll_window,
    recent,
    refresh_due,
)
from services.orders.domain.model import Channel, ServiceAlert
from services.orders.domain.timeline import Actor, ActorType
from services.orders.handlers.common import Changes, Policy
from services.orders.handlers.ingest import ChannelPayload, Outcome, ingest
from services.orders.handlers.ports import UnitOfWork

# Taobao answers windows of at most one day
MAX_WINDOW = timedelta(days=1)
USABLE = frozenset({TokenState.VALID, TokenState.REFRESH_DUE, TokenState.REFRESH_FAILED})


class ChannelApiError(Exception):
    """A channel API call that failed: the platform's code (or timeout, network, bad_answer); `token`
    when the platform refused the token itself."""

    def __init__(self, code: str, message: str, token: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.token = token


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Page:
    orders: list[dict[str, Any]]
    more: bool


class ChannelApi(Protocol):
    async def refresh(self, connection: Connection) -> Tokens: ...

    async def orders(self, connection: Connection, start: datetime, end: datetime, page: int) -> Page: ...


class Channels(Protocol):
    async def connect(self, given: Sequence[Connection], now: datetime) -> None: ...

    async def all(self, lock: bool = False) -> list[Connection]: ...

    async def get(self, channel: str, lock: bool = False) -> Connection | None: ...

    async def save(self, connection: Connection, now: datetime) -> None: ...

    async def activity(
        self, channel: str, since: datetime
    ) -> tuple[datetime | None, float | None, float | None]: ...


class ChannelsUnitOfWork(UnitOfWork, Protocol):
    @property
    def channels(self) -> Channels: ...

    async def commit(self) -> None: ...


NewUow = Callable[[], ChannelsUnitOfWork]


@dataclass(frozen=True)
class Watch:
    """How the channels are watched: the rolling window, the poll's overlap and first look back, the
    business hours and the thresholds."""

    window: timedelta = timedelta(hours=1)
    overlap: timedelta = timedelta(seconds=60)
    first_lookback: timedelta = timedelta(hours=1)
    hours: BusinessHours | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass
class Polled:
    channel: str
    seen: int = 0
    created: int = 0
    error: str = ""


@dataclass(frozen=True)
class ChannelHealth:
    channel: str
    last_order_at: datetime | None
    token_expires_at: datetime | None
    token_state: TokenState
    api: ApiStats
    payload_p50_bytes: float | None
    payload_p99_bytes: float | None
    open_alerts: frozenset[str]
    last_poll_at: datetime | None
    poll_cursor: datetime | None
    last_poll_error: str
    refresh_error: str


def _now(new_uow: NewUow) -> datetime:
    return new_uow().clock.now()


async def connect(new_uow: NewUow, given: Sequence[Connection]) -> None:
    uow = new_uow()
    async with uow:
        await uow.channels.connect(given, uow.clock.now())
        await uow.commit()


async def _timed(work: Awaitable[Any], monotonic: Callable[[], float]) -> tuple[Any, str, int]:
    """(result or the error, the error's code or "", milliseconds)."""
    started = monotonic()
    try:
        result: Any = await work
        code = ""
    except ChannelApiError as error:
        result, code = error, error.code
    return result, code, round((monotonic() - started) * 1000)


async def refresh(
    new_uow: NewUow, api: ChannelApi, connection: Connection, watch: Watch, monotonic: Callable[[], float]
) -> Connection:
    """Refresh the connection's token now; a refusal of the grant is kept (the token state says
    REFRESH_FAILED and the health check raises its alert)."""
    result, code, latency = await _timed(api.refresh(connection), monotonic)
    uow = new_uow()
    async with uow:
        now = uow.clock.now()
        current = await uow.channels.get(connection.channel, lock=True)
        assert current is not None, f"connection {connection.channel} vanished"
        current.called(Call(now, latency, code), now, watch.window)
        if isinstance(result, Tokens):
            current.refreshed(
                result.access_token, result.refresh_token, timedelta(seconds=result.expires_in), now
            )
        elif result.token:
            current.refresh_refused(str(result))
        else:
            # the platform was not reached or failed itself: the next check tries again; only a refusal
            # of the grant is a failed refresh (an unreachable API shows as errors, then as expiry)
            current.refresh_error = str(result)[:500]
        await uow.channels.save(current, now)
        await uow.commit()
    return current


async def refresh_due_tokens(
    new_uow: NewUow, api: ChannelApi, watch: Watch, monotonic: Callable[[], float] = time.monotonic
) -> list[str]:
    """Refresh every token whose refresh is due (or failed before, or missing); the channels refreshed."""
    uow = new_uow()
    async with uow:
        connections = await uow.channels.all()
    now = _now(new_uow)
    refreshed = []
    for connection in connections:
        if refresh_due(connection.token(now), connection.refresh_failed):
            after = await refresh(new_uow, api, connection, watch, monotonic)
            if not after.refresh_error:
                refreshed.append(connection.channel)
    return refreshed


async def poll(
    new_uow: NewUow,
    policy: Policy,
    api: ChannelApi,
    watch: Watch,
    poke: Callable[[Changes], None],
    monotonic: Callable[[], float] = time.monotonic,
) -> list[Polled]:
    uow = new_uow()
    async with uow:
        connections = await uow.channels.all()
    return [await poll_channel(new_uow, policy, api, c, watch, poke, monotonic) for c in connections]


async def poll_channel(
    new_uow: NewUow,
    policy: Policy,
    api: ChannelApi,
    connection: Connection,
    watch: Watch,
    poke: Callable[[Changes], None],
    monotonic: Callable[[], float] = time.monotonic,
) -> Polled:
    """Every order modified since the cursor (less the overlap), page by page, window by window, ingested
    as a push of it would be; the cursor moves only past windows read to their end."""
    polled = Polled(connection.channel)
    now = _now(new_uow)
    if refresh_due(connection.token(now), connection.refresh_failed):
        connection = await refresh(new_uow, api, connection, watch, monotonic)
    calls: list[Call] = []
    cursor, refused = connection.poll_cursor, False
    if not connection.access_token or connection.token(now) not in USABLE:
        polled.error = f"no usable token ({connection.token(now).value}): {connection.refresh_error}"
    actor = Actor(ActorType.CHANNEL, f"orders/poll/{connection.channel.lower()}")
    while not polled.error:
        start, end = poll_window(cursor, now, watch.overlap, watch.first_lookback, MAX_WINDOW)
        page = 0
        while True:
            result, code, latency = await _timed(api.orders(connection, start, end, page), monotonic)
            calls.append(Call(_now(new_uow), latency, code))
            if isinstance(result, ChannelApiError):
                polled.error, refused = str(result), result.token
                break
            if result.orders:
                items = [ChannelPayload(Channel(connection.channel), order) for order in result.orders]
                results, changes = await ingest(new_uow(), policy, items, actor)
                poke(changes)
                polled.seen += len(results)
                polled.created += sum(1 for r in results if r.outcome is Outcome.CREATED)
            if not result.more:
                break
            page += 1
        if polled.error:
            break
        cursor = end
        if end >= now:
            break
    uow = new_uow()
    async with uow:
        at = uow.clock.now()
        current = await uow.channels.get(connection.channel, lock=True)
        assert current is not None, f"connection {connection.channel} vanished"
        current.calls = recent([*current.calls, *calls], at, watch.window)
        current.poll_cursor, current.last_poll_at, current.last_poll_error = cursor, at, polled.error
        if refused:
            current.token_refused(at)
        await uow.channels.save(current, at)
        await uow.commit()
    return polled


def _message(kind: AlertKind, channel: str, reading: Reading, watch: Watch, error: str) -> str:
    if kind is AlertKind.SILENT:
        last = reading.last_order_at.isoformat() if reading.last_order_at else "never"
        minutes = watch.thresholds.silent_after.total_seconds() / 60
        return f"{channel} sent no order for {minutes:g} minutes within business hours (last order: {last})"
    if kind is AlertKind.TOKEN_EXPIRED:
        return f"{channel}'s access token is {reading.token.value.lower()}: orders cannot poll it ({error})"
    if kind is AlertKind.PAYLOAD_GROWING:
        limit = watch.thresholds.payload_limit_bytes
        return (
            f"{channel}'s payloads grow: p99 {reading.payload_p99_bytes:.0f} bytes is past "
            f"{watch.thresholds.payload_share:.0%} of the {limit} byte limit"
        )
    return (
        f"{channel}'s API fails: {reading.api.errors} of {reading.api.calls} calls in the window "
        f"({reading.api.error_codes})"
    )


async def check_health(new_uow: NewUow, watch: Watch) -> list[tuple[str, str]]:
    """Each channel's alerts: raised (as `oms.alerts.raised`, deduplicated per channel and kind) when they
    open, forgotten when they clear; the (channel, kind) raised now."""
    assert watch.hours is not None, "business hours are required to judge silence"
    raised = []
    uow = new_uow()
    async with uow:
        now = uow.clock.now()
        for connection in await uow.channels.all(lock=True):
            last, _, p99 = await uow.channels.activity(connection.channel, now - watch.window)
            connection.calls = recent(connection.calls, now, watch.window)
            reading = Reading(
                last, connection.connected_at, connection.token(now), api_stats(connection.calls), p99
            )
            found = open_alerts(reading, now, watch.hours, watch.thresholds)
            error = connection.refresh_error or connection.last_poll_error
            for kind in sorted(found - {AlertKind(kind) for kind in connection.open_alerts}):
                message = _message(kind, connection.channel, reading, watch, error)
                uow.emit(ServiceAlert(kind.value, SEVERITIES[kind], message, channel=connection.channel))
                raised.append((connection.channel, kind.value))
            connection.open_alerts = frozenset(kind.value for kind in found)
            await uow.channels.save(connection, now)
        await uow.commit()
    return raised


async def channel_health(uow: ChannelsUnitOfWork, window: timedelta) -> list[ChannelHealth]:
    """Per connected channel: what GetChannelHealth answers (its API calls and payloads in the window)."""
    async with uow:
        now = uow.clock.now()
        found = []
        for c in await uow.channels.all():
            last, p50, p99 = await uow.channels.activity(c.channel, now - window)
            found.append(
                ChannelHealth(
                    channel=c.channel,
                    last_order_at=last,
                    token_expires_at=c.token_expires_at if c.access_token else None,
                    token_state=c.token(now),
                    api=api_stats(recent(c.calls, now, window)),
                    payload_p50_bytes=p50,
                    payload_p99_bytes=p99,
                    open_alerts=c.open_alerts,
                    last_poll_at=c.last_poll_at,
                    poll_cursor=c.poll_cursor,
                    last_poll_error=c.last_poll_error,
                    refresh_error=c.refresh_error,
                )
            )
    return found
