"""Orders' channel timers, each on the job's leader only: the poll (every CHANNEL_POLL_INTERVAL_S) and
the health check (every CHANNEL_HEALTH_INTERVAL_S: tokens refreshed when due, alerts raised or cleared).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.kit.runtime import Runtime
from services.orders import handlers, metrics
from services.orders.channel_apis import ChannelApis
from services.orders.channel_settings import ChannelSettings
from services.orders.domain.channel_health import Connection
from services.orders.handlers import channel_health as health
from services.orders.store import OrdersUnitOfWork

log = logging.getLogger(__name__)


def watch_of(settings: ChannelSettings) -> health.Watch:
    return health.Watch(
        window=settings.window,
        overlap=settings.overlap,
        first_lookback=settings.first_lookback,
        hours=settings.hours,
        thresholds=settings.thresholds,
    )


def connections_of(settings: ChannelSettings, new_uow: Callable[[], OrdersUnitOfWork]) -> list[Connection]:
    now = new_uow().clock.now()
    return [
        Connection(
            channel=given.channel.value,
            api_url=given.api_url,
            app_key=given.app_key,
            app_secret=given.app_secret,
            refresh_token=given.refresh_token,
            connected_at=now,
            shop_id=given.shop_id,
        )
        for given in settings.connections
    ]


async def poll_channels(
    new_uow: Callable[[], OrdersUnitOfWork],
    policy: handlers.Policy,
    api: health.ChannelApi,
    watch: health.Watch,
    poke: Callable[[handlers.Changes], None],
) -> list[health.Polled]:
    polled = await health.poll(new_uow, policy, api, watch, poke)
    metrics.count_polled(polled)
    for result in polled:
        if result.error:
            log.warning("channel poll %s failed: %s", result.channel, result.error)
        elif result.created:
            # each of these was never pushed (or its push has not arrived yet)
            log.warning("channel poll %s found %d orders no push brought", result.channel, result.created)
    return polled


async def watch_channels(
    new_uow: Callable[[], OrdersUnitOfWork], api: health.ChannelApi, watch: health.Watch
) -> list[tuple[str, str]]:
    await health.refresh_due_tokens(new_uow, api, watch)
    raised = await health.check_health(new_uow, watch)
    for channel, kind in raised:
        log.warning("channel alert %s raised for %s", kind, channel)
    return raised


def start(
    runtime: Runtime,
    new_uow: Callable[[], OrdersUnitOfWork],
    policy: handlers.Policy,
    settings: ChannelSettings,
    poke: Callable[[handlers.Changes], None],
) -> ChannelApis | None:
    """The channel jobs, when CHANNEL_CONNECTIONS names any; the API client to close at shutdown."""
    if not settings.connections:
        return None
    api, watch = ChannelApis(settings.api_timeout_s), watch_of(settings)
    connections = connections_of(settings, new_uow)

    async def poll_round() -> object:
        await health.connect(new_uow, connections)
        return await poll_channels(new_uow, policy, api, watch, poke)

    runtime.every("channel poll", settings.poll_interval_s, poll_round, one_replica=True)
    runtime.every(
        "channel health",
        settings.health_interval_s,
        lambda: watch_channels(new_uow, api, watch),
        one_replica=True,
    )
    return api
