"""Orders shipping through a live logistics server (its own database; the carrier sandbox as a real
process): the process manager opens an allocated order's shipments once, even when the first answer is
lost in a timeout; an outage of logistics is waited out; logistics' events, relayed over JetStream to
orders' consumers, take the order through PICKING and PACKED to SHIPPED and DELIVERED with every step on
its timeline; a cancelled order's shipments are cancelled at logistics (its event and its next step)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy import text

from oms.logistics.v1 import logistics_pb2 as lpb
from oms.orders.v1 import orders_pb2
from services.kit.consumer import EventConsumer
from services.kit.outbox import OutboxRelay
from services.logistics import consumers as logistics_consumers
from services.orders import consumers, jobs
from tests.conftest import random_ref
from tests.integration.orders.conftest import Shipping, Stack
from tests.integration.orders.test_lifecycle import canonical, kinds, stamp, status
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)


async def paid_order(stack: Stack, *stocked: tuple[str, str]) -> str:
    """A marketplace order paid at ingest, with stock of its SKUs where `stocked` says."""
    for warehouse, sku in stocked or (("WH-SH", "TEA"), ("WH-SH", "CUP")):
        await stack.receive(warehouse, sku, 10)
    request = canonical(random_ref("tb"), paid_at=stamp(stack.clock.now()))
    return (await stack.orders.IngestOrder(request)).order.order_id


async def order_of(stack: Stack, order_id: str) -> orders_pb2.Order:
    return (await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))).order


async def logistics_rows(shipping: Shipping, order_id: str) -> int:
    async with shipping.engine.connect() as conn:
        found = await conn.scalar(text("SELECT count(*) FROM shipments WHERE order_id = :o"), {"o": order_id})
    return int(found or 0)


async def kept_shipments(stack: Stack, order_id: str) -> list[dict[str, object]]:
    document = await stack.scalar("SELECT shipping FROM orders WHERE order_id = :o", o=order_id)
    assert isinstance(document, dict)
    return list(document["shipments"])


async def test_an_allocated_order_gets_its_shipments_once_even_when_the_first_answer_is_lost(
    shipping: Shipping,
) -> None:
    stack = shipping.stack
    order_id = await paid_order(stack)
    shipping.servicer.hang_after_create = 3.0  # opened at logistics, the answer later than the deadline
    await stack.drive()
    order = await order_of(stack, order_id)
    assert (order.status, order.pending_step) == (orders_pb2.ORDER_STATUS_ALLOCATED, "ship")
    assert (
        await stack.scalar("SELECT step_waiting_for FROM orders WHERE order_id = :o", o=order_id)
        == "logistics"
    )
    assert await logistics_rows(shipping, order_id) == 1, "the lost answer's shipment exists at logistics"
    assert await kept_shipments(stack, order_id) == []
    stack.clock.advance(timedelta(seconds=2))  # past the pause
    await stack.drive()
    assert shipping.servicer.creates == 2, "asked again after the timeout"
    assert await logistics_rows(shipping, order_id) == 1, "and opened once"
    (opened,) = await shipping.shipments(order_id)
    (kept,) = await kept_shipments(stack, order_id)
    assert (kept["shipment_id"], kept["warehouse_id"], kept["carrier"], kept["listed"]) == (
        opened.shipment_id,
        "WH-SH",
        opened.carrier,
        True,
    )
    # what logistics was given: the buyer, the full address (opened from its seal), the plan
    assert (opened.customer_id, opened.channel, opened.destination.city) == ("buyer-7", "TAOBAO", "Hangzhou")
    decisions = await stack.decisions(order_id)
    assert opened.carrier == decisions[-1][2].split("/")[0], "routing's carrier for the warehouse"
    order = await order_of(stack, order_id)
    assert (order.status, order.pending_step) == (orders_pb2.ORDER_STATUS_ALLOCATED, "")
    history = await kinds(stack, order_id)
    assert history.index("step_paused") < history.index("shipments_created")


async def test_a_logistics_outage_pauses_the_ship_step_until_logistics_answers_again(
    shipping: Shipping,
) -> None:
    stack = shipping.stack
    await shipping.down()
    order_id = await paid_order(stack)
    await stack.drive()
    for pauses in (1, 2):
        assert (
            await stack.scalar(
                "SELECT concat_ws(':', step, step_waiting_for, step_pauses) FROM orders WHERE order_id = :o",
                o=order_id,
            )
            == f"ship:logistics:{pauses}"
        )
        stack.clock.advance(timedelta(seconds=5))
        if pauses == 1:
            await stack.drive()  # still down: it sleeps again, spending no attempt
    assert await stack.scalar("SELECT step_attempts FROM orders WHERE order_id = :o", o=order_id) == 0
    assert await status(stack, order_id) == "ALLOCATED"
    await shipping.up()
    await stack.drive()
    assert len(await shipping.shipments(order_id)) == 1
    assert len(await kept_shipments(stack, order_id)) == 1
    order = await order_of(stack, order_id)
    assert (order.status, order.pending_step) == (orders_pb2.ORDER_STATUS_ALLOCATED, "")
    history = await kinds(stack, order_id)
    assert history.count("step_paused") == 1, "once per outage on the timeline"
    assert "shipments_created" in history and "dead_letter" not in history


async def run_until(
    predicate: object, consumers_to_run: list[EventConsumer], relays: list[OutboxRelay], within: float
) -> None:
    """Relay the outboxes to JetStream and run the consumers until `predicate()` holds."""
    stop = asyncio.Event()
    running = [asyncio.create_task(consumer.run(stop)) for consumer in consumers_to_run]

    async def relayed() -> bool:
        for relay in relays:
            while await relay.publish_batch():
                pass
        return bool(await predicate())  # type: ignore[operator]

    try:
        await eventually(relayed, within=within)
    finally:
        stop.set()
        await asyncio.gather(*running)


async def test_logistics_events_take_a_split_order_to_shipped_and_delivered_with_every_step_on_its_timeline(
    shipping: Shipping, nc: NatsClient, subject_prefix: str
) -> None:
    stack = shipping.stack
    # no warehouse holds both SKUs: routing splits the order, one parcel per warehouse
    order_id = await paid_order(stack, ("WH-SH", "TEA"), ("WH-WH", "CUP"))
    await stack.drive()
    assert await status(stack, order_id) == "ALLOCATED"
    opened = await shipping.shipments(order_id)
    assert [s.warehouse_id for s in opened] == ["WH-SH", "WH-WH"]
    assert len(await kept_shipments(stack, order_id)) == 2
    logistics = shipping.logistics
    for shipment in opened:
        scan = {"warehouse_id": shipment.warehouse_id, "shipment_id": shipment.shipment_id}
        await logistics.ConfirmPick(lpb.ConfirmPickRequest(**scan))
        await logistics.ConfirmPacked(lpb.ConfirmPackedRequest(**scan))
    queued = await logistics.CreateWaybills(
        lpb.CreateWaybillsRequest(shipment_ids=[s.shipment_id for s in opened])
    )
    batch = await shipping.run_batch(queued.batch_id)
    assert batch.created == 2, batch
    for shipment in opened:
        await logistics.ScanOut(
            lpb.ScanOutRequest(warehouse_id=shipment.warehouse_id, code=shipment.shipment_id)
        )

    async def delivered_at_logistics() -> bool:
        return all(s.status == lpb.SHIPMENT_STATUS_DELIVERED for s in await shipping.shipments(order_id))

    await eventually(delivered_at_logistics, within=30)  # the sandbox pushes each parcel's route
    js = nc.jetstream()
    relay = OutboxRelay(shipping.engine, js, service="logistics", subject_prefix=subject_prefix)
    # as the service runs it: batches taken together, each order read and written once per batch
    handle, handle_all = consumers.shipment_handlers(stack.policy, stack.orchestrator.poke, stack.clock)
    orders_consumer = EventConsumer(
        js,
        stack.engine,
        name=random_ref("orders-test"),
        subject_prefix=subject_prefix,
        subject=consumers.LOGISTICS_EVENTS,
        handler=handle,
        fetch_seconds=0.2,
        together=True,
        batch_handler=handle_all,
    )

    async def delivered() -> bool:
        return await status(stack, order_id) == "DELIVERED"

    await run_until(delivered, [orders_consumer], [relay], within=30)
    reply = await stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=order_id))
    entries = list(reply.entries)
    walked = [
        orders_pb2.OrderStatus.Name(e.to_status).removeprefix("ORDER_STATUS_")
        for e in entries
        if e.kind == "status_changed"
    ]
    assert walked == ["PAID", "ALLOCATED", "PICKING", "PACKED", "SHIPPED", "DELIVERED"]
    history = [e.kind for e in entries]
    for kind, count in (("picked", 2), ("packed", 2), ("waybill", 2), ("scanned_out", 2), ("delivered", 2)):
        assert history.count(kind) == count, (kind, history)
    tracked = [e for e in entries if e.kind == "tracking"]
    nodes = 0
    for shipment in opened:
        found = await logistics.GetTracking(lpb.GetTrackingRequest(shipment_id=shipment.shipment_id))
        nodes += len(found.events)
    assert len(tracked) == nodes > 0, "every tracking node on the timeline, once"
    assert {(e.actor_type, e.actor_id, e.source) for e in tracked} == {("service", "logistics", "logistics")}
    # shipped needs proof: the order went SHIPPED only after both scan-outs, with its waybill
    shipped_at = next(
        i for i, e in enumerate(entries) if e.kind == "status_changed" and "scanned out" in e.detail
    )
    assert [i for i, kind in enumerate(history) if kind == "scanned_out"][-1] < shipped_at
    waybills = {s.waybill.waybill_no for s in await shipping.shipments(order_id)}
    order = await order_of(stack, order_id)
    assert order.waybill_no in waybills
    kept = await kept_shipments(stack, order_id)
    assert {k["waybill_no"] for k in kept} == waybills
    # the order shows each of its shipments as it followed them
    shown = {s.shipment_id: s for s in order.shipments}
    assert set(shown) == {s.shipment_id for s in opened}
    for shipment in opened:
        mine = shown[shipment.shipment_id]
        assert (mine.warehouse_id, mine.stage) == (shipment.warehouse_id, "DELIVERED")
        assert mine.waybill_no in waybills and mine.HasField("scanned_out_at")
        assert mine.delivered_at.ToDatetime() >= mine.scanned_out_at.ToDatetime()
    assert {k["stage"] for k in kept} == {"DELIVERED"}
    assert "exception" not in history


async def test_a_cancelled_orders_shipments_are_cancelled_at_logistics_by_its_event_and_its_next_step(
    shipping: Shipping, nc: NatsClient, subject_prefix: str
) -> None:
    stack = shipping.stack
    order_id = await paid_order(stack)
    await stack.drive()
    (opened,) = await shipping.shipments(order_id)
    assert opened.status == lpb.SHIPMENT_STATUS_CREATED
    await stack.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order_id, reason="buyer asked"))
    js = nc.jetstream()
    relay = OutboxRelay(stack.engine, js, service="orders", subject_prefix=subject_prefix)
    # logistics' own consumer of oms.orders.cancelled, on the subject orders publishes
    cancelled_consumer = EventConsumer(
        js,
        shipping.engine,
        name=random_ref("logistics-test"),
        subject_prefix=subject_prefix,
        subject="orders.cancelled",
        handler=logistics_consumers.on_order_cancelled(shipping.settings.keys, shipping.clock),
        fetch_seconds=0.2,
    )

    async def cancelled_at_logistics() -> bool:
        return all(s.status == lpb.SHIPMENT_STATUS_CANCELLED for s in await shipping.shipments(order_id))

    await run_until(cancelled_at_logistics, [cancelled_consumer], [relay], within=20)
    assert await stack.scalar("SELECT step FROM orders WHERE order_id = :o", o=order_id) == "release"
    await stack.drive()  # the release step: logistics cancels again (idempotent), inventory restocks
    assert await stack.scalar("SELECT stock_state FROM orders WHERE order_id = :o", o=order_id) == "RELEASED"
    assert [k["stage"] for k in await kept_shipments(stack, order_id)] == ["CANCELLED"]
    order = await order_of(stack, order_id)
    assert (order.status, order.pending_step) == (orders_pb2.ORDER_STATUS_CANCELLED, "")
    assert "shipments_cancelled" in await kinds(stack, order_id)


async def test_the_sweep_drives_an_allocated_order_whose_ship_step_was_lost(shipping: Shipping) -> None:
    stack = shipping.stack
    order_id = await paid_order(stack)
    await shipping.down()
    await stack.drive()
    await shipping.up()
    async with stack.engine.begin() as conn:  # its step was lost (a bug, a manual edit)
        await conn.execute(
            text("UPDATE orders SET step = NULL, step_due_at = NULL WHERE order_id = :o"), {"o": order_id}
        )
    stack.clock.advance(stack.policy.stuck_after + timedelta(seconds=1))
    swept = await jobs.sweep_stuck(stack.uow, stack.policy, stack.orchestrator.poke)
    assert order_id in swept.redriven
    await stack.drive()
    assert len(await kept_shipments(stack, order_id)) == 1
    assert await stack.scalar("SELECT step FROM orders WHERE order_id = :o", o=order_id) is None
