"""Orders' event handlers (idempotent through the kit's inbox): which event moves which order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.aftersales.v1 import events_pb2 as aftersales_events  # noqa: F401 - the events decoded here
from oms.inventory.v1 import events_pb2 as inventory_events  # noqa: F401 - the events decoded here
from oms.logistics.v1 import events_pb2 as logistics_events  # noqa: F401 - the events decoded here
from oms.routing.v1 import events_pb2 as routing_events  # noqa: F401 - the events decoded here
from services.kit.clock import Clock
from services.kit.consumer import BatchHandler, Envelope
from services.orders import handlers, mappers
from services.orders.store import OrdersUnitOfWork

Handler = Callable[[AsyncConnection, Message, Envelope], Awaitable[None]]
# a use case driven by an event: (unit of work, policy, the event's key: an order id or a SKU)
OrderEvent = Callable[[handlers.UnitOfWork, handlers.Policy, str], Awaitable[handlers.Changes]]

# subject → the use case it drives, with the event's order id (or SKU, see KEYS)
SUBSCRIPTIONS: dict[str, OrderEvent] = {
    # an unpaid reservation lapsed: cancel the order (a paid one reserves again)
    "inventory.reservation_expired": handlers.reservation_expired,
    # routing planned an order it had parked: an unroutable hold resumes
    "routing.planned": handlers.route_found,
    # stock arrived: orders held for it are planned again, whatever left them short
    "inventory.adjusted": handlers.stock_arrived,
    "inventory.back_in_stock": handlers.stock_arrived,
}
# the event field each use case is given, when it is not the order id
KEYS: dict[str, str] = {"inventory.adjusted": "sku", "inventory.back_in_stock": "sku"}


def handler(
    use_case: OrderEvent,
    policy: handlers.Policy,
    poke: Callable[[handlers.Changes], None],
    key: str = "order_id",
    clock: Clock | None = None,
) -> Handler:
    """Run the use case inside the consumer's inbox transaction, then (once it committed) wake the
    process manager."""

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        if getattr(event, "on_hand_delta", 1) <= 0:  # stock went down: nothing can move on for it
            return
        uow = OrdersUnitOfWork.joined(conn, policy.keys, mappers.integration_event, clock)
        changes = await use_case(uow, policy, getattr(event, key))
        await uow.flush_events()
        envelope.on_commit(lambda: poke(changes))

    return handle


# logistics' events about shipments (picked, packed, waybill_created, waybill_failed, scanned_out,
# tracking_updated, delivered, exception, returned; mappers.shipment_report reads them, the others are
# passed by): one consumer for all of them, so an order's events are handled in the order logistics
# published them and its timeline reads as it happened. Each moves its order on, never back, once.
LOGISTICS_EVENTS = "logistics.>"


def shipment_handlers(
    policy: handlers.Policy, poke: Callable[[handlers.Changes], None], clock: Clock | None = None
) -> tuple[Handler, BatchHandler]:
    """Record logistics events on their orders inside the consumer's inbox transaction, then (once it
    committed) wake the process manager (a cancelled order's shipments are cancelled by its next step):
    the handler for one event and the one for a batch taken together (each order read and written once)."""
    return _report_handlers(mappers.shipment_report, handlers.shipments_reported, policy, poke, clock)


Report = TypeVar("Report")
ReportsUseCase = Callable[
    [handlers.UnitOfWork, handlers.Policy, list[Report], list[str]], Awaitable[handlers.Changes]
]


def _report_handlers(
    read: Callable[[Message], Report | None],
    use_case: ReportsUseCase[Report],
    policy: handlers.Policy,
    poke: Callable[[handlers.Changes], None],
    clock: Clock | None,
) -> tuple[Handler, BatchHandler]:
    """Another service's events as reports about orders (`read`; None: not one orders follows), given
    to `use_case` with each one's trace, in the consumer's transaction; the process manager is woken
    once it committed. A batch's events keep their own traces; one alone runs in its consumer span."""

    async def handle_all(conn: AsyncConnection, events: Sequence[tuple[Message, Envelope]]) -> None:
        reports = [(report, envelope) for event, envelope in events if (report := read(event)) is not None]
        if not reports:
            return
        uow = OrdersUnitOfWork.joined(conn, policy.keys, mappers.integration_event, clock)
        traces = ["" if len(events) == 1 else envelope.traceparent for _, envelope in reports]
        changes = await use_case(uow, policy, [report for report, _ in reports], traces)
        await uow.flush_events()
        reports[-1][1].on_commit(lambda: poke(changes))

    async def handle(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
        await handle_all(conn, [(event, envelope)])

    return handle, handle_all


# after-sales' events about tickets (opened, approved, rejected, escalated, return_received,
# refund_requested, refunded, refund_failed, closed; mappers.ticket_report reads them): one consumer, so
# a ticket's steps reach its order's timeline in the order after-sales published them.
AFTERSALES_EVENTS = "aftersales.>"


def ticket_handlers(
    policy: handlers.Policy, poke: Callable[[handlers.Changes], None], clock: Clock | None = None
) -> tuple[Handler, BatchHandler]:
    """Record after-sales events on their orders inside the consumer's inbox transaction: the handler
    for one event and the one for a batch taken together (each order read and written once)."""
    return _report_handlers(mappers.ticket_report, handlers.tickets_reported, policy, poke, clock)
