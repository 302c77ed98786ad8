"""Inventory's unit of work: one transaction, its repositories, and the one path of its events.

Handlers `emit` domain events (a new reservation brings its own); the unit of work turns each into
its integration event with the mapper it was built with, and writes them to the outbox in the same
transaction. The one-statement reserve writes its event through `event_row` too.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.inventory.domain.events import Event
from services.inventory.store.catalogue import CatalogueRepository
from services.inventory.store.idempotency import IdempotencyRepository
from services.inventory.store.ledger import LedgerRepository
from services.inventory.store.replenishment import ReplenishmentRepository
from services.inventory.store.reservations import ReservationRepository
from services.inventory.store.stock import StockRepository
from services.kit import outbox, tracing
from services.kit.clock import Clock, SystemClock

# a domain event → (subject, integration event); services.inventory.mappers.integration_event
EventMapper = Callable[[Event], tuple[str, Message]]


class InventoryUnitOfWork:
    """Rolls back unless committed. A connection is checked out at the first statement, and the
    transaction begins with the first statement through SQLAlchemy: the one-statement reserve, sent
    before any, commits on its own and leaves nothing to commit (no BEGIN, no COMMIT)."""

    def __init__(self, engine: AsyncEngine, to_message: EventMapper, clock: Clock | None = None) -> None:
        self._engine = engine
        self._to_message = to_message
        self._conn: AsyncConnection | None = None
        self._pending: list[Event] = []
        self._committed = False
        self.clock: Clock = clock or SystemClock()

    async def __aenter__(self) -> InventoryUnitOfWork:
        self._span = tracing.transaction_span()
        self._conn = None
        self._pending = []
        self._committed = False
        self.stock = StockRepository(self)
        self.reservations = ReservationRepository(self.connection)
        self.catalogue = CatalogueRepository(self.connection)
        self.replenishment = ReplenishmentRepository(self.connection)
        self.ledger = LedgerRepository(self.connection)
        self.idempotency = IdempotencyRepository(self.connection)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._conn is None:
                return
            try:
                if not self._committed and self._conn.in_transaction():
                    await self._conn.rollback()
            finally:
                await self._conn.close()
                self._conn = None
        finally:
            tracing.end_transaction(self._span, self._committed)

    async def connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    def emit(self, *events: Event) -> None:
        self._pending.extend(events)

    def event_row(self, event: Event) -> dict[str, Any]:
        """The outbox row of a domain event: the one conversion every inventory event goes through."""
        subject, message = self._to_message(event)
        return outbox.event_row(subject, message, self.clock.now())

    async def flush_events(self) -> None:
        """Write the events emitted so far, e.g. before taking a hot row lock, so the lock is held briefly."""
        if self._pending:
            rows = [self.event_row(event) for event in self._pending]
            await (await self.connection()).execute(outbox.outbox_table.insert(), rows)
            self._pending = []

    async def commit(self) -> None:
        await self.flush_events()
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.commit()
        self._committed = True

    async def rollback(self) -> None:
        self._pending = []
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()
