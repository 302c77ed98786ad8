"""Rule sets: warehouses, region coverage in tiers, the cost/time matrix, carriers, carrier rules and
the scoring weights, in one versioned document; and the carrier rules' matching."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.routing.domain.geography import BY_NAME, Place
from services.routing.domain.model import CHILLED

# the carrier-rule area of every destination outside mainland China
CROSS_BORDER = "cross_border"


class Tier(StrEnum):
    SAME_DAY = "same_day"
    NEXT_DAY = "next_day"
    STANDARD = "standard"


_TIER_RANK = {tier: rank for rank, tier in enumerate(Tier)}


@dataclass(frozen=True)
class Warehouse:
    warehouse_id: str
    name: str
    province: str
    city: str
    lat: float
    lon: float
    cold_chain: bool = False
    daily_capacity: int = 10_000
    open: bool = True
    # may ship out of mainland China (bonded, with customs clearance); only these may cover regions abroad
    cross_border: bool = False


@dataclass(frozen=True)
class Coverage:
    """Regions a warehouse serves at a tier: a province ("Zhejiang") or a city ("Zhejiang/Hangzhou")."""

    warehouse_id: str
    tier: Tier
    regions: tuple[str, ...]


@dataclass(frozen=True)
class Rate:
    warehouse_id: str
    province: str
    carrier: str
    per_parcel_minor: int
    per_kg_minor: int
    days: int


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str
    cold_chain: bool = False
    # carries parcels out of mainland China; the only carriers used for destinations abroad
    cross_border: bool = False


@dataclass(frozen=True)
class CarrierRule:
    """First matching rule picks the carrier; an empty condition matches anything."""

    name: str
    carrier: str
    service: str
    areas: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()
    goods_types: tuple[str, ...] = ()
    remote: bool | None = None
    priorities: tuple[str, ...] = ()
    min_weight_g: int = 0
    max_weight_g: int = 0


@dataclass(frozen=True)
class Weights:
    """score = proximity rank × proximity + yuan × cost + days × (days, plus expedited_days if expedited)."""

    proximity: float = 1000.0
    cost: float = 1.0
    days: float = 0.0
    expedited_days: float = 50.0


@dataclass(frozen=True)
class RuleSet:
    version: int
    warehouses: tuple[Warehouse, ...]
    coverage: tuple[Coverage, ...]
    rates: tuple[Rate, ...]
    carriers: tuple[Carrier, ...]
    carrier_rules: tuple[CarrierRule, ...]
    weights: Weights = Weights()
    min_shipment_value_minor: int = 0

    def warehouse(self, warehouse_id: str) -> Warehouse:
        return next(w for w in self.warehouses if w.warehouse_id == warehouse_id)

    def tier_for(self, warehouse_id: str, destination: Place) -> Tier | None:
        best: Tier | None = None
        for entry in self.coverage:
            if entry.warehouse_id != warehouse_id:
                continue
            covered = (
                destination.region in entry.regions
                or f"{destination.region}/{destination.city}" in entry.regions
            )
            if covered and (best is None or _TIER_RANK[entry.tier] < _TIER_RANK[best]):
                best = entry.tier
        return best

    def rate(self, warehouse_id: str, province: str, carrier: str) -> Rate | None:
        return self._rates.get((warehouse_id, province, carrier))

    @property
    def _rates(self) -> dict[tuple[str, str, str], Rate]:
        cached: dict[tuple[str, str, str], Rate] | None = self.__dict__.get("_rate_index")
        if cached is None:
            cached = {(r.warehouse_id, r.province, r.carrier): r for r in self.rates}
            object.__setattr__(self, "_rate_index", cached)
        return cached


def choose_carrier(
    rules: RuleSet,
    warehouse: Warehouse,
    destination: Place,
    goods_types: set[str],
    weight_g: int,
    priority: str,
) -> tuple[CarrierRule, Rate] | None:
    """The first carrier rule that matches the parcel and has a rate from this warehouse."""
    if destination.cross_border:
        area, remote = CROSS_BORDER, False
    else:
        area, remote = BY_NAME[destination.province].area, BY_NAME[destination.province].remote
    cold = bool(goods_types & CHILLED)
    carriers = {c.code: c for c in rules.carriers}
    for rule in rules.carrier_rules:
        if rule.areas and area not in rule.areas:
            continue
        if rule.provinces and destination.region not in rule.provinces:
            continue
        if rule.goods_types and not goods_types & set(rule.goods_types):
            continue
        if rule.remote is not None and remote != rule.remote:
            continue
        if rule.priorities and priority not in rule.priorities:
            continue
        if weight_g < rule.min_weight_g or (rule.max_weight_g and weight_g > rule.max_weight_g):
            continue
        carrier = carriers.get(rule.carrier)
        if carrier is None or (cold and not carrier.cold_chain):
            continue
        if destination.cross_border and not carrier.cross_border:
            continue
        rate = rules.rate(warehouse.warehouse_id, destination.region, rule.carrier)
        if rate is not None:
            return rule, rate
    return None


class RuleSetStatus(StrEnum):
    """A draft may be activated; activating it retires the active one."""

    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class RuleSetVersion:
    """A rule set as stored: its document (parsed with `documents.from_document`) and its life."""

    version: int
    status: RuleSetStatus
    document: dict[str, Any]
    note: str
    created_at: datetime
    activated_at: datetime | None = None
    shadow: bool = False
