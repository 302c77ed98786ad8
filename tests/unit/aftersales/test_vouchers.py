from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.aftersales.domain.errors import Refused
from services.aftersales.domain.order_snapshot import BUCKETS, Buckets, OrderSnapshot
from services.aftersales.domain.reasons import DEFAULT_POLICY, Reason, Responsibility
from services.aftersales.domain.vouchers import (
    SHIPPING_KEPT,
    SHIPPING_REFUNDED,
    LineRefunded,
    RefundLine,
    Voucher,
    apportion,
    calculate_voucher,
    ledger_after,
    ledger_of,
    unit_shares,
    units_share,
)
from services.kit.errors import InvalidArgument
from services.orders.domain import money
from tests.unit.aftersales.builders import order

MERCHANT, CUSTOMER = Responsibility.MERCHANT, Responsibility.CUSTOMER


def voucher(
    snapshot: OrderSnapshot,
    lines: list[tuple[int, int]],
    responsibility: Responsibility = CUSTOMER,
    refunded: dict[int, LineRefunded] | None = None,
) -> Voucher:
    reason = Reason.SIZE_FIT if responsibility is CUSTOMER else Reason.DAMAGED
    return calculate_voucher(
        snapshot, [RefundLine(i, q) for i, q in lines], reason, responsibility, refunded=refunded
    )


# ---- the rule, by example


def test_a_unit_refund_is_its_goods_less_its_discount_shares_and_points_come_back_apart() -> None:
    snapshot = order(((1000, 3),), promotion=301, coupon=0, points=100, shipping=0)
    first = voucher(snapshot, [(0, 1)])
    # goods 3000 over 3 units: 1000 each; promotion 301 by what is left: 101, 100, 100; points 100:
    # left 899, 900, 900 → 33.3, 33.4, 33.4 → 33, 33, 33 and the spare unit to the largest remainder
    # (the second unit's .35 beats the first's .31; ties to the earlier) → 33, 34, 33
    assert first.lines[0].amounts == Buckets(1000, 101, 0, 33, 0)
    assert first.cash_minor == 1000 - 101 - 33
    assert first.points_minor == 33
    second = voucher(snapshot, [(0, 2)], refunded=ledger_of([first]))
    assert second.lines[0].amounts == Buckets(2000, 200, 0, 67, 0)
    assert second.lines[0].first_unit == 1


def test_unit_shares_are_orders_split_applied_to_the_units_of_a_line() -> None:
    amounts = Buckets(5970, 333, 164, 55, 91)
    shares = unit_shares(amounts, 3)
    orders_split = money.split_order([1990, 1990, 1990], 333, 164, 55, 91)
    assert shares == [
        Buckets(s.goods_minor, s.promotion_minor, s.coupon_minor, s.points_minor, s.shipping_minor)
        for s in orders_split
    ]


def test_a_fully_discounted_line_never_refunds_a_negative_amount_for_any_unit() -> None:
    # split bucket by bucket on its own (4, 3, 3 of goods; 2, 2, 1 of each discount) the second unit
    # would refund 3 − 2 − 2 = −1; weighted by what is left to pay on each unit, none does
    shares = unit_shares(Buckets(10, 5, 5, 0, 0), 3)
    assert [share.goods_minor for share in shares] == [4, 3, 3]
    assert [share.cash_minor for share in shares] == [0, 0, 0]


def test_shipping_is_refunded_when_the_merchant_bears_the_reason_and_kept_when_the_customer_chose() -> None:
    snapshot = order(((5000, 2),), promotion=0, coupon=0, points=0, shipping=1001)
    kept = voucher(snapshot, [(0, 1)], CUSTOMER)
    refunded = voucher(snapshot, [(0, 1)], MERCHANT)
    assert kept.shipping_minor == 0 and SHIPPING_KEPT in kept.rule
    assert refunded.shipping_minor == 501 and SHIPPING_REFUNDED in refunded.rule
    assert refunded.cash_minor == 5000 + 501
    assert DEFAULT_POLICY.bears(Reason.SIZE_FIT) is CUSTOMER
    assert DEFAULT_POLICY.bears(Reason.DAMAGED) is MERCHANT


