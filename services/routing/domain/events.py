"""What routing announces (the integration events `mappers.event_message` turns into proto events)."""

from __future__ import annotations

from dataclasses import dataclass

from services.routing.domain.model import ParkReason, Shipment


@dataclass(frozen=True)
class FulfilmentPlanned:
    order_id: str
    decision_id: str
    rule_set_version: int
    shipments: tuple[Shipment, ...]


@dataclass(frozen=True)
class OrderParked:
    order_id: str
    decision_id: str
    reason: ParkReason
    detail: str


@dataclass(frozen=True)
class RuleSetActivated:
    version: int
    previous_version: int


Event = FulfilmentPlanned | OrderParked | RuleSetActivated
