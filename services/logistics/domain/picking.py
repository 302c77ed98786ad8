"""Which shipment a warehouse picks first: expedited orders, then fresh and cold-chain goods (they
spoil), then the earliest deadline, then the oldest."""

from __future__ import annotations

from datetime import UTC, datetime

from services.logistics.domain.model import COLD_CHAIN, FRESH, Priority, Shipment

LATEST = datetime.max
MAX_PICK_LIST = 500
DEFAULT_PICK_LIST = 50


def pick_order(shipment: Shipment) -> tuple[int, int, datetime, datetime, str]:
    """Sort key: the smaller, the sooner."""
    expedited = 0 if shipment.priority is Priority.EXPEDITED else 1
    perishable = 0 if shipment.goods_type in (COLD_CHAIN, FRESH) else 1
    deadline = _naive(shipment.deadline) if shipment.deadline else LATEST
    return expedited, perishable, deadline, _naive(shipment.created_at), shipment.shipment_id


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def in_pick_order(shipments: list[Shipment]) -> list[Shipment]:
    return sorted(shipments, key=pick_order)
