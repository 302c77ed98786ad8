"""Every proto ↔ domain conversion of logistics, its integration events included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.common.v1 import common_pb2
from oms.logistics.v1 import events_pb2 as events_pb
from oms.logistics.v1 import logistics_pb2 as pb
from services.kit import batching, bus
from services.kit import status as kit_status
from services.kit.errors import InvalidArgument
from services.kit.timestamps import timestamp
from services.logistics import subjects
from services.logistics.domain.carriers import BreakerState
from services.logistics.domain.commands import CreateShipments, CreateWaybills, PlannedShipment, TrackingPush
from services.logistics.domain.events import AlertRaised, Event, WaybillFailed
from services.logistics.domain.model import (
    Line,
    Node,
    Place,
    Priority,
    Recipient,
    Shipment,
    ShipmentFact,
    ShipmentStatus,
    Source,
    TrackingEvent,
    Waybill,
)
from services.logistics.domain.waybills import WaybillRequest, WaybillState

SOURCE = "logistics"


def _enum_name(prefix: str, value: str) -> str:
    return f"{prefix}_{value.upper()}"


def status(value: ShipmentStatus) -> str:
    return _enum_name("SHIPMENT_STATUS", value.value)


def status_filter(value: int) -> str:
    if value == pb.SHIPMENT_STATUS_UNSPECIFIED:
        return ""
    if value not in pb.ShipmentStatus.values():
        raise InvalidArgument("status", "is not a shipment status")
    return pb.ShipmentStatus.Name(value).removeprefix("SHIPMENT_STATUS_").lower()


def node(value: Node | None) -> str:
    return _enum_name("TRACKING_NODE", "unspecified" if value is None else value.value)


def source(value: Source) -> str:
    return _enum_name("TRACKING_SOURCE", value.value)


def priority(value: Priority) -> str:
    return _enum_name("PRIORITY", value.value)


def priority_of(value: int) -> Priority:
    if value == pb.PRIORITY_UNSPECIFIED:
        return Priority.STANDARD
    if value not in pb.Priority.values():
        raise InvalidArgument("priority", "is not a priority")
    return Priority(pb.Priority.Name(value).removeprefix("PRIORITY_").lower())


def waybill_state(value: WaybillState) -> str:
    return _enum_name("WAYBILL_STATE", value.value)


def breaker_state(value: BreakerState) -> str:
    return _enum_name("BREAKER_STATE", value.value)


def stamp(value: datetime | None, target: object) -> None:
    if value is not None:
        target.CopyFrom(timestamp(value))  # type: ignore[attr-defined]


def line(value: Line) -> pb.ShipmentLine:
    return pb.ShipmentLine(
        sku=value.sku, title=value.title, quantity=value.quantity, goods_type=value.goods_type
    )


def line_of(value: pb.ShipmentLine) -> Line:
    return Line(value.sku.strip(), value.title.strip(), value.quantity, value.goods_type.strip() or "normal")


def waybill(value: Waybill) -> pb.Waybill:
    found = pb.Waybill(
        waybill_no=value.waybill_no,
        carrier=value.carrier,
        sorting_code=value.sorting_code,
        destination_code=value.destination_code,
        label_json=json.dumps(value.label, ensure_ascii=False, sort_keys=True),
    )
    stamp(value.created_at, found.created_at)
    return found


def shipment(value: Shipment) -> pb.Shipment:
    found = pb.Shipment(
        shipment_id=value.shipment_id,
        order_id=value.order_id,
        warehouse_id=value.warehouse_id,
        carrier=value.carrier,
        service=value.service,
        status=status(value.status),
        lines=[line(item) for item in value.lines],
        priority=priority(value.priority),
        destination=pb.Destination(
            country_code=value.destination.country,
            province=value.destination.province,
            city=value.destination.city,
            district=value.destination.district,
        ),
        origin=common_pb2.Address(
            country_code=value.origin.country,
            province=value.origin.province,
            city=value.origin.city,
            district=value.origin.district,
            detail=value.origin.detail,
        ),
        pick_list_id=value.pick_list_id,
        last_node=node(value.last_node),
        exception=value.exception,
        held=value.held,
        customer_id=value.customer_id,
        channel=value.channel,
    )
    if value.waybill is not None:
        found.waybill.CopyFrom(waybill(value.waybill))
    for name in (
        "deadline",
        "created_at",
        "picked_at",
        "packed_at",
        "scanned_out_at",
        "delivered_at",
        "last_node_at",
    ):
        stamp(getattr(value, name), getattr(found, name))
    return found


def _place(address: common_pb2.Address) -> Place:
    return Place(
        address.country_code.strip().upper() or "CN",
        address.province.strip(),
        address.city.strip(),
        address.district.strip(),
    )


def create_shipments(request: pb.CreateShipmentsRequest) -> CreateShipments:
    return CreateShipments(
        order_id=request.order_id.strip(),
        customer_id=request.customer_id.strip(),
        channel=request.channel.strip(),
        destination=_place(request.address),
        recipient=Recipient(
            request.address.recipient_name.strip(),
            request.address.phone.strip(),
            request.address.detail.strip(),
        ),
        priority=priority_of(request.priority),
        deadline=request.deadline.ToDatetime(tzinfo=UTC) if request.HasField("deadline") else None,
        shipments=tuple(
            PlannedShipment(
                warehouse_id=planned.warehouse_id.strip(),
                carrier=planned.carrier.strip().upper(),
                service=planned.service.strip(),
                lines=tuple(line_of(item) for item in planned.lines),
                origin=Place(
                    planned.origin.country_code.strip().upper() or "CN",
                    planned.origin.province.strip(),
                    planned.origin.city.strip(),
                    planned.origin.district.strip(),
                    planned.origin.detail.strip(),
                ),
            )
            for planned in request.shipments
        ),
        decision_id=request.decision_id.strip(),
    )


def create_waybills(request: pb.CreateWaybillsRequest) -> CreateWaybills:
    return CreateWaybills(tuple(request.shipment_ids), request.request_id.strip())


def tracking_push(request: pb.ReportTrackingRequest) -> TrackingPush:
    return TrackingPush(request.carrier.strip().lower(), request.content_type, request.body)


def tracking_pushes(request: pb.ReportTrackingBatchRequest) -> list[TrackingPush]:
    if not request.pushes:
        raise InvalidArgument("pushes", "must carry at least one push")
    if len(request.pushes) > batching.MAX_ITEMS:
        raise InvalidArgument("pushes", f"at most {batching.MAX_ITEMS} pushes per call")
    return [tracking_push(push) for push in request.pushes]


def item_error(error: Exception) -> common_pb2.ItemError:
    return kit_status.item_error(error, common_pb2.ItemError, common_pb2.FieldViolation)  # type: ignore[no-any-return]


def waybill_item(value: WaybillRequest) -> pb.WaybillItem:
    found = pb.WaybillItem(
        shipment_id=value.shipment_id,
        order_id=value.order_id,
        carrier=value.carrier,
        state=waybill_state(value.state),
        attempts=value.attempts,
        waybill_no=value.waybill_no,
        last_error=value.last_error,
        batch_id=value.batch_id,
    )
    stamp(value.next_attempt_at, found.next_attempt_at)
    stamp(value.updated_at, found.updated_at)
    return found


def tracking_event(value: TrackingEvent) -> pb.TrackingEvent:
    found = pb.TrackingEvent(
        node=node(value.node),
        carrier_code=value.carrier_code,
        description=value.description,
        area=value.area,
        source=source(value.source),
    )
    stamp(value.at, found.occurred_at)
    stamp(value.received_at, found.received_at)
    return found


def _fact_message(fact: ShipmentFact) -> tuple[str, Message]:
    common: dict[str, Any] = {"shipment_id": fact.shipment_id, "order_id": fact.order_id}
    match fact.kind:
        case "ShipmentCreated":
            return "logistics.shipment_created", events_pb.ShipmentCreated(
                **common, warehouse_id=fact.warehouse_id, carrier=fact.carrier
            )
        case "WaybillCreated":
            return "logistics.waybill_created", events_pb.WaybillCreated(
                **common,
                warehouse_id=fact.warehouse_id,
                carrier=fact.carrier,
                waybill_no=fact.waybill_no,
                batch_id=fact.batch_id,
            )
        case "ShipmentPicked":
            return "logistics.picked", events_pb.ShipmentPicked(
                **common, warehouse_id=fact.warehouse_id, pick_list_id=fact.pick_list_id
            )
        case "ShipmentPacked":
            return "logistics.packed", events_pb.ShipmentPacked(**common, warehouse_id=fact.warehouse_id)
        case "ShipmentScannedOut":
            return "logistics.scanned_out", events_pb.ShipmentScannedOut(
                **common, warehouse_id=fact.warehouse_id, carrier=fact.carrier, waybill_no=fact.waybill_no
            )
        case "TrackingUpdated":
            assert fact.tracking is not None
            tracked = events_pb.TrackingUpdated(
                **common,
                waybill_no=fact.waybill_no,
                carrier=fact.carrier,
                node=node(fact.tracking.node),
                carrier_code=fact.tracking.carrier_code,
                description=fact.tracking.description,
                area=fact.tracking.area,
                source=source(fact.tracking.source),
                status=status(fact.status),
            )
            tracked.scanned_at.CopyFrom(timestamp(fact.tracking.at))
            return "logistics.tracking_updated", tracked
        case "ShipmentDelivered":
            delivered = events_pb.ShipmentDelivered(**common, waybill_no=fact.waybill_no)
            stamp(fact.at, delivered.delivered_at)
            return "logistics.delivered", delivered
        case "ShipmentException":
            assert fact.tracking is not None
            return "logistics.exception", events_pb.ShipmentException(
                **common,
                waybill_no=fact.waybill_no,
                node=node(fact.tracking.node),
                carrier_code=fact.tracking.carrier_code,
                description=fact.tracking.description,
            )
        case "ShipmentReturned":
            returned = events_pb.ShipmentReturned(**common, waybill_no=fact.waybill_no, refused=fact.refused)
            stamp(fact.at, returned.returned_at)
            return "logistics.returned", returned
    raise ValueError(f"no integration event for {fact.kind}")


@bus.publishes(subjects.PUBLISHED)
def event_message(event: Event) -> tuple[str, Message]:
    """A domain event → (its subject under the prefix, its proto message)."""
    if isinstance(event, ShipmentFact):
        return _fact_message(event)
    if isinstance(event, WaybillFailed):
        return "logistics.waybill_failed", events_pb.WaybillFailed(
            shipment_id=event.shipment_id,
            order_id=event.order_id,
            carrier=event.carrier,
            batch_id=event.batch_id,
            attempts=event.attempts,
            reason=event.reason,
        )
    if isinstance(event, AlertRaised):
        return "alerts.raised", alerts_pb.AlertRaised(
            kind=event.kind,
            severity=int(event.severity),  # type: ignore[arg-type]
            source=SOURCE,
            order_id=event.order_id,
            message=event.message,
            dedupe_key=event.dedupe_key,
            customer_id=event.customer_id,
            channel=event.channel,
            roles=list(event.roles),
        )
    raise ValueError(f"no integration event for {type(event).__name__}")
