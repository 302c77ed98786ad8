"""Orders' subscriptions over real JetStream: an event reaches its use case once, through the inbox."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient

from oms.inventory.v1 import events_pb2 as inventory_events
from oms.orders.v1 import orders_pb2
from services.kit import bus
from services.kit.consumer import EventConsumer
from services.kit.ids import new_id
from services.orders import consumers, handlers
from services.orders.domain.refunds import TicketReport, TicketStep
from tests.conftest import random_ref
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import ingest, status
from tests.waiting import eventually


async def test_a_reservation_expiry_event_cancels_the_unpaid_order_once(
    stack: Stack, nc: NatsClient, subject_prefix: str
) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    await stack.drive()
    subject = "inventory.reservation_expired"
    consumer = EventConsumer(
        nc.jetstream(),
        stack.engine,
        name=random_ref("orders-test"),
        subject_prefix=subject_prefix,
        subject=subject,
        handler=consumers.handler(consumers.SUBSCRIPTIONS[subject], stack.policy, stack.orchestrator.poke),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    js = nc.jetstream()
    await bus.ensure_stream(js, subject_prefix, "inventory")
    event = inventory_events.ReservationExpired(event_id=random_ref("ev"), order_id=order.order_id)
    for _ in range(2):  # sent twice: JetStream and the inbox keep it to one effect
        await js.publish(
            f"{subject_prefix}.{subject}",
            event.SerializeToString(),
            headers={bus.MSG_ID: event.event_id, bus.EVENT_TYPE: "oms.inventory.v1.ReservationExpired"},
        )

    async def cancelled() -> bool:
        return await status(stack, order.order_id) == "CANCELLED"

    await eventually(cancelled)
    stop.set()
    await running
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.cancelled'") == 1
    read = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))
    assert "reservation expired" in read.order.status_reason


async def test_ticket_reports_flag_and_clear_overdue_customers_in_their_order_on_postgres(
    stack: Stack,
) -> None:
    """A batch of after-sales reports clears its answered tickets with one statement, yet a ticket
    answered and then flagged again in the same batch stays flagged."""
    now = stack.clock.now()

    def flagged(ticket: str, buyer: str) -> TicketReport:
        return TicketReport(
            TicketStep.ESCALATED, ticket, new_id(), "flagged", now, customer_id=buyer, overdue=True
        )

    def answered(ticket: str) -> TicketReport:
        return TicketReport(TicketStep.APPROVED, ticket, new_id(), "approved", now)

    first = [flagged("t-1", "buyer-1"), flagged("t-2", "buyer-2"), flagged("t-3", "buyer-3")]
    then = [answered("t-1"), answered("t-2"), flagged("t-1", "buyer-1"), answered("t-9")]
    for reports in (first, then):
        async with stack.uow() as uow:
            await handlers.tickets_reported(uow, stack.policy, reports, [""] * len(reports))
            await uow.commit()
    async with stack.uow() as uow:
        held = await uow.overdue.customers_among(["buyer-1", "buyer-2", "buyer-3"])
    assert held == {"buyer-1", "buyer-3"}
