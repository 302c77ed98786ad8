"""Reconciling a payment provider's statement with what the platform recorded (DOMAIN.md §2).

Exact matches go by transaction id, then by order number. A damaged order number gets fuzzy
candidates: orders whose id ends in the same 4 characters, with the same amount, placed less than
15 minutes from the payment. What is left is reported: paid but not recorded (repairable in one
step), recorded but not paid, and amounts that differ.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from services.kit.errors import InvalidArgument

FUZZY_WINDOW = timedelta(minutes=15)
MAX_ROWS = 200_000
COLUMNS = ("transaction_id", "merchant_order_no", "amount", "paid_at")


@dataclass(frozen=True)
class Row:
    transaction_id: str
    merchant_order_no: str
    currency: str
    amount_minor: int
    paid_at: datetime


@dataclass(frozen=True)
class Recorded:
    """A payment the platform recorded as paid."""

    payment_id: str
    transaction_id: str
    order_id: str
    amount_minor: int
    paid_at: datetime


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    payable_minor: int
    placed_at: datetime
    paid: bool


@dataclass(frozen=True)
class Finding:
    kind: str
    row: Row | None
    order_id: str = ""
    payment_id: str = ""
    candidates: tuple[str, ...] = ()
    detail: str = ""


@dataclass
class Report:
    rows: int
    matched: int = 0
    paid_not_recorded: list[Finding] = field(default_factory=list)
    recorded_not_paid: list[Finding] = field(default_factory=list)
    amount_mismatches: list[Finding] = field(default_factory=list)


def parse_csv(text: str, currency: str) -> list[Row]:
    """`transaction_id,merchant_order_no,amount,paid_at` with a header; amounts in major units."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(name.strip().lower() for name in header) != COLUMNS:
        raise InvalidArgument("csv", "the first line must be " + ",".join(COLUMNS))
    rows = []
    for number, fields in enumerate(reader, start=2):
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) != len(COLUMNS):
            raise InvalidArgument(f"csv line {number}", f"needs {len(COLUMNS)} fields, has {len(fields)}")
        transaction, order_no, amount, paid_at = (value.strip() for value in fields)
        rows.append(Row(transaction, order_no, currency, _minor(amount, number), _time(paid_at, number)))
        if len(rows) > MAX_ROWS:
            raise InvalidArgument("csv", f"at most {MAX_ROWS} rows per statement")
    return rows


def check_row(index: int, row: Row) -> None:
    where = f"rows[{index}]"
    if not row.transaction_id or len(row.transaction_id) > 64:
        raise InvalidArgument(f"{where}.transaction_id", "is required (at most 64 characters)")
    if len(row.merchant_order_no) > 64:
        raise InvalidArgument(f"{where}.merchant_order_no", "must be at most 64 characters")
    if row.amount_minor < 0:
        raise InvalidArgument(f"{where}.amount.amount_minor", "must not be negative")
    if row.paid_at.tzinfo is None:
        raise InvalidArgument(f"{where}.paid_at", "needs a time zone")


def reconcile(
    rows: Sequence[Row],
    recorded: Iterable[Recorded],
    orders: Mapping[str, OrderFacts],
    candidates: Mapping[str, Sequence[OrderFacts]],
) -> Report:
    """`orders`: orders found by the rows' order numbers; `candidates`: for each row's transaction
    id whose order number found nothing, orders ending in the same 4 characters."""
    by_transaction = {payment.transaction_id: payment for payment in recorded}
    seen: set[str] = set()
    report = Report(rows=len(rows))
    for row in rows:
        payment = by_transaction.get(row.transaction_id)
        if payment is not None:
            seen.add(row.transaction_id)
            if payment.amount_minor != row.amount_minor:
                report.amount_mismatches.append(
                    Finding(
                        "amount_mismatch",
                        row,
                        payment.order_id,
                        payment.payment_id,
                        detail=f"statement {row.amount_minor}, recorded {payment.amount_minor}",
                    )
                )
            else:
                report.matched += 1
            continue
        order = orders.get(row.merchant_order_no)
        if order is not None:
            if order.payable_minor != row.amount_minor:
                report.amount_mismatches.append(
                    Finding(
                        "amount_mismatch",
                        row,
                        order.order_id,
                        detail=f"statement {row.amount_minor}, order payable {order.payable_minor}",
                    )
                )
            else:
                report.paid_not_recorded.append(
                    Finding(
                        "paid_not_recorded",
                        row,
                        order.order_id,
                        detail="repairable: the order number matches",
                    )
                )
            continue
        fuzzy = tuple(
            candidate.order_id
            for candidate in candidates.get(row.transaction_id, ())
            if fuzzy_match(row, candidate)
        )
        detail = "pick the order among the candidates" if fuzzy else "no order matches the order number"
        report.paid_not_recorded.append(Finding("paid_not_recorded", row, candidates=fuzzy, detail=detail))
    for transaction, payment in by_transaction.items():
        if transaction in seen:
            continue
        when = payment.paid_at.isoformat()
        report.recorded_not_paid.append(
            Finding(
                "recorded_not_paid",
                None,
                payment.order_id,
                payment.payment_id,
                detail=f"recorded {payment.amount_minor} at {when}; not in the statement",
            )
        )
    return report


def fuzzy_match(row: Row, order: OrderFacts) -> bool:
    tail = row.merchant_order_no[-4:]
    return (
        len(tail) == 4
        and order.order_id.endswith(tail)
        and order.payable_minor == row.amount_minor
        and abs(row.paid_at - order.placed_at) < FUZZY_WINDOW
    )


def _minor(text: str, line: int) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidArgument(
            f"csv line {line}.amount", f"must be a decimal amount, not {text[:32]!r}"
        ) from None
    minor = value * 100
    if not value.is_finite() or minor != minor.to_integral_value() or value < 0:
        raise InvalidArgument(
            f"csv line {line}.amount", "must be a non-negative amount with at most 2 decimals"
        )
    return int(minor)


def _time(text: str, line: int) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"csv line {line}.paid_at", "must be an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise InvalidArgument(f"csv line {line}.paid_at", "needs a time zone offset")
    return moment
