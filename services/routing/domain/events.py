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


@dataclass(frozen=True)
class AlertRaised:
    """An order routing could not plan needs a person (on `oms.alerts.raised`); a re-plan that parks it
    again repeats it, and the gateway counts the repeat into the open alert (one dedupe key per order).
    Severity medium: orders raises its own critical alert for a paid order out of stock."""

    order_id: str
    message: str
    kind: str = "order_parked"
    severity: int = 2

    @property
    def dedupe_key(self) -> str:
        return f"routing:parked:{self.order_id}"


def parked_alert(event: OrderParked) -> AlertRaised:
    return AlertRaised(
        event.order_id, f"order {event.order_id} parked: {event.reason.value} {event.detail}".strip()
    )


Event = FulfilmentPlanned | OrderParked | RuleSetActivated | AlertRaised
