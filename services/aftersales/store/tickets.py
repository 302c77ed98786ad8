"""Tickets on one connection: the whole ticket in its `state` document, with the columns the queues and
lists filter on read from it here, each named once (`ticket_columns`).

Writes are checked against the version each ticket was read at: the repository remembers, for every
ticket object it handed out (or added), the version of its row, and `save` writes only over that
version (`ConcurrentChange` otherwise)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Select, String, and_, any_, bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftersales.domain.approval import PastTicket
from services.aftersales.domain.errors import Refused
from services.aftersales.domain.events import BY_RULES
from services.aftersales.domain.tickets import Ticket
from services.aftersales.handlers.ports import ConcurrentChange, TicketFilter
from services.aftersales.store.constraints import violated
from services.aftersales.store.rows import ticket_document, ticket_from_document
from services.aftersales.store.tables import refunds_table, tickets_table
from services.kit.errors import AlreadyExists

_t = tickets_table.c
# every ticket operation on an order waits for the others on the same order (a 64-bit key)
_LOCK_ORDER = text("SELECT pg_advisory_xact_lock(hashtextextended('aftersales:order:' || :order_id, 0))")
# several orders' locks, taken in one order (the database's), so two such transactions never deadlock
_LOCK_ORDERS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('aftersales:order:' || o, 0)) "
    "FROM (SELECT DISTINCT o FROM unnest(CAST(:order_ids AS varchar[])) AS u(o) ORDER BY o) AS s"
)
_OF_ORDERS_AND_REQUESTS = (
    select(tickets_table)
    .where(
        or_(
            _t.order_id == any_(bindparam("order_ids", type_=ARRAY(String))),
            and_(_t.request_id == any_(bindparam("request_ids", type_=ARRAY(String))), _t.request_id != ""),
        )
    )
    .order_by(_t.opened_at, _t.ticket_id)
)
_NEWEST_FIRST = (_t.opened_at.desc(), _t.ticket_id.desc())


def _by_request(request_id: str) -> Any:
    """The ticket a request id opened, said so that the partial index on request ids serves it (the
    index's own condition is in the query: a generic plan cannot tell the id is not empty)."""
    return and_(_t.request_id == request_id, _t.request_id != "")


def decided_at(ticket: Ticket) -> datetime | None:
    """When the approval rules decided the ticket: the moment they approved it, or for a REVIEW
    decision (a person answered later, if at all) when it was opened; None when they never did."""
    if ticket.decision is None:
        return None
    if ticket.decision.approved and ticket.answered_by == BY_RULES and ticket.answered_at is not None:
        return ticket.answered_at
    return ticket.opened_at


def ticket_columns(ticket: Ticket, next_deadline: datetime | None) -> dict[str, Any]:
    """Every column a ticket's moves may change, read from the ticket."""
    return {
        "customer_id": ticket.customer_id,
        "channel": ticket.order.channel,
        "status": ticket.status.value,
        "damage_reported": ticket.damage_reported,
        "overdue": ticket.flagged_at is not None and ticket.answered_at is None,
        "refund_no": ticket.refund_no,
        "state": ticket_document(ticket),
        "updated_at": ticket.updated_at or ticket.opened_at,
        "next_deadline": next_deadline,
        "decided_at": decided_at(ticket),
    }


def _refused(error: sqlalchemy.exc.IntegrityError, ticket: Ticket) -> Exception:
    """What a broken constraint of the tickets table means to the caller."""
    name = violated(error)
    if name == "tickets_one_open_per_reason":
        return Refused(
            "reason",
            f"order {ticket.order_id} has an open ticket for {ticket.reason.value}: "
            "one open ticket per reason",
        )
    if name == "tickets_pkey":
        return AlreadyExists(f"ticket {ticket.ticket_id} exists")
    if name == "tickets_by_refund_no":
        return AlreadyExists(f"refund number {ticket.refund_no} belongs to another ticket")
    return error


def encode_token(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), key]).encode()).decode()


class BadToken(ValueError):
    """A page token this list did not give out (the use case names its request field)."""


def decode_token(token: str) -> tuple[datetime, str]:
    try:
        at, key = json.loads(base64.urlsafe_b64decode(token.encode()))
        moment = datetime.fromisoformat(at)
    except (ValueError, TypeError):
        raise BadToken("not a token this list gave out") from None
    if moment.tzinfo is None or not isinstance(key, str):
        raise BadToken("not a token this list gave out")
    return moment, key


