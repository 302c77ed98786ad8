"""Shipments: one parcel of an order from one warehouse by one carrier, its legal moves through the
warehouse (pick, pack, scan-out) and along the carrier's way (the tracking nodes).

A shipment records the events its moves cause; the unit of work publishes them with the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.kit.errors import FailedPrecondition


class ShipmentStatus(StrEnum):
    CREATED = "created"
    PICKING = "picking"
    PICKED = "picked"
    PACKED = "packed"
    SHIPPED = "shipped"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    REFUSED = "refused"
    RETURNED = "returned"
    CANCELLED = "cancelled"


IN_WAREHOUSE = frozenset(
    {ShipmentStatus.CREATED, ShipmentStatus.PICKING, ShipmentStatus.PICKED, ShipmentStatus.PACKED}
)
# left the warehouse and not at its end yet: what the tracking poll follows
ON_THE_WAY = frozenset(
    {
        ShipmentStatus.SHIPPED,
        ShipmentStatus.PICKED_UP,
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.REFUSED,
    }
)


class Node(StrEnum):
    """The one set of tracking nodes every carrier's codes map onto."""

    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    REFUSED = "refused"
    RETURNED = "returned"
    PROBLEM = "problem"


# how far along a node is: a shipment only moves to a node further than where it is
NODE_RANK: dict[Node, int] = {
    Node.PICKED_UP: 1,
    Node.IN_TRANSIT: 2,
    Node.OUT_FOR_DELIVERY: 3,
    Node.DELIVERED: 4,
    Node.REFUSED: 4,
    Node.RETURNED: 5,
}
NODE_STATUS: dict[Node, ShipmentStatus] = {
    Node.PICKED_UP: ShipmentStatus.PICKED_UP,
    Node.IN_TRANSIT: ShipmentStatus.IN_TRANSIT,
    Node.OUT_FOR_DELIVERY: ShipmentStatus.OUT_FOR_DELIVERY,
    Node.DELIVERED: ShipmentStatus.DELIVERED,
    Node.REFUSED: ShipmentStatus.REFUSED,
    Node.RETURNED: ShipmentStatus.RETURNED,
}


class Source(StrEnum):
    PUSH = "push"
    POLL = "poll"


class Priority(StrEnum):
    STANDARD = "standard"
    EXPEDITED = "expedited"
    MEMBER = "member"


NORMAL, FRESH, COLD_CHAIN = "normal", "fresh", "cold_chain"
GOODS_TYPES = (NORMAL, FRESH, COLD_CHAIN)


@dataclass(frozen=True)
class Line:
    sku: str
    title: str
    quantity: int
    goods_type: str = NORMAL


@dataclass(frozen=True)
class Place:
    """Where a parcel starts or ends, without anyone's name or phone (the warehouse's detail is no one's)."""

    country: str = "CN"
    province: str = ""
    city: str = ""
    district: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Recipient:
    """The personal part of a delivery address: sealed at rest, opened only to ask for a waybill."""

    name: str = ""
    phone: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Waybill:
    waybill_no: str
    # the carrier account that issued it ("sf", "zto", …, "cainiao")
    carrier: str
    sorting_code: str = ""
    destination_code: str = ""
    label: dict[str, Any] = field(default_factory=dict, compare=False)
    created_at: datetime | None = None


@dataclass(frozen=True)
class TrackingEvent:
    """One scan of a parcel as the carrier reported it, mapped onto the node set."""

    node: Node
    carrier_code: str
    description: str
    area: str
    at: datetime
    source: Source
    received_at: datetime | None = None

    def key(self, shipment_id: str) -> TrackingKey:
        """What makes a scan the same scan of its shipment: a repeat of it is stored once."""
        return (shipment_id, self.carrier_code, self.at, self.description)


# (shipment, carrier code, time, description)
TrackingKey = tuple[str, str, datetime, str]


