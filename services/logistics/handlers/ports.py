"""What the use cases need from outside: the unit of work with its repositories (the store implements
it, tests fake it) and the carriers (the HTTP clients in `services.logistics.carriers`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from services.kit.clock import Clock
from services.logistics.domain.anomalies import Returns
from services.logistics.domain.carriers import BreakerState
from services.logistics.domain.events import Event
from services.logistics.domain.model import Shipment, TrackingEvent, TrackingKey
from services.logistics.domain.tracking import TrackingAnswer
from services.logistics.domain.waybills import Lookup, Outcome, WaybillOrder, WaybillRequest


class Shipments(Protocol):
    async def add(self, shipment: Shipment, decision_id: str) -> bool:
        """False (nothing written) when the order already has a shipment from that warehouse."""

    async def for_order(self, order_id: str, *, lock: bool = False) -> list[Shipment]: ...

    async def get(self, shipment_id: str, *, lock: bool = False) -> Shipment | None: ...

    async def get_many(self, shipment_ids: Sequence[str], *, lock: bool = False) -> list[Shipment]:
        """The shipments that exist among those named, locked in id order when asked."""

    async def by_waybill(self, waybill_no: str, *, lock: bool = False) -> Shipment | None: ...

    async def for_parcels(
        self, waybill_nos: Sequence[str], shipment_ids: Sequence[str], *, lock: bool = False
    ) -> list[Shipment]:
        """The shipments with any of these waybills or ids, locked in id order when asked."""

    async def save(self, shipment: Shipment) -> None: ...

    async def save_many(self, shipments: Sequence[Shipment]) -> None: ...

    async def pick_tasks(self, warehouse_id: str, limit: int, *, lock: bool = False) -> list[Shipment]:
        """Shipments waiting to be picked there, in pick order (expedited, perishable, deadline, oldest)."""

    async def due_for_poll(self, now: datetime, limit: int) -> list[Shipment]:
        """Shipments on their way whose next poll is due, the longest due first."""

    async def set_next_poll(self, shipment_id: str, at: datetime | None) -> None: ...

    async def without_first_scan(self, scanned_out_before: datetime, limit: int) -> list[Shipment]:
        """Shipped before that time, never scanned by the carrier since, and not alerted on for it yet."""

    async def not_updated(self, last_scan_before: datetime, limit: int) -> list[Shipment]:
        """On their way, last scanned before that time, and not alerted on since that scan."""

    async def returns(self, shipment: Shipment, since: datetime) -> Returns:
        """Parcels returned or refused since then, to the shipment's customer and to its address."""


class TrackingLog(Protocol):
    async def add(self, shipment_id: str, event: TrackingEvent) -> bool:
        """False when the shipment already has this scan."""

    async def add_many(self, events: Sequence[tuple[str, TrackingEvent]]) -> set[TrackingKey]:
        """The keys (shipment, carrier code, time, description) of the scans new to their shipments,
        now stored; repeats are left out."""


class WaybillRequests(Protocol):
    async def batch_of_request(self, request_id: str) -> str | None: ...

    async def add_batch(
        self, batch_id: str, request_id: str, at: datetime, requests: Sequence[WaybillRequest]
    ) -> None: ...

    async def items(self, batch_id: str) -> list[WaybillRequest]: ...

    async def pending_for(self, shipment_ids: Sequence[str]) -> dict[str, WaybillRequest]:
        """Each named shipment's request under way (queued, in flight or retrying), if it has one."""

    async def claim_due(self, now: datetime, abandoned_before: datetime, limit: int) -> list[WaybillRequest]:
        """Take due requests (and attempts abandoned in flight, marked uncertain) for this worker: in
        flight from now on, so no other worker takes them."""

    async def save(self, request: WaybillRequest) -> None: ...

    async def dead_letter(self, shipment_id: str, *, lock: bool = False) -> WaybillRequest | None:
        """The shipment's latest request, if it is dead."""


class PickLists(Protocol):
    async def add(self, pick_list_id: str, warehouse_id: str, at: datetime) -> None: ...

    async def exists(self, pick_list_id: str) -> bool: ...


class Quarantine(Protocol):
    async def add(self, carrier: str, content_type: str, body: bytes, reason: str, at: datetime) -> str:
        """Keep a push that could not be read; its id."""


class Anomalies(Protocol):
    async def record(
        self, key: str, rule: str, shipment: Shipment, source: str, message: str, at: datetime
    ) -> bool:
        """False when this anomaly was raised before."""


class BreakerStates(Protocol):
    async def save(self, carrier: str, state: str, at: datetime) -> bool:
        """False when the carrier's breaker was already in that state."""


class UnitOfWork(Protocol):
    """One transaction: rolled back unless committed; the events emitted are published with it."""

    clock: Clock

    @property
    def shipments(self) -> Shipments: ...

    @property
    def tracking(self) -> TrackingLog: ...

    @property
    def waybills(self) -> WaybillRequests: ...

    @property
    def pick_lists(self) -> PickLists: ...

    @property
    def quarantine(self) -> Quarantine: ...

    @property
    def anomalies(self) -> Anomalies: ...

    @property
    def breakers(self) -> BreakerStates: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def emit(self, event: Event) -> None: ...

    async def lock_timeout(self, milliseconds: int) -> None:
        """A lock waited for longer than this fails the rest of the transaction's statements."""

    async def commit(self) -> None: ...


class Carriers(Protocol):
    """The carriers' APIs behind each account's rate limit, concurrency and circuit breaker.

    No method raises for a carrier's failure: each answers one outcome per order, in order.
    """

    async def create(self, account: str, orders: Sequence[WaybillOrder]) -> list[Outcome]:
        """Ask for the orders' waybills (Cainiao's in calls of at most 10)."""

    async def lookup(self, account: str, orders: Sequence[WaybillOrder]) -> list[Lookup]:
        """Ask whether each order already has a waybill (after an attempt that got no answer)."""

    async def track(self, account: str, company: str, waybill_nos: Sequence[str]) -> list[TrackingAnswer]:
        """Each waybill's scans so far (SF's route query, Kuaidi100's query)."""

    async def subscribe(self, company: str, waybill_no: str) -> str:
        """Subscribe a waybill to Kuaidi100's pushes; "" when done, else why not."""

    def breaker(self, account: str) -> tuple[BreakerState, datetime | None]: ...


__all__ = ["BreakerState", "Lookup", "TrackingAnswer"]
