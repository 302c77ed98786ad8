"""In-memory repositories and unit of work implementing `services.logistics.handlers.ports` as the store
does (rolled back unless committed; events published only on commit), and scripted carriers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.kit.clock import FixedClock
from services.logistics.domain.anomalies import Returns
from services.logistics.domain.carriers import BreakerState
from services.logistics.domain.model import (
    ON_THE_WAY,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
    TrackingKey,
)
from services.logistics.domain.tracking import TrackingAnswer
from services.logistics.domain.waybills import (
    PENDING,
    Lookup,
    Outcome,
    WaybillOrder,
    WaybillRequest,
    WaybillState,
)
from tests.unit.fake_uow import SnapshotUnitOfWork


@dataclass
class State:
    shipments: dict[str, Shipment] = field(default_factory=dict)
    polls: dict[str, datetime | None] = field(default_factory=dict)
    tracking: set[tuple[str, str, datetime, str]] = field(default_factory=set)
    requests: dict[tuple[str, str], WaybillRequest] = field(default_factory=dict)
    batches: dict[str, str] = field(default_factory=dict)
    anomalies: set[str] = field(default_factory=set)
    quarantine: list[tuple[str, str]] = field(default_factory=list)
    breakers: dict[str, str] = field(default_factory=dict)
    published: list[Any] = field(default_factory=list)


def _copy(shipment: Shipment) -> Shipment:
    found = copy.deepcopy(shipment)
    found.events = []
    return found


class FakeShipments:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add(self, shipment: Shipment, decision_id: str) -> bool:
        if any(
            s.order_id == shipment.order_id and s.warehouse_id == shipment.warehouse_id
            for s in self.state.shipments.values()
        ):
            return False
        self.state.shipments[shipment.shipment_id] = _copy(shipment)
        return True

    async def for_order(self, order_id: str, *, lock: bool = False) -> list[Shipment]:
        return [_copy(s) for s in self.state.shipments.values() if s.order_id == order_id]

    async def get(self, shipment_id: str, *, lock: bool = False) -> Shipment | None:
        found = self.state.shipments.get(shipment_id)
        return None if found is None else _copy(found)

    async def get_many(self, shipment_ids: Sequence[str], *, lock: bool = False) -> list[Shipment]:
        return [_copy(self.state.shipments[i]) for i in sorted(shipment_ids) if i in self.state.shipments]

    async def by_waybill(self, waybill_no: str, *, lock: bool = False) -> Shipment | None:
        found = [s for s in self.state.shipments.values() if s.waybill and s.waybill.waybill_no == waybill_no]
        return _copy(found[0]) if found else None

    async def for_parcels(
        self, waybill_nos: Sequence[str], shipment_ids: Sequence[str], *, lock: bool = False
    ) -> list[Shipment]:
        return [
            _copy(s)
            for _, s in sorted(self.state.shipments.items())
            if s.shipment_id in shipment_ids or (s.waybill and s.waybill.waybill_no in waybill_nos)
        ]

    async def save(self, shipment: Shipment) -> None:
        self.state.shipments[shipment.shipment_id] = _copy(shipment)

    async def save_many(self, shipments: Sequence[Shipment]) -> None:
        for shipment in shipments:
            await self.save(shipment)

    async def pick_tasks(self, warehouse_id: str, limit: int, *, lock: bool = False) -> list[Shipment]:
        raise NotImplementedError

    async def due_for_poll(self, now: datetime, limit: int) -> list[Shipment]:
        due = [
            s
            for s in self.state.shipments.values()
            if s.status in ON_THE_WAY
            and (self.state.polls.get(s.shipment_id) or datetime.max.replace(tzinfo=now.tzinfo)) <= now
        ]
        return [_copy(s) for s in due[:limit]]

    async def set_next_poll(self, shipment_id: str, at: datetime | None) -> None:
        self.state.polls[shipment_id] = at

    async def without_first_scan(self, scanned_out_before: datetime, limit: int) -> list[Shipment]:
        return []

    async def not_updated(self, last_scan_before: datetime, limit: int) -> list[Shipment]:
        return []

    async def returns(self, shipment: Shipment, since: datetime) -> Returns:
        return Returns(0, 0, "")


class FakeTracking:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add(self, shipment_id: str, event: TrackingEvent) -> bool:
        key = event.key(shipment_id)
        if key in self.state.tracking:
            return False
        self.state.tracking.add(key)
        return True

    async def add_many(self, events: Sequence[tuple[str, TrackingEvent]]) -> set[TrackingKey]:
        return {event.key(shipment_id) for shipment_id, event in events if await self.add(shipment_id, event)}


class FakeWaybills:
    def __init__(self, state: State) -> None:
        self.state = state

    async def batch_of_request(self, request_id: str) -> str | None:
        return self.state.batches.get(request_id)

    async def add_batch(
        self, batch_id: str, request_id: str, at: datetime, requests: Sequence[WaybillRequest]
    ) -> None:
        if request_id:
            self.state.batches[request_id] = batch_id
        for request in requests:
            self.state.requests[(request.batch_id, request.shipment_id)] = request

    async def items(self, batch_id: str) -> list[WaybillRequest]:
        return [r for (b, _), r in self.state.requests.items() if b == batch_id]

    async def pending_for(self, shipment_ids: Sequence[str]) -> dict[str, WaybillRequest]:
        return {
            r.shipment_id: r
            for r in self.state.requests.values()
            if r.shipment_id in shipment_ids and r.state in PENDING
        }

    async def claim_due(self, now: datetime, abandoned_before: datetime, limit: int) -> list[WaybillRequest]:
        claimed: list[WaybillRequest] = []
        for key, request in sorted(self.state.requests.items()):
            waiting = request.state in (WaybillState.QUEUED, WaybillState.RETRYING)
            due = waiting and request.next_attempt_at is not None and request.next_attempt_at <= now
            abandoned = (
                request.state is WaybillState.IN_FLIGHT and (request.updated_at or now) < abandoned_before
            )
            if (due or abandoned) and len(claimed) < limit:
                taken = replace(
                    request,
                    state=WaybillState.IN_FLIGHT,
                    uncertain=request.uncertain or abandoned,
                    updated_at=now,
                )
                self.state.requests[key] = taken
                claimed.append(taken)
        return claimed

    async def save(self, request: WaybillRequest) -> None:
        self.state.requests[(request.batch_id, request.shipment_id)] = request

    async def dead_letter(self, shipment_id: str, *, lock: bool = False) -> WaybillRequest | None:
        mine = [r for r in self.state.requests.values() if r.shipment_id == shipment_id]
        latest = max(mine, key=lambda r: r.updated_at or datetime.min, default=None)
        return latest if latest is not None and latest.state is WaybillState.DEAD else None


class FakeAnomalies:
    def __init__(self, state: State) -> None:
        self.state = state

    async def record(
        self, key: str, rule: str, shipment: Shipment, source: str, message: str, at: datetime
    ) -> bool:
        if key in self.state.anomalies:
            return False
        self.state.anomalies.add(key)
        return True


class FakeQuarantine:
    def __init__(self, state: State) -> None:
        self.state = state

    async def add(self, carrier: str, content_type: str, body: bytes, reason: str, at: datetime) -> str:
        self.state.quarantine.append((carrier, reason))
        return f"q-{len(self.state.quarantine)}"


class FakeBreakers:
    def __init__(self, state: State) -> None:
        self.state = state

    async def save(self, carrier: str, state: str, at: datetime) -> bool:
        if self.state.breakers.get(carrier) == state:
            return False
        self.state.breakers[carrier] = state
        return True


class FakePickLists:
    async def add(self, pick_list_id: str, warehouse_id: str, at: datetime) -> None:
        return None

    async def exists(self, pick_list_id: str) -> bool:
        return False


class FakeUnitOfWork(SnapshotUnitOfWork[State]):
    def __init__(self, state: State, clock: FixedClock) -> None:
        self.clock = clock
        super().__init__(state)

    async def lock_timeout(self, milliseconds: int) -> None:
        self.lock_timeout_ms = milliseconds  # nothing waits for a lock in memory

    def bind(self, state: State) -> None:
        self.shipments = FakeShipments(state)
        self.tracking = FakeTracking(state)
        self.waybills = FakeWaybills(state)
        self.anomalies = FakeAnomalies(state)
        self.quarantine = FakeQuarantine(state)
        self.breakers = FakeBreakers(state)
        self.pick_lists = FakePickLists()


class ScriptedCarriers:
    """Each create or lookup answers the next scripted outcome for its order (Failed/Issued, or None for
    "the carrier has no waybill"); the calls made are kept."""

    def __init__(self) -> None:
        self.creates: dict[str, list[Outcome]] = {}
        self.lookups: dict[str, list[Outcome | None]] = {}
        self.calls: list[tuple[str, str]] = []

    async def create(self, account: str, orders: Sequence[WaybillOrder]) -> list[Outcome]:
        answers = []
        for order in orders:
            self.calls.append(("create", order.carrier_order_id))
            answers.append(self.creates[order.carrier_order_id].pop(0))
        return answers

    async def lookup(self, account: str, orders: Sequence[WaybillOrder]) -> list[Lookup]:
        answers = []
        for order in orders:
            self.calls.append(("lookup", order.carrier_order_id))
            answers.append(Lookup(self.lookups[order.carrier_order_id].pop(0)))
        return answers

    async def track(self, account: str, company: str, waybill_nos: Sequence[str]) -> list[TrackingAnswer]:
        return [TrackingAnswer(n) for n in waybill_nos]

    async def subscribe(self, company: str, waybill_no: str) -> str:
        return ""

    def breaker(self, account: str) -> tuple[BreakerState, datetime | None]:
        return BreakerState.CLOSED, None


def status_of(state: State, shipment_id: str) -> ShipmentStatus:
    return state.shipments[shipment_id].status
