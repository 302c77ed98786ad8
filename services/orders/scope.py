"""Row-level scope: which orders a caller may see, as the gateway says in its signed assertion.

A customer sees only their own orders, a customer-service agent only the orders of the customers
assigned to them, a channel's key only its own channel's orders. Anything outside the scope is
answered NOT_FOUND, exactly like an unknown id, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.errors import NotFound, PermissionDenied
from services.orders.domain.model import Channel, Order
from services.orders.store import customer_assignments_table, orders_table


@dataclass(frozen=True)
class Scope:
    customer_id: str = ""
    agent_id: str = ""
    channel: str = ""

    @property
    def unrestricted(self) -> bool:
        return not (self.customer_id or self.agent_id or self.channel)


# the scope of staff and services: every row
EVERYTHING = Scope()


def scope_conditions(scope: Scope) -> list[Any]:
    conditions: list[Any] = []
    if scope.customer_id:
        conditions.append(orders_table.c.buyer_id == scope.customer_id)
    if scope.agent_id:
        conditions.append(
            exists(
                select(customer_assignments_table.c.buyer_id).where(
                    customer_assignments_table.c.agent_id == scope.agent_id,
                    customer_assignments_table.c.buyer_id == orders_table.c.buyer_id,
                )
            )
        )
    if scope.channel:
        conditions.append(orders_table.c.channel == scope.channel)
    return conditions


async def check_visible(conn: AsyncConnection, scope: Scope, order: Order) -> None:
    """NOT_FOUND (the same answer as an unknown id) for an order outside the caller's scope."""
    if scope.unrestricted:
        return
    hidden = NotFound(f"order {order.order_id} not found")
    if scope.customer_id and order.buyer_id != scope.customer_id:
        raise hidden
    if scope.channel and order.channel.value != scope.channel:
        raise hidden
    if scope.agent_id:
        assigned = await conn.scalar(
            select(customer_assignments_table.c.buyer_id).where(
                customer_assignments_table.c.agent_id == scope.agent_id,
                customer_assignments_table.c.buyer_id == order.buyer_id,
            )
        )
        if assigned is None:
            raise hidden


def check_channel(scope: Scope, channel: Channel | None, field: str = "channel") -> None:
    """A channel's key ingests for its own channel only."""
    if scope.channel and (channel is None or channel.value != scope.channel):
        raise PermissionDenied(f"{field}: this key may only send {scope.channel} orders")
