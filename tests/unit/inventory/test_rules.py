from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inventory.domain.model import (
    GoodsType,
    Line,
    ReplenishmentStatus,
    SkuEntry,
    StockRow,
    StockSignal,
    check_replenishment_transition,
    decide_count,
    default_safety_level,
    low_stock_signal,
    reservable,
    reservation_lines,
    sku_entry,
)
from services.kit.errors import FailedPrecondition, InvalidArgument


def row(on_hand: int, reserved: int, safety: int, sellable: bool = True) -> StockRow:
    return StockRow("SKU", "WH", on_hand, reserved, safety, 10, sellable)


def test_lines_come_back_in_lock_order() -> None:
    lines = reservation_lines([Line("B", "SH", 1), Line("A", "SH", 2), Line("A", "BJ", 3)])
    assert [line.key for line in lines] == [("A", "BJ"), ("A", "SH"), ("B", "SH")]


def test_duplicate_lines_are_named_by_their_request_index() -> None:
    with pytest.raises(InvalidArgument) as refused:
        reservation_lines([Line("A", "SH", 1), Line("B", "SH", 1), Line("A", "SH", 2)])
    assert refused.value.field == "lines[2]"


@given(on_hand=st.integers(0, 10**6), reserved=st.integers(0, 10**6), cap=st.integers(1, 10_000))
def test_a_reservation_within_reservable_never_exceeds_the_cap(on_hand: int, reserved: int, cap: int) -> None:
    room = reservable(on_hand, reserved, cap)
    assert room >= 0
    if room:
        assert reserved + room <= on_hand * cap // 10_000 <= on_hand


def test_the_cap_keeps_a_buffer_and_an_unsellable_row_offers_nothing() -> None:
    assert reservable(100, 0, 9_500) == 95
    assert reservable(100, 95, 9_500) == 0
    assert reservable(100, 0, 9_500, sellable=False) == 0
    assert default_safety_level(10, 30) == 3


def test_stock_below_its_safety_level_stops_selling_and_recovers_at_the_level() -> None:
    assert low_stock_signal(row(10, 8, 3)) is StockSignal.LOW
    assert low_stock_signal(row(10, 7, 3)) is None
    assert low_stock_signal(row(10, 7, 3, sellable=False)) is StockSignal.RECOVERED
    assert low_stock_signal(row(10, 8, 3, sellable=False)) is None
    assert low_stock_signal(row(0, 0, 0)) is None


def test_counts_apply_only_when_newer_and_never_below_the_reserved_units() -> None:
    assert decide_count(5, 10, 2, 6, 12).delta == 2
    assert not decide_count(5, 10, 2, 5, 12).apply
    assert not decide_count(5, 10, 2, 4, 12).apply
    with pytest.raises(FailedPrecondition):
        decide_count(5, 10, 8, 6, 7)


def test_replenishment_orders_move_forward_only() -> None:
    check_replenishment_transition(ReplenishmentStatus.OPEN, ReplenishmentStatus.ORDERED)
    check_replenishment_transition(ReplenishmentStatus.ORDERED, ReplenishmentStatus.CLOSED)
    with pytest.raises(FailedPrecondition):
        check_replenishment_transition(ReplenishmentStatus.CLOSED, ReplenishmentStatus.OPEN)


def test_a_catalogue_entry_keeps_its_attributes_and_takes_the_sku_code_for_a_missing_title() -> None:
    entry = sku_entry("FISH-1", " ", GoodsType.COLD_CHAIN, "生鲜/海鲜 & chilled", 1_200, customised=True)
    assert entry == SkuEntry("FISH-1", "FISH-1", GoodsType.COLD_CHAIN, "生鲜/海鲜 & chilled", 1_200, True)


@pytest.mark.parametrize(
    ("title", "category", "weight_g", "field"),
    [
        ("x" * 201, "", 0, "title"),
        ("Tea", "tea;drop table", 0, "category"),
        ("Tea", "c" * 65, 0, "category"),
        ("Tea", "tea", -1, "weight_g"),
        ("Tea", "tea", 1_000_001, "weight_g"),
    ],
)
def test_a_catalogue_entry_out_of_bounds_is_refused_naming_the_field(
    title: str, category: str, weight_g: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        sku_entry("SKU-1", title, GoodsType.NORMAL, category, weight_g)
    assert refused.value.field == field
