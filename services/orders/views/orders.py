"""Lists and exports of orders, by filter and within the caller's row-level scope.

Each call is a handful of statements whatever the page size: lines come with their orders.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.dialects.postgresql import array

from services.kit.errors import InvalidArgument
from services.kit.sealing import KeyRing
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Channel
from services.orders.domain.orchestration import Stored
from services.orders.domain.scope import EVERYTHING, Scope
from services.orders.store import OrdersUnitOfWork, customer_assignments_table, orders_table
from services.orders.store.orders import with_lines
from services.orders.store.rows import phone_hash, stored_from_row
from services.orders.views import paging


@dataclass(frozen=True)
class OrderFilter:
    statuses: tuple[OrderStatus, ...] = ()
    channels: tuple[Channel, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    warehouse_id: str = ""
    buyer_id: str = ""
    buyer_phone: str = ""
    # row-level scope of the caller (set by the gateway, never by the caller's own filter)
    scope: Scope = EVERYTHING


async def list_orders(
    uow: OrdersUnitOfWork, keys: KeyRing, filter: OrderFilter, page_size: int, page_token: str
) -> tuple[list[Stored], str]:
    """One page of the orders matching `filter`, newest first, and the token of the next page."""
    size = paging.page_size(page_size)
    after = paging.decode_token(page_token, paging.ORDERS)
    _check_filter(filter)
    async with uow:
        rows = await _orders(uow, keys, filter, after, size + 1)
    page = rows[:size]
    more = len(rows) > size
    return page, paging.encode_token(
        paging.ORDERS, page[-1].order.created_at, page[-1].order.order_id
    ) if more else ""


async def export_orders(
    uow_factory: Callable[[], OrdersUnitOfWork],
    keys: KeyRing,
    filter: OrderFilter,
    chunk: int = 500,
    pause_seconds: float = 0.0,
) -> AsyncIterator[list[Stored]]:
    """Every order matching `filter`, newest first, in chunks. Each chunk is its own short
    transaction, so a slow consumer of a large export never holds one open."""
    if not 1 <= chunk <= paging.MAX_PAGE_SIZE:
        raise InvalidArgument("chunk", f"must be between 1 and {paging.MAX_PAGE_SIZE}")
    _check_filter(filter)
    after: tuple[datetime, str] | None = None
    while True:
        uow = uow_factory()
        async with uow:
            rows = await _orders(uow, keys, filter, after, chunk)
        if not rows:
            return
        yield rows
        if len(rows) < chunk:
            return
        after = (rows[-1].order.created_at, rows[-1].order.order_id)
        if pause_seconds:
            await asyncio.sleep(pause_seconds)


async def _orders(
    uow: OrdersUnitOfWork, keys: KeyRing, filter: OrderFilter, after: tuple[datetime, str] | None, limit: int
) -> list[Stored]:
    o = orders_table.c
    query = with_lines(select(orders_table)).where(*_order_conditions(filter, keys))
    if after is not None:
        created_at, order_id = after
        query = query.where(
            or_(o.created_at < created_at, and_(o.created_at == created_at, o.order_id < order_id))
        )
    query = query.order_by(o.created_at.desc(), o.order_id.desc()).limit(limit)
    return [stored_from_row(row._mapping, keys) for row in await uow.conn.execute(query)]


def _check_filter(filter: OrderFilter) -> None:
    for name in ("created_from", "created_to"):
        value = getattr(filter, name)
        if value is not None and value.tzinfo is None:
            raise InvalidArgument(f"filter.{name}", "needs a time zone")
    if filter.created_from and filter.created_to and filter.created_to <= filter.created_from:
        raise InvalidArgument("filter.created_to", "must be after created_from")
    if len(filter.warehouse_id) > 64:
        raise InvalidArgument("filter.warehouse_id", "must be at most 64 characters")
    if len(filter.buyer_id) > 128:
        raise InvalidArgument("filter.buyer_id", "must be at most 128 characters")
    if len(filter.buyer_phone) > 64:
        raise InvalidArgument("filter.buyer_phone", "must be at most 64 characters")


def _order_conditions(filter: OrderFilter, keys: KeyRing) -> list[ColumnElement[bool]]:
    o = orders_table.c
    conditions: list[ColumnElement[bool]] = []
    if filter.statuses:
        conditions.append(o.status.in_([status.value for status in filter.statuses]))
    if filter.channels:
        conditions.append(o.channel.in_([channel.value for channel in filter.channels]))
    if filter.created_from is not None:
        conditions.append(o.created_at >= filter.created_from)
    if filter.created_to is not None:
        conditions.append(o.created_at < filter.created_to)
    if filter.warehouse_id:
        # `@>` on the array, so the GIN index answers it
        conditions.append(o.warehouses.contains(array([filter.warehouse_id])))
    if filter.buyer_id:
        conditions.append(o.buyer_id == filter.buyer_id)
    if filter.buyer_phone.strip():
        conditions.append(o.phone_hash == phone_hash(keys, filter.buyer_phone))
    conditions += scope_conditions(filter.scope)
    return conditions


def scope_conditions(scope: Scope) -> list[Any]:
    """The caller's row-level scope as conditions on the orders table."""
    conditions: list[Any] = []
    if scope.customer_id:
        conditions.append(orders_table.c.buyer_id == scope.customer_id)
    if scope.agent_id:
        assignments = customer_assignments_table.c
        conditions.append(
            exists(
                select(assignments.buyer_id).where(
                    assignments.agent_id == scope.agent_id, assignments.buyer_id == orders_table.c.buyer_id
                )
            )
        )
    if scope.channel:
        conditions.append(orders_table.c.channel == scope.channel)
    return conditions
