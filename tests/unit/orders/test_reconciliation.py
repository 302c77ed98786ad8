from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.orders.domain.reconciliation import OrderFacts, Recorded, Row, parse_csv, reconcile

T = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def row(txn: str, order_no: str, amount: int, at: datetime = T) -> Row:
    return Row(txn, order_no, "CNY", amount, at)


def test_the_csv_is_read_in_major_units_and_utc() -> None:
    rows = parse_csv(
        "transaction_id,merchant_order_no,amount,paid_at\nwx-1,o-1,117.99,2026-11-22T10:00:00+08:00\n", "CNY"
    )
    assert rows == [Row("wx-1", "o-1", "CNY", 11799, T.astimezone(rows[0].paid_at.tzinfo))]
    assert rows[0].paid_at == T


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("a,b,c\n", "csv"),
        (
            "transaction_id,merchant_order_no,amount,paid_at\nwx,o,1.234,2026-11-22T10:00:00Z\n",
            "csv line 2.amount",
        ),
        ("transaction_id,merchant_order_no,amount,paid_at\nwx,o,1,2026-11-22 10:00\n", "csv line 2.paid_at"),
        ("transaction_id,merchant_order_no,amount,paid_at\nwx,o,1\n", "csv line 2"),
    ],
)
def test_a_bad_csv_is_refused_naming_the_line_and_field(text: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_csv(text, "CNY")
    assert refused.value.field == field


def test_every_kind_of_finding() -> None:
    placed = T - timedelta(minutes=5)
    rows = [
        row("wx-ok", "o-1", 100),  # recorded, same amount
        row("wx-diff", "o-2", 250),  # recorded with another amount
        row("wx-missing", "o-3", 300),  # paid, never recorded, order number intact
        row("wx-damaged", "xx-9abc", 400),  # order number damaged: fuzzy candidates
        row("wx-lost", "nothing", 500),  # nothing matches
    ]
    recorded = [
        Recorded("p-1", "wx-ok", "o-1", 100, T),
        Recorded("p-2", "wx-diff", "o-2", 200, T),
        Recorded("p-9", "wx-extra", "o-9", 900, T),  # recorded but not in the statement
    ]
    orders = {"o-3": OrderFacts("o-3", 300, placed, False)}
    candidates = {
        "wx-damaged": [
            OrderFacts("order-9abc", 400, placed, False),
            OrderFacts("other-9abc", 400, T - timedelta(minutes=20), False),  # too far apart
            OrderFacts("third-9abc", 401, placed, False),  # another amount
        ]
    }
    report = reconcile(rows, recorded, orders, candidates)
    assert report.matched == 1
    assert [(f.row.transaction_id if f.row else "", f.detail) for f in report.amount_mismatches] == [
        ("wx-diff", "statement 250, recorded 200")
    ]
    unrecorded = {f.row.transaction_id: f for f in report.paid_not_recorded if f.row}
    assert unrecorded["wx-missing"].order_id == "o-3"
    assert unrecorded["wx-damaged"].candidates == ("order-9abc",)
    assert unrecorded["wx-lost"].candidates == () and not unrecorded["wx-lost"].order_id
    assert [f.payment_id for f in report.recorded_not_paid] == ["p-9"]
