"""The process manager's rule: given an order and where its stock stands, what happens next.

Every step is idempotent at the peer (routing plans and inventory reservations are keyed by the
order id), so a step interrupted by a crash is simply run again.
"""

from __future__ import annotations

from enum import StrEnum

from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Order


class StockState(StrEnum):
    NONE = "NONE"  # nothing held at inventory
    RESERVED = "RESERVED"  # held for the order, not yet deducted
    COMMITTED = "COMMITTED"  # deducted at payment
    RELEASED = "RELEASED"  # given back (expired, cancelled, restocked)


class Step(StrEnum):
    RESERVE = "reserve"  # plan with routing, reserve at the planned warehouses (and commit if paid)
    COMMIT = "commit"  # payment arrived for reserved stock
    RELEASE = "release"  # a cancelled order gives its stock back


def next_step(order: Order, stock: StockState) -> Step | None:
    status = order.status
    if status is OrderStatus.CANCELLED:
        return Step.RELEASE if stock in (StockState.RESERVED, StockState.COMMITTED) else None
    if status is OrderStatus.PENDING_PAYMENT:
        return Step.RESERVE if stock is StockState.NONE else None
    if status is OrderStatus.PAID:
        return Step.COMMIT if stock is StockState.RESERVED else Step.RESERVE
    return None