def check_size(size: int) -> None:
    """The use cases bound a page's size; the store only refuses one that could give nothing."""
    if size < 1:
        raise ValueError(f"a page holds at least one row, not {size}")


class TicketRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        # id(ticket) → (the ticket, the version of the row it was read from or added as)
        self._read: dict[int, tuple[Ticket, int]] = {}

    def _ticket(self, row: Row[Any]) -> Ticket:
        ticket = ticket_from_document(row.state)
        self._read[id(ticket)] = (ticket, row.version)
        return ticket

    async def _many(self, query: Select[Any]) -> list[Ticket]:
        return [self._ticket(row) for row in await self.conn.execute(query)]

    async def _one(self, query: Select[Any], lock: bool) -> Ticket | None:
        found = await self._many(query.with_for_update() if lock else query)
        return found[0] if found else None

    def version_of(self, ticket: Ticket) -> int:
        """The version of the row this ticket object was read from (or added as)."""
        entry = self._read.get(id(ticket))
        if entry is None or entry[0] is not ticket:
            raise RuntimeError(f"ticket {ticket.ticket_id} was not read through this unit of work")
        return entry[1]

    async def lock_order(self, order_id: str) -> None:
        """Serialise this transaction with every other one about the order's tickets (until it ends)."""
        await self.conn.execute(_LOCK_ORDER, {"order_id": order_id})

    async def lock_orders(self, order_ids: list[str]) -> None:
        """`lock_order` for several orders at once, in one order."""
        await self.conn.execute(_LOCK_ORDERS, {"order_ids": sorted(set(order_ids))})

    async def of_orders_and_requests(
        self, order_ids: list[str], request_ids: list[str]
    ) -> tuple[dict[str, list[Ticket]], dict[str, Ticket]]:
        """Each order's tickets, oldest first, and the ticket each request id opened, in one query."""
        rows = await self.conn.execute(
            _OF_ORDERS_AND_REQUESTS, {"order_ids": order_ids, "request_ids": request_ids}
        )
        of_orders: dict[str, list[Ticket]] = {order_id: [] for order_id in order_ids}
        by_request: dict[str, Ticket] = {}
        wanted = set(request_ids)
        for row in rows:
            ticket = self._ticket(row)
            if row.order_id in of_orders:
                of_orders[row.order_id].append(ticket)
            if row.request_id and row.request_id in wanted:
                by_request[row.request_id] = ticket
        return of_orders, by_request

    async def of_order(self, order_id: str) -> list[Ticket]:
        """The order's tickets, oldest first."""
        query = select(tickets_table).where(_t.order_id == order_id).order_by(_t.opened_at, _t.ticket_id)
        return await self._many(query)

    async def get(self, ticket_id: str, *, lock: bool = False) -> Ticket | None:
        return await self._one(select(tickets_table).where(_t.ticket_id == ticket_id), lock)

    async def get_many(self, ticket_ids: list[str], *, lock: bool = False) -> dict[str, Ticket]:
        """The tickets of these ids that exist, by id (locked in id order when `lock`)."""
        if not ticket_ids:
            return {}
        query = select(tickets_table).where(_t.ticket_id == any_(bindparam("ids", type_=ARRAY(String))))
        query = query.order_by(_t.ticket_id)
        rows = await self.conn.execute(query.with_for_update() if lock else query, {"ids": ticket_ids})
        return {ticket.ticket_id: ticket for ticket in (self._ticket(row) for row in rows)}

    async def by_replacement(self, order_id: str, *, lock: bool = False) -> Ticket | None:
        """The exchange's ticket whose replacement is this order (None: it is no replacement)."""
        if not order_id:
            return None
        replacement = _t.state["replacement_shipment_id"].astext
        query = select(tickets_table).where(replacement == order_id, replacement != "")
        return await self._one(query, lock)

    async def by_request(self, request_id: str) -> Ticket | None:
        if not request_id:
            return None
        return await self._one(select(tickets_table).where(_by_request(request_id)), False)

    async def by_refund_no(self, refund_no: str, *, lock: bool = False) -> Ticket | None:
        """The ticket of a refund number: its current attempt's, or an earlier attempt's (through the
        refunds the provider was asked for)."""
        if not refund_no:
            return None
        earlier = select(refunds_table.c.ticket_id).where(refunds_table.c.out_refund_no == refund_no)
        query = select(tickets_table).where(or_(_t.refund_no == refund_no, _t.ticket_id.in_(earlier)))
        return await self._one(query, lock)

    async def add(self, ticket: Ticket, request_id: str, next_deadline: datetime | None) -> None:
        """Insert a new ticket (version 1).

        Raises `Refused("reason", …)` (FAILED_PRECONDITION) when the order has an open ticket for the
        same reason; `AlreadyExists` when `request_id` opened a ticket already (the transaction is
        still usable: read that ticket with `by_request`) or the ticket id is taken. Any other
        refusal leaves the transaction failed (roll it back)."""
        row = {
            "ticket_id": ticket.ticket_id,
            "order_id": ticket.order_id,
            "kind": ticket.kind.value,
            "reason": ticket.reason.value,
            "request_id": request_id,
            "opened_at": ticket.opened_at,
            "version": 1,
            **ticket_columns(ticket, next_deadline),
        }
        statement = insert(tickets_table).values(row)
        if request_id:
            statement = statement.on_conflict_do_nothing(
                index_elements=["request_id"], index_where=text("request_id <> ''")
            )
        try:
            added = (await self.conn.execute(statement.returning(_t.ticket_id))).first()
        except sqlalchemy.exc.IntegrityError as error:
            raise _refused(error, ticket) from None
        if added is None:
            raise AlreadyExists(f"request {request_id} opened a ticket already")
        self._read[id(ticket)] = (ticket, 1)

    async def save(self, ticket: Ticket, next_deadline: datetime | None) -> None:
        """Write the ticket over the version it was read at; raises ConcurrentChange when the row
        changed since (read it again and retry)."""
        version = self.version_of(ticket)
        statement = (
            update(tickets_table)
            .where(_t.ticket_id == ticket.ticket_id, _t.version == version)
            .values(version=version + 1, **ticket_columns(ticket, next_deadline))
            .returning(_t.version)
        )
        try:
            written = (await self.conn.execute(statement)).first()
        except sqlalchemy.exc.IntegrityError as error:
            raise _refused(error, ticket) from None
        if written is None:
            raise ConcurrentChange(f"ticket {ticket.ticket_id} changed since it was read")
        self._read[id(ticket)] = (ticket, version + 1)

    async def due(self, now: datetime, limit: int) -> list[Ticket]:
        """Tickets whose next response-time deadline has passed, earliest first, locked: another
        sweep running at the same time skips them."""
        query = (
            select(tickets_table)
            .where(_t.next_deadline <= now)
            .order_by(_t.next_deadline, _t.ticket_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._many(query)

    async def page(
        self, where: TicketFilter, now: datetime, size: int, token: str
    ) -> tuple[list[Ticket], str]:
        """Newest first (opened_at, then ticket id); the token continues after the last one, "" at
        the end (one this list did not give raises BadToken, a ValueError). `overdue_only`: flagged
        by the SLA and not answered, or past the respond limit and not swept yet
        (`next_deadline <= now`)."""
        check_size(size)
        if where.customers is not None and not where.customers:
            return [], ""
        query = select(tickets_table)
        if where.order_id:
            query = query.where(_t.order_id == where.order_id)
        if where.customer_id:
            query = query.where(_t.customer_id == where.customer_id)
        if where.customers is not None:
            query = query.where(_t.customer_id.in_(sorted(where.customers)))
        if where.channel:
            query = query.where(_t.channel == where.channel)
        if where.status:
            query = query.where(_t.status == where.status)
        if where.overdue_only:
            query = query.where(or_(_t.overdue, _t.next_deadline <= now))
        if token:
            at, ticket_id = decode_token(token)
            query = query.where(or_(_t.opened_at < at, and_(_t.opened_at == at, _t.ticket_id < ticket_id)))
        rows = (await self.conn.execute(query.order_by(*_NEWEST_FIRST).limit(size + 1))).all()
        tickets = [self._ticket(row) for row in rows[:size]]
        more = len(rows) > size
        return tickets, encode_token(tickets[-1].opened_at, tickets[-1].ticket_id) if more else ""

    async def decided(self, limit: int) -> list[PastTicket]:
        """Tickets the approval rules decided, newest decision first, as they stood then."""
        query = (
            select(tickets_table.c.state, _t.decided_at)
            .where(_t.decided_at.is_not(None))
            .order_by(_t.decided_at.desc(), _t.ticket_id.desc())
            .limit(limit)
        )
        rows = await self.conn.execute(query)
        return [PastTicket(ticket_from_document(row.state).facts(), row.decided_at) for row in rows]
