"""Payment statements: import and reconcile (one transaction), and the one-step repair.

A statement id is the importer's own (`owner`, their principal's subject): importing an id another
caller used makes a statement of one's own, and neither can read or repair from the other's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from services.kit.db import UnitOfWork
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import is_id, new_id
from services.orders import handlers
from services.orders.domain import payments as pay
from services.orders.domain import reconciliation as rec
from services.orders.domain.model import Channel
from services.orders.store import (
    dumps,
    orders_table,
    payments_table,
    statement_rows_table,
    statements_table,
)


async def import_statement(
    uow: UnitOfWork, owner: str, provider: str, statement_id: str, rows: list[rec.Row]
) -> tuple[str, dict[str, Any]]:
    provider = provider.strip().lower()
    if not provider or len(provider) > 32:
        raise InvalidArgument("provider", "is required (at most 32 characters), e.g. wechat_pay")
    if not rows:
        raise InvalidArgument("rows", "a statement needs at least one row (or csv)")
    for index, row in enumerate(rows):
        rec.check_row(index, row)
    if len({row.transaction_id for row in rows}) != len(rows):
        raise InvalidArgument("rows", "a transaction id appears twice")
    statement_id = statement_id.strip() or _digest(provider, rows)
    if len(statement_id) > 64:
        raise InvalidArgument("statement_id", "must be at most 64 characters")
    async with uow:
        conn = uow.conn
        stored = await conn.scalar(
            select(statements_table.c.report).where(
                statements_table.c.owner == owner, statements_table.c.statement_id == statement_id
            )
        )
        if stored is not None:
            return statement_id, dict(stored)
        start = min(row.paid_at for row in rows)
        end = max(row.paid_at for row in rows)
        recorded = [
            rec.Recorded(r.payment_id, r.transaction_id, r.order_id or "", r.amount_minor, r.paid_at)
            for r in await conn.execute(
                select(payments_table).where(
                    payments_table.c.provider == provider,
                    payments_table.c.status == pay.PaymentStatus.SUCCESS.value,
                    payments_table.c.state == pay.PaymentState.APPLIED.value,
                    payments_table.c.paid_at.between(start, end),
                )
            )
        ]
        found = {row.transaction_id for row in recorded}
        numbers = [row.merchant_order_no for row in rows if row.transaction_id not in found]
        orders = await _orders_by_number(conn, numbers)
        candidates: dict[str, list[rec.OrderFacts]] = {}
        for row in rows:
            if (
                row.transaction_id in found
                or row.merchant_order_no in orders
                or len(row.merchant_order_no) < 4
            ):
                continue
            candidates[row.transaction_id] = await _fuzzy(conn, row)
        report = rec.reconcile(rows, recorded, orders, candidates)
        document = _document(statement_id, report)
        await conn.execute(
            insert(statements_table)
            .values(
                owner=owner,
                statement_id=statement_id,
                provider=provider,
                imported_at=uow.clock.now(),
                report=document,
            )
            .on_conflict_do_nothing()
        )
        await conn.execute(
            insert(statement_rows_table).on_conflict_do_nothing(),
            [
                {
                    "owner": owner,
                    "statement_id": statement_id,
                    "transaction_id": row.transaction_id,
                    "merchant_order_no": row.merchant_order_no,
                    "currency": row.currency,
                    "amount_minor": row.amount_minor,
                    "paid_at": row.paid_at,
                }
                for row in rows
            ],
        )
        await uow.commit()
    return statement_id, document


async def repair(
    uow_factory: Callable[[], UnitOfWork],
    policy: handlers.Policy,
    owner: str,
    statement_id: str,
    transaction_id: str,
    order_id: str,
) -> tuple[handlers.PaymentRecord, handlers.Changes]:
    """Record a paid-but-not-recorded row of one of the caller's statements as the order's payment, as a
    reviewer's decision."""
    uow = uow_factory()
    async with uow:
        provider = await uow.conn.scalar(
            select(statements_table.c.provider).where(
                statements_table.c.owner == owner, statements_table.c.statement_id == statement_id
            )
        )
        row = (
            await uow.conn.execute(
                select(statement_rows_table).where(
                    statement_rows_table.c.owner == owner,
                    statement_rows_table.c.statement_id == statement_id,
                    statement_rows_table.c.transaction_id == transaction_id,
                )
            )
        ).first()
    if provider is None or row is None:
        raise NotFound(f"statement {statement_id} has no transaction {transaction_id}")
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
    payment_id = new_id()
    async with uow:
        inserted = (
            await uow.conn.execute(
                handlers.insert_payment(payment_id, notification, uow.clock.now(), policy.retry_delay)
            )
        ).first()
        await uow.commit()
    if inserted is None:
        raise FailedPrecondition(f"transaction {transaction_id} is already recorded")
    return await handlers.handle_payment(uow_factory, policy, payment_id, reviewed=True)


async def _orders_by_number(conn: Any, numbers: list[str]) -> dict[str, rec.OrderFacts]:
    ids = [number for number in numbers if is_id(number)]
    if not numbers:
        return {}
    rows = await conn.execute(
        select(
            orders_table.c.order_id,
            orders_table.c.channel_order_id,
            orders_table.c.channel,
            orders_table.c.total_minor,
            orders_table.c.placed_at,
            orders_table.c.paid_at,
        ).where(
            or_(
                orders_table.c.order_id.in_(ids),
                and_(
                    orders_table.c.channel == Channel.OWN_SHOP.value,
                    orders_table.c.channel_order_id.in_(numbers),
                ),
            )
        )
    )
    found: dict[str, rec.OrderFacts] = {}
    for row in rows:
        facts = rec.OrderFacts(row.order_id, row.total_minor, row.placed_at, row.paid_at is not None)
        found[row.order_id] = facts
        if row.channel == Channel.OWN_SHOP.value:
            found.setdefault(row.channel_order_id, facts)
    return found


async def _fuzzy(conn: Any, row: rec.Row) -> list[rec.OrderFacts]:
    tail = row.merchant_order_no[-4:]
    rows = await conn.execute(
        select(
            orders_table.c.order_id,
            orders_table.c.total_minor,
            orders_table.c.placed_at,
            orders_table.c.paid_at,
        )
        .where(
            func.right(orders_table.c.order_id, 4) == tail,
            orders_table.c.total_minor == row.amount_minor,
            orders_table.c.placed_at.between(row.paid_at - rec.FUZZY_WINDOW, row.paid_at + rec.FUZZY_WINDOW),
        )
        .limit(20)
    )
    return [rec.OrderFacts(r.order_id, r.total_minor, r.placed_at, r.paid_at is not None) for r in rows]


def _digest(provider: str, rows: list[rec.Row]) -> str:
    text = dumps([provider, *[asdict(row) for row in sorted(rows, key=lambda r: r.transaction_id)]])
    return "st-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _document(statement_id: str, report: rec.Report) -> dict[str, Any]:
    def item(finding: rec.Finding) -> dict[str, Any]:
        return {
            "kind": finding.kind,
            "row": None if finding.row is None else asdict(finding.row),
            "order_id": finding.order_id,
            "payment_id": finding.payment_id,
            "candidates": list(finding.candidates),
            "detail": finding.detail,
        }

    return json.loads(
        dumps(
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
