"""An order's parcels: routing's plan of them, logistics' shipments, and what the warehouse and the
carriers report about each (DOMAIN.md §1: shipped needs proof; every step is on the timeline).

The order follows its shipments (`Order.follow_shipments`): PICKING at the first shipment picked,
PACKED once every shipment is packed, SHIPPED once every shipment is scanned out with its waybill,
DELIVERED once every shipment is delivered. Cancelled shipments do not count. A shipment only ever
moves forward, so a repeated or late report changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.orders.domain.anchor import Observation
from services.orders.domain.lifecycle import OrderStatus


class Stage(StrEnum):
    """How far one shipment got, as the order knows it."""

    CREATED = "CREATED"  # opened at logistics, waiting to be picked
    PICKED = "PICKED"
    PACKED = "PACKED"
    SHIPPED = "SHIPPED"  # scanned out of the warehouse with its waybill
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"  # cancelled in the warehouse: no longer part of the order's journey


RANK = {
    Stage.CREATED: 0,
    Stage.PICKED: 1,
    Stage.PACKED: 2,
    Stage.SHIPPED: 3,
    Stage.DELIVERED: 4,
}
IN_WAREHOUSE = frozenset({Stage.CREATED, Stage.PICKED, Stage.PACKED})


@dataclass(frozen=True)
class PlannedParcel:
    """One parcel of routing's plan: a warehouse, the carrier routing chose for it, and its lines."""

    warehouse_id: str
    carrier: str
    service: str
    lines: tuple[tuple[str, int], ...]  # (sku, quantity)


@dataclass(frozen=True)
class ShippingPlan:
    """Routing's decision the order's stock was reserved by, parcel by parcel."""

    decision_id: str
    parcels: tuple[PlannedParcel, ...]

    def for_warehouses(self, warehouses: tuple[str, ...]) -> tuple[PlannedParcel, ...]:
        """The planned parcel of each warehouse the order ships from, in that order; a warehouse the
        plan has no parcel for (its stock moved by hand since) is named by the error."""
        by_warehouse = {parcel.warehouse_id: parcel for parcel in self.parcels}
        missing = [warehouse for warehouse in warehouses if warehouse not in by_warehouse]
        if missing:
            raise NoParcelPlanned(missing, self.decision_id)
        return tuple(by_warehouse[warehouse] for warehouse in warehouses)


class NoParcelPlanned(Exception):
    def __init__(self, warehouses: list[str], decision_id: str) -> None:
        super().__init__(
            f"decision {decision_id} planned no carrier for {', '.join(warehouses)} "
            "(was the stock moved to another warehouse by hand?)"
        )
        self.warehouses = warehouses


@dataclass(frozen=True)
class Shipment:
    """One of the order's shipments at logistics (one per warehouse and carrier)."""

    shipment_id: str
    warehouse_id: str
    carrier: str
    stage: Stage = Stage.CREATED
    waybill_no: str = ""
    scanned_out_at: datetime | None = None
    delivered_at: datetime | None = None
    # named by logistics' answer to CreateShipments (or CancelShipments); False while the order only
    # knows it from an event that overtook that answer: the order does not yet know all its shipments
    listed: bool = True
    # the warehouse's and the carrier's steps already on the order's timeline (a late one still goes
    # there once, though it moves nothing; a repeated one does not)
    reported: frozenset[str] = frozenset()

    @property
    def out(self) -> bool:
        """Shipped needs proof: scanned out of the warehouse, with a waybill."""
        return self.scanned_out_at is not None and bool(self.waybill_no)

    def reached(self, stage: Stage) -> Shipment:
        """The shipment at `stage` if that is further than it is; never back, never out of CANCELLED."""
        if self.stage is Stage.CANCELLED or stage is Stage.CANCELLED:
            return self
        return replace(self, stage=stage) if RANK[stage] > RANK[self.stage] else self

    def merged(self, answer: Shipment) -> Shipment:
        """What logistics answered about this shipment, on top of what events already told."""
        merged = self.reached(answer.stage)
        if answer.stage is Stage.CANCELLED and self.stage in IN_WAREHOUSE:
            merged = replace(merged, stage=Stage.CANCELLED)
        return replace(
            merged,
            warehouse_id=self.warehouse_id or answer.warehouse_id,
            carrier=self.carrier or answer.carrier,
            waybill_no=self.waybill_no or answer.waybill_no,
            scanned_out_at=self.scanned_out_at or answer.scanned_out_at,
            delivered_at=self.delivered_at or answer.delivered_at,
            listed=self.listed or answer.listed,
            reported=self.reported | answer.reported,
        )


class Report(StrEnum):
    """What logistics says happened to a shipment (its events)."""

    PICKED = "picked"
    PACKED = "packed"
    WAYBILL = "waybill"
    WAYBILL_FAILED = "waybill_failed"
    SCANNED_OUT = "scanned_out"
    TRACKING = "tracking"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED = "returned"


