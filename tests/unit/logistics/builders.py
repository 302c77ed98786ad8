"""Shipments and scans for unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.logistics.domain.model import (
    Line,
    Node,
    Place,
    Priority,
    Recipient,
    Shipment,
    Source,
    TrackingEvent,
    Waybill,
)

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def shipment(
    shipment_id: str = "s-1",
    *,
    warehouse_id: str = "WH-SH",
    carrier: str = "SF",
    priority: Priority = Priority.STANDARD,
    goods_type: str = "normal",
    deadline: datetime | None = None,
    created_at: datetime = T0,
    city: str = "上海市",
    customer_id: str = "c-1",
) -> Shipment:
    return Shipment(
        shipment_id=shipment_id,
        order_id=f"o-{shipment_id}",
        warehouse_id=warehouse_id,
        carrier=carrier,
        service="express",
        lines=(Line("TEA", "Longjing tea", 2, goods_type),),
        priority=priority,
        deadline=deadline,
        destination=Place("CN", "上海市", city, "浦东新区"),
        recipient=Recipient("张三", "13900000000", "世纪大道 1 号"),
        origin=Place("CN", "上海市", "上海市", "青浦区", "华新镇 1 号"),
        customer_id=customer_id,
        channel="TAOBAO",
        created_at=created_at,
    )


def waybill(number: str = "SF1000000000001") -> Waybill:
    return Waybill(number, "sf", "021W-021A01", "021", {"proName": "顺丰标快"}, T0)


def shipped(shipment_id: str = "s-1", at: datetime = T0, **kwargs: object) -> Shipment:
    found = shipment(shipment_id, **kwargs)  # type: ignore[arg-type]
    found.confirm_pick(found.warehouse_id, at)
    found.confirm_packed(found.warehouse_id, at)
    found.attach_waybill(waybill(), "b-1")
    found.scan_out(found.warehouse_id, at)
    found.events.clear()
    return found


def scan(
    node: Node, at: datetime, *, code: str = "", area: str = "上海", source: Source = Source.PUSH
) -> TrackingEvent:
    return TrackingEvent(node, code or node.value, f"{node.value} scan", area, at, source, at + timedelta(1))
