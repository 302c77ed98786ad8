"""After-sales' unit of work: one transaction, its repositories, and the events the use cases emit,
written to the outbox with the change (as the proto messages the injected `messages` builds)."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.aftersales.domain.events import Event
from services.aftersales.handlers import ports
from services.aftersales.store.claims import ClaimRepository
from services.aftersales.store.refunds import RefundRepository
from services.aftersales.store.restocks import RestockRepository
from services.aftersales.store.rule_sets import RuleSetRepository
from services.aftersales.store.tickets import TicketRepository
from services.kit import db
from services.kit.clock import Clock

# an event → (its subject, its proto message): `mappers.event_message`, injected by the bootstrap
EventMessages = Callable[[Event], tuple[str, Message]]


class AftersalesUnitOfWork(db.UnitOfWork):
    tickets: TicketRepository
    claims: ClaimRepository
    refunds: RefundRepository
    restocks: RestockRepository
    rule_sets: RuleSetRepository

    def __init__(
        self, engine: AsyncEngine, clock: Clock | None = None, messages: EventMessages | None = None
    ) -> None:
        super().__init__(engine, clock)
        self._messages = messages

    @classmethod
    def joined(  # type: ignore[override]
        cls, conn: AsyncConnection, clock: Clock | None = None, messages: EventMessages | None = None
    ) -> AftersalesUnitOfWork:
        """Inside a transaction someone else owns (a consumer's inbox transaction): call
        `flush_events` before the owner commits; never enter or commit it."""
        uow = cls(conn.engine, clock, messages)
        uow.conn = conn
        uow._bind()
        return uow

    async def __aenter__(self) -> AftersalesUnitOfWork:
        await super().__aenter__()
        self._bind()
        return self

    def _bind(self) -> None:
        self.tickets = TicketRepository(self.conn)
        self.claims = ClaimRepository(self.conn)
        self.refunds = RefundRepository(self.conn)
        self.restocks = RestockRepository(self.conn)
        self.rule_sets = RuleSetRepository(self.conn)

    def emit(self, event: Event) -> None:
        if self._messages is None:
            raise RuntimeError("this unit of work was built without event messages: it cannot publish")
        self.publish(*self._messages(event))


def _implements_ports(uow: AftersalesUnitOfWork) -> ports.UnitOfWork:
    """Never called: mypy checks here that the store gives the use cases every port they need."""
    return uow
