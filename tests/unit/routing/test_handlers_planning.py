from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.clock import FixedClock
from services.kit.errors import InvalidArgument
from services.routing.domain.commands import PlanCommand
from services.routing.domain.defaults import default_rules
from services.routing.domain.documents import to_document
from services.routing.domain.events import AlertRaised, FulfilmentPlanned, OrderParked
from services.routing.domain.model import ParkReason, RouteLine
from services.routing.domain.rules import Coverage, Rate, Tier
from services.routing.handlers.parked import mark_parked_due, retry_parked
from services.routing.handlers.planning import plan_fulfilment
from services.routing.handlers.rule_cache import RuleSetCache
from services.routing.handlers.rule_sets import activate, ensure_default_rules, save_draft
from tests.unit.routing.fakes import FakeStock, FakeStore

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def hangzhou(order_id: str = "o-1", refused: str = "") -> PlanCommand:
    return PlanCommand(order_id, "浙江省", "杭州市", (RouteLine("TEA", 2),), refused_decision_id=refused)


async def routing() -> tuple[FakeStore, RuleSetCache]:
    store = FakeStore(FixedClock(NOW))
    await ensure_default_rules(store.uow())
    return store, RuleSetCache()


async def test_an_order_is_planned_from_the_warehouse_holding_its_stock_logged_counted_and_announced() -> (
    None
):
    store, cache = await routing()
    stock = FakeStock({("TEA", "WH-SH"): 10, ("TEA", "WH-CD"): 10})

    recorded = await plan_fulfilment(store.uow, cache, stock, hangzhou())

    assert [s.warehouse_id for s in recorded.decision.shipments] == ["WH-SH"]
    assert recorded.decided_at == NOW and recorded.decision.parked is None
    assert recorded.decision.explanation[0].startswith("Shanghai chosen")
    [logged] = store.state.decisions
    assert logged.recorded == recorded
    assert logged.inputs["stock"] == [["TEA", "WH-CD", 10], ["TEA", "WH-SH", 10]]
    assert store.state.load == {(NOW.date(), "WH-SH"): 1}
    assert store.published == [FulfilmentPlanned("o-1", recorded.decision_id, 1, recorded.decision.shipments)]
    assert not store.state.parked


async def test_a_repeat_of_a_planned_order_answers_with_its_plan_and_writes_nothing() -> None:
    store, cache = await routing()
    stock = FakeStock({("TEA", "WH-SH"): 10})
    first = await plan_fulfilment(store.uow, cache, stock, hangzhou())

    again = await plan_fulfilment(store.uow, cache, FakeStock(), hangzhou())  # stock gone meanwhile

    assert again.decision_id == first.decision_id and not again.decision.parked
    assert len(store.state.decisions) == 1 and len(store.published) == 1
    assert not store.state.parked


async def test_an_order_with_no_stock_anywhere_is_parked_out_of_stock_and_announced() -> None:
    store, cache = await routing()

    recorded = await plan_fulfilment(store.uow, cache, FakeStock(), hangzhou())

    assert recorded.decision.parked is ParkReason.OUT_OF_STOCK and not recorded.decision.shipments
    parked = store.state.parked["o-1"]
    assert (parked.order.reason, parked.order.parked_at, parked.skus) == (
        ParkReason.OUT_OF_STOCK,
        NOW,
        ["TEA"],
    )
    assert parked.request["province"] == "Zhejiang" and parked.retry_due is None
    parked_event = OrderParked(
        "o-1", recorded.decision_id, ParkReason.OUT_OF_STOCK, recorded.decision.park_detail
    )
    alert = AlertRaised("o-1", f"order o-1 parked: out_of_stock {recorded.decision.park_detail}".strip())
    assert store.published == [parked_event, alert]
    assert (alert.kind, alert.dedupe_key) == ("order_parked", "routing:parked:o-1")
    assert not store.state.load


async def test_a_parked_order_is_planned_once_stock_for_it_arrives() -> None:
    store, cache = await routing()
    await plan_fulfilment(store.uow, cache, FakeStock(), hangzhou())
    stock = FakeStock({("TEA", "WH-WH"): 5})
    assert await retry_parked(store.uow, cache, stock) == 0  # not due yet

    uow = store.uow()
    async with uow:
        assert await mark_parked_due(uow, "TEA") == 1
        await uow.commit()
    assert await retry_parked(store.uow, cache, stock) == 1

    assert not store.state.parked
    planned = await store.uow().decisions.current("o-1")
    assert planned is not None and [s.warehouse_id for s in planned.decision.shipments] == ["WH-WH"]
    assert [type(e) for e in store.published] == [OrderParked, AlertRaised, FulfilmentPlanned]


