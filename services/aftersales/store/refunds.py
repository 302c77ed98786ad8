"""Refunds at the providers, one row per attempt (keyed by its refund number): the execution queue
(due time, lease, attempts) and the finance ledger (who approved, when, the amount per bucket, the
provider's reference). The due times live in the database, so a crash loses nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.ports import RefundJob
from services.aftersales.store.tables import refunds_table
from services.aftersales.store.tickets import check_size, decode_token, encode_token
from services.kit.errors import FailedPrecondition, NotFound

_r = refunds_table.c
PENDING = "PENDING"
SENDING = "SENDING"
PROCESSING = "PROCESSING"
# statuses a worker still has something to do for: send (PENDING, SENDING) or ask after (PROCESSING)
WORKING = (PENDING, SENDING, PROCESSING)
ERROR_LENGTH = 2000
# what the ledger shows of a row: everything but the queue's own bookkeeping
_LEDGER = [column for column in refunds_table.c if column.name != "next_attempt_at"]


def refund_row(ticket: Ticket, approved_by: str, now: datetime) -> dict[str, Any]:
    """The ticket's current refund attempt as the ledger and the queue keep it."""
    voucher, payment = ticket.voucher, ticket.order.payment
    if voucher is None or not ticket.refund_attempt:
        raise FailedPrecondition(f"ticket {ticket.ticket_id} has not asked for its refund")
    if payment is None:
        raise FailedPrecondition(f"order {ticket.order_id} was not paid through a provider")
    totals = voucher.totals
    return {
        "out_refund_no": ticket.refund_no,
        "ticket_id": ticket.ticket_id,
        "attempt": ticket.refund_attempt,
        "order_id": ticket.order_id,
        "customer_id": ticket.customer_id,
        "provider": payment.provider,
        "transaction_id": payment.transaction_id,
        "merchant_order_no": payment.merchant_order_no,
        "status": PENDING,
        "currency": voucher.currency,
        "cash": voucher.cash_minor,
        "goods": totals.goods_minor,
        "promotion": totals.promotion_minor,
        "coupon": totals.coupon_minor,
        "points": totals.points_minor,
        "shipping": totals.shipping_minor,
        "total_paid": payment.amount_minor,
        "approved_by": approved_by,
        "requested_at": ticket.refund_requested_at or now,
        "attempts": 0,
        "next_attempt_at": now,
    }


def refund_job(row: Row[Any], status: str | None = None) -> RefundJob:
    return RefundJob(
        ticket_id=row.ticket_id,
        order_id=row.order_id,
        provider=row.provider,
        transaction_id=row.transaction_id,
        merchant_order_no=row.merchant_order_no,
        refund_no=row.out_refund_no,
        currency=row.currency,
        cash_minor=row.cash,
        total_paid_minor=row.total_paid,
        status=status or row.status,
        attempts=row.attempts,
    )


class RefundRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, ticket: Ticket, approved_by: str, now: datetime) -> None:
        """The ticket's current refund attempt, due to be sent now; adding it again does nothing."""
        statement = insert(refunds_table).values(refund_row(ticket, approved_by, now))
        await self.conn.execute(statement.on_conflict_do_nothing(index_elements=["out_refund_no"]))

    async def get(self, refund_no: str) -> RefundJob | None:
        row = (await self.conn.execute(select(refunds_table).where(_r.out_refund_no == refund_no))).first()
        return refund_job(row) if row is not None else None

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[RefundJob]:
        """Refunds due to be sent or asked after, each leased until `lease_until` (a worker that dies
        gives it back then) with one more attempt counted; rows another worker holds are skipped.

        A job's `status` is the one it was claimed in: PENDING (never sent: send it), SENDING (sent
        before, the answer unknown: send the same number again) or PROCESSING (the provider has it:
        ask after it). A PENDING row is SENDING from here on."""
        due = (
            select(_r.out_refund_no, _r.status.label("was"))
            .where(_r.next_attempt_at <= now, _r.status.in_(WORKING))
            .order_by(_r.next_attempt_at, _r.out_refund_no)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        claimed = (
            update(refunds_table)
            .where(_r.out_refund_no == due.c.out_refund_no)
            .values(
                next_attempt_at=lease_until,
                attempts=_r.attempts + 1,
                status=case((_r.status == PENDING, SENDING), else_=_r.status),
            )
            .returning(*refunds_table.c, due.c.was)
        )
        rows = (await self.conn.execute(claimed)).all()
        return sorted((refund_job(row, row.was) for row in rows), key=lambda job: job.refund_no)

    async def answered(
        self,
        refund_no: str,
        status: str,
        provider_refund_id: str,
        next_attempt_at: datetime | None,
        error: str,
    ) -> None:
        """What the provider said (or that it could not be asked: `error`), and when to go on: ask
        again at `next_attempt_at`, or never (None). NotFound for a number never added."""
        await self._update(
            refund_no,
            status=status,
            provider_refund_id=_kept(provider_refund_id),
            next_attempt_at=next_attempt_at,
            last_error=error[:ERROR_LENGTH],
        )

    async def settled(self, refund_no: str, status: str, provider_refund_id: str, at: datetime) -> None:
        """The refund's final word (SUCCESS, CLOSED, ABNORMAL, REFUSED): off the queue."""
        await self._update(
            refund_no,
            status=status,
            provider_refund_id=_kept(provider_refund_id),
            settled_at=at,
            next_attempt_at=None,
        )

    async def _update(self, refund_no: str, **values: Any) -> None:
        statement = update(refunds_table).where(_r.out_refund_no == refund_no).values(**values)
        found = (await self.conn.execute(statement.returning(_r.out_refund_no))).first()
        if found is None:
            raise NotFound(f"refund {refund_no} was never asked for")

    async def ledger(
        self, since: datetime | None, until: datetime | None, size: int, token: str
    ) -> tuple[list[dict[str, object]], str]:
        """The finance ledger, one row per refund attempt, newest first (requested_at, then number);
        `since` ≤ requested_at < `until` when given. Each row has the table's columns but the queue's
        due time (out_refund_no, attempt, cash, goods, … in minor units, requested_at and settled_at as
        datetimes). A token this list did not give raises BadToken (a ValueError)."""
        check_size(size)
        query = select(*_LEDGER)
        if since is not None:
            query = query.where(_r.requested_at >= since)
        if until is not None:
            query = query.where(_r.requested_at < until)
        if token:
            at, number = decode_token(token)
            query = query.where(
                or_(_r.requested_at < at, and_(_r.requested_at == at, _r.out_refund_no < number))
            )
        query = query.order_by(_r.requested_at.desc(), _r.out_refund_no.desc()).limit(size + 1)
        rows = [dict(row._mapping) for row in await self.conn.execute(query)]
        page, more = rows[:size], len(rows) > size
        last = page[-1] if page else None
        token = encode_token(last["requested_at"], last["out_refund_no"]) if more and last else ""
        return page, token


def _kept(provider_refund_id: str) -> Any:
    """A new provider reference, or the one already known when the answer carried none."""
    return provider_refund_id if provider_refund_id else _r.provider_refund_id
