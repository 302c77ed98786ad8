"""Reservation decisions on a unit of work in memory: all or none, repeats, expiry, commit, release, move."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.inventory import handlers
from services.inventory.domain import events
from services.inventory.domain.model import Line, Movement, ReservationStatus, ShortageReason
from services.inventory.handlers import LowStockScope, Policy
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.unit.inventory.fakes import FakeInventory

POLICY = Policy()  # 95 % cap


@pytest.fixture
def inventory() -> FakeInventory:
    built = FakeInventory()
    built.stock("SH", "TEA", 10)
    built.stock("SH", "CUP", 100)
    built.stock("BJ", "TEA", 3)
    return built


async def test_a_reservation_takes_every_line_records_the_ledger_and_announces_it(
    inventory: FakeInventory,
) -> None:
    outcome = await handlers.reserve(
        inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 2), Line("CUP", "SH", 5)]
    )
    assert outcome.reserved and outcome.reservation is not None
    assert outcome.lines == (Line("CUP", "SH", 5), Line("TEA", "SH", 2))  # in lock order
    assert (inventory.row("TEA", "SH"), inventory.row("CUP", "SH")) == ((10, 2, True), (100, 5, True))
    assert [(e.kind, e.sku, e.reserved_delta) for e in inventory.state.ledger if e.order_id == "o-1"] == [
        (Movement.RESERVE, "CUP", 5),
        (Movement.RESERVE, "TEA", 2),
    ]
    [reserved] = inventory.published(events.StockReserved)
    assert reserved == events.StockReserved(
        "o-1",
        outcome.reservation.reservation_id,
        outcome.lines,
        inventory.clock.now() + POLICY.reservation_ttl,
    )


async def test_one_short_line_reserves_nothing_and_names_what_is_available(inventory: FakeInventory) -> None:
    outcome = await handlers.reserve(
        inventory.uow, POLICY, "o-1", [Line("CUP", "SH", 5), Line("TEA", "SH", 10)]
    )
    assert not outcome.reserved
    assert [(s.sku, s.requested, s.available, s.reason) for s in outcome.shortages] == [
        ("TEA", 10, 9, ShortageReason.INSUFFICIENT)
    ]
    assert inventory.row("CUP", "SH") == (100, 0, True)
    assert inventory.state.reservations == {} and inventory.state.published == []


async def test_shortages_tell_a_missing_stock_record_from_a_row_that_does_not_sell(
    inventory: FakeInventory,
) -> None:
    inventory.stock("BJ", "CUP", 10)
    inventory.state.stock[("CUP", "BJ")] = replace(inventory.state.stock[("CUP", "BJ")], sellable=False)
    inventory.state.warehouses["XA"] = "Xi'an"  # known, but no TEA there
    outcome = await handlers.reserve(
        inventory.uow, POLICY, "o-1", [Line("CUP", "BJ", 1), Line("TEA", "XA", 1)]
    )
    assert [(s.sku, s.warehouse_id, s.reason) for s in outcome.shortages] == [
        ("CUP", "BJ", ShortageReason.NOT_SELLABLE),
        ("TEA", "XA", ShortageReason.NO_STOCK_RECORD),
    ]


async def test_a_line_naming_an_unknown_sku_or_warehouse_is_refused_by_its_index(
    inventory: FakeInventory,
) -> None:
    with pytest.raises(InvalidArgument) as unknown_sku:
        await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 1), Line("NOPE", "SH", 1)])
    assert unknown_sku.value.field == "lines[1].sku"
    with pytest.raises(InvalidArgument) as unknown_warehouse:
        await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "MARS", 1)])
    assert unknown_warehouse.value.field == "lines[0].warehouse_id"


async def test_a_repeat_returns_the_first_reservation_and_other_lines_are_refused(
    inventory: FakeInventory,
) -> None:
    first = await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 3)])
    again = await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 3)])
    assert again.reserved and again.reservation is not None and first.reservation is not None
    assert again.reservation.reservation_id == first.reservation.reservation_id
    assert inventory.row("TEA", "SH") == (10, 3, True)
    with pytest.raises(FailedPrecondition, match="different reservation"):
        await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 4)])
    assert len(inventory.published(events.StockReserved)) == 1


async def test_room_held_by_reservations_past_their_time_is_freed_before_giving_up(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "old", [Line("TEA", "SH", 9)], timedelta(minutes=1))
    inventory.clock.advance(timedelta(minutes=5))
    outcome = await handlers.reserve(inventory.uow, POLICY, "new", [Line("TEA", "SH", 9)])
    assert outcome.reserved
    old, _ = await handlers.get_reservation(inventory.uow(), "old")
    assert old.status is ReservationStatus.EXPIRED
    assert [e.order_id for e in inventory.published(events.ReservationExpired)] == ["old"]
    assert inventory.state.reserve_calls == [True, True, False]  # the retry takes the general path


async def test_an_order_whose_own_reservation_lapsed_reserves_again(inventory: FakeInventory) -> None:
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 2)], timedelta(minutes=1))
    inventory.clock.advance(timedelta(minutes=2))
    outcome = await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 4)])
    assert outcome.reserved and outcome.lines == (Line("TEA", "SH", 4),)
    assert inventory.row("TEA", "SH") == (10, 4, True)


async def test_without_room_and_nothing_past_its_time_the_shortage_comes_back_at_once(
    inventory: FakeInventory,
) -> None:
    outcome = await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "BJ", 3)])
    assert [s.available for s in outcome.shortages] == [2]
    assert inventory.state.reserve_calls == [True]


async def test_in_pool_scope_the_store_takes_the_general_path(inventory: FakeInventory) -> None:
    pool = Policy(low_stock_scope=LowStockScope.POOL)
    assert (await handlers.reserve(inventory.uow, pool, "o-1", [Line("TEA", "SH", 1)])).reserved
    assert inventory.state.reserve_calls == [False]


async def test_a_reservation_crossing_the_safety_level_stops_the_row_selling_and_opens_a_work_order(
    inventory: FakeInventory,
) -> None:
    inventory.stock("SH", "TEA", 10, safety_level=3)
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 8)])
    assert inventory.row("TEA", "SH") == (10, 8, False)
    [low] = inventory.published(events.LowStock)
    [order] = inventory.state.replenishment.values()
    assert (low.sellable_units, low.replenishment_order_id) == (2, order.replenishment_order_id)
    refused = await handlers.reserve(inventory.uow, POLICY, "o-2", [Line("TEA", "SH", 1)])
    assert [s.reason for s in refused.shortages] == [ShortageReason.NOT_SELLABLE]


@pytest.mark.parametrize("ttl", [timedelta(seconds=9), timedelta(days=8)])
async def test_a_ttl_outside_ten_seconds_to_a_week_is_refused(
    inventory: FakeInventory, ttl: timedelta
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 1)], ttl)
    assert refused.value.field == "ttl_seconds"


async def test_commit_deducts_once_and_announces_once(inventory: FakeInventory) -> None:
    await handlers.reserve(inventory.uow, POLICY, "paid", [Line("TEA", "SH", 2)])
    first, _ = await handlers.commit_reservation(inventory.uow, POLICY, "paid")
    again, lines = await handlers.commit_reservation(inventory.uow, POLICY, "paid")
    assert first.status is again.status is ReservationStatus.COMMITTED and lines == (Line("TEA", "SH", 2),)
    assert inventory.row("TEA", "SH") == (8, 0, True)
    assert len(inventory.published(events.ReservationCommitted)) == 1


async def test_a_released_reservation_never_commits_and_a_committed_one_never_releases(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "paid", [Line("TEA", "SH", 2)])
    await handlers.reserve(inventory.uow, POLICY, "cancelled", [Line("TEA", "SH", 3)])
    await handlers.commit_reservation(inventory.uow, POLICY, "paid")
    await handlers.release_reservation(inventory.uow, POLICY, "cancelled", "buyer cancelled")
    await handlers.release_reservation(inventory.uow, POLICY, "cancelled", "buyer cancelled")
    assert inventory.row("TEA", "SH") == (8, 0, True)
    [released] = inventory.published(events.ReservationReleased)
    assert released.reason == "buyer cancelled"
    with pytest.raises(FailedPrecondition, match="RELEASED"):
        await handlers.commit_reservation(inventory.uow, POLICY, "cancelled")
    with pytest.raises(FailedPrecondition, match="committed"):
        await handlers.release_reservation(inventory.uow, POLICY, "paid", "too late")
    with pytest.raises(NotFound):
        await handlers.commit_reservation(inventory.uow, POLICY, "never-reserved")


async def test_committing_a_reservation_past_its_time_is_refused_and_frees_its_units(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "late", [Line("TEA", "SH", 2)], timedelta(minutes=1))
    inventory.clock.advance(timedelta(minutes=2))
    with pytest.raises(FailedPrecondition, match="expired"):
        await handlers.commit_reservation(inventory.uow, POLICY, "late")
    assert inventory.row("TEA", "SH") == (10, 0, True)
    assert [e.order_id for e in inventory.published(events.ReservationExpired)] == ["late"]


async def test_a_line_moves_to_another_warehouse_with_both_ledger_entries(inventory: FakeInventory) -> None:
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 2)])
    reservation, lines, shortage = await handlers.move_reservation(
        inventory.uow, POLICY, "o-1", "TEA", "SH", "BJ"
    )
    assert shortage is None and lines == reservation.lines == (Line("TEA", "BJ", 2),)
    assert (inventory.row("TEA", "SH"), inventory.row("TEA", "BJ")) == ((10, 0, True), (3, 2, True))
    assert [(e.kind, e.warehouse_id, e.reserved_delta) for e in inventory.state.ledger[-2:]] == [
        (Movement.MOVE_OUT, "SH", -2),
        (Movement.MOVE_IN, "BJ", 2),
    ]


async def test_a_move_without_room_at_the_target_changes_nothing_and_says_what_is_there(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 7)])
    _, lines, shortage = await handlers.move_reservation(inventory.uow, POLICY, "o-1", "TEA", "SH", "BJ")
    assert lines == (Line("TEA", "SH", 7),)
    assert shortage is not None and (shortage.available, shortage.reason) == (2, ShortageReason.INSUFFICIENT)
    assert (inventory.row("TEA", "SH"), inventory.row("TEA", "BJ")) == ((10, 7, True), (3, 0, True))


async def test_only_an_active_reservation_moves_and_only_to_another_warehouse(
    inventory: FakeInventory,
) -> None:
    with pytest.raises(InvalidArgument) as same:
        await handlers.move_reservation(inventory.uow, POLICY, "o-1", "TEA", "SH", "SH")
    assert same.value.field == "to_warehouse_id"
    with pytest.raises(NotFound):
        await handlers.move_reservation(inventory.uow, POLICY, "o-1", "TEA", "SH", "BJ")
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 1)])
    with pytest.raises(NotFound, match="reserves no CUP"):
        await handlers.move_reservation(inventory.uow, POLICY, "o-1", "CUP", "SH", "BJ")
    await handlers.commit_reservation(inventory.uow, POLICY, "o-1")
    with pytest.raises(FailedPrecondition, match="only an active reservation"):
        await handlers.move_reservation(inventory.uow, POLICY, "o-1", "TEA", "SH", "BJ")


async def test_the_sweep_releases_every_reservation_past_its_time_and_announces_each(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "a", [Line("TEA", "SH", 2)], timedelta(minutes=1))
    await handlers.reserve(inventory.uow, POLICY, "b", [Line("TEA", "SH", 3), Line("CUP", "SH", 1)])
    inventory.clock.advance(timedelta(minutes=2))
    assert await handlers.expire_reservations(inventory.uow(), POLICY) == 1
    assert inventory.row("TEA", "SH") == (10, 3, True)
    [expired] = inventory.published(events.ReservationExpired)
    assert (expired.order_id, expired.lines) == ("a", (Line("TEA", "SH", 2),))
    assert await handlers.expire_reservations(inventory.uow(), POLICY) == 0
    _, breaches = await handlers.check_invariants(inventory.uow())
    assert breaches == []
