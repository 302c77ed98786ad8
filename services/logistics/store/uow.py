"""Logistics' unit of work: one transaction, its repositories, and the events the use cases emit,
written to the outbox with the change (as the proto messages the injected `messages` builds)."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.kit import db
from services.kit.clock import Clock
from services.kit.sealing import KeyRing
from services.logistics.domain.events import Event
from services.logistics.store.records import (
    AnomalyRepository,
    BreakerRepository,
    PickListRepository,
    QuarantineRepository,
)
from services.logistics.store.shipments import ShipmentRepository, TrackingRepository
from services.logistics.store.waybills import WaybillRequestRepository

# an event → (its subject, its proto message): `mappers.event_message`, injected by the bootstrap
EventMessages = Callable[[Event], tuple[str, Message]]


class LogisticsUnitOfWork(db.UnitOfWork):
    shipments: ShipmentRepository
    tracking: TrackingRepository
    waybills: WaybillRequestRepository
    pick_lists: PickListRepository
    quarantine: QuarantineRepository
    anomalies: AnomalyRepository
    breakers: BreakerRepository

    def __init__(
        self,
        engine: AsyncEngine,
        keys: KeyRing | None,
        clock: Clock | None = None,
        messages: EventMessages | None = None,
    ) -> None:
        super().__init__(engine, clock)
        self._keys = keys
        self._messages = messages

    @classmethod
    def joined(  # type: ignore[override]
        cls,
        conn: AsyncConnection,
        keys: KeyRing | None,
        clock: Clock | None = None,
        messages: EventMessages | None = None,
    ) -> LogisticsUnitOfWork:
        uow = cls(conn.engine, keys, clock, messages)
        uow.conn = conn
        uow._bind()
        return uow

    async def __aenter__(self) -> LogisticsUnitOfWork:
        await super().__aenter__()
        self._bind()
        return self

    def _bind(self) -> None:
        self.shipments = ShipmentRepository(self.conn, self._keys)
        self.tracking = TrackingRepository(self.conn)
        self.waybills = WaybillRequestRepository(self.conn)
        self.pick_lists = PickListRepository(self.conn)
        self.quarantine = QuarantineRepository(self.conn)
        self.anomalies = AnomalyRepository(self.conn)
        self.breakers = BreakerRepository(self.conn)

    def emit(self, event: Event) -> None:
        if self._messages is None:
            raise RuntimeError("this unit of work was built without event messages: it cannot publish")
        self.publish(*self._messages(event))
