"""What other services' events do to orders. Each runs in the consumer's inbox transaction (a joined
unit of work), so an event is handled once."""

from __future__ import annotations

from services.kit.ids import is_id
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, HoldCause
from services.orders.domain.orchestration import StockState, Stored
from services.orders.domain.timeline import Actor, Entry
from services.orders.handlers.common import Changes, Policy, save_order
from services.orders.handlers.ports import UnitOfWork

# Held for stock (see the store's held_for_stock): the reservation at the planned warehouses was
# refused, or routing parked the order as out of stock, or it was paid with no stock left (frozen).
# Stock arriving for one of its SKUs (or the sweep) plans it again.
STOCK_ARRIVED_BATCH = 1000
# the holds of an order routing could not plan, which its planning later lifts
ROUTABLE_AGAIN = frozenset({HoldCause.UNROUTABLE, HoldCause.OUT_OF_STOCK})


async def reservation_expired(uow: UnitOfWork, policy: Policy, order_id: str) -> Changes:
    """Inventory let an unpaid reservation lapse: the order is cancelled and operations hear of it.
    A paid order whose commit had not happened yet reserves again instead."""
    changes = Changes()
    stored = await _locked(uow, order_id)
    if stored is None or stored.stock_state != StockState.RESERVED.value:
        return changes
    order = stored.order
    stored.stock_state = StockState.RELEASED.value
    if order.status is OrderStatus.PENDING_PAYMENT and not order.is_paid:
        order.cancel("unpaid: the stock reservation expired", uow.clock.now())
        order.events.append(
            AlertRaised("reservation_expired", "low", "unpaid order cancelled: reservation expired")
        )
    actor = Actor.service("inventory")
    extra = [Entry("stock_released", actor, "inventory", "the reservation expired")]
    await save_order(uow, stored, actor, "inventory", changes, extra)
    return changes


async def route_found(uow: UnitOfWork, policy: Policy, order_id: str) -> Changes:
    """Routing planned an order it had parked (stock arrived): an order held only because it could
    not be routed resumes, and the process manager reserves it."""
    changes = Changes()
    stored = await _locked(uow, order_id)
    if stored is None:
        return changes
    order = stored.order
    if order.status is not OrderStatus.ON_HOLD or order.hold_cause not in ROUTABLE_AGAIN:
        return changes
    order.release("routing found a warehouse", uow.clock.now())
    await save_order(uow, stored, Actor.service("routing"), "routing", changes)
    return changes


async def stock_arrived(uow: UnitOfWork, policy: Policy, sku: str) -> Changes:
    """Stock of `sku` arrived (receipt, count, restock, back in stock): every order held for stock
    that wants it is released and planned again, whoever won the race that left it short. Orders
    owns this retry itself; routing's parked list covers only what routing parked."""
    changes = Changes()
    if not sku:
        return changes
    now = uow.clock.now()
    for stored in await uow.orders.held_for_stock(sku, STOCK_ARRIVED_BATCH):
        stored.order.release(f"stock of {sku} arrived: planning again", now)
        await save_order(uow, stored, Actor.service("inventory"), "inventory", changes)
    return changes


async def _locked(uow: UnitOfWork, order_id: str) -> Stored | None:
    """The order the event names, locked; None for an id that names no order."""
    return await uow.orders.get(order_id, lock=True) if is_id(order_id) else None
