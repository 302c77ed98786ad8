"""What logistics announces: facts about shipments (recorded by the shipment itself), a waybill
request that went to the dead-letter list, and alerts for people. Mappers turn each into its proto."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from services.logistics.domain.model import ShipmentFact


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True)
class WaybillFailed:
    shipment_id: str
    order_id: str
    carrier: str
    batch_id: str
    attempts: int
    reason: str


@dataclass(frozen=True)
class AlertRaised:
    kind: str
    severity: Severity
    message: str
    dedupe_key: str
    order_id: str = ""
    customer_id: str = ""
    channel: str = ""
    # who is expected to act (oms.alerts.raised `roles`); empty: operations
    roles: tuple[str, ...] = ()


# a parcel's anomalies are for the warehouse supervisor and the customer-service lead (DOMAIN.md §5)
ANOMALY_ROLES = ("warehouse_supervisor", "cs_lead")


Event = ShipmentFact | WaybillFailed | AlertRaised
