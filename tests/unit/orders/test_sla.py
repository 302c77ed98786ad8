"""SLA timers: limits per category and stage, the colour at a moment, and the job that tells the owner
at amber and escalates to the backup at red (an injected clock throughout)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.orders import handlers, sla_rules
from services.orders.domain import sla
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, OrderLine, SlaReached
from services.orders.domain.timeline import Actor
from tests.unit.orders.fakes import NOW, POLICY, FakeOrders
from tests.unit.orders.test_model import command

BOOK = sla_rules.shipped_sla()
SLA_POLICY = dataclasses.replace(POLICY, sla=BOOK)
FRESH = (OrderLine("FRESH-MILK", "Milk", 1, 1200), OrderLine("SKU-CUP", "Cup", 1, 1999))
NORMAL = (OrderLine("SKU-CUP", "Cup", 1, 1999),)
M = timedelta(minutes=1)


def test_the_shipped_limits_are_the_domains_defaults() -> None:
    fresh, normal = BOOK.categories["fresh"], BOOK.categories["normal"]
    assert fresh.limits[sla.Stage.FULFILMENT].breach == 45 * M
    assert normal.limits[sla.Stage.FULFILMENT].breach == 120 * M
    assert BOOK.default_category == "normal"


def test_one_fresh_line_makes_the_order_fresh_and_an_unknown_sku_is_the_default() -> None:
    assert BOOK.category_of(["SKU-CUP", "FRESH-MILK"]).name == "fresh"
    assert BOOK.category_of(["SKU-CUP"]).name == "normal"
    assert BOOK.category_of([]).name == "normal"


def test_the_longest_prefix_names_a_skus_category() -> None:
    book = sla.book_from_document(
        {
            "default_category": "normal",
            "categories": {
                "normal": {"limits": {"fulfilment": {"warn": "1h", "breach": "2h"}}, "sku_prefixes": ["F"]},
                "fresh": {
                    "limits": {"fulfilment": {"warn": "30m", "breach": "45m"}},
                    "sku_prefixes": ["FR-"],
                },
            },
        }
    )
    assert book.category_of(["FX-1"]).name == "normal"
    assert book.category_of(["FR-1"]).name == "fresh"


def test_fulfilment_runs_from_payment_until_the_scan_out_then_delivery_until_delivered() -> None:
    terms = BOOK.terms_for(["FRESH-MILK"])
    paid = sla.running(terms, OrderStatus.ALLOCATED, NOW, None)
    assert paid is not None
    assert (paid.stage, paid.started_at, paid.warn_at, paid.deadline) == (
        sla.Stage.FULFILMENT,
        NOW,
        NOW + 30 * M,
        NOW + 45 * M,
    )
    out = NOW + 40 * M
    shipped = sla.running(terms, OrderStatus.SHIPPED, NOW, out)
    assert shipped is not None and (shipped.stage, shipped.started_at) == (sla.Stage.DELIVERY, out)
    held = sla.running(terms, OrderStatus.ON_HOLD, NOW, None)
    assert held is not None and held.stage is sla.Stage.FULFILMENT  # the customer waits all the same
    assert sla.running(terms, OrderStatus.PENDING_PAYMENT, None, None) is None
    assert sla.running(terms, OrderStatus.CANCELLED, NOW, None) is None
    assert sla.running(terms, OrderStatus.DELIVERED, NOW, out) is None
    assert sla.running(None, OrderStatus.PAID, NOW, None) is None


def test_the_colour_turns_at_the_warning_level_and_at_the_limit() -> None:
    timer = sla.Timer(sla.Stage.FULFILMENT, NOW, NOW + 30 * M, NOW + 45 * M)
    assert timer.level_at(NOW + 30 * M - timedelta(microseconds=1)) is sla.Level.GREEN
    assert timer.level_at(NOW + 30 * M) is sla.Level.AMBER
    assert timer.level_at(NOW + 45 * M) is sla.Level.RED
    assert [timer.due_after(level) for level in sla.Level] == [NOW + 30 * M, NOW + 45 * M, None]


def test_escalation_tells_the_owner_at_amber_and_the_backup_at_red_once_each() -> None:
    state = sla.SlaState(terms=BOOK.terms_for(["FRESH-MILK"]))
    state.follow(OrderStatus.PAID, NOW, None)
    owners = sla.Owners("warehouse_supervisor", "ops_manager")
    assert state.due_at == NOW + 30 * M
    assert sla.escalate(state, NOW + 10 * M, owners) is None
    amber = sla.escalate(state, NOW + 31 * M, owners)
    assert amber is not None and (amber.level, amber.notify, amber.escalated) == (
        sla.Level.AMBER,
        "warehouse_supervisor",
        False,
    )
    assert state.due_at == NOW + 45 * M
    assert sla.escalate(state, NOW + 32 * M, owners) is None  # amber already acted on
    red = sla.escalate(state, NOW + 50 * M, owners)
    assert red is not None and (red.level, red.notify, red.escalated) == (sla.Level.RED, "ops_manager", True)
    assert (state.due_at, state.escalated_to) == (None, "ops_manager")


def test_an_order_late_past_both_levels_goes_straight_to_red() -> None:
    state = sla.SlaState(terms=BOOK.terms_for(["SKU-CUP"]))
    state.follow(OrderStatus.PAID, NOW, None)
    red = sla.escalate(state, NOW + 3 * 60 * M, sla.Owners("a", "b"))
    assert red is not None and red.level is sla.Level.RED and state.due_at is None


def test_an_orders_own_owners_come_before_its_queues_and_a_new_stage_starts_green() -> None:
    state = sla.SlaState(terms=BOOK.terms_for(["SKU-CUP"]), owner="li.wei", backup="zhang.min")
    state.follow(OrderStatus.PAID, NOW, None)
    red = sla.escalate(state, NOW + 3 * 60 * M, sla.Owners("queue-owner", "queue-backup"))
    assert red is not None and red.notify == "zhang.min"
    state.follow(OrderStatus.SHIPPED, NOW, NOW + 3 * 60 * M)
    assert (state.stage, state.level, state.escalated_to) == (sla.Stage.DELIVERY, sla.Level.GREEN, "")
    assert state.due_at == NOW + 3 * 60 * M + 60 * 60 * M
    state.follow(OrderStatus.DELIVERED, NOW, NOW + 3 * 60 * M)
    assert (state.stage, state.due_at) == (None, None)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "must be a mapping"),
        ({"categories": {}, "default_category": "x"}, "at least one category"),
        ({"categories": {"a": {"limits": {"fulfilment": {"warn": "2h", "breach": "1h"}}}}}, "warn must come"),
        ({"categories": {"a": {"limits": {"packing": {"warn": "1h", "breach": "2h"}}}}}, "unknown stage"),
        (
            {"categories": {"a": {"limits": {"fulfilment": {"warn": "soon", "breach": "2h"}}}}},
            "not a duration",
        ),
        ({"categories": {"a": {"limits": {"fulfilment": {"warn": "1h"}}}}}, "give `warn` and `breach`"),
        (
            {
                "categories": {"a": {"limits": {"fulfilment": {"warn": "1h", "breach": "2h"}}}},
                "default_category": "b",
            },
            "default_category",
        ),
        ({"categories": {"a": {"limits": {}, "colour": "red"}}}, "unknown keys"),
    ],
)
def test_a_doubtful_rules_document_is_refused_saying_why(document: object, problem: str) -> None:
    with pytest.raises(sla.InvalidSla, match=problem):
        sla.book_from_document(document)


def test_duplicate_keys_in_the_rules_file_are_refused() -> None:
    with pytest.raises(sla.InvalidSla, match="duplicate key"):
        sla_rules.load_sla("default_category: normal\ndefault_category: fresh\ncategories: {}\n")


async def _paid_order(db: FakeOrders, lines: tuple[OrderLine, ...], ref: str) -> str:
    given = command(lines=lines, paid_at=NOW, channel_order_id=ref)
    [result], _ = await handlers.ingest(db.uow(), SLA_POLICY, [given], Actor.service("test"))
    assert result.order is not None and result.order.status is OrderStatus.PAID
    return result.order.order_id


async def test_a_fresh_order_not_out_in_45_minutes_turns_red_and_escalates_to_the_backup() -> None:
    db = FakeOrders()
    fresh = await _paid_order(db, FRESH, "TB-F1")
    normal = await _paid_order(db, NORMAL, "TB-N1")
    await handlers.set_queue_owners(
        db.uow(), BOOK, "fulfilment/fresh", "warehouse_supervisor", "ops_lead", "admin"
    )
    assert db.order(fresh).sla.due_at == NOW + 30 * M

    db.clock.advance(20 * M)
    run, _ = await handlers.check_sla(db.uow())
    assert (run.due, run.reached) == (0, [])  # nothing due: nothing read

    db.clock.advance(11 * M)
    run, _ = await handlers.check_sla(db.uow())
    assert run.reached == [handlers.Reached(fresh, sla.Level.AMBER, "warehouse_supervisor")]
    [(_, warning)] = db.published(AlertRaised)
    assert isinstance(warning, AlertRaised)
    assert (warning.kind, warning.severity, warning.roles) == (
        "sla_warning",
        "medium",
        ("warehouse_supervisor",),
    )

    db.clock.advance(15 * M)  # 46 minutes after payment
    run, _ = await handlers.check_sla(db.uow())
    assert run.reached == [handlers.Reached(fresh, sla.Level.RED, "ops_lead")]
    breached = [event for _, event in db.published(SlaReached)]
    assert [(e.level, e.notify, e.escalated) for e in breached if isinstance(e, SlaReached)] == [
        (1, "warehouse_supervisor", False),
        (2, "ops_lead", True),
    ]
    alerts = [event for _, event in db.published(AlertRaised) if isinstance(event, AlertRaised)]
    assert (alerts[-1].kind, alerts[-1].severity, alerts[-1].roles) == ("sla_breached", "high", ("ops_lead",))
    assert db.order(fresh).sla.escalated_to == "ops_lead"
    assert "sla_red" in db.kinds(fresh)
    assert db.order(normal).sla.level is sla.Level.GREEN  # a normal order has two hours

    run, _ = await handlers.check_sla(db.uow())
    assert run.due == 0  # red is the last level: the timer is no longer due


async def test_a_cancelled_order_stops_its_clock() -> None:
    db = FakeOrders()
    order_id = await _paid_order(db, FRESH, "TB-F2")
    uow = db.uow()
    async with uow:
        stored = await handlers.common.locked_order(uow, order_id)
        stored.order.cancel("customer asked", db.clock.now())
        await handlers.save_order(uow, stored, Actor.service("test"), "test", handlers.Changes())
        await uow.commit()
    assert (db.order(order_id).sla.stage, db.order(order_id).sla.due_at) == (None, None)
    db.clock.advance(60 * M)
    run, _ = await handlers.check_sla(db.uow())
    assert (run.due, run.reached) == (0, [])


async def test_owners_are_checked_and_an_unknown_queue_is_named() -> None:
    db = FakeOrders()
    with pytest.raises(InvalidArgument) as unknown:
        await handlers.set_queue_owners(db.uow(), BOOK, "packing/fresh", "a", "b", "admin")
    assert unknown.value.field == "owners.queue"
    with pytest.raises(InvalidArgument) as missing:
        await handlers.set_queue_owners(db.uow(), BOOK, "fulfilment/fresh", " ", "b", "admin")
    assert missing.value.field == "owners.owner"
    with pytest.raises(InvalidArgument) as control:
        await handlers.set_queue_owners(db.uow(), BOOK, "fulfilment/fresh", "a\nb", "b", "admin")
    assert control.value.field == "owners.owner"
    assert await handlers.queue_owners(db.uow()) == {}
