"""Logistics anomalies, each an alert for the warehouse supervisor and the customer-service lead that
names the rule, what was expected, what was seen, and whether a push or a poll saw it. Pure: the
clock's time and the thresholds (settings) are passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.logistics.domain.events import ANOMALY_ROLES, AlertRaised, Severity
from services.logistics.domain.model import ON_THE_WAY, Node, Place, Shipment, Source, TrackingEvent

NO_FIRST_SCAN = "no_first_scan"
NO_UPDATE = "no_update"
DESTINATION_MISMATCH = "destination_mismatch"
REPEATED_RETURNS = "repeated_returns"

_ADMINISTRATIVE_SUFFIXES = (
    "特别行政区",
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "自治区",
    "自治州",
    "省",
    "市",
    "区",
    "县",
)


@dataclass(frozen=True)
class AnomalyRules:
    first_scan_within: timedelta = timedelta(hours=48)
    update_within: timedelta = timedelta(hours=48)
    # this many returned or refused parcels to one customer or one address within the window
    returns_threshold: int = 3
    returns_window: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Anomaly:
    rule: str
    shipment: Shipment
    expected: str
    seen: str
    source: Source
    key: str

    def alert(self) -> AlertRaised:
        shipment = self.shipment
        waybill = f" (waybill {shipment.waybill.waybill_no})" if shipment.waybill else ""
        return AlertRaised(
            kind=f"logistics_{self.rule}",
            severity=Severity.HIGH if self.rule == NO_FIRST_SCAN else Severity.MEDIUM,
            message=(
                f"shipment {shipment.shipment_id} of order {shipment.order_id}{waybill}: rule {self.rule}; "
                f"expected {self.expected}; seen {self.seen}; from a {self.source.value}"
            ),
            dedupe_key=f"logistics:{self.rule}:{self.key}",
            order_id=shipment.order_id,
            customer_id=shipment.customer_id,
            channel=shipment.channel,
            roles=ANOMALY_ROLES,
        )


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g} h"


def no_first_scan(shipment: Shipment, now: datetime, rules: AnomalyRules, source: Source) -> Anomaly | None:
    """Shipped, and the carrier has not scanned the parcel once since (any scan counts: a later node
    implies the pickup)."""
    if shipment.scanned_out_at is None or shipment.furthest_node is not None:
        return None
    if shipment.status not in ON_THE_WAY:
        return None
    due = shipment.scanned_out_at + rules.first_scan_within
    if now < due:
        return None
    return Anomaly(
        NO_FIRST_SCAN,
        shipment,
        expected=f"a first pickup scan by {_at(due)} ({_hours(rules.first_scan_within)} after the scan-out "
        f"at {_at(shipment.scanned_out_at)})",
        seen=f"no carrier scan at {_at(now)}",
        source=source,
        key=shipment.shipment_id,
    )


def no_update(shipment: Shipment, now: datetime, rules: AnomalyRules, source: Source) -> Anomaly | None:
    """On its way, scanned before, and nothing new from the carrier for too long."""
    if shipment.status not in ON_THE_WAY or shipment.last_node_at is None or shipment.last_node is None:
        return None
    due = shipment.last_node_at + rules.update_within
    if now < due:
        return None
    return Anomaly(
        NO_UPDATE,
        shipment,
        expected=f"a tracking update by {_at(due)} ({_hours(rules.update_within)} after the last one)",
        seen=f"nothing since {shipment.last_node.value} at {_at(shipment.last_node_at)}",
        source=source,
        key=f"{shipment.shipment_id}:{shipment.last_node_at.isoformat()}",
    )


def core_name(name: str) -> str:
    """汉字 place names without their administrative suffix: 上海市 → 上海, 广东省 → 广东."""
    name = name.strip()
    for suffix in _ADMINISTRATIVE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def same_area(area: str, destination: Place) -> bool:
    """Whether a scan's area names the delivery address's city (or, without a city, its province)."""
    wanted = core_name(destination.city) or core_name(destination.province)
    if not wanted or not area.strip():
        return True
    return wanted in area or core_name(area) in wanted


def destination_mismatch(shipment: Shipment, event: TrackingEvent) -> Anomaly | None:
    """The last mile happens somewhere other than the delivery address."""
    if event.node not in (Node.OUT_FOR_DELIVERY, Node.DELIVERED) or same_area(
        event.area, shipment.destination
    ):
        return None
    wanted = shipment.destination.city or shipment.destination.province
    return Anomaly(
        DESTINATION_MISMATCH,
        shipment,
        expected=f"{event.node.value} in {wanted} (the delivery address)",
        seen=f"{event.node.value} in {event.area} at {_at(event.at)}",
        source=event.source,
        key=shipment.shipment_id,
    )


@dataclass(frozen=True)
class Returns:
    """Returned or refused parcels within the window, counted by the shipment's customer and address."""

    by_customer: int
    by_address: int
    # the address's blind index (the store's keyed hash): the same address, however it was spelled
    address_key: str = ""


def repeated_returns(
    shipment: Shipment, returns: Returns, rules: AnomalyRules, source: Source
) -> Anomaly | None:
    over = []
    if shipment.customer_id and returns.by_customer >= rules.returns_threshold:
        over.append(("customer", shipment.customer_id, returns.by_customer))
    if returns.by_address >= rules.returns_threshold:
        over.append(
            (
                "address",
                f"{shipment.destination.city} {shipment.destination.district}".strip(),
                returns.by_address,
            )
        )
    if not over:
        return None
    kind, who, count = over[0]
    days = rules.returns_window.days
    return Anomaly(
        REPEATED_RETURNS,
        shipment,
        expected=f"fewer than {rules.returns_threshold} returned or refused parcels per {kind} "
        f"in {days} days",
        seen=f"{count} for the {kind} {who}",
        source=source,
        key=f"{kind}:{shipment.customer_id if kind == 'customer' else returns.address_key}",
    )


def is_return(node: Node) -> bool:
    return node in (Node.RETURNED, Node.REFUSED)
