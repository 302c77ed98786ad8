from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.clock import FixedClock
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.kit.sealing import KeyRing
from services.orders import bootstrap, handlers, status_rules, views
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import Address, Channel, IngestOrder, Order, OrderLine
from services.orders.domain.payments import PaymentNotification, PaymentState, PaymentStatus
from services.orders.domain.timeline import Actor, Entry
from services.orders.store import (
    OrdersUnitOfWork,
    drift_reports_table,
    orders_table,
    payments_table,
    source_status_table,
    timeline_rows,
    timeline_table,
)
from tests.conftest import random_ref

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ACTOR = Actor.service("test")

NewUow = Callable[[], OrdersUnitOfWork]


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing(keys={"k1": os.urandom(32)}, active_key_id="k1", hash_key=os.urandom(32))


@pytest.fixture
def policy(keys: KeyRing) -> handlers.Policy:
    return handlers.Policy(keys=keys, rules=status_rules.shipped_rules())


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def new_uow(orders_engine: AsyncEngine, keys: KeyRing, clock: FixedClock) -> NewUow:
    return lambda: bootstrap.unit_of_work(orders_engine, keys, clock)


def order_command(
    channel: Channel = Channel.TAOBAO,
    buyer_id: str = "buyer-1",
    phone: str = "13900000000",
    paid_at: datetime | None = None,
) -> IngestOrder:
    return IngestOrder(
        channel=channel,
        channel_order_id=random_ref("C"),
        buyer_id=buyer_id,
        currency="CNY",
        lines=(OrderLine("SKU-1", "Tea", 2, 4500),),
        shipping_address=Address(
            "Han Meimei", phone, "CN", "Zhejiang", "Hangzhou", "Xihu", "18 Longjing Road"
        ),
        shipping_fee_minor=800,
        placed_at=T0,
        paid_at=paid_at,
    )


async def ingest(new_uow: NewUow, policy: handlers.Policy, *commands: IngestOrder) -> list[Order]:
    results, _ = await handlers.ingest(new_uow(), policy, list(commands), ACTOR)
    orders = [result.order for result in results]
    assert all(order is not None for order in orders), results
    return [order for order in orders if order is not None]


async def ingest_paid(new_uow: NewUow, policy: handlers.Policy, clock: FixedClock) -> Order:
    [order] = await ingest(new_uow, policy, order_command(paid_at=clock.now()))
    return order


async def execute(engine: AsyncEngine, *statements: object) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(statement)  # type: ignore[call-overload]


async def plant_timeline(engine: AsyncEngine, order_id: str, at: datetime, entry: Entry) -> None:
    async with engine.begin() as conn:
        await conn.execute(timeline_table.insert(), timeline_rows(order_id, [entry], at, ""))


def status_entry(to: OrderStatus, kind: str = "status_changed") -> Entry:
    return Entry(kind, ACTOR, "test", "planted", None, to)


async def report(
    new_uow: NewUow,
    policy: handlers.Policy,
    source: str,
    order_id: str,
    reported_at: datetime,
    **fields: object,
) -> None:
    await handlers.report_source_status(
        new_uow(), policy, handlers.SourceReport(source, order_id, None, "", dict(fields), reported_at)
    )


def ids(stored: list[views.Stored]) -> list[str]:
    return [item.order.order_id for item in stored]


# ---- listing and exporting orders --------------------------------------------------------------


