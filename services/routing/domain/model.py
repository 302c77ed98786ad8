"""What routing decides about: an order's lines and destination, the stock it may take, and the
decision (shipments, or a park with its reason), with every warehouse's part in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.kit.errors import InvalidArgument
from services.routing.domain.geography import Place, normalise

COLD_CHAIN = "cold_chain"
FRESH = "fresh"
MAX_LINES = 200
PRIORITIES = ("standard", "expedited", "member")
GOODS_TYPES = ("normal", FRESH, COLD_CHAIN)
# goods that must stay chilled: only cold-chain warehouses and carriers may ship them
CHILLED = frozenset({FRESH, COLD_CHAIN})
DEFAULT_UNIT_WEIGHT_G = 500


class Proximity(StrEnum):
    """How close a warehouse is to the destination; lower ranks first by default."""

    SAME_CITY = "same city"
    SAME_PROVINCE = "same province"
    NEXT_DAY = "next-day coverage"
    STANDARD = "standard coverage"


PROXIMITY_RANK = {
    Proximity.SAME_CITY: 0,
    Proximity.SAME_PROVINCE: 1,
    Proximity.NEXT_DAY: 2,
    Proximity.STANDARD: 3,
}


class ParkReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    NO_COVERAGE = "no_coverage"
    COLD_CHAIN_IMPOSSIBLE = "cold_chain_impossible"


# parked orders that stock arriving for one of their SKUs may unblock (a cold-chain SKU parked because
# only warm warehouses hold it waits for cold stock too); no_coverage waits for a new rule set
WAITS_FOR_STOCK = frozenset({ParkReason.OUT_OF_STOCK, ParkReason.COLD_CHAIN_IMPOSSIBLE})


@dataclass(frozen=True)
class RouteLine:
    sku: str
    quantity: int
    unit_weight_g: int = DEFAULT_UNIT_WEIGHT_G
    goods_type: str = "normal"
    unit_value_minor: int = 0


@dataclass(frozen=True)
class SkuFacts:
    """What inventory's catalogue says about a SKU; 0 g means the catalogue does not know its weight."""

    goods_type: str = "normal"
    weight_g: int = 0


@dataclass(frozen=True)
class Stock:
    """Units a reservation may take per (sku, warehouse), and each SKU's catalogue entry."""

    levels: dict[tuple[str, str], int]
    catalogue: dict[str, SkuFacts]


@dataclass(frozen=True)
class RouteRequest:
    order_id: str
    destination: Place
    lines: tuple[RouteLine, ...]
    priority: str = "standard"

    @property
    def cold(self) -> bool:
        return any(line.goods_type in CHILLED for line in self.lines)


def with_catalogue(request: RouteRequest, catalogue: Mapping[str, SkuFacts]) -> RouteRequest:
    """The SKUs' own goods type and weight replace whatever the caller said: callers (orders, channels)
    do not know them, and a cold-chain SKU routed as normal goods ships warm."""
    lines = []
    for line in request.lines:
        facts = catalogue.get(line.sku, SkuFacts())
        lines.append(
            replace(
                line,
                goods_type=facts.goods_type if facts.goods_type in GOODS_TYPES else "normal",
                unit_weight_g=facts.weight_g or line.unit_weight_g,
            )
        )
    return replace(request, lines=tuple(lines))


def route_request(
    order_id: str,
    province: str,
    city: str,
    lines: tuple[RouteLine, ...],
    priority: str,
    country: str = "CN",
) -> RouteRequest:
    """An order as routing accepts it: a known mainland province (or a country code outside it),
    1-200 distinct lines, known goods types."""
    if not order_id or len(order_id) > 64:
        raise InvalidArgument("order_id", "is required (at most 64 characters)")
    place = normalise(province, city, country=country)
    if not lines:
        raise InvalidArgument("lines", "an order needs at least one line")
    if len(lines) > MAX_LINES:
        raise InvalidArgument("lines", f"at most {MAX_LINES} lines")
    seen: set[str] = set()
    for index, line in enumerate(lines):
        if not line.sku or len(line.sku) > 64:
            raise InvalidArgument(f"lines[{index}].sku", "is required (at most 64 characters)")
        if line.sku in seen:
            raise InvalidArgument(f"lines[{index}].sku", "duplicates an earlier line")
        seen.add(line.sku)
        if not 1 <= line.quantity <= 1_000_000:
            raise InvalidArgument(f"lines[{index}].quantity", "must be between 1 and 1000000")
        if not 0 <= line.unit_weight_g <= 1_000_000:
            raise InvalidArgument(f"lines[{index}].unit_weight_g", "must be between 0 and 1000000")
        if line.goods_type not in GOODS_TYPES:
            raise InvalidArgument(f"lines[{index}].goods_type", f"must be one of {', '.join(GOODS_TYPES)}")
        if line.unit_value_minor < 0:
            raise InvalidArgument(f"lines[{index}].unit_value_minor", "must not be negative")
    if priority not in PRIORITIES:
        raise InvalidArgument("priority", f"must be one of {', '.join(PRIORITIES)}")
    return RouteRequest(order_id, place, lines, priority)


@dataclass(frozen=True)
class Shipment:
    warehouse_id: str
    lines: tuple[tuple[str, int], ...]
    carrier: str
    service: str
    cost_minor: int
    days: int
    weight_g: int
    value_minor: int


@dataclass(frozen=True)
class Verdict:
    """One warehouse's part in a decision: chosen, lost (and why), or excluded (and why)."""

    warehouse_id: str
    eligible: bool
    proximity: str = ""
    cost_minor: int = 0
    days: int = 0
    score: float = 0.0
    chosen: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    order_id: str
    ruleset_version: int
    destination: Place
    shipments: tuple[Shipment, ...]
    verdicts: tuple[Verdict, ...]
    parked: ParkReason | None = None
    park_detail: str = ""
    explanation: tuple[str, ...] = field(default=())

    @property
    def split(self) -> bool:
        return len(self.shipments) > 1


@dataclass(frozen=True)
class RecordedDecision:
    """A decision as logged: the order's current one, or one a replan superseded."""

    decision_id: str
    decided_at: datetime
    decision: Decision

    @property
    def order_id(self) -> str:
        return self.decision.order_id


@dataclass(frozen=True)
class ParkedOrder:
    """An order no rule set could route yet, waiting for stock or a new rule set."""

    order_id: str
    reason: ParkReason
    detail: str
    parked_at: datetime
    attempts: int = 1


@dataclass(frozen=True)
class DueRetry:
    """A parked order to plan again (stock arrived, or a new rule set): the request it was parked with
    (a `decision_log.request_document`) and the due mark this round saw."""

    order_id: str
    request: dict[str, Any]
    seen: datetime
