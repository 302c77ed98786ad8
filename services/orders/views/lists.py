"""Lists for the people fixing things: quarantined payloads, payment notifications, dead letters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import func, literal, select, tuple_, union_all

from services.kit.errors import InvalidArgument
from services.kit.ids import is_id
from services.kit.sealing import KeyRing, SealError
from services.orders.domain.model import Channel
from services.orders.domain.payments import PaymentRecord, PaymentState
from services.orders.store import OrdersUnitOfWork, orders_table, payments_table, quarantine_table
from services.orders.store.rows import payment_from_row
from services.orders.views import paging

log = logging.getLogger(__name__)

HIDDEN_PAYLOAD: Final = "(hidden: contains personal data)"
UNREADABLE_PAYLOAD: Final = "(cannot be opened: sealed under a key this service no longer holds)"


@dataclass(frozen=True)
class QuarantineRow:
    quarantine_id: str
    channel: Channel | None
    channel_order_id: str
    error_field: str
    reason: str
    payload: str
    received_at: datetime


@dataclass(frozen=True)
class DeadLetterRow:
    dead_letter_id: str
    kind: str
    order_id: str
    error: str
    attempts: int
    failed_at: datetime


async def list_quarantine(
    uow: OrdersUnitOfWork,
    keys: KeyRing,
    channel: Channel | None,
    page_size: int,
    page_token: str,
    reveal: bool,
) -> tuple[list[QuarantineRow], str]:
    """Payloads that could not be ingested, newest first; the payload is opened only on `reveal`
    (the caller checks the permission to see personal data)."""
    size = paging.page_size(page_size)
    after = paging.decode_token(page_token, paging.QUARANTINE)
    q = quarantine_table.c
    query = select(quarantine_table).order_by(q.received_at.desc(), q.quarantine_id.desc()).limit(size + 1)
    if channel is not None:
        query = query.where(q.channel == channel.value)
    if after is not None:
        query = query.where(tuple_(q.received_at, q.quarantine_id) < tuple_(*after))
    async with uow:
        rows = list(await uow.conn.execute(query))
    page = [
        QuarantineRow(
            quarantine_id=row.quarantine_id,
            channel=_channel(row.channel),
            channel_order_id=row.channel_order_id,
            error_field=row.error_field,
            reason=row.reason,
            payload=_payload(keys, row.sealed_payload, row.quarantine_id) if reveal else HIDDEN_PAYLOAD,
            received_at=row.received_at,
        )
        for row in rows[:size]
    ]
    more = len(rows) > size
    return page, paging.encode_token(
        paging.QUARANTINE, page[-1].received_at, page[-1].quarantine_id
    ) if more else ""


def _channel(value: str) -> Channel | None:
    try:
        return Channel(value)
    except ValueError:  # quarantined because the channel itself was missing or unknown
        return None


def _payload(keys: KeyRing, sealed: str, quarantine_id: str) -> str:
    try:
        return keys.open(sealed, quarantine_id).decode("utf-8", errors="replace")
    except SealError:
        # one unreadable row must not hide the rest of the page from the people fixing the others
        log.warning("quarantined payload %s cannot be opened", quarantine_id)
        return UNREADABLE_PAYLOAD


async def list_payments(
    uow: OrdersUnitOfWork,
    state: str = "",
    order_id: str = "",
    page_size: int = paging.DEFAULT_PAGE_SIZE,
    page_token: str = "",
) -> tuple[list[PaymentRecord], str]:
    """Stored payment notifications, newest received first, optionally of one state or order."""
    size = paging.page_size(page_size)
    after = paging.decode_token(page_token, paging.PAYMENTS)
    p = payments_table.c
    query = select(payments_table).order_by(p.received_at.desc(), p.payment_id.desc()).limit(size + 1)
    if state:
        if state not in {known.value for known in PaymentState}:
            raise InvalidArgument("state", "must be one of " + ", ".join(PaymentState))
        query = query.where(p.state == state)
    if order_id:
        if not is_id(order_id):
            raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")
        query = query.where(p.order_id == order_id)
    if after is not None:
        query = query.where(tuple_(p.received_at, p.payment_id) < tuple_(*after))
    async with uow:
        rows = list(await uow.conn.execute(query))
    page = [payment_from_row(row._mapping) for row in rows[:size]]
    more = len(rows) > size
    return page, paging.encode_token(
        paging.PAYMENTS, page[-1].received_at, page[-1].payment_id
    ) if more else ""


async def list_dead_letters(
    uow: OrdersUnitOfWork, page_size: int = paging.DEFAULT_PAGE_SIZE, page_token: str = ""
) -> tuple[list[DeadLetterRow], str]:
    """Work that failed after its retries, newest first: payment notifications and order steps."""
    size = paging.page_size(page_size)
    after = paging.decode_token(page_token, paging.DEAD_LETTERS)
    p, o = payments_table.c, orders_table.c
    letters = union_all(
        select(
            (literal("payment:") + p.payment_id).label("dead_letter_id"),
            literal("payment_notification").label("kind"),
            func.coalesce(p.order_id, "").label("order_id"),
            p.reason.label("error"),
            p.attempts.label("attempts"),
            p.updated_at.label("failed_at"),
        ).where(p.state == PaymentState.DEAD.value),
        select(
            (literal("step:") + o.order_id).label("dead_letter_id"),
            literal("order_step").label("kind"),
            o.order_id.label("order_id"),
            o.step_error.label("error"),
            o.step_attempts.label("attempts"),
            func.coalesce(o.step_failed_at, o.updated_at).label("failed_at"),
        ).where(o.step_dead.is_(True)),
    ).subquery("letters")
    d = letters.c
    query = select(letters).order_by(d.failed_at.desc(), d.dead_letter_id.desc()).limit(size + 1)
    if after is not None:
        query = query.where(tuple_(d.failed_at, d.dead_letter_id) < tuple_(*after))
    async with uow:
        rows = list(await uow.conn.execute(query))
    page = [
        DeadLetterRow(row.dead_letter_id, row.kind, row.order_id, row.error, row.attempts, row.failed_at)
        for row in rows[:size]
    ]
    more = len(rows) > size
    return page, paging.encode_token(
        paging.DEAD_LETTERS, page[-1].failed_at, page[-1].dead_letter_id
    ) if more else ""