@dataclass
class Shipment:
    shipment_id: str
    order_id: str
    warehouse_id: str
    # routing's carrier code ("SF", "ZTO", …); the account that issues its waybill follows from it
    carrier: str
    service: str
    lines: tuple[Line, ...]
    priority: Priority
    deadline: datetime | None
    destination: Place
    recipient: Recipient
    origin: Place
    customer_id: str
    channel: str
    created_at: datetime
    status: ShipmentStatus = ShipmentStatus.CREATED
    waybill: Waybill | None = None
    pick_list_id: str = ""
    picked_at: datetime | None = None
    packed_at: datetime | None = None
    scanned_out_at: datetime | None = None
    delivered_at: datetime | None = None
    # the newest scan (by the carrier's time) and the furthest node reached (by rank)
    last_node: Node | None = None
    last_node_at: datetime | None = None
    furthest_node: Node | None = None
    exception: str = ""
    updated_at: datetime | None = None
    # the order is on hold or frozen (orders' events): the warehouse neither picks, packs nor ships it
    held: str = ""
    # when orders held or released the order (the event's time): a late, older event changes nothing
    hold_changed_at: datetime | None = None
    events: list[Any] = field(default_factory=list, compare=False, repr=False)

    @property
    def goods_type(self) -> str:
        """The most demanding goods type of its lines: cold chain, then fresh, then normal."""
        kinds = {line.goods_type for line in self.lines}
        return next((kind for kind in (COLD_CHAIN, FRESH) if kind in kinds), NORMAL)

    @property
    def shipped(self) -> bool:
        return self.scanned_out_at is not None

    def _from(self, warehouse_id: str) -> None:
        if warehouse_id != self.warehouse_id:
            raise FailedPrecondition(
                f"shipment {self.shipment_id} ships from {self.warehouse_id}, not from {warehouse_id}: "
                "wrong warehouse"
            )

    def _not_cancelled(self, what: str) -> None:
        if self.status is ShipmentStatus.CANCELLED:
            raise FailedPrecondition(f"shipment {self.shipment_id} is cancelled: cannot {what}")
        if self.held:
            raise FailedPrecondition(
                f"shipment {self.shipment_id}: order {self.order_id} is on hold ({self.held}): cannot {what}"
            )

    def _newer(self, at: datetime) -> bool:
        return self.hold_changed_at is None or at > self.hold_changed_at

    def hold(self, reason: str, at: datetime, now: datetime) -> bool:
        """The order was held or frozen at `at`: stop the warehouse until it is released. False when
        nothing changes: already held, out of the warehouse (after-sales' business then), or a hold
        older than the release already applied (the two events may arrive in either order)."""
        if self.status not in IN_WAREHOUSE or self.status is ShipmentStatus.CANCELLED or not self._newer(at):
            return False
        self.hold_changed_at = at
        if self.held:
            return True
        self.held, self.updated_at = (reason.strip() or "held")[:200], now
        return True

    def release(self, at: datetime, now: datetime) -> bool:
        """The order was released at `at`; False for a release older than the hold in force."""
        if not self._newer(at):
            return False
        self.hold_changed_at = at
        if self.held:
            self.held, self.updated_at = "", now
        return True

    def start_picking(self, pick_list_id: str, now: datetime) -> None:
        self._not_cancelled("go on a pick list")
        if self.status is not ShipmentStatus.CREATED:
            raise FailedPrecondition(
                f"shipment {self.shipment_id} is {self.status.value}: only a shipment waiting to be "
                "picked goes on a pick list"
            )
        self.status, self.pick_list_id, self.updated_at = ShipmentStatus.PICKING, pick_list_id, now

    def confirm_pick(self, warehouse_id: str, now: datetime) -> bool:
        """False for a repeated scan (already picked or further): nothing changes."""
        self._from(warehouse_id)
        self._not_cancelled("be picked")
        if self.status not in (ShipmentStatus.CREATED, ShipmentStatus.PICKING):
            return False
        self.status, self.picked_at, self.updated_at = ShipmentStatus.PICKED, now, now
        self.events.append(_event("ShipmentPicked", self))
        return True

    def confirm_packed(self, warehouse_id: str, now: datetime) -> bool:
        self._from(warehouse_id)
        self._not_cancelled("be packed")
        if self.status in (ShipmentStatus.CREATED, ShipmentStatus.PICKING):
            raise FailedPrecondition(f"shipment {self.shipment_id} is not picked yet: pack after picking")
        if self.status is not ShipmentStatus.PICKED:
            return False
        self.status, self.packed_at, self.updated_at = ShipmentStatus.PACKED, now, now
        self.events.append(_event("ShipmentPacked", self))
        return True

    def scan_out(self, warehouse_id: str, now: datetime) -> bool:
        """Shipped needs proof: the waybill and this scan, after packing."""
        self._from(warehouse_id)
        self._not_cancelled("be scanned out")
        if self.shipped:
            return False
        if self.status is not ShipmentStatus.PACKED:
            raise FailedPrecondition(
                f"shipment {self.shipment_id} is {self.status.value}: scan-out before packing"
            )
        if self.waybill is None:
            raise FailedPrecondition(f"shipment {self.shipment_id} has no waybill yet: scan-out needs one")
        self.status, self.scanned_out_at, self.updated_at = ShipmentStatus.SHIPPED, now, now
        self.events.append(_event("ShipmentScannedOut", self))
        # the carrier may have scanned the parcel before the dock did (a timeline starts with the waybill)
        if self.furthest_node is not None:
            self.events.extend(self._advance_to(self.furthest_node, self.last_node_at or now))
        return True

    def cancel(self, now: datetime) -> bool:
        if self.status is ShipmentStatus.CANCELLED:
            return False
        if self.status not in IN_WAREHOUSE:
            raise FailedPrecondition(
                f"shipment {self.shipment_id} is {self.status.value}: "
                "it left the warehouse, too late to cancel"
            )
        self.status, self.updated_at = ShipmentStatus.CANCELLED, now
        return True

    def may_get_waybill(self) -> None:
        if self.status is ShipmentStatus.CANCELLED:
            raise FailedPrecondition(
                f"shipment {self.shipment_id}: order {self.order_id} is cancelled, no waybill for it"
            )

    def attach_waybill(self, waybill: Waybill, batch_id: str) -> bool:
        """A shipment's first waybill is its only one; False (nothing changes) once it has one."""
        if self.waybill is not None:
            return False
        self.waybill = waybill
        self.updated_at = waybill.created_at
        self.events.append(_event("WaybillCreated", self, batch_id=batch_id))
        return True

    def track(self, event: TrackingEvent) -> None:
        """Apply a node new to this shipment (the store drops repeats): it is on the timeline whatever
        its order, and moves the shipment only further along."""
        if self.last_node_at is None or event.at >= self.last_node_at:
            self.last_node, self.last_node_at = event.node, event.at
            if event.node is not Node.PROBLEM:
                self.exception = ""
        if event.node is Node.PROBLEM:
            self.exception = event.description or "the carrier reported a problem"
        self.updated_at = event.received_at
        moved: list[ShipmentFact] = []
        if event.node is not Node.PROBLEM and (
            self.furthest_node is None or NODE_RANK[event.node] > NODE_RANK[self.furthest_node]
        ):
            self.furthest_node = event.node
            if self.shipped:
                moved = self._advance_to(event.node, event.at)
        self.events.append(_event("TrackingUpdated", self, tracking=event))
        if event.node in (Node.PROBLEM, Node.REFUSED):
            self.events.append(_event("ShipmentException", self, tracking=event))
        self.events.extend(moved)

    def _advance_to(self, node: Node, at: datetime) -> list[ShipmentFact]:
        status = NODE_STATUS[node]
        if self.status in (ShipmentStatus.CANCELLED, status):
            return []
        refused = self.status is ShipmentStatus.REFUSED
        self.status = status
        if status is ShipmentStatus.DELIVERED:
            self.delivered_at = at
            return [_event("ShipmentDelivered", self, at=at)]
        if status is ShipmentStatus.RETURNED:
            return [_event("ShipmentReturned", self, at=at, refused=refused)]
        return []


@dataclass(frozen=True)
class ShipmentFact:
    """What an event says about its shipment, frozen at the moment of the event."""

    kind: str
    shipment_id: str
    order_id: str
    warehouse_id: str
    carrier: str
    waybill_no: str
    pick_list_id: str
    status: ShipmentStatus
    batch_id: str = ""
    tracking: TrackingEvent | None = None
    at: datetime | None = None
    refused: bool = False


def _event(kind: str, shipment: Shipment, **details: Any) -> ShipmentFact:
    waybill = shipment.waybill
    return ShipmentFact(
        kind,
        shipment.shipment_id,
        shipment.order_id,
        shipment.warehouse_id,
        waybill.carrier if waybill is not None and kind == "WaybillCreated" else shipment.carrier,
        waybill.waybill_no if waybill is not None else "",
        shipment.pick_list_id,
        shipment.status,
        **details,
    )