async def test_each_filter_narrows_the_list_to_the_matching_orders(
    new_uow: NewUow, policy: handlers.Policy, keys: KeyRing, clock: FixedClock, orders_engine: AsyncEngine
) -> None:
    [a] = await ingest(new_uow, policy, order_command(Channel.TAOBAO, "buyer-1", "13900000001"))
    clock.advance(HOUR)
    [b] = await ingest(
        new_uow, policy, order_command(Channel.JD, "buyer-2", "13900000002", paid_at=clock.now())
    )
    clock.advance(HOUR)
    [c] = await ingest(new_uow, policy, order_command(Channel.DOUYIN, "buyer-1", "+86 139-0000-0001"))
    await execute(
        orders_engine,
        update(orders_table).where(orders_table.c.order_id == b.order_id).values(warehouses=["WH-A", "WH-B"]),
        update(orders_table).where(orders_table.c.order_id == c.order_id).values(warehouses=["WH-B"]),
    )
    cases: list[tuple[views.OrderFilter, set[str]]] = [
        (views.OrderFilter(), {a.order_id, b.order_id, c.order_id}),
        (views.OrderFilter(statuses=(OrderStatus.PAID,)), {b.order_id}),
        (
            views.OrderFilter(statuses=(OrderStatus.PAID, OrderStatus.PENDING_PAYMENT)),
            {a.order_id, b.order_id, c.order_id},
        ),
        (views.OrderFilter(channels=(Channel.TAOBAO, Channel.DOUYIN)), {a.order_id, c.order_id}),
        (views.OrderFilter(created_from=T0 + HOUR), {b.order_id, c.order_id}),
        (views.OrderFilter(created_to=T0 + HOUR), {a.order_id}),
        (views.OrderFilter(created_from=T0 + HOUR, created_to=T0 + 2 * HOUR), {b.order_id}),
        (views.OrderFilter(warehouse_id="WH-A"), {b.order_id}),
        (views.OrderFilter(warehouse_id="WH-B"), {b.order_id, c.order_id}),
        (views.OrderFilter(warehouse_id="WH-C"), set()),
        (views.OrderFilter(buyer_id="buyer-1"), {a.order_id, c.order_id}),
        (views.OrderFilter(buyer_phone="139 0000 0001"), {a.order_id, c.order_id}),
        (views.OrderFilter(buyer_phone="13900000003"), set()),
        (views.OrderFilter(buyer_id="buyer-1", channels=(Channel.DOUYIN,)), {c.order_id}),
    ]
    for order_filter, expected in cases:
        found, token = await views.list_orders(new_uow(), keys, order_filter, 0, "")
        assert set(ids(found)) == expected, order_filter
        assert token == ""
    [paid], _ = await views.list_orders(
        new_uow(), keys, views.OrderFilter(statuses=(OrderStatus.PAID,)), 0, ""
    )
    assert paid.order.shipping_address.phone == "13900000002"
    assert [line.sku for line in paid.order.lines] == ["SKU-1"]
    assert paid.order.warehouses == ("WH-A", "WH-B")


async def test_pages_walk_every_order_exactly_once_newest_first(
    new_uow: NewUow, policy: handlers.Policy, keys: KeyRing, clock: FixedClock
) -> None:
    # seven share one created_at, so the order id has to break the tie between pages
    stored = await ingest(new_uow, policy, *(order_command() for _ in range(7)))
    for _ in range(5):
        clock.advance(timedelta(minutes=1))
        stored += await ingest(new_uow, policy, order_command())
    expected = [o.order_id for o in sorted(stored, key=lambda o: (o.created_at, o.order_id), reverse=True)]

    walked: list[str] = []
    pages, token = 0, ""
    while True:
        page, token = await views.list_orders(new_uow(), keys, views.OrderFilter(), 3, token)
        walked += ids(page)
        pages += 1
        if not token:
            break
    assert walked == expected
    assert pages == 4


