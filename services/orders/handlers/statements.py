"""Payment statements: import and reconcile (one transaction), and the one-step repair.

A statement id is the importer's own (`owner`, their principal's subject): importing an id another
caller used makes a statement of one's own, and neither can read or repair from the other's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import is_id, new_id
from services.orders.domain import payments as pay
from services.orders.domain import reconciliation as rec
from services.orders.domain.payments import PaymentRecord
from services.orders.handlers.common import Changes, Policy
from services.orders.handlers.payments import handle_payment
from services.orders.handlers.ports import UnitOfWork

MAX_PROVIDER = 32
MAX_STATEMENT_ID = 64


async def import_statement(
    uow: UnitOfWork, owner: str, provider: str, statement_id: str, rows: list[rec.Row]
) -> tuple[str, dict[str, Any]]:
    """Reconcile a provider's statement against the payments recorded, once per (owner, id): a
    repeated import answers the report of the first."""
    provider = provider.strip().lower()
    if not provider or len(provider) > MAX_PROVIDER:
        raise InvalidArgument("provider", "is required (at most 32 characters), e.g. wechat_pay")
    if not rows:
        raise InvalidArgument("rows", "a statement needs at least one row (or csv)")
    for index, row in enumerate(rows):
        rec.check_row(index, row)
    if len({row.transaction_id for row in rows}) != len(rows):
        raise InvalidArgument("rows", "a transaction id appears twice")
    statement_id = statement_id.strip() or _digest(provider, rows)
    if len(statement_id) > MAX_STATEMENT_ID:
        raise InvalidArgument("statement_id", "must be at most 64 characters")
    async with uow:
        statements = uow.statements
        stored = await statements.report(owner, statement_id)
        if stored is not None:
            return statement_id, stored
        recorded = await statements.applied(
            provider, min(row.paid_at for row in rows), max(row.paid_at for row in rows)
        )
        found = {row.transaction_id for row in recorded}
        orders = await statements.orders_by_number(
            [row.merchant_order_no for row in rows if row.transaction_id not in found]
        )
        candidates: dict[str, list[rec.OrderFacts]] = {}
        for row in rows:
            if (
                row.transaction_id in found
                or row.merchant_order_no in orders
                or len(row.merchant_order_no) < 4
            ):
                continue
            candidates[row.transaction_id] = await statements.candidates(row)
        document = _document(statement_id, rec.reconcile(rows, recorded, orders, candidates))
        await statements.add(owner, statement_id, provider, uow.clock.now(), document, rows)
        await uow.commit()
    return statement_id, document


async def repair(
    uow_factory: Callable[[], UnitOfWork],
    policy: Policy,
    owner: str,
    statement_id: str,
    transaction_id: str,
    order_id: str,
) -> tuple[PaymentRecord, Changes]:
    """Record a paid-but-not-recorded row of one of the caller's statements as the order's payment, as a
    reviewer's decision."""
    uow = uow_factory()
    async with uow:
        found = await uow.statements.row(owner, statement_id, transaction_id)
    if found is None:
        raise NotFound(f"statement {statement_id} has no transaction {transaction_id}")
    provider, row = found
    target = order_id.strip() or row.merchant_order_no
    if not is_id(target):
        raise InvalidArgument("order_id", "name the order this payment belongs to")
    notification = pay.PaymentNotification(
        provider=provider,
        transaction_id=transaction_id,
        merchant_order_no=target,
        currency=row.currency,
        amount_minor=row.amount_minor,
        paid_at=row.paid_at,
        status=pay.PaymentStatus.SUCCESS,
    )
    uow = uow_factory()
    async with uow:
        now = uow.clock.now()
        record = PaymentRecord(new_id(), notification, None, pay.PaymentState.RECEIVED, "", 0, now)
        inserted = await uow.payments.add(record, now + policy.retry_delay)
        await uow.commit()
    if not inserted:
        raise FailedPrecondition(f"transaction {transaction_id} is already recorded")
    return await handle_payment(uow_factory, policy, record.payment_id, reviewed=True)


def _json(value: object) -> str:
    def default(item: object) -> str:
        if isinstance(item, datetime):
            return item.isoformat()
        raise TypeError(f"cannot encode {type(item).__name__}")

    return json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)


def _digest(provider: str, rows: list[rec.Row]) -> str:
    text = _json([provider, *[asdict(row) for row in sorted(rows, key=lambda r: r.transaction_id)]])
    return "st-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _document(statement_id: str, report: rec.Report) -> dict[str, Any]:
    """The report as kept and answered again for a repeated import (times as ISO text)."""

    def item(finding: rec.Finding) -> dict[str, Any]:
        return {
            "kind": finding.kind,
            "row": None if finding.row is None else asdict(finding.row),
            "order_id": finding.order_id,
            "payment_id": finding.payment_id,
            "candidates": list(finding.candidates),
            "detail": finding.detail,
        }

    return json.loads(  # type: ignore[no-any-return]
        _json(
            {
                "statement_id": statement_id,
                "rows": report.rows,
                "matched": report.matched,
                "paid_not_recorded": [item(f) for f in report.paid_not_recorded],
                "recorded_not_paid": [item(f) for f in report.recorded_not_paid],
                "amount_mismatches": [item(f) for f in report.amount_mismatches],
            }
        )
    )
