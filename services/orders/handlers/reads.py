"""Reading one order, as its caller may see it."""

from __future__ import annotations

from services.kit.errors import InvalidArgument, NotFound
from services.orders.domain.model import Channel
from services.orders.domain.orchestration import Stored
from services.orders.domain.scope import EVERYTHING, Scope
from services.orders.handlers.common import check_order_id, check_visible
from services.orders.handlers.ports import UnitOfWork


async def get_order(uow: UnitOfWork, order_id: str, scope: Scope = EVERYTHING) -> Stored:
    check_order_id(order_id)
    async with uow:
        stored = await uow.orders.get(order_id)
        if stored is None:
            raise NotFound(f"order {order_id} not found")
        await check_visible(uow, scope, stored.order)
    return stored


async def get_order_by_channel(
    uow: UnitOfWork, channel: Channel | None, channel_order_id: str, scope: Scope = EVERYTHING
) -> Stored:
    if channel is None:
        raise InvalidArgument("channel", "is required")
    if not channel_order_id or len(channel_order_id) > 64:
        raise InvalidArgument("channel_order_id", "is required (at most 64 characters)")
    async with uow:
        stored = await uow.orders.get_by_channel(channel, channel_order_id)
        if stored is None:
            raise NotFound(f"{channel.value} order {channel_order_id} not found")
        await check_visible(uow, scope, stored.order)
    return stored