async def test_a_page_of_orders_and_the_dashboard_take_a_fixed_number_of_statements(
    new_uow: NewUow, policy: handlers.Policy, keys: KeyRing, clock: FixedClock, orders_engine: AsyncEngine
) -> None:
    await ingest(new_uow, policy, *(order_command(paid_at=clock.now()) for _ in range(20)))
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(orders_engine.sync_engine, "before_cursor_execute", count)
    try:
        page, _ = await views.list_orders(new_uow(), keys, views.OrderFilter(), 20, "")
        listed = len(statements)
        await views.order_stats(new_uow(), None, None)
    finally:
        event.remove(orders_engine.sync_engine, "before_cursor_execute", count)
    assert len(page) == 20
    assert (listed, len(statements) - listed) == (1, 3)


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "bm90IGpzb24",
        base64.urlsafe_b64encode(b'["p","2026-03-02T09:00:00+00:00","x"]').decode(),
        base64.urlsafe_b64encode(b'["o","2026-03-02T09:00:00","x"]').decode(),
        base64.urlsafe_b64encode(b'["o","yesterday","x"]').decode(),
        base64.urlsafe_b64encode(b'{"o": 1}').decode(),
    ],
)
async def test_a_page_token_this_list_did_not_return_is_refused_naming_the_field(
    new_uow: NewUow, keys: KeyRing, token: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await views.list_orders(new_uow(), keys, views.OrderFilter(), 10, token)
    assert refused.value.field == "page.page_token"


@pytest.mark.parametrize("size", [-1, 501])
async def test_a_page_size_out_of_range_is_refused_naming_the_field(
    new_uow: NewUow, keys: KeyRing, size: int
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await views.list_orders(new_uow(), keys, views.OrderFilter(), size, "")
    assert refused.value.field == "page.page_size"


async def test_page_size_zero_means_fifty(new_uow: NewUow, policy: handlers.Policy, keys: KeyRing) -> None:
    await ingest(new_uow, policy, *(order_command() for _ in range(51)))
    page, token = await views.list_orders(new_uow(), keys, views.OrderFilter(), 0, "")
    assert len(page) == 50
    assert token


async def test_a_created_window_ending_before_it_starts_is_refused(new_uow: NewUow, keys: KeyRing) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await views.list_orders(new_uow(), keys, views.OrderFilter(created_from=T0, created_to=T0), 0, "")
    assert refused.value.field == "filter.created_to"


async def test_export_yields_every_matching_order_in_chunks_each_in_its_own_transaction(
    new_uow: NewUow, policy: handlers.Policy, keys: KeyRing, clock: FixedClock
) -> None:
    unpaid = await ingest(new_uow, policy, *(order_command() for _ in range(7)))
    paid = await ingest_paid(new_uow, policy, clock)
    transactions = 0

    def counting_uow() -> OrdersUnitOfWork:
        nonlocal transactions
        transactions += 1
        return new_uow()

    only_unpaid = views.OrderFilter(statuses=(OrderStatus.PENDING_PAYMENT,))
    chunks = [chunk async for chunk in views.export_orders(counting_uow, keys, only_unpaid, chunk=3)]
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert sorted(order_id for chunk in chunks for order_id in ids(chunk)) == sorted(
        o.order_id for o in unpaid
    )
    assert transactions == 3

    everything = [chunk async for chunk in views.export_orders(new_uow, keys, views.OrderFilter(), chunk=4)]
    assert [len(chunk) for chunk in everything] == [4, 4]
    assert paid.order_id in ids(everything[0] + everything[1])


# ---- the dashboard -----------------------------------------------------------------------------


async def test_stats_count_statuses_dwell_and_the_exception_ratio_of_the_window(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock
) -> None:
    clock.advance(-timedelta(days=40))
    [old] = await ingest(new_uow, policy, order_command())
    clock.advance(timedelta(days=40))
    held, frozen = await ingest(new_uow, policy, order_command(), order_command())
    await ingest_paid(new_uow, policy, clock)
    clock.advance(HOUR)
    await handlers.hold_order(new_uow(), held.order_id, "address check", ACTOR)
    clock.advance(HOUR)
    # the warehouse starts picking an unpaid order: illegal, so the order is frozen
    await report(new_uow, policy, "WMS", frozen.order_id, clock.now(), status="PICKING")
    clock.advance(HOUR)

    stats = await views.order_stats(new_uow(), None, None)

    assert (stats.created_from, stats.created_to) == (T0 + 3 * HOUR - timedelta(days=30), T0 + 3 * HOUR)
    by_status = {row.status: row for row in stats.statuses}
    assert list(by_status) == list(OrderStatus)
    assert {status: row.orders for status, row in by_status.items() if row.orders} == {
        OrderStatus.ON_HOLD: 1,
        OrderStatus.EXCEPTION: 1,
        OrderStatus.PAID: 1,
    }
    assert stats.total_orders == 3
    assert stats.exception_ratio == pytest.approx(1 / 3)
    dwell = {
        status: row.average_dwell_seconds for status, row in by_status.items() if row.average_dwell_seconds
    }
    # unpaid for 1 h (held), 0 s (paid on arrival) and 2 h (frozen); the frozen order's attempted
    # PICKING is not a status it ever entered
    assert dwell == pytest.approx(
        {
            OrderStatus.PENDING_PAYMENT: 3600.0,
            OrderStatus.ON_HOLD: 7200.0,
            OrderStatus.PAID: 10800.0,
            OrderStatus.EXCEPTION: 3600.0,
        }
    )
    assert stats.definitions
    assert any("Exception ratio" in line for line in stats.definitions)

    only_old = await views.order_stats(new_uow(), T0 - timedelta(days=41), T0 - timedelta(days=39))
    assert only_old.total_orders == 1
    assert {row.status: row.orders for row in only_old.statuses}[OrderStatus.PENDING_PAYMENT] == 1
    assert old.order_id


async def test_stats_of_an_empty_window_are_zero_not_an_error(new_uow: NewUow) -> None:
    stats = await views.order_stats(new_uow(), None, None)
    assert stats.total_orders == 0
    assert stats.exception_ratio == 0.0
    assert [(stage.stage, stage.orders) for stage in stats.stages] == [(name, 0) for name in views.STAGES]


async def test_stage_durations_come_from_the_first_timeline_entries_of_each_stage(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock, orders_engine: AsyncEngine
) -> None:
    a, b, c = [await ingest_paid(new_uow, policy, clock) for _ in range(3)]
    await ingest(new_uow, policy, order_command())  # never paid: in no stage
    plan = [
        (a, 2, status_entry(OrderStatus.ALLOCATED)),
        (a, 6, Entry("scanned_out", ACTOR, "WMS", "scanned out of the warehouse")),
        (a, 7, status_entry(OrderStatus.SHIPPED)),
        (a, 79, status_entry(OrderStatus.DELIVERED)),
        (a, 80, status_entry(OrderStatus.DELIVERED)),  # only the first counts
        # an attempted allocation that froze the order is not an allocation
        (b, 1, status_entry(OrderStatus.ALLOCATED, kind="exception")),
        (b, 4, status_entry(OrderStatus.ALLOCATED)),
        (c, 3, status_entry(OrderStatus.ALLOCATED)),
        (c, 8, Entry("scanned_out", ACTOR, "WMS", "scanned out of the warehouse")),
    ]
    for order, hours, entry in plan:
        await plant_timeline(orders_engine, order.order_id, T0 + hours * HOUR, entry)
    clock.advance(100 * HOUR)

    stats = await views.order_stats(new_uow(), None, None)

    table = {row.stage: (row.orders, row.average_hours, row.p50_hours, row.p90_hours) for row in stats.stages}
    assert list(table) == list(views.STAGES)
    assert table["paid→allocated"] == (3, pytest.approx(3.0), pytest.approx(3.0), pytest.approx(3.8))
    assert table["allocated→out_of_warehouse"] == (
        2,
        pytest.approx(4.5),
        pytest.approx(4.5),
        pytest.approx(4.9),
    )
    assert table["out_of_warehouse→shipped"] == (
        1,
        pytest.approx(1.0),
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    assert table["shipped→delivered"] == (1, pytest.approx(72.0), pytest.approx(72.0), pytest.approx(72.0))


# ---- one order's timeline ----------------------------------------------------------------------


async def test_the_timeline_lists_an_orders_history_oldest_first(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock
) -> None:
    [order] = await ingest(new_uow, policy, order_command())
    clock.advance(HOUR)
    await handlers.hold_order(new_uow(), order.order_id, "fraud review", ACTOR)
    clock.advance(HOUR)
    await handlers.release_order(new_uow(), order.order_id, "", ACTOR)

    rows = await views.timeline(new_uow(), order.order_id)

    assert [(row.kind, row.from_status, row.to_status, row.at) for row in rows] == [
        ("created", None, OrderStatus.PENDING_PAYMENT, T0),
        ("status_changed", OrderStatus.PENDING_PAYMENT, OrderStatus.ON_HOLD, T0 + HOUR),
        ("held", None, None, T0 + HOUR),
        ("status_changed", OrderStatus.ON_HOLD, OrderStatus.PENDING_PAYMENT, T0 + 2 * HOUR),
        ("released", None, None, T0 + 2 * HOUR),
    ]
    assert rows[1].detail == "fraud review"
    assert (rows[1].actor_type, rows[1].actor_id, rows[1].source) == ("service", "test", "test")
    assert [row.sequence for row in rows[1:]] == sorted(row.sequence for row in rows[1:])


async def test_an_order_paid_on_arrival_reads_created_before_what_happened_at_the_same_instant(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock
) -> None:
    paid = await ingest_paid(new_uow, policy, clock)

    rows = await views.timeline(new_uow(), paid.order_id)

    assert rows[0].kind == "created"
    assert sorted(row.kind for row in rows) == ["created", "paid", "status_changed"]


async def test_the_timeline_of_an_unknown_order_is_not_found(new_uow: NewUow) -> None:
    with pytest.raises(NotFound):
        await views.timeline(new_uow(), new_id())
    with pytest.raises(InvalidArgument) as refused:
        await views.timeline(new_uow(), "order-1")
    assert refused.value.field == "order_id"


# ---- drift -------------------------------------------------------------------------------------


async def test_the_drift_report_lists_disagreeing_sources_and_counts_them_per_source(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock, orders_engine: AsyncEngine
) -> None:
    agreeing = await ingest_paid(new_uow, policy, clock)
    unpaid_seen_as_paid, unpaid_label = await ingest(new_uow, policy, order_command(), order_command())
    labelled = await ingest_paid(new_uow, policy, clock)
    clock.advance(HOUR)
    await report(new_uow, policy, "TAOBAO", agreeing.order_id, clock.now(), status="WAIT_SELLER_SEND_GOODS")
    await report(
        new_uow, policy, "TAOBAO", unpaid_seen_as_paid.order_id, clock.now(), status="WAIT_SELLER_SEND_GOODS"
    )
    await report(
        new_uow, policy, "ERP", labelled.order_id, clock.now() - 10 * timedelta(minutes=1), status="SHIPPED"
    )
    await report(new_uow, policy, "ERP", unpaid_label.order_id, clock.now(), status="LABEL_PRINTED")
    # a source row that means nothing canonical is no evidence of drift
    await execute(
        orders_engine,
        insert(source_status_table).values(
            order_id=agreeing.order_id,
            source="WMS",
            raw_status="UNKNOWN",
            means=[],
            rule="",
            reported_at=clock.now(),
            received_at=clock.now(),
        ),
    )
    clock.advance(HOUR)

    full = await views.drift_report(new_uow())

    assert {(drift.order_id, drift.source) for drift in full.drifts} == {
        (unpaid_seen_as_paid.order_id, "TAOBAO"),
        (labelled.order_id, "ERP"),
        (unpaid_label.order_id, "ERP"),
    }
    assert full.per_source == {"TAOBAO": 1, "ERP": 2}
    assert full.drift_count == 3
    assert full.generated_at == clock.now()
    [erp] = [drift for drift in full.drifts if drift.order_id == labelled.order_id]
    assert erp.canonical_status is OrderStatus.PAID
    assert erp.source_status == "SHIPPED"
    assert OrderStatus.PACKED in erp.source_means and OrderStatus.PAID not in erp.source_means
    assert erp.canonical_age_seconds == 2 * 3600
    assert erp.source_age_seconds == 3600 + 600
    assert full.drifts[0] == erp  # the longest-standing disagreement first

    only_erp = await views.drift_report(new_uow(), source="erp")
    assert {drift.source for drift in only_erp.drifts} == {"ERP"}
    assert only_erp.per_source == {"ERP": 2}

    limited = await views.drift_report(new_uow(), limit=1)
    assert len(limited.drifts) == 1
    assert limited.per_source == {"TAOBAO": 1, "ERP": 2}


async def test_a_saved_drift_report_keeps_its_drifts_and_counts(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock, orders_engine: AsyncEngine
) -> None:
    [unpaid] = await ingest(new_uow, policy, order_command())
    await report(new_uow, policy, "TAOBAO", unpaid.order_id, clock.now(), status="WAIT_SELLER_SEND_GOODS")

    report_id = await views.save_drift_report(new_uow(), await views.drift_report(new_uow()))

    async with orders_engine.connect() as conn:
        row = (await conn.execute(select(drift_reports_table))).one()
    assert row.report_id == report_id
    assert (row.generated_at, row.drift_count, row.per_source) == (T0, 1, {"TAOBAO": 1})
    [drift] = row.drifts
    assert (drift["order_id"], drift["source"], drift["canonical_status"]) == (
        unpaid.order_id,
        "TAOBAO",
        "PENDING_PAYMENT",
    )


# ---- quarantine, payments, dead letters --------------------------------------------------------


async def test_quarantined_payloads_are_hidden_unless_revealed(
    new_uow: NewUow, policy: handlers.Policy, keys: KeyRing, clock: FixedClock
) -> None:
    taobao_payload = {"tid": "TB-1", "receiver_mobile": "13900000009"}
    results, _ = await handlers.ingest(
        new_uow(), policy, [handlers.ChannelPayload(Channel.TAOBAO, taobao_payload)], ACTOR
    )
    assert results[0].outcome is handlers.Outcome.REJECTED
    clock.advance(HOUR)
    await handlers.ingest(
        new_uow(), policy, [handlers.ChannelPayload(Channel.JD, {"orderId": "JD-1"})], ACTOR
    )

    hidden, token = await views.list_quarantine(new_uow(), keys, None, 0, "", reveal=False)
    assert [row.channel for row in hidden] == [Channel.JD, Channel.TAOBAO]
    assert {row.payload for row in hidden} == {views.HIDDEN_PAYLOAD}
    assert token == ""
    assert hidden[1].channel_order_id == "TB-1"
    assert hidden[1].error_field

    shown, _ = await views.list_quarantine(new_uow(), keys, Channel.TAOBAO, 0, "", reveal=True)
    assert [json.loads(row.payload) for row in shown] == [taobao_payload]

    first, token = await views.list_quarantine(new_uow(), keys, None, 1, "", reveal=False)
    second, last = await views.list_quarantine(new_uow(), keys, None, 1, token, reveal=False)
    assert [row.channel for row in first + second] == [Channel.JD, Channel.TAOBAO]
    assert last == ""


async def test_payments_are_listed_newest_first_by_state_and_order(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock
) -> None:
    [order] = await ingest(new_uow, policy, order_command(Channel.OWN_SHOP))

    def notification(merchant_order_no: str) -> PaymentNotification:
        return PaymentNotification(
            "wechat_pay",
            random_ref("tx"),
            merchant_order_no,
            "CNY",
            order.payable_minor,
            clock.now(),
            PaymentStatus.SUCCESS,
        )

    applied, _, _ = await handlers.report_payment(new_uow, policy, notification(order.order_id))
    clock.advance(HOUR)
    parked, _, _ = await handlers.report_payment(new_uow, policy, notification("no-such-order"))
    assert (applied.state, parked.state) == (PaymentState.APPLIED, PaymentState.PARKED)

    everything, token = await views.list_payments(new_uow())
    assert [record.payment_id for record in everything] == [parked.payment_id, applied.payment_id]
    assert token == ""
    assert everything[1].order_id == order.order_id
    assert everything[1].notification.amount_minor == order.payable_minor

    by_state, _ = await views.list_payments(new_uow(), state="PARKED")
    assert [record.payment_id for record in by_state] == [parked.payment_id]
    by_order, _ = await views.list_payments(new_uow(), order_id=order.order_id)
    assert [record.payment_id for record in by_order] == [applied.payment_id]

    first, token = await views.list_payments(new_uow(), page_size=1)
    second, last = await views.list_payments(new_uow(), page_size=1, page_token=token)
    assert [record.payment_id for record in first + second] == [parked.payment_id, applied.payment_id]
    assert last == ""

    with pytest.raises(InvalidArgument) as refused:
        await views.list_payments(new_uow(), state="LOST")
    assert refused.value.field == "state"


async def test_dead_letters_join_dead_payments_and_dead_order_steps_newest_first(
    new_uow: NewUow, policy: handlers.Policy, clock: FixedClock, orders_engine: AsyncEngine
) -> None:
    stuck, healthy = await ingest(new_uow, policy, order_command(), order_command())

    def payment(state: PaymentState, failed_at: datetime) -> dict[str, object]:
        return {
            "payment_id": new_id(),
            "provider": "alipay",
            "transaction_id": random_ref("tx"),
            "merchant_order_no": "M-1",
            "order_id": None,
            "currency": "CNY",
            "amount_minor": 100,
            "paid_at": T0,
            "status": "SUCCESS",
            "state": state.value,
            "reason": "ValueError: boom",
            "attempts": 3,
            "received_at": T0,
            "updated_at": failed_at,
        }

    older, newer, alive = (
        payment(PaymentState.DEAD, T0 + HOUR),
        payment(PaymentState.DEAD, T0 + 3 * HOUR),
        payment(PaymentState.RECEIVED, T0 + 4 * HOUR),
    )
    await execute(
        orders_engine,
        insert(payments_table).values([older, newer, alive]),
        update(orders_table)
        .where(orders_table.c.order_id == stuck.order_id)
        .values(
            step_dead=True, step_error="routing: no warehouse", step_attempts=5, updated_at=T0 + 2 * HOUR
        ),
    )

    letters, token = await views.list_dead_letters(new_uow())

    assert token == ""
    assert [
        (row.dead_letter_id, row.kind, row.order_id, row.error, row.attempts, row.failed_at)
        for row in letters
    ] == [
        (f"payment:{newer['payment_id']}", "payment_notification", "", "ValueError: boom", 3, T0 + 3 * HOUR),
        (f"step:{stuck.order_id}", "order_step", stuck.order_id, "routing: no warehouse", 5, T0 + 2 * HOUR),
        (f"payment:{older['payment_id']}", "payment_notification", "", "ValueError: boom", 3, T0 + HOUR),
    ]
    assert healthy.order_id not in {row.order_id for row in letters}

    first, token = await views.list_dead_letters(new_uow(), page_size=2)
    rest, last = await views.list_dead_letters(new_uow(), page_size=2, page_token=token)
    assert [row.dead_letter_id for row in first + rest] == [row.dead_letter_id for row in letters]
    assert last == ""
