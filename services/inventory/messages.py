"""Domain values → protobuf messages, in one place (used by the servicer and the events)."""

from __future__ import annotations

from typing import Any

from oms.inventory.v1 import inventory_pb2
from services.inventory.domain.model import Line, StockRow, reservable
from services.kit.timestamps import timestamp


def lines(values: tuple[Line, ...] | list[Line]) -> list[inventory_pb2.ReservationLine]:
    return [
        inventory_pb2.ReservationLine(sku=line.sku, warehouse_id=line.warehouse_id, quantity=line.quantity)
        for line in values
    ]


def stock_level(row: StockRow, cap_basis_points: int, expired_units: int = 0) -> inventory_pb2.StockLevel:
    reserved = row.reserved - expired_units
    return inventory_pb2.StockLevel(
        sku=row.sku,
        warehouse_id=row.warehouse_id,
        on_hand=row.on_hand,
        reserved=reserved,
        available=reservable(row.on_hand, reserved, cap_basis_points, row.sellable),
        safety_level=row.safety_level,
        normal_level=row.normal_level,
        sellable=row.sellable,
    )


def sku(row: Any) -> inventory_pb2.Sku:
    return inventory_pb2.Sku(
        sku=row.sku,
        title=row.title,
        goods_type=f"GOODS_TYPE_{row.goods_type.upper()}",
        category=row.category,
        weight_g=row.weight_g,
        customised=row.customised,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
    )


def reservation(row: Any, reservation_lines: tuple[Line, ...]) -> inventory_pb2.Reservation:
    return inventory_pb2.Reservation(
        reservation_id=row.reservation_id,
        order_id=row.order_id,
        status=f"RESERVATION_STATUS_{row.status}",
        lines=lines(reservation_lines),
        expires_at=timestamp(row.expires_at),
        created_at=timestamp(row.created_at),
    )


def replenishment(row: Any) -> inventory_pb2.ReplenishmentOrder:
    return inventory_pb2.ReplenishmentOrder(
        replenishment_order_id=row.replenishment_order_id,
        sku=row.sku,
        warehouse_id=row.warehouse_id,
        status=f"REPLENISHMENT_STATUS_{row.status}",
        suggested_quantity=row.suggested_quantity,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        note=row.note,
    )
