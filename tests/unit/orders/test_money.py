from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orders.domain.money import apportion, split_order


def test_a_coupon_is_split_by_price_with_the_remainder_to_the_largest_fraction() -> None:
    assert apportion(1000, [9000, 1999]) == [818, 182]
    assert sum(apportion(1000, [9000, 1999])) == 1000


def test_ties_go_to_the_earlier_line_so_the_split_is_deterministic() -> None:
    assert apportion(1, [1, 1, 1]) == [1, 0, 0]
    assert apportion(2, [1, 1, 1]) == [1, 1, 0]


def test_free_lines_share_a_total_evenly() -> None:
    assert apportion(5, [0, 0]) == [3, 2]


def test_discounts_larger_than_the_goods_are_refused() -> None:
    with pytest.raises(ValueError):
        split_order([100], 60, 50, 0, 0)


def test_each_line_pays_its_goods_less_its_discounts_plus_its_shipping() -> None:
    shares = split_order([9000, 1999], 0, 1000, 333, 800)
    # coupon 1000 by 9000:1999 → 818.2 / 181.8 → 818 + 182; points 333 by what is left (8182:1817)
    # → 272.5 / 60.5 → the spare unit to the larger remainder (.51) → 272 + 61; shipping 800 → 655 + 145
    assert [(s.coupon_minor, s.points_minor, s.shipping_minor) for s in shares] == [
        (818, 272, 655),
        (182, 61, 145),
    ]
    assert [s.paid_minor for s in shares] == [9000 - 818 - 272 + 655, 1999 - 182 - 61 + 145]
    assert sum(s.paid_minor for s in shares) == 9000 + 1999 - 1000 - 333 + 800


amounts = st.integers(0, 10**12)
weights = st.lists(st.integers(0, 10**9), min_size=1, max_size=40)


@given(total=amounts, parts=weights)
def test_parts_always_sum_to_the_whole_and_are_never_negative(total: int, parts: list[int]) -> None:
    split = apportion(total, parts)
    assert sum(split) == total
    assert all(part >= 0 for part in split)
    assert len(split) == len(parts)


@given(total=amounts, parts=weights)
def test_no_line_gets_more_than_one_unit_beyond_its_exact_share(total: int, parts: list[int]) -> None:
    whole = sum(parts) or len(parts)
    effective = parts if sum(parts) else [1] * len(parts)
    for part, weight in zip(apportion(total, parts), effective, strict=True):
        assert part * whole - total * weight < whole
        assert total * weight - part * whole < whole


@given(
    goods=st.lists(st.integers(0, 10**9), min_size=1, max_size=30),
    shares=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
    shipping=st.integers(0, 10**7),
)
def test_an_order_split_sums_exactly_and_no_line_pays_a_negative_amount(
    goods: list[int], shares: tuple[float, float, float], shipping: int
) -> None:
    left = sum(goods)
    promotion = int(left * shares[0])
    coupon = int((left - promotion) * shares[1])
    points = int((left - promotion - coupon) * shares[2])
    split = split_order(goods, promotion, coupon, points, shipping)
    assert sum(s.promotion_minor for s in split) == promotion
    assert sum(s.coupon_minor for s in split) == coupon
    assert sum(s.points_minor for s in split) == points
    assert sum(s.shipping_minor for s in split) == shipping
    assert sum(s.paid_minor for s in split) == sum(goods) - promotion - coupon - points + shipping
    for share in split:
        assert share.discount_minor <= share.goods_minor
        assert share.paid_minor >= share.shipping_minor >= 0