# the reports that are each shipment's steps, noted once each (the others are news every time)
STEPS = frozenset({Report.PICKED, Report.PACKED, Report.WAYBILL, Report.SCANNED_OUT, Report.DELIVERED})


@dataclass(frozen=True)
class ShipmentReport:
    kind: Report
    order_id: str
    shipment_id: str
    at: datetime | None = None  # when it happened (the scan, the delivery), if the event says
    warehouse_id: str = ""
    carrier: str = ""
    waybill_no: str = ""
    node: str = ""  # a tracking node: PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, REFUSED, …
    detail: str = ""  # the carrier's description, a failure's reason
    area: str = ""
    via: str = ""  # push or poll
    refused: bool = False  # a returned parcel the customer refused


def describe(report: ShipmentReport) -> str:
    """The report in words, for the order's timeline."""
    parcel = f"shipment {report.shipment_id}"
    waybill = f" waybill {report.waybill_no}" if report.waybill_no else ""
    match report.kind:
        case Report.PICKED:
            return f"{parcel} picked at {report.warehouse_id or 'the warehouse'}"
        case Report.PACKED:
            return f"{parcel} packed at {report.warehouse_id or 'the warehouse'}"
        case Report.WAYBILL:
            return f"{parcel}: e-waybill {report.waybill_no} issued by {report.carrier or 'the carrier'}"
        case Report.WAYBILL_FAILED:
            return f"{parcel}: no e-waybill from {report.carrier or 'the carrier'}: {report.detail}"
        case Report.SCANNED_OUT:
            where = report.warehouse_id or "the warehouse"
            return f"{parcel} scanned out of {where} ({report.carrier}{waybill})"
        case Report.TRACKING:
            where = f" at {report.area}" if report.area else ""
            when = f" {report.at.isoformat()}" if report.at else ""
            words = f": {report.detail}" if report.detail else ""
            via = f", by {report.via}" if report.via else ""
            node = report.node or "tracking"
            return f"{parcel} {node}{where}{words} ({report.carrier}{waybill}{when}{via})"
        case Report.DELIVERED:
            return f"{parcel} delivered ({waybill.strip() or 'no waybill'})"
        case Report.EXCEPTION:
            words = f": {report.detail}" if report.detail else ""
            return f"{parcel} {report.node or 'problem'}{words} ({waybill.strip() or 'no waybill'})"
        case Report.RETURNED:
            refused = " refused by the customer and" if report.refused else ""
            return f"{parcel}{refused} returned to the sender ({waybill.strip() or 'no waybill'})"
    return parcel


# ---- logistics as a source of the drift report ---------------------------------------------------

LOGISTICS_SOURCE = "LOGISTICS"
LOGISTICS_RULE = "logistics-shipments"
_S = OrderStatus
# what the order's status may be while its least advanced shipment is at a stage: the order follows
# its shipments, so anything else is a disagreement worth a look (a cancelled order whose parcel was
# picked or left, a shipped order whose parcels logistics still has, parcels delivered to an order
# that never followed). A hold keeps the shipments where they are; an exception can come at any stage.
_LOGISTICS_MEANS: dict[Stage, frozenset[OrderStatus]] = {
    Stage.CREATED: frozenset({_S.ALLOCATED, _S.PICKING, _S.ON_HOLD, _S.EXCEPTION}),
    Stage.PICKED: frozenset({_S.PICKING, _S.ON_HOLD, _S.EXCEPTION}),
    Stage.PACKED: frozenset({_S.PACKED, _S.ON_HOLD, _S.EXCEPTION}),
    Stage.SHIPPED: frozenset({_S.SHIPPED, _S.EXCEPTION, _S.PARTIALLY_REFUNDED, _S.REFUNDED}),
    Stage.DELIVERED: frozenset(
        {_S.DELIVERED, _S.COMPLETED, _S.EXCEPTION, _S.PARTIALLY_REFUNDED, _S.REFUNDED}
    ),
}


def logistics_word(shipments: Sequence[Shipment]) -> Observation | None:
    """Logistics' latest word on the whole order, from its shipments as the order knows them: the
    least advanced one that is not cancelled (None when none is left)."""
    active = [shipment for shipment in shipments if shipment.stage is not Stage.CANCELLED]
    if not active:
        return None
    least = min(active, key=lambda shipment: RANK[shipment.stage]).stage
    parcels = ", ".join(f"{s.warehouse_id or s.shipment_id} {s.stage.value}" for s in active)
    return Observation(
        rule=LOGISTICS_RULE,
        source=LOGISTICS_SOURCE,
        raw_status=f"{least.value} ({parcels})"[:500],
        status=None,
        means=_LOGISTICS_MEANS[least],
    )
