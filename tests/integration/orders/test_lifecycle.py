"""The order center end to end inside one process: real Postgres, inventory and routing over gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2
from services.orders import orchestrator as orchestrator_module
from tests import identity
from tests.conftest import random_ref
from tests.identity import as_gateway
from tests.integration.orders.conftest import Stack

CNY = "CNY"


def money(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code=CNY, amount_minor=amount)


def stamp(at: object) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(at)  # type: ignore[arg-type]
    return result


def canonical(ref: str, **overrides: object) -> orders_pb2.IngestOrderRequest:
    """An own-shop order; one paid at ingest comes from Taobao, since only a marketplace's paid fact
    pays an order (own-shop orders are paid by a payment record)."""
    request = orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_TAOBAO if "paid_at" in overrides else orders_pb2.CHANNEL_OWN_SHOP,
        channel_order_id=ref,
        buyer_id="buyer-7",
        lines=[
            orders_pb2.OrderLine(sku="TEA", title="Tea", quantity=2, unit_price=money(4500)),
            orders_pb2.OrderLine(sku="CUP", title="Cup", quantity=1, unit_price=money(1999)),
        ],
        discounts=[
            orders_pb2.Discount(kind=orders_pb2.DISCOUNT_KIND_COUPON, amount=money(1000), reference="C-10"),
            orders_pb2.Discount(kind=orders_pb2.DISCOUNT_KIND_POINTS, amount=money(333)),
        ],
        shipping_address=common_pb2.Address(
            recipient_name="韩梅梅",
            phone="13912345678",
            country_code="CN",
            province="Zhejiang",
            city="Hangzhou",
            district="Xihu",
            detail="18 Longjing Road, Building 3",
        ),
        shipping_fee=money(800),
    )
    for name, value in overrides.items():
        if isinstance(value, Timestamp):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def ingest(stack: Stack, ref: str, **overrides: object) -> orders_pb2.Order:
    reply = await stack.orders.IngestOrder(canonical(ref, **overrides))
    return reply.order


async def pay(
    stack: Stack, order: orders_pb2.Order, transaction: str, **overrides: object
) -> orders_pb2.Payment:
    request = orders_pb2.ReportPaymentRequest(
        provider="wechat_pay",
        transaction_id=transaction,
        merchant_order_no=order.order_id,
        amount=order.total,
        paid_at=stamp(stack.clock.now()),
        status=orders_pb2.PAYMENT_STATUS_SUCCESS,
    )
    for name, value in overrides.items():
        if isinstance(value, (Timestamp, common_pb2.Money)):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return (await stack.orders.ReportPayment(request)).payment


async def status(stack: Stack, order_id: str) -> str:
    reply = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))
    return orders_pb2.OrderStatus.Name(reply.order.status).removeprefix("ORDER_STATUS_")


async def kinds(stack: Stack, order_id: str) -> list[str]:
    reply = await stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=order_id))
    return [entry.kind for entry in reply.entries]


async def test_an_order_is_reserved_at_ingest_and_allocated_once_paid(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    assert order.total.amount_minor == 2 * 4500 + 1999 - 1000 - 333 + 800
    paid_parts = [line.amounts.paid.amount_minor for line in order.lines]
    assert sum(paid_parts) == order.total.amount_minor
    assert order.masked and order.shipping_address.phone == "139****5678"
    await stack.drive()
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    assert await stack.stock_of("WH-SH", "TEA") == (10, 2)

    payment = await pay(stack, order, random_ref("wx"))
    assert orders_pb2.PaymentState.Name(payment.state) == "PAYMENT_STATE_APPLIED"
    await stack.drive()
    assert await status(stack, order.order_id) == "ALLOCATED"
    assert await stack.stock_of("WH-SH", "TEA") == (8, 0)
    history = await kinds(stack, order.order_id)
    assert history[0] == "created" and "paid" in history and "allocated" in history
    subjects = await stack.column("SELECT subject FROM outbox ORDER BY id")
    for subject in ("orders.created", "orders.paid", "orders.allocated", "orders.status_changed"):
        assert subject in subjects


async def test_a_repeated_payment_notification_gets_the_first_answer_and_changes_nothing(
    stack: Stack,
) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    transaction = random_ref("wx")
    first = await pay(stack, order, transaction)
    again = await stack.orders.ReportPayment(
        orders_pb2.ReportPaymentRequest(
            provider="wechat_pay",
            transaction_id=transaction,
            merchant_order_no=order.order_id,
            amount=order.total,
            paid_at=stamp(stack.clock.now()),
            status=orders_pb2.PAYMENT_STATUS_SUCCESS,
        )
    )
    assert again.duplicate and again.payment.payment_id == first.payment_id
    assert await stack.scalar("SELECT count(*) FROM payments") == 1
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.paid'") == 1


async def test_an_18_minute_skewed_payment_is_parked_alerted_and_visible_never_lost(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    skewed = stamp(stack.clock.now() - timedelta(minutes=18))
    payment = await pay(stack, order, random_ref("wx"), paid_at=skewed)
    assert orders_pb2.PaymentState.Name(payment.state) == "PAYMENT_STATE_PARKED"
    assert "-18.0 min" in payment.reason
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    parked = await stack.orders.ListPayments(
        orders_pb2.ListPaymentsRequest(state=orders_pb2.PAYMENT_STATE_PARKED)
    )
    assert [p.payment_id for p in parked.payments] == [payment.payment_id]
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'alerts.raised'") == 1
    assert "payment_parked" in await kinds(stack, order.order_id)

    reviewed = await stack.orders.ReviewPayment(
        orders_pb2.ReviewPaymentRequest(
            payment_id=payment.payment_id, accept=True, note="server clock was slow"
        )
    )
    assert orders_pb2.PaymentState.Name(reviewed.payment.state) == "PAYMENT_STATE_APPLIED"
    assert await status(stack, order.order_id) == "PAID"


async def test_a_payment_for_a_marketplace_order_is_parked_writes_nothing_on_it_and_no_review_applies_it(
    stack: Stack,
) -> None:
    request = canonical(random_ref("tb"))
    request.channel = orders_pb2.CHANNEL_TAOBAO  # unpaid on Taobao: the marketplace will collect it
    order = (await stack.orders.IngestOrder(request)).order
    before = await stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=order.order_id))

    payment = await pay(stack, order, random_ref("wx"))

    assert orders_pb2.PaymentState.Name(payment.state) == "PAYMENT_STATE_PARKED"
    assert (
        payment.reason
        == "TAOBAO orders are not payable through wechat_pay: the marketplace collects their money"
    )
    assert payment.order_id == order.order_id
    accepted = await stack.orders.ReviewPayment(
        orders_pb2.ReviewPaymentRequest(payment_id=payment.payment_id, accept=True, note="looks paid")
    )
    assert orders_pb2.PaymentState.Name(accepted.payment.state) == "PAYMENT_STATE_PARKED"
    rejected = await stack.orders.ReviewPayment(
        orders_pb2.ReviewPaymentRequest(payment_id=payment.payment_id, accept=False, note="not ours")
    )
    assert orders_pb2.PaymentState.Name(rejected.payment.state) == "PAYMENT_STATE_REJECTED"
    after = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))
    assert after.order.status == order.status and not after.order.HasField("paid_at")
    timeline = await stack.orders.GetTimeline(orders_pb2.GetTimelineRequest(order_id=order.order_id))
    assert list(timeline.entries) == list(before.entries)
    # parked twice (the report, the acceptance), each alerted once for finance; the rejection is not
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'alerts.raised'") == 2


async def test_a_payment_through_a_provider_our_own_shop_does_not_use_is_parked(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    payment = await pay(stack, order, random_ref("pp"), provider="paypal")
    assert orders_pb2.PaymentState.Name(payment.state) == "PAYMENT_STATE_PARKED"
    assert (
        payment.reason
        == "OWN_SHOP orders are not payable through paypal: their providers are alipay, wechat_pay"
    )
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    assert "payment_parked" not in await kinds(stack, order.order_id)


async def test_a_payment_of_the_wrong_amount_goes_to_review(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    payment = await pay(stack, order, random_ref("wx"), amount=money(order.total.amount_minor - 1))
    assert orders_pb2.PaymentState.Name(payment.state) == "PAYMENT_STATE_PARKED"
    assert "differs from the payable" in payment.reason
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"


@pytest.mark.parametrize("provider_status", ["PAYMENT_STATUS_FAILED", "PAYMENT_STATUS_CLOSED"])
async def test_failed_and_closed_notifications_are_recorded_not_ignored(
    stack: Stack, provider_status: str
) -> None:
    order = await ingest(stack, random_ref("own"))
    payment = await pay(
        stack, order, random_ref("wx"), status=orders_pb2.PaymentStatus.Value(provider_status)
    )
    assert orders_pb2.PaymentState.Name(payment.state) == "PAYMENT_STATE_APPLIED"
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    assert "payment_applied" in await kinds(stack, order.order_id)


async def test_an_illegal_transition_freezes_the_order_and_raises_an_alert(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    fields = struct_pb2.Struct()
    fields.update({"tracking": {"node": "SIGNED"}, "waybill_no": "SF1"})
    reply = await stack.orders.ReportSourceStatus(
        orders_pb2.ReportSourceStatusRequest(source="CARRIER", order_id=order.order_id, fields=fields)
    )
    assert reply.rule, "a carrier delivery rule should match"
    assert await status(stack, order.order_id) == "EXCEPTION"
    assert "exception" in await kinds(stack, order.order_id)
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.exception'") == 1
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'alerts.raised'") >= 1  # type: ignore[operator]


async def test_shipped_needs_both_the_waybill_and_the_scan_out(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    await stack.drive()
    await pay(stack, order, random_ref("wx"))
    await stack.drive()

    async def wms(**values: object) -> orders_pb2.ReportSourceStatusResponse:
        fields = struct_pb2.Struct()
        fields.update(values)
        return await stack.orders.ReportSourceStatus(
            orders_pb2.ReportSourceStatusRequest(source="WMS", order_id=order.order_id, fields=fields)
        )

    await wms(status="PICKING")
    assert await status(stack, order.order_id) == "PICKING"
    await wms(status="PACKED")
    assert await status(stack, order.order_id) == "PACKED"
    waybill_only = await wms(status="PACKED", packaged_time=1732240000, logistics_no="SF1234567890")
    assert await status(stack, order.order_id) == "PACKED"
    assert waybill_only.order.waybill_no == "SF1234567890"
    assert "waiting_for_proof" in await kinds(stack, order.order_id)
    await wms(status="OUTBOUND", scan_out_time=1732243600, logistics_no="SF1234567890")
    assert await status(stack, order.order_id) == "SHIPPED"


async def test_cancel_releases_the_reservation_and_a_second_cancel_changes_nothing(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    await stack.drive()
    assert await stack.stock_of("WH-SH", "TEA") == (10, 2)
    await stack.orders.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=order.order_id, reason="buyer asked")
    )
    await stack.drive()
    assert await stack.stock_of("WH-SH", "TEA") == (10, 0)
    await stack.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order.order_id))
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.cancelled'") == 1


async def test_hold_and_release_return_the_order_to_where_it_was(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stack.orders.HoldOrder(orders_pb2.HoldOrderRequest(order_id=order.order_id))
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in (
        missing.value.details() or ""
    )
    held = await stack.orders.HoldOrder(
        orders_pb2.HoldOrderRequest(order_id=order.order_id, reason="risk review")
    )
    assert held.order.status == orders_pb2.ORDER_STATUS_ON_HOLD
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stack.orders.HoldOrder(orders_pb2.HoldOrderRequest(order_id=order.order_id, reason="again"))
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    released = await stack.orders.ReleaseOrder(orders_pb2.ReleaseOrderRequest(order_id=order.order_id))
    assert released.order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT


async def test_an_unroutable_order_is_held_with_the_reason(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))  # no stock anywhere
    await stack.drive()
    reply = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))
    assert reply.order.status == orders_pb2.ORDER_STATUS_ON_HOLD
    assert "unroutable" in reply.order.status_reason


async def test_an_unroutable_hold_resumes_when_routing_finds_a_warehouse(stack: Stack) -> None:
    from services.orders import bootstrap, handlers

    order = await ingest(stack, random_ref("own"))
    await stack.drive()
    assert await status(stack, order.order_id) == "ON_HOLD"
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    async with stack.engine.begin() as conn:  # what the consumer of oms.routing.planned does
        uow = bootstrap.joined_unit_of_work(conn, stack.policy.keys, stack.clock)
        await handlers.route_found(uow, stack.policy, order.order_id)
        await uow.flush_events()
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    await stack.drive()
    assert await stack.stock_of("WH-SH", "TEA") == (10, 2)


async def test_paid_with_no_stock_left_is_an_exception_with_an_alert(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"), paid_at=stamp(stack.clock.now()))
    await stack.drive()
    reply = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))
    assert reply.order.status == orders_pb2.ORDER_STATUS_EXCEPTION
    assert "paid, out of stock" in reply.order.status_reason
    payloads = await stack.column("SELECT subject FROM outbox WHERE subject = 'alerts.raised'")
    assert payloads


async def test_a_crash_between_reservation_and_status_update_recovers_once(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"), paid_at=stamp(stack.clock.now()))

    def crash(order_id: str, result: object) -> None:
        raise SystemExit("the process died here")

    stack.orchestrator.before_apply = crash
    with pytest.raises(SystemExit):
        await stack.orchestrator.run_step(order.order_id)
    stack.orchestrator.before_apply = None
    assert await status(stack, order.order_id) == "PAID"
    assert await stack.stock_of("WH-SH", "TEA") == (8, 0), "inventory committed before the crash"
    # the claimed step's lease runs out; the recovery picks the order up and finishes it
    await stack.scalar(
        "UPDATE orders SET step_due_at = :due RETURNING 1", due=stack.clock.now() - timedelta(seconds=1)
    )
    stack.clock.advance(timedelta(minutes=1))
    await stack.drive()
    assert await status(stack, order.order_id) == "ALLOCATED"
    assert await stack.stock_of("WH-SH", "TEA") == (8, 0)
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.allocated'") == 1


async def test_reservation_expiry_cancels_the_unpaid_order(stack: Stack) -> None:
    from services.orders import handlers

    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    await stack.drive()
    async with stack.engine.begin() as conn:
        from services.orders import bootstrap

        uow = bootstrap.joined_unit_of_work(conn, stack.policy.keys, stack.clock)
        await handlers.reservation_expired(uow, stack.policy, order.order_id)
        await uow.flush_events()
    assert await status(stack, order.order_id) == "CANCELLED"
    assert (
        await stack.scalar("SELECT stock_state FROM orders WHERE order_id = :o", o=order.order_id)
        == "RELEASED"
    )
    await stack.drive()
    assert await stack.scalar("SELECT step FROM orders WHERE order_id = :o", o=order.order_id) is None


async def test_concurrent_ingests_of_one_channel_order_make_one_order(stack: Stack) -> None:
    ref = random_ref("own")
    replies = await asyncio.gather(*(stack.orders.IngestOrder(canonical(ref)) for _ in range(8)))
    assert len({reply.order.order_id for reply in replies}) == 1
    assert sum(reply.created for reply in replies) == 1
    assert await stack.scalar("SELECT count(*) FROM orders") == 1
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.created'") == 1


async def test_a_newer_channel_version_updates_and_an_older_one_is_ignored(stack: Stack) -> None:
    ref = random_ref("own")
    t0 = stack.clock.now()
    first = await ingest(stack, ref, channel_modified_at=stamp(t0), buyer_note="v1")
    newer = await stack.orders.IngestOrder(
        canonical(ref, channel_modified_at=stamp(t0 + timedelta(minutes=5)), buyer_note="v2")
    )
    assert newer.outcome == orders_pb2.INGEST_OUTCOME_UPDATED and newer.order.buyer_note == "v2"
    older = await stack.orders.IngestOrder(
        canonical(ref, channel_modified_at=stamp(t0 + timedelta(minutes=1)), buyer_note="old")
    )
    assert older.outcome == orders_pb2.INGEST_OUTCOME_STALE and older.order.buyer_note == "v2"
    same = await stack.orders.IngestOrder(
        canonical(ref, channel_modified_at=stamp(t0 + timedelta(minutes=5)), buyer_note="v2")
    )
    assert same.outcome == orders_pb2.INGEST_OUTCOME_UNCHANGED
    assert newer.order.order_id == first.order_id
    assert await stack.scalar("SELECT count(*) FROM outbox WHERE subject = 'orders.updated'") == 1


async def test_a_batch_reports_each_order_separately_and_quarantines_malformed_payloads(stack: Stack) -> None:
    good = [orders_pb2.IngestItem(order=canonical(random_ref("own"))) for _ in range(3)]
    bad_payload = struct_pb2.Struct()
    bad_payload.update({"tid": "123", "status": "NOT_A_STATUS"})
    bad = orders_pb2.IngestItem(
        channel_order=orders_pb2.IngestChannelOrderRequest(
            channel=orders_pb2.CHANNEL_TAOBAO, payload=bad_payload
        )
    )
    repeat = orders_pb2.IngestItem(order=good[0].order)
    reply = await stack.orders.IngestOrders(orders_pb2.IngestOrdersRequest(items=[*good, bad, repeat]))
    outcomes = [orders_pb2.IngestOutcome.Name(result.outcome) for result in reply.results]
    assert outcomes == ["INGEST_OUTCOME_CREATED"] * 3 + [
        "INGEST_OUTCOME_REJECTED",
        "INGEST_OUTCOME_UNCHANGED",
    ]
    assert reply.results[3].error_field
    assert reply.results[4].order_id == reply.results[0].order_id
    quarantine = await stack.orders.ListQuarantine(orders_pb2.ListQuarantineRequest())
    assert len(quarantine.payloads) == 1 and quarantine.payloads[0].reason
    assert await stack.scalar("SELECT count(*) FROM orders") == 3


async def test_a_drift_report_finds_a_planted_disagreement(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    fields = struct_pb2.Struct()
    fields.update({"status": "TRADE_FINISHED"})
    await stack.orders.ReportSourceStatus(
        orders_pb2.ReportSourceStatusRequest(source="TAOBAO", order_id=order.order_id, fields=fields)
    )
    report = await stack.orders.GetDriftReport(orders_pb2.GetDriftReportRequest())
    assert [(d.order_id, d.source) for d in report.drifts] == [(order.order_id, "TAOBAO")]
    assert report.drifts[0].source_status == "TRADE_FINISHED"
    assert report.per_source["TAOBAO"] == 1


async def test_personal_data_is_sealed_at_rest_and_shown_only_to_allowed_roles(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))
    raw = await stack.scalar(
        "SELECT pii_sealed || shipping_address::text FROM orders WHERE order_id = :o", o=order.order_id
    )
    assert "13912345678" not in str(raw) and "韩梅梅" not in str(raw)
    masked = await stack.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id))
    assert masked.order.shipping_address.recipient_name == "韩**"
    shown = await stack.orders.GetOrder(
        orders_pb2.GetOrderRequest(order_id=order.order_id), metadata=as_gateway("warehouse")
    )
    assert shown.order.shipping_address.phone == "13912345678" and not shown.order.masked
    by_phone = await stack.orders.ListOrders(
        orders_pb2.ListOrdersRequest(filter=orders_pb2.OrderFilter(buyer_phone="+86 139-1234-5678")),
        metadata=as_gateway("warehouse"),
    )
    assert [o.order_id for o in by_phone.orders] == [order.order_id]


async def test_a_save_keeps_the_sealed_address_it_read_and_seals_a_changed_one_anew(stack: Stack) -> None:
    order = await ingest(stack, random_ref("own"))

    async def sealed() -> tuple[object, object]:
        row = await stack.column(
            "SELECT ARRAY[pii_sealed, phone_hash] FROM orders WHERE order_id = :o", o=order.order_id
        )
        first = row[0]
        assert isinstance(first, list)
        return first[0], first[1]

    before = await sealed()
    async with stack.uow() as uow:
        stored = await uow.orders.get(order.order_id, lock=True)
        assert stored is not None
        stored.order.buyer_note = "leave it at the door"
        await uow.orders.save(stored, [], stack.clock.now())
        await uow.commit()
    # the address did not change: its sealed form is written back as read (sealing anew would draw a
    # new nonce, so the text would differ)
    assert await sealed() == before
    async with stack.uow() as uow:
        stored = await uow.orders.get(order.order_id, lock=True)
        assert stored is not None
        stored.order.shipping_address = dataclasses.replace(
            stored.order.shipping_address, phone="13800000000"
        )
        await uow.orders.save(stored, [], stack.clock.now())
        await uow.commit()
    after = await sealed()
    assert after[0] != before[0] and after[1] != before[1]
    shown = await stack.orders.GetOrder(
        orders_pb2.GetOrderRequest(order_id=order.order_id), metadata=as_gateway("warehouse")
    )
    assert shown.order.shipping_address.phone == "13800000000"
    assert shown.order.buyer_note == "leave it at the door"


async def test_a_step_that_keeps_failing_is_dead_lettered_alerted_and_replayable(stack: Stack) -> None:
    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))

    def bug(order_id: str, result: object) -> None:
        raise RuntimeError("a bug nobody planned for")

    stack.orchestrator.before_apply = bug
    for _ in range(stack.policy.retry_attempts):
        assert await stack.orchestrator.run_due() == 1
        stack.clock.advance(stack.policy.retry_delay + timedelta(seconds=1))
    assert await stack.orchestrator.run_due() == 0
    stack.orchestrator.before_apply = None
    letters = await stack.orders.ListDeadLetters(orders_pb2.ListDeadLettersRequest())
    assert [letter.dead_letter_id for letter in letters.dead_letters] == [f"step:{order.order_id}"]
    assert letters.dead_letters[0].attempts == stack.policy.retry_attempts
    assert "order_step_dead" in str(
        await stack.column("SELECT payload FROM outbox WHERE subject = 'alerts.raised'")
    )
    replayed = await stack.orders.ReplayDeadLetter(
        orders_pb2.ReplayDeadLetterRequest(dead_letter_id=f"step:{order.order_id}")
    )
    assert replayed.succeeded
    assert await stack.stock_of("WH-SH", "TEA") == (10, 2)


async def test_a_step_whose_peer_stays_down_past_the_patience_is_dead_lettered_not_before(
    stack: Stack,
) -> None:
    from dataclasses import replace

    from omsctl.embedded import free_port
    from services.kit import grpc_client
    from services.orders.orchestrator import Orchestrator
    from services.orders.peers import Peers

    await stack.receive("WH-SH", "TEA", 10)
    await stack.receive("WH-SH", "CUP", 10)
    order = await ingest(stack, random_ref("own"))
    nowhere = grpc_client.channel(
        f"127.0.0.1:{free_port()}", deadline_seconds=0.3, identity=identity.service_identity("orders")
    )
    policy = replace(stack.policy, outage_patience=timedelta(minutes=2))
    broken = Orchestrator(
        stack.uow,
        policy,
        Peers(nowhere, nowhere, 0, deadline_seconds=0.3),
    )
    pauses = 0
    while await broken.run_due():  # far more rounds than the step has attempts: an outage spends none
        pauses += 1
        stack.clock.advance(policy.outage_backoff_max)
    await nowhere.close()
    assert pauses > policy.retry_attempts
    letters = await stack.orders.ListDeadLetters(orders_pb2.ListDeadLettersRequest())
    assert [letter.dead_letter_id for letter in letters.dead_letters] == [f"step:{order.order_id}"]
    assert "routing unavailable since" in letters.dead_letters[0].error
    assert letters.dead_letters[0].attempts <= 1
    assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    from services.orders import handlers

    await handlers.replay_step(stack.uow(), order.order_id)
    sql = "SELECT step_paused_since IS NULL AND step_pauses = 0 FROM orders WHERE order_id = :o"
    assert await stack.scalar(sql, o=order.order_id), "a replayed step's patience starts afresh"
    await stack.drive()
    assert await stack.stock_of("WH-SH", "TEA") == (10, 2)


async def test_steps_that_end_together_are_applied_in_one_transaction_and_alone_when_that_fails(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.receive("WH-SH", "TEA", 100)
    await stack.receive("WH-SH", "CUP", 100)
    orders = [await ingest(stack, random_ref("own")) for _ in range(12)]
    unlucky = orders[5].order_id
    failures: list[str] = []
    real = orchestrator_module._apply_result

    def once_refused(stored: Any, result: Any, now: Any) -> Any:
        # the first time this order's result is applied (in the batch's transaction) it fails, as an
        # order changed under the step would; applied alone the next moment, it goes through
        if stored.order.order_id == unlucky and not failures:
            failures.append(unlucky)
            raise RuntimeError("changed meanwhile")
        return real(stored, result, now)

    monkeypatch.setattr(orchestrator_module, "_apply_result", once_refused)
    before = stack.orchestrator._applies.batches
    await stack.drive()
    assert failures == [unlucky]
    assert "each is applied alone" in caplog.text
    assert stack.orchestrator._applies.batches - before < len(orders)  # they went together
    for order in orders:
        assert await status(stack, order.order_id) == "PENDING_PAYMENT"
    assert await stack.stock_of("WH-SH", "TEA") == (100, 2 * len(orders))  # each reserved once
    reserved = await stack.column(
        "SELECT count(*) FROM order_timeline WHERE kind = 'reserved' GROUP BY order_id"
    )
    assert reserved == [1] * len(orders)
