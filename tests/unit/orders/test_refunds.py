"""After-sales' events on an order (fake unit of work): every ticket step on the timeline once, a refund
in progress shown on the order, settled refunds moving it to PARTIALLY_REFUNDED then REFUNDED, a failed
refund alerted, and the events decoded from their protobuf messages."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from oms.aftersales.v1 import aftersales_pb2 as apb
from oms.aftersales.v1 import events_pb2 as aev
from oms.common.v1 import common_pb2
from services.kit.ids import new_id
from services.orders import handlers, mappers
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, HoldCause, Order, accept
from services.orders.domain.orchestration import StockState, Stored
from services.orders.domain.refunds import Refunds, TicketReport, TicketStep
from services.orders.domain.timeline import Actor
from services.orders.store import rows
from tests.unit.orders.fakes import NOW, POLICY, FakeOrders
from tests.unit.orders.test_model import command

S = OrderStatus
TEST = Actor.service("test")


def order_in(db: FakeOrders, status: OrderStatus) -> str:
    """An order of 2 × SKU-1 and 1 × SKU-2 in `status`."""
    order = accept(command(channel_order_id=new_id()), new_id(), NOW)
    order.status = status
    order.events.clear()
    db.state.orders[order.order_id] = Stored(order, stock_state=StockState.COMMITTED.value)
    return order.order_id


def step(kind: TicketStep, order_id: str, ticket: str = "t-1", **values: object) -> TicketReport:
    return TicketReport(kind, ticket, order_id, str(values.pop("detail", "")), NOW, **values)  # type: ignore[arg-type]


async def tell(db: FakeOrders, *reports: TicketReport) -> Order:
    for report in reports:
        async with db.uow() as uow:
            await handlers.ticket_reported(uow, POLICY, report)
            await uow.commit()
    return db.order(reports[0].order_id).order


async def test_a_refund_in_progress_is_shown_then_a_partial_refund_moves_a_delivered_order() -> None:
    db = FakeOrders()
    order_id = order_in(db, S.DELIVERED)
    order = await tell(
        db,
        step(TicketStep.OPENED, order_id, detail="return_and_refund for size_fit: line 0 × 1"),
        step(TicketStep.APPROVED, order_id, detail="approved by rules v1"),
        step(TicketStep.REFUND_REQUESTED, order_id, detail="refund of 4000 sent", cash_minor=4000),
    )
    assert order.status is S.DELIVERED and order.refund_in_progress
    assert order.status_reason.startswith("refund in progress"), "never plainly delivered while refunding"
    order = await tell(
        db, step(TicketStep.REFUNDED, order_id, cash_minor=4000, points_minor=50, units=((0, 1),))
    )
    assert order.status is S.PARTIALLY_REFUNDED and not order.refund_in_progress
    assert (order.refunds.cash_minor, order.refunds.points_minor, order.refunds.units) == (
        4000,
        50,
        ((0, 1),),
    )
    kinds = db.kinds(order_id)
    for kind in ("ticket_opened", "ticket_approved", "ticket_refund_requested", "ticket_refunded"):
        assert kinds.count(kind) == 1, (kind, kinds)


async def test_a_batch_of_ticket_steps_reads_each_order_once_and_writes_it_once_per_trace() -> None:
    one_by_one, together = FakeOrders(), FakeOrders()
    first, second = order_in(one_by_one, S.DELIVERED), order_in(one_by_one, S.SHIPPED)
    for order_id in (first, second):
        together.state.orders[order_id] = copy.deepcopy(one_by_one.state.orders[order_id])
    opening, settling, other = (f"00-{n * 32}-{n * 16}-01" for n in "abc")
    batch = [
        (step(TicketStep.OPENED, first, detail="refund_only for damaged: line 0 × 2"), opening),
        (step(TicketStep.APPROVED, first, detail="approved by rules v1"), opening),
        (step(TicketStep.OPENED, second, "t-2", customer_id="c-1", overdue=True), other),
        (step(TicketStep.REFUND_REQUESTED, first, cash_minor=8000), opening),
        (step(TicketStep.OPENED, new_id(), "t-3"), other),  # an order this service does not hold
        (step(TicketStep.REFUNDED, first, cash_minor=8000, units=((0, 2),)), settling),
        (step(TicketStep.REFUNDED, first, cash_minor=8000, units=((0, 2),)), settling),  # a repeat
    ]
    await tell(one_by_one, *(report for report, _ in batch))
    versions = {order_id: together.order(order_id).order.version for order_id in (first, second)}
    async with together.uow() as uow:
        await handlers.tickets_reported(
            uow, POLICY, [report for report, _ in batch], [trace for _, trace in batch]
        )
        await uow.commit()

    for order_id in (first, second):
        alone, batched = one_by_one.order(order_id).order, together.order(order_id).order
        assert (batched.status, batched.refunds, batched.status_reason) == (
            alone.status,
            alone.refunds,
            alone.status_reason,
        )
        assert together.kinds(order_id) == one_by_one.kinds(order_id)
    # the first order: its three steps of the opening's trace in one write, its refund in another
    assert together.order(first).order.version - versions[first] == 2
    assert together.order(second).order.version - versions[second] == 1
    assert together.order(first).order.status is S.PARTIALLY_REFUNDED


async def test_refunding_every_unit_ends_refunded_and_a_repeated_event_counts_once() -> None:
    db = FakeOrders()
    order_id = order_in(db, S.SHIPPED)
    first = step(TicketStep.REFUNDED, order_id, "t-1", cash_minor=4000, units=((0, 1),))
    order = await tell(db, first, first)
    assert (order.status, order.refunds.cash_minor) == (S.PARTIALLY_REFUNDED, 4000), "the repeat is ignored"
    before = db.kinds(order_id)
    await tell(db, first)
    assert db.kinds(order_id) == before, "a late repeat writes nothing"
    rest = step(TicketStep.REFUNDED, order_id, "t-2", cash_minor=6000, units=((0, 1), (1, 1)))
    order = await tell(db, rest)
    assert order.status is S.REFUNDED
    assert order.refunds.units == ((0, 2), (1, 1)) and order.refunds.cash_minor == 10_000


async def test_a_partial_refund_of_an_order_still_in_the_warehouse_keeps_its_status() -> None:
    db = FakeOrders()
    order_id = order_in(db, S.PICKING)
    order = await tell(db, step(TicketStep.REFUNDED, order_id, cash_minor=1999, units=((1, 1),)))
    assert order.status is S.PICKING, "the rest still ships"
    assert order.refunds.units == ((1, 1),) and "refunded 1999" in order.status_reason


async def test_a_failed_refund_is_alerted_and_no_longer_in_progress() -> None:
    db = FakeOrders()
    order_id = order_in(db, S.DELIVERED)
    await tell(db, step(TicketStep.REFUND_REQUESTED, order_id, cash_minor=4000))
    order = await tell(db, step(TicketStep.REFUND_FAILED, order_id, detail="refund RFt-1 CLOSED: closed"))
    assert order.status is S.DELIVERED and not order.refund_in_progress
    assert order.refunds.cash_minor == 0
    alerts = [event for _, event in db.state.published if isinstance(event, AlertRaised)]
    assert [a.kind for a in alerts] == ["refund_failed"]


async def test_an_unknown_order_is_not_followed() -> None:
    db = FakeOrders()
    async with db.uow() as uow:
        await handlers.ticket_reported(uow, POLICY, step(TicketStep.REFUNDED, new_id(), cash_minor=1))
        await handlers.ticket_reported(uow, POLICY, step(TicketStep.REFUNDED, "not-an-id", cash_minor=1))
        await uow.commit()
    assert db.state.orders == {} and db.state.published == [] and db.state.timeline == []


def test_the_refunds_document_round_trips() -> None:
    refunds = Refunds(
        cash_minor=4000,
        points_minor=50,
        units=((0, 1), (2, 3)),
        in_progress=frozenset({"t-2"}),
        settled=frozenset({"t-1"}),
        noted=frozenset({("t-1", "refunded"), ("t-2", "opened")}),
    )
    assert rows.refunds_from(rows.refunds_document(refunds)) == refunds
    assert rows.refunds_document(Refunds()) is None and rows.refunds_from(None) == Refunds()


def money(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=amount)


def test_aftersales_events_are_read_as_ticket_reports() -> None:
    voucher = apb.RefundVoucher(cash=money(4000), points=money(50))
    refunded = aev.Refunded(
        ticket_id="t-1",
        order_id="o-1",
        provider="wechat_pay",
        out_refund_no="RFt-1",
        provider_refund_id="50300",
        voucher=voucher,
        lines=[apb.TicketLine(line_index=0, quantity=1)],
    )
    report = mappers.ticket_report(refunded)
    assert report is not None
    assert (report.step, report.cash_minor, report.points_minor, report.units) == (
        TicketStep.REFUNDED,
        4000,
        50,
        ((0, 1),),
    )
    assert "50300" in report.detail and "50 in points" in report.detail
    opened = mappers.ticket_report(
        aev.TicketOpened(
            ticket_id="t-1",
            order_id="o-1",
            kind=apb.TICKET_KIND_RETURN_AND_REFUND,
            reason="SIZE_FIT",
            lines=[apb.TicketLine(line_index=0, quantity=1)],
        )
    )
    assert opened is not None and opened.detail == "return_and_refund for size_fit: line 0 × 1"
    requested = mappers.ticket_report(aev.RefundRequested(ticket_id="t-1", order_id="o-1", voucher=voucher))
    assert requested is not None and (requested.step, requested.cash_minor) == (
        TicketStep.REFUND_REQUESTED,
        4000,
    )


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (
            aev.TicketApproved(decision=apb.ApprovalDecision(rule_set_version=2, rule="signed-7d")),
            TicketStep.APPROVED,
        ),
        (aev.TicketRejected(reason="used"), TicketStep.REJECTED),
        (aev.TicketEscalated(level="FLAGGED"), TicketStep.FLAGGED),
        (aev.TicketEscalated(level="ESCALATED"), TicketStep.ESCALATED),
        (aev.ReturnReceived(warehouse_id="WH-SH", restocked=1), TicketStep.RETURN_RECEIVED),
        (aev.RefundFailed(status="CLOSED"), TicketStep.REFUND_FAILED),
        (aev.TicketClosed(outcome=apb.TICKET_STATUS_REFUNDED), TicketStep.CLOSED),
    ],
)
def test_every_ticket_event_has_its_step(event: object, kind: TicketStep) -> None:
    report = mappers.ticket_report(replace_ids(event))
    assert report is not None and report.step is kind and report.ticket_id == "t-9"


def replace_ids(event: object) -> object:
    event.ticket_id, event.order_id = "t-9", "o-9"  # type: ignore[attr-defined]
    return event


def test_an_event_orders_does_not_follow_is_none() -> None:
    assert mappers.ticket_report(aev.RetentionSuggested(ticket_id="t-1")) is None


async def test_the_policy_holds_the_next_order_of_a_customer_with_an_overdue_ticket_until_answered() -> None:
    db = FakeOrders()
    holding = replace(POLICY, hold_for_overdue_tickets=True)
    flagged = TicketReport(
        TicketStep.ESCALATED, "t-7", new_id(), "flagged", NOW, customer_id="buyer-1", overdue=True
    )
    async with db.uow() as uow:
        await handlers.ticket_reported(uow, holding, flagged)
        await uow.commit()

    async def place(policy: handlers.Policy, ref: str) -> Order:
        results, _ = await handlers.ingest(db.uow(), policy, [command(channel_order_id=ref)], TEST)
        assert results[0].order is not None
        return db.order(results[0].order.order_id).order

    held = await place(holding, "TB-held")
    assert (held.status, held.hold_cause) == (S.ON_HOLD, HoldCause.OVERDUE_TICKET)
    assert "overdue after-sales ticket" in held.status_reason
    assert db.order(held.order_id).step is None, "nothing drives a held order"
    assert (await place(POLICY, "TB-off")).status is S.PENDING_PAYMENT, "off by default"
    answered = TicketReport(TicketStep.APPROVED, "t-7", flagged.order_id, "approved", NOW)
    async with db.uow() as uow:
        await handlers.ticket_reported(uow, holding, answered)
        await uow.commit()
    assert (await place(holding, "TB-after")).status is S.PENDING_PAYMENT


async def test_a_ticket_flagged_then_escalated_is_on_the_timeline_twice() -> None:
    db = FakeOrders()
    order_id = order_in(db, S.DELIVERED)
    for level in ("FLAGGED", "ESCALATED"):
        report = mappers.ticket_report(aev.TicketEscalated(ticket_id="t-1", order_id=order_id, level=level))
        assert report is not None
        await tell(db, report)
    kinds = db.kinds(order_id)
    assert (kinds.count("ticket_flagged"), kinds.count("ticket_escalated")) == (1, 1), kinds
