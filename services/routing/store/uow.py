"""Routing's unit of work: one transaction with the repositories on its connection; the events the use
cases emit are written to the outbox in it (as the proto messages the injected `messages` builds)."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit import db
from services.kit.clock import Clock
from services.routing.domain.events import Event
from services.routing.store.repositories import (
    DecisionRepository,
    ExpectedDecisionRepository,
    ParkedOrderRepository,
    RuleSetRepository,
    WarehouseLoadRepository,
)

# an event → (its subject, its proto message): `mappers.event_message`, injected by the bootstrap
EventMessages = Callable[[Event], tuple[str, Message]]


class RoutingUnitOfWork(db.UnitOfWork):
    decisions: DecisionRepository
    parked: ParkedOrderRepository
    rule_sets: RuleSetRepository
    expected: ExpectedDecisionRepository
    load: WarehouseLoadRepository

    def __init__(
        self, engine: AsyncEngine, clock: Clock | None = None, messages: EventMessages | None = None
    ) -> None:
        super().__init__(engine, clock)
        self._messages = messages

    @classmethod
    def joined(
        cls, conn: AsyncConnection, clock: Clock | None = None, messages: EventMessages | None = None
    ) -> RoutingUnitOfWork:
        uow = cls(conn.engine, clock, messages)
        uow.conn = conn
        uow._bind()
        return uow

    async def __aenter__(self) -> RoutingUnitOfWork:
        await super().__aenter__()
        self._bind()
        return self

    def _bind(self) -> None:
        self.decisions = DecisionRepository(self.conn)
        self.parked = ParkedOrderRepository(self.conn)
        self.rule_sets = RuleSetRepository(self.conn)
        self.expected = ExpectedDecisionRepository(self.conn)
        self.load = WarehouseLoadRepository(self.conn)

    def emit(self, event: Event) -> None:
        if self._messages is None:
            raise RuntimeError("this unit of work was built without event messages: it cannot publish")
        self.publish(*self._messages(event))
