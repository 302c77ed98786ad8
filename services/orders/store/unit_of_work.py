"""Orders' unit of work: one transaction, its repositories, and the one path of integration events.

Aggregates record domain events; the unit of work turns them into integration events with the
encoder it was built with (services.orders.mappers.integration_event, handed in by bootstrap, so
nothing here knows a protobuf type) and writes them to the outbox in the same transaction: an order's
events in the very statement that saves it, events about no order being saved (`emit`, `collect`)
at commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit import outbox, tracing
from services.kit.clock import Clock, SystemClock
from services.kit.sealing import KeyRing
from services.orders.domain.model import Order
from services.orders.store.assignments import AssignmentRepository, OverdueTicketRepository
from services.orders.store.channels import ChannelRepository
from services.orders.store.orders import OrderRepository
from services.orders.store.payments import PaymentRepository
from services.orders.store.quarantine import QuarantineRepository
from services.orders.store.risk import RiskRepository
from services.orders.store.sla import SlaRepository
from services.orders.store.sources import SourceRepository
from services.orders.store.statements import StatementRepository

# (a domain event, the order it happened to or None) → (subject, integration event), or None for an
# event that stays inside the service
EventEncoder = Callable[[object, Order | None], tuple[str, Message] | None]


class OrdersUnitOfWork:
    """Rolls back unless committed."""

    def __init__(
        self, engine: AsyncEngine, keys: KeyRing, encode: EventEncoder, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self.keys = keys
        self._encode = encode
        self.clock: Clock = clock or SystemClock()
        self._pending: list[dict[str, Any]] = []
        self._committed = False
        self._joined = False

    @classmethod
    def joined(
        cls, conn: AsyncConnection, keys: KeyRing, encode: EventEncoder, clock: Clock | None = None
    ) -> OrdersUnitOfWork:
        """A unit of work inside a transaction someone else owns (a consumer's inbox transaction):
        call `flush_events` before the owner commits; never enter or commit it."""
        uow = cls(conn.engine, keys, encode, clock)
        uow._joined = True
        uow._bind(conn)
        return uow

    def _bind(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._pending = []
        self._committed = False
        self.orders = OrderRepository(conn, self.keys, self.outbox_rows)
        self.payments = PaymentRepository(conn)
        self.statements = StatementRepository(conn)
        self.sources = SourceRepository(conn)
        self.quarantine = QuarantineRepository(conn, self.keys)
        self.assignments = AssignmentRepository(conn)
        self.overdue = OverdueTicketRepository(conn)
        self.sla = SlaRepository(conn)
        self.risk = RiskRepository(conn, self.keys)
        self.channels = ChannelRepository(conn, self.keys)

    async def __aenter__(self) -> OrdersUnitOfWork:
        self._span = tracing.transaction_span()
        conn = await self._engine.connect()
        await conn.begin()
        self._bind(conn)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self._committed:
                await self.conn.rollback()
        finally:
            await self.conn.close()
            tracing.end_transaction(self._span, self._committed)

    def outbox_rows(self, order: Order | None, events: Sequence[object]) -> list[dict[str, Any]]:
        """The outbox rows of domain events (of `order`, or of none): the one conversion every orders
        event goes through."""
        now = self.clock.now()
        rows = []
        for event in events:
            encoded = self._encode(event, order)
            if encoded is not None:
                rows.append(outbox.event_row(*encoded, now))
        return rows

    def emit(self, *events: object) -> None:
        """Events about no order being saved (e.g. a ServiceAlert): written at commit."""
        self._pending += self.outbox_rows(None, events)

    def collect(self, order: Order) -> None:
        """The order's recorded events when the order itself is not saved: written at commit."""
        self._pending += self.outbox_rows(order, order.events)
        order.events.clear()

    async def flush_events(self) -> None:
        if self._pending:
            await self.conn.execute(outbox.outbox_table.insert(), self._pending)
            self._pending = []

    async def commit(self) -> None:
        assert not self._joined, "a joined unit of work is committed by the transaction's owner"
        await self.flush_events()
        await self.conn.commit()
        self._committed = True

    async def rollback(self) -> None:
        self._pending = []
        await self.conn.rollback()
