"""Imported payment statements (per importer) and the facts reconciling one needs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.ids import is_id
from services.orders.domain import payments as pay
from services.orders.domain import reconciliation as rec
from services.orders.domain.model import Channel
from services.orders.store.tables import (
    orders_table,
    payments_table,
    statement_rows_table,
    statements_table,
)

_O, _P, _S, _R = orders_table.c, payments_table.c, statements_table.c, statement_rows_table.c


class StatementRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def report(self, owner: str, statement_id: str) -> dict[str, Any] | None:
        stored = await self.conn.scalar(
            select(_S.report).where(_S.owner == owner, _S.statement_id == statement_id)
        )
        return None if stored is None else dict(stored)

    async def add(
        self,
        owner: str,
        statement_id: str,
        provider: str,
        imported_at: datetime,
        report: dict[str, Any],
        rows: Sequence[rec.Row],
    ) -> None:
        await self.conn.execute(
            insert(statements_table)
            .values(
                owner=owner,
                statement_id=statement_id,
                provider=provider,
                imported_at=imported_at,
                report=report,
            )
            .on_conflict_do_nothing()
        )
        await self.conn.execute(
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

    async def row(self, owner: str, statement_id: str, transaction_id: str) -> tuple[str, rec.Row] | None:
        """(the statement's provider, its row of `transaction_id`), if the owner imported them."""
        provider = await self.conn.scalar(
            select(_S.provider).where(_S.owner == owner, _S.statement_id == statement_id)
        )
        row = (
            await self.conn.execute(
                select(statement_rows_table).where(
                    _R.owner == owner, _R.statement_id == statement_id, _R.transaction_id == transaction_id
                )
            )
        ).first()
        if provider is None or row is None:
            return None
        return provider, rec.Row(
            row.transaction_id, row.merchant_order_no, row.currency, row.amount_minor, row.paid_at
        )

    async def applied(self, provider: str, start: datetime, end: datetime) -> list[rec.Recorded]:
        """The provider's successful payments applied to orders, paid between `start` and `end`."""
        rows = await self.conn.execute(
            select(payments_table).where(
                _P.provider == provider,
                _P.status == pay.PaymentStatus.SUCCESS.value,
                _P.state == pay.PaymentState.APPLIED.value,
                _P.paid_at.between(start, end),
            )
        )
        return [
            rec.Recorded(r.payment_id, r.transaction_id, r.order_id or "", r.amount_minor, r.paid_at)
            for r in rows
        ]

    async def orders_by_number(self, numbers: Sequence[str]) -> dict[str, rec.OrderFacts]:
        """The orders these merchant order numbers name: our order id, or the own shop's order number."""
        if not numbers:
            return {}
        ids = [number for number in numbers if is_id(number)]
        rows = await self.conn.execute(
            select(
                _O.order_id, _O.channel_order_id, _O.channel, _O.total_minor, _O.placed_at, _O.paid_at
            ).where(
                or_(
                    _O.order_id.in_(ids),
                    and_(_O.channel == Channel.OWN_SHOP.value, _O.channel_order_id.in_(list(numbers))),
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

    async def candidates(self, row: rec.Row) -> list[rec.OrderFacts]:
        """Orders the row may be for: the same amount, placed near its payment, ids ending alike."""
        rows = await self.conn.execute(
            select(_O.order_id, _O.total_minor, _O.placed_at, _O.paid_at)
            .where(
                func.right(_O.order_id, 4) == row.merchant_order_no[-4:],
                _O.total_minor == row.amount_minor,
                _O.placed_at.between(row.paid_at - rec.FUZZY_WINDOW, row.paid_at + rec.FUZZY_WINDOW),
            )
            .limit(20)
        )
        return [rec.OrderFacts(r.order_id, r.total_minor, r.placed_at, r.paid_at is not None) for r in rows]
