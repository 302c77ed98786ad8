"""Every protobuf ↔ domain conversion of inventory: requests in, replies and integration events out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import assert_never

from google.protobuf.message import Message

from oms.alerts.v1 import events_pb2 as alerts_pb
from oms.common.v1 import common_pb2
from oms.inventory.v1 import events_pb2
from oms.inventory.v1 import inventory_pb2 as pb
from services.inventory import subjects
from services.inventory.domain import events
from services.inventory.domain.events import Event
from services.inventory.domain.model import (
    GoodsType,
    LedgerEntry,
    Line,
    ReplenishmentOrder,
    ReplenishmentStatus,
    Reservation,
    Shortage,
    Sku,
    SkuAvailability,
    StockAudit,
    StockLevel,
    StockSplit,
)
from services.kit import bus, status
from services.kit.errors import InvalidArgument
from services.kit.timestamps import timestamp

# --- requests -------------------------------------------------------------------------------------


def lines_in(values: Iterable[pb.ReservationLine]) -> list[Line]:
    return [Line(line.sku, line.warehouse_id, line.quantity) for line in values]


def item_error(error: Exception) -> common_pb2.ItemError:
    return status.item_error(error, common_pb2.ItemError, common_pb2.FieldViolation)  # type: ignore[no-any-return]


def ttl_in(seconds: int) -> timedelta | None:
    """None for the policy's default."""
    if seconds < 0:
        raise InvalidArgument("ttl_seconds", "must not be negative")
    return timedelta(seconds=seconds) if seconds else None


def goods_type_in(value: int) -> GoodsType | None:
    """None for unspecified; an enum number this build does not know is refused, never read as normal."""
    if value not in pb.GoodsType.values():
        raise InvalidArgument("goods_type", f"unknown GoodsType {value}")
    if value == pb.GOODS_TYPE_UNSPECIFIED:
        return None
    return GoodsType(pb.GoodsType.Name(value).removeprefix("GOODS_TYPE_").lower())


def replenishment_status_in(value: int, *, allow_unspecified: bool) -> ReplenishmentStatus | None:
    if value == pb.REPLENISHMENT_STATUS_UNSPECIFIED and allow_unspecified:
        return None
    if value == pb.REPLENISHMENT_STATUS_UNSPECIFIED or value not in pb.ReplenishmentStatus.values():
        raise InvalidArgument("status", "must be a ReplenishmentStatus")
    return ReplenishmentStatus(pb.ReplenishmentStatus.Name(value).removeprefix("REPLENISHMENT_STATUS_"))


def adjustment_reason_in(value: int) -> str:
    if value == pb.ADJUSTMENT_REASON_UNSPECIFIED or value not in pb.AdjustmentReason.values():
        raise InvalidArgument("reason", "is required (an AdjustmentReason)")
    return pb.AdjustmentReason.Name(value).removeprefix("ADJUSTMENT_REASON_").lower()


# --- replies ---------------------------------------------------------------------------------------


def lines(values: Iterable[Line]) -> list[pb.ReservationLine]:
    return [
        pb.ReservationLine(sku=line.sku, warehouse_id=line.warehouse_id, quantity=line.quantity)
        for line in values
    ]


def stock_level(level: StockLevel) -> pb.StockLevel:
    return pb.StockLevel(
        sku=level.sku,
        warehouse_id=level.warehouse_id,
        on_hand=level.on_hand,
        reserved=level.reserved,
        available=level.available,
        safety_level=level.safety_level,
        normal_level=level.normal_level,
        sellable=level.sellable,
    )


def sku(entry: Sku) -> pb.Sku:
    return pb.Sku(
        sku=entry.sku,
        title=entry.title,
        goods_type=f"GOODS_TYPE_{entry.goods_type.value.upper()}",
        category=entry.category,
        weight_g=entry.weight_g,
        customised=entry.customised,
        created_at=timestamp(entry.created_at),
        updated_at=timestamp(entry.updated_at),
    )


def reservation(value: Reservation, reservation_lines: Iterable[Line]) -> pb.Reservation:
    return pb.Reservation(
        reservation_id=value.reservation_id,
        order_id=value.order_id,
        status=f"RESERVATION_STATUS_{value.status.value}",
        lines=lines(reservation_lines),
        expires_at=timestamp(value.expires_at),
        created_at=timestamp(value.created_at),
    )


def shortage(value: Shortage) -> pb.Shortage:
    return pb.Shortage(
        sku=value.sku,
        warehouse_id=value.warehouse_id,
        requested=value.requested,
        available=value.available,
        reason=value.reason.value,
    )