async def test_a_replan_of_a_refused_plan_decides_on_live_stock_and_supersedes_it() -> None:
    store, cache = await routing()
    first = await plan_fulfilment(store.uow, cache, FakeStock({("TEA", "WH-SH"): 10}), hangzhou())
    # another order took Shanghai's stock before this one could reserve it; Wuhan has some
    live = FakeStock({("TEA", "WH-WH"): 5})

    replanned = await plan_fulfilment(store.uow, cache, live, hangzhou(refused=first.decision_id))

    assert replanned.decision_id != first.decision_id
    assert [s.warehouse_id for s in replanned.decision.shipments] == ["WH-WH"]
    assert replanned.decision.explanation[-1].startswith(f"replanned: decision {first.decision_id}")
    assert [(d.recorded.decision_id, d.superseded_by) for d in store.state.decisions] == [
        (first.decision_id, replanned.decision_id),
        (replanned.decision_id, ""),
    ]
    assert [e.decision_id for e in store.published if isinstance(e, FulfilmentPlanned)] == [
        first.decision_id,
        replanned.decision_id,
    ]
    # a late repeat of the same replan, or a plain repeat, is answered with the new plan
    assert (
        await plan_fulfilment(store.uow, cache, live, hangzhou(refused=first.decision_id))
    ).decision_id == (replanned.decision_id)
    assert (await plan_fulfilment(store.uow, cache, live, hangzhou())).decision_id == replanned.decision_id
    assert len(store.state.decisions) == 2


async def test_a_replan_that_finds_no_stock_anywhere_parks_the_order() -> None:
    store, cache = await routing()
    first = await plan_fulfilment(store.uow, cache, FakeStock({("TEA", "WH-SH"): 10}), hangzhou())

    parked = await plan_fulfilment(store.uow, cache, FakeStock(), hangzhou(refused=first.decision_id))

    assert parked.decision.parked is ParkReason.OUT_OF_STOCK
    assert "o-1" in store.state.parked
    current = await store.uow().decisions.current("o-1")
    assert current is not None and current.decision_id == parked.decision_id


async def test_a_replan_naming_a_plan_that_is_not_the_current_one_is_a_plain_repeat() -> None:
    store, cache = await routing()
    first = await plan_fulfilment(store.uow, cache, FakeStock({("TEA", "WH-SH"): 10}), hangzhou())

    again = await plan_fulfilment(
        store.uow, cache, FakeStock({("TEA", "WH-WH"): 5}), hangzhou(refused="d-old")
    )

    assert again.decision_id == first.decision_id
    assert [d.superseded_by for d in store.state.decisions] == [""]


async def test_an_unknown_sku_is_refused_naming_the_order_line() -> None:
    store, cache = await routing()
    command = PlanCommand("o-1", "浙江", "杭州", (RouteLine("TEA", 1), RouteLine("NOPE", 1)))

    with pytest.raises(InvalidArgument) as refused:
        await plan_fulfilment(store.uow, cache, FakeStock(known={"TEA"}), command)

    assert (refused.value.field, refused.value.problem) == ("lines[1].sku", "unknown SKU NOPE")
    assert not store.state.decisions and not store.published


async def test_a_full_warehouse_is_passed_over_by_todays_load() -> None:
    store, cache = await routing()
    capacity = next(
        w.daily_capacity for w in (await cache.active(store.uow())).warehouses if w.warehouse_id == "WH-SH"
    )
    store.state.load[(NOW.date(), "WH-SH")] = capacity
    store.state.load[(NOW.date() - timedelta(days=1), "WH-WH")] = 10**6  # yesterday's load does not count

    recorded = await plan_fulfilment(
        store.uow, cache, FakeStock({("TEA", "WH-SH"): 9, ("TEA", "WH-WH"): 9}), hangzhou()
    )

    assert [s.warehouse_id for s in recorded.decision.shipments] == ["WH-WH"]
    assert any(
        line.startswith("Shanghai excluded: at its daily capacity") for line in recorded.decision.explanation
    )


async def test_a_parked_order_abroad_is_planned_again_in_its_own_country() -> None:
    store, cache = await routing()
    los_angeles = PlanCommand("o-us", "California", "Los Angeles", (RouteLine("TEA", 1),), country="US")
    stock = FakeStock({("TEA", "WH-XB"): 5})
    parked = await plan_fulfilment(store.uow, cache, stock, los_angeles)
    assert parked.decision.parked is ParkReason.NO_COVERAGE
    rules = default_rules()
    to_the_us = replace(
        rules,
        coverage=(*rules.coverage, Coverage("WH-XB", Tier.STANDARD, ("US",))),
        rates=(*rules.rates, Rate("WH-XB", "US", "SF-INTL", 9000, 3000, 7)),
    )
    draft = await save_draft(store.uow(), json.dumps(to_document(to_the_us)), "ship to the US")
    await activate(store.uow, cache, draft.version)

    assert await retry_parked(store.uow, cache, stock) == 1

    planned = await store.uow().decisions.current("o-us")
    assert planned is not None and [s.warehouse_id for s in planned.decision.shipments] == ["WH-XB"]
    assert planned.decision.destination.country == "US" and not store.state.parked
