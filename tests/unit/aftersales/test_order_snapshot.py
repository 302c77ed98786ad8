from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from services.aftersales.domain.order_snapshot import Buckets, SnapshotLine
from services.aftersales.domain.reasons import (
    DEFAULT_POLICY,
    Reason,
    Responsibility,
    parse_reason,
    policy_from_document,
)
from services.kit.errors import InvalidArgument
from services.orders.domain.money import split_order
from tests.unit.aftersales.builders import order


def test_the_snapshot_totals_are_the_sum_of_the_lines_buckets() -> None:
    snapshot = order()
    shares = split_order([25800, 5990, 5970], 3000, 1500, 500, 800)
    assert snapshot.paid_minor == sum(share.paid_minor for share in shares) == 37760 - 5000 + 800
    assert snapshot.order_total_minor == 37760 + 800
    assert snapshot.totals.points_minor == 500


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"order_id": " "}, "order.order_id"),
        ({"paid_at": datetime(2026, 3, 1)}, "order.paid_at"),
        ({"lines": ()}, "order.lines"),
    ],
)
def test_a_bad_snapshot_names_its_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as invalid:
        replace(order(), **change)  # type: ignore[arg-type]
    assert invalid.value.field == field


@pytest.mark.parametrize(
    ("line", "field"),
    [
        (SnapshotLine(1, "A", "a", 1, Buckets(100)), "order.lines[0].index"),
        (SnapshotLine(0, "A", "a", 0, Buckets(100)), "order.lines[0].quantity"),
        (SnapshotLine(0, "A", "a", 1, Buckets(100, 60, 50)), "order.lines[0].amounts.goods_minor"),
        (SnapshotLine(0, "A", "a", 1, Buckets(100, 0, -1)), "order.lines[0].amounts.coupon_minor"),
    ],
)
def test_a_bad_line_names_its_field(line: SnapshotLine, field: str) -> None:
    with pytest.raises(InvalidArgument) as invalid:
        replace(order(), lines=(line,))
    assert invalid.value.field == field


def test_shipped_and_paid_read_the_status_and_the_times() -> None:
    assert order(status="SHIPPED", delivered_at=None).shipped
    assert not order(status="PACKED", delivered_at=None).shipped
    # held after delivery: the delivery time still says it left
    assert order(status="ON_HOLD").shipped
    assert not order(status="PENDING_PAYMENT", paid_at=None, delivered_at=None).paid


def test_the_refund_policy_moves_reasons_between_merchant_and_customer() -> None:
    assert DEFAULT_POLICY.refunds_shipping(Reason.WRONG_ITEM)
    assert not DEFAULT_POLICY.refunds_shipping(Reason.CHANGED_MIND)
    generous = policy_from_document({"size_fit": "merchant"})
    assert generous.bears(Reason.SIZE_FIT) is Responsibility.MERCHANT
    assert generous.bears(Reason.CHANGED_MIND) is Responsibility.CUSTOMER
    with pytest.raises(InvalidArgument) as invalid:
        policy_from_document({"size_fit": "nobody"})
    assert invalid.value.field == "refund_policy.size_fit"
    with pytest.raises(InvalidArgument) as invalid:
        policy_from_document({"bored": "customer"})
    assert invalid.value.field == "refund_policy.bored"
    with pytest.raises(InvalidArgument):
        parse_reason("bored")