def availability(value: SkuAvailability) -> pb.SkuAvailability:
    return pb.SkuAvailability(
        sku=value.sku,
        pool_available=value.pool_available,
        pool_on_hand=value.pool_on_hand,
        warehouses=[stock_level(level) for level in value.warehouses],
        catalogue=sku(value.catalogue),
    )


def replenishment(order: ReplenishmentOrder) -> pb.ReplenishmentOrder:
    return pb.ReplenishmentOrder(
        replenishment_order_id=order.replenishment_order_id,
        sku=order.sku,
        warehouse_id=order.warehouse_id,
        status=f"REPLENISHMENT_STATUS_{order.status.value}",
        suggested_quantity=order.suggested_quantity,
        created_at=timestamp(order.created_at),
        updated_at=timestamp(order.updated_at),
        note=order.note,
    )


def ledger_entry(entry: LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        entry_id=entry.entry_id,
        at=timestamp(entry.at),
        sku=entry.sku,
        warehouse_id=entry.warehouse_id,
        kind=entry.kind.value,
        on_hand_delta=entry.on_hand_delta,
        reserved_delta=entry.reserved_delta,
        order_id=entry.order_id,
        reference=entry.reference,
        reason=entry.reason,
        trace_id=entry.trace_id,
        unit_cost_minor=entry.unit_cost_minor,
        value_minor=entry.value_minor,
    )


def stock_buckets(split: StockSplit, level: StockLevel) -> pb.SetStockBucketsResponse:
    return pb.SetStockBucketsResponse(
        stock=stock_level(level),
        buckets=split.buckets,
        parts=[
            pb.StockBucket(bucket=part.bucket, allotted=part.allotted, used=part.used) for part in split.parts
        ],
    )


def breach(audit: StockAudit) -> pb.InvariantBreach:
    return pb.InvariantBreach(
        sku=audit.sku,
        warehouse_id=audit.warehouse_id,
        on_hand=audit.on_hand,
        ledger_on_hand=audit.ledger_on_hand,
        reserved=audit.reserved,
        ledger_reserved=audit.ledger_reserved,
        open_reservation_units=audit.open_reservation_units,
        bucket_used_units=audit.bucket_used_units,
        open_bucket_units=audit.open_bucket_units,
    )


# --- integration events: (subject, message) of each domain event -----------------------------------


@bus.publishes(subjects.PUBLISHED)
def integration_event(event: Event) -> tuple[str, Message]:
    match event:
        case events.SkuUpdated():
            return "inventory.sku_updated", events_pb2.SkuUpdated(sku=sku(event.sku))
        case events.StockReserved():
            return "inventory.reserved", events_pb2.StockReserved(
                order_id=event.order_id,
                reservation_id=event.reservation_id,
                lines=lines(event.lines),
                expires_at=timestamp(event.expires_at),
            )
        case events.ReservationCommitted():
            return "inventory.committed", events_pb2.ReservationCommitted(
                order_id=event.order_id, reservation_id=event.reservation_id, lines=lines(event.lines)
            )
        case events.ReservationReleased():
            return "inventory.released", events_pb2.ReservationReleased(
                order_id=event.order_id,
                reservation_id=event.reservation_id,
                lines=lines(event.lines),
                reason=event.reason,
            )
        case events.ReservationExpired():
            return "inventory.reservation_expired", events_pb2.ReservationExpired(
                order_id=event.order_id,
                reservation_id=event.reservation_id,
                lines=lines(event.lines),
                expired_at=timestamp(event.expired_at),
            )
        case events.StockAdjusted():
            return "inventory.adjusted", events_pb2.StockAdjusted(
                sku=event.sku,
                warehouse_id=event.warehouse_id,
                kind=event.kind.value,
                on_hand_delta=event.on_hand_delta,
                on_hand=event.on_hand,
                reference=event.reference,
                reason=event.reason,
            )
        case events.LowStock():
            return "inventory.low_stock", events_pb2.LowStock(
                sku=event.sku,
                warehouse_id=event.warehouse_id,
                sellable_units=event.sellable_units,
                safety_level=event.safety_level,
                replenishment_order_id=event.replenishment_order_id,
            )
        case events.BackInStock():
            return "inventory.back_in_stock", events_pb2.BackInStock(
                sku=event.sku, warehouse_id=event.warehouse_id, sellable_units=event.sellable_units
            )
        case events.InvariantBreached():
            return "inventory.invariant_breached", events_pb2.InvariantBreached(
                breaches=[breach(audit) for audit in event.breaches]
            )
        case events.AlertRaised():
            return "alerts.raised", alerts_pb.AlertRaised(
                kind=event.kind,
                severity=event.severity,  # type: ignore[arg-type]
                source="inventory",
                message=event.message,
                dedupe_key=event.dedupe_key,
                roles=list(event.roles),
            )
        case _:
            assert_never(event)
