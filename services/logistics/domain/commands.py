"""What logistics is asked to do, as the callers said it (checked by the handlers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.logistics.domain.model import Line, Place, Priority, Recipient


@dataclass(frozen=True)
class PlannedShipment:
    warehouse_id: str
    carrier: str
    service: str
    lines: tuple[Line, ...]
    origin: Place = field(default_factory=Place)


@dataclass(frozen=True)
class CreateShipments:
    order_id: str
    customer_id: str
    channel: str
    destination: Place
    recipient: Recipient
    priority: Priority
    deadline: datetime | None
    shipments: tuple[PlannedShipment, ...]
    decision_id: str = ""


@dataclass(frozen=True)
class CreateWaybills:
    shipment_ids: tuple[str, ...]
    request_id: str = ""


@dataclass(frozen=True)
class TrackingPush:
    """A carrier's push as it arrived: whose format, and the raw body."""

    carrier: str
    content_type: str
    body: bytes