def test_more_units_than_are_left_are_refused_naming_the_line_field() -> None:
    snapshot = order()
    first = voucher(snapshot, [(2, 2)])
    with pytest.raises(Refused) as refused:
        voucher(snapshot, [(0, 1), (2, 2)], refunded=ledger_of([first]))
    assert refused.value.field == "lines[1].quantity"
    assert "1 of line 2's 3" in refused.value.problem


def test_a_ledger_past_what_was_paid_is_refused_naming_the_bucket() -> None:
    snapshot = order()
    over = {0: LineRefunded(0, Buckets(0, snapshot.lines[0].amounts.promotion_minor, 0, 0, 0))}
    with pytest.raises(Refused) as refused:
        voucher(snapshot, [(0, 1)], refunded=over)
    assert refused.value.field == "lines[0].promotion_minor"


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([(3, 1)], "lines[0].line_index"),
        ([(-1, 1)], "lines[0].line_index"),
        ([(0, 1), (0, 1)], "lines[1].line_index"),
        ([(1, 0)], "lines[0].quantity"),
    ],
)
def test_lines_not_in_the_order_twice_or_empty_are_invalid(lines: list[tuple[int, int]], field: str) -> None:
    with pytest.raises(InvalidArgument) as invalid:
        voucher(order(), lines)
    assert invalid.value.field == field


def test_apportion_is_the_same_rule_as_orders() -> None:
    for total, weights in [(1000, [9000, 1999]), (5, [0, 0]), (7, [1, 1, 1]), (0, [3]), (99, [5, 0, 7])]:
        assert apportion(total, weights) == money.apportion(total, weights)


@given(total=st.integers(0, 10**9), weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_apportion_agrees_with_orders_for_any_input(total: int, weights: list[int]) -> None:
    assert apportion(total, weights) == money.apportion(total, weights)


# ---- properties: any order, any discounts, any sequence of partial refunds


@dataclass(frozen=True)
class Case:
    snapshot: OrderSnapshot
    # refunds in sequence: each a list of (line index, units) and who bears it
    refunds: list[tuple[list[tuple[int, int]], Responsibility]]


@st.composite
def orders(draw: st.DrawFn) -> OrderSnapshot:
    units = draw(st.lists(st.tuples(st.integers(0, 200_000), st.integers(1, 10)), min_size=1, max_size=6))
    goods = sum(price * quantity for price, quantity in units)
    promotion = draw(st.integers(0, goods))
    coupon = draw(st.integers(0, goods - promotion))
    points = draw(st.integers(0, goods - promotion - coupon))
    shipping = draw(st.integers(0, 5_000))
    return order(units, promotion, coupon, points, shipping)


@st.composite
def cases(draw: st.DrawFn, responsibility: Responsibility | None = None) -> Case:
    snapshot = draw(orders())
    chunks: list[tuple[int, int]] = []
    for line in snapshot.lines:
        left = line.quantity
        while left:
            take = draw(st.integers(1, left))
            chunks.append((line.index, take))
            left -= take
    chunks = draw(st.permutations(chunks))
    refunds: list[tuple[list[tuple[int, int]], Responsibility]] = []
    while chunks:
        # a ticket takes a few chunks of different lines
        size = draw(st.integers(1, len(chunks)))
        taken: dict[int, int] = {}
        rest = []
        for index, quantity in chunks:
            if len(taken) < size and index not in taken:
                taken[index] = quantity
            else:
                rest.append((index, quantity))
        chunks = rest
        who = responsibility or draw(st.sampled_from([MERCHANT, CUSTOMER]))
        refunds.append((sorted(taken.items()), who))
    return Case(snapshot, refunds)


def run(case: Case) -> tuple[list[Voucher], dict[int, LineRefunded]]:
    ledger: dict[int, LineRefunded] = {}
    vouchers = []
    for lines, who in case.refunds:
        made = voucher(case.snapshot, lines, who, ledger)
        vouchers.append(made)
        ledger = ledger_after(ledger, made)
        for index, entry in ledger.items():
            paid = case.snapshot.lines[index].amounts
            for name in BUCKETS:
                assert getattr(entry.amounts, name) <= getattr(paid, name), (index, name)
            assert entry.units <= case.snapshot.lines[index].quantity
    return vouchers, ledger


@given(cases())
def test_every_voucher_sums_exactly_to_its_totals_and_nothing_is_negative(case: Case) -> None:
    vouchers, _ = run(case)
    for made in vouchers:
        assert made.imbalance_minor == 0
        for name in BUCKETS:
            assert sum(getattr(line.amounts, name) for line in made.lines) == getattr(made.totals, name)
        assert made.cash_minor == sum(line.cash_minor for line in made.lines)
        assert made.cash_minor == made.totals.goods_minor - made.totals.discount_minor + made.shipping_minor
        assert made.points_minor == made.totals.points_minor
        for line in made.lines:
            assert all(value >= 0 for value in line.amounts.as_dict().values())
            assert line.cash_minor >= 0


@given(cases())
def test_refunding_everything_returns_exactly_what_was_paid_per_line_and_bucket(case: Case) -> None:
    vouchers, ledger = run(case)
    for line in case.snapshot.lines:
        back = ledger[line.index].amounts
        assert ledger[line.index].units == line.quantity
        assert back.goods_minor - back.discount_minor == line.amounts.cash_minor
        for name in ("goods_minor", "promotion_minor", "coupon_minor", "points_minor"):
            assert getattr(back, name) == getattr(line.amounts, name)
        assert back.points_minor == line.amounts.points_minor
        assert back.shipping_minor <= line.amounts.shipping_minor
    # shipping comes back for the units refunded at the merchant's cost, exactly their shares
    expected_shipping = sum(
        units_share(
            case.snapshot.lines[v_line.line_index].amounts,
            v_line.of_units,
            v_line.first_unit,
            v_line.quantity,
        ).shipping_minor
        for made in vouchers
        if made.responsibility is MERCHANT
        for v_line in made.lines
    )
    assert sum(made.shipping_minor for made in vouchers) == expected_shipping


@given(cases(MERCHANT))
def test_at_the_merchants_cost_everything_refunded_returns_the_shipping_too(case: Case) -> None:
    vouchers, ledger = run(case)
    for line in case.snapshot.lines:
        assert ledger[line.index].amounts == line.amounts
    assert sum(made.cash_minor for made in vouchers) == case.snapshot.paid_minor
    assert sum(made.points_minor for made in vouchers) == case.snapshot.totals.points_minor


@given(cases(CUSTOMER))
def test_by_the_customers_choice_no_shipping_ever_comes_back(case: Case) -> None:
    vouchers, _ = run(case)
    assert all(made.shipping_minor == 0 for made in vouchers)
    assert (
        sum(made.cash_minor for made in vouchers)
        == case.snapshot.paid_minor - case.snapshot.totals.shipping_minor
    )


@given(orders(), st.data())
def test_what_k_units_refunded_is_the_same_whatever_the_partial_refunds_were(
    snapshot: OrderSnapshot, data: st.DataObject
) -> None:
    line = snapshot.lines[0]
    ledger: dict[int, LineRefunded] = {}
    while ledger.get(0, LineRefunded()).units < line.quantity:
        done = ledger.get(0, LineRefunded()).units
        take = data.draw(st.integers(1, line.quantity - done))
        ledger = ledger_after(ledger, voucher(snapshot, [(0, take)], MERCHANT, ledger))
        # after any sequence, k units refunded hold exactly the shares of units 0 … k−1
        assert ledger[0].amounts == units_share(line.amounts, line.quantity, 0, done + take)
