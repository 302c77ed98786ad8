"""Rule sets and the planner: which warehouse(s) ship an order, with which carrier, and why.

A rule set is one versioned document holding everything a decision depends on: warehouses with
their locations and capabilities, region coverage in tiers, the cost/time matrix, carriers and
carrier rules, and the scoring weights. Given the same rule set, stock and load, `plan` always
returns the same decision, which is what makes decisions reproducible from the log and rule
changes testable before they go live.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from services.kit.errors import InvalidArgument
from services.routing.domain.geography import BY_NAME, Place, normalise

COLD_CHAIN = "cold_chain"
FRESH = "fresh"
# the carrier-rule area of every destination outside mainland China
CROSS_BORDER = "cross_border"
MAX_LINES = 200
PRIORITIES = ("standard", "expedited", "member")
GOODS_TYPES = ("normal", FRESH, COLD_CHAIN)
# goods that must stay chilled: only cold-chain warehouses and carriers may ship them
CHILLED = frozenset({FRESH, COLD_CHAIN})
DEFAULT_UNIT_WEIGHT_G = 500


class Tier(StrEnum):
    SAME_DAY = "same_day"
    NEXT_DAY = "next_day"
    STANDARD = "standard"


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
            if covered and (best is None or list(Tier).index(entry.tier) < list(Tier).index(best)):
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


def yuan(minor: int) -> str:
    return f"¥{minor / 100:.1f}"


def choose_carrier(
    rules: RuleSet,
    warehouse: Warehouse,
    destination: Place,
    goods_types: set[str],
    weight_g: int,
    priority: str,
) -> tuple[CarrierRule, Rate] | None:
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


def _proximity(warehouse: Warehouse, destination: Place, tier: Tier) -> Proximity:
    if warehouse.province == destination.province and warehouse.city == destination.city:
        return Proximity.SAME_CITY
    if warehouse.province == destination.province:
        return Proximity.SAME_PROVINCE
    if tier in (Tier.SAME_DAY, Tier.NEXT_DAY):
        return Proximity.NEXT_DAY
    return Proximity.STANDARD


def _shipment(
    rules: RuleSet, warehouse: Warehouse, request: RouteRequest, lines: Mapping[str, int]
) -> Shipment | None:
    by_sku = {line.sku: line for line in request.lines}
    weight = sum(by_sku[sku].unit_weight_g * quantity for sku, quantity in lines.items())
    value = sum(by_sku[sku].unit_value_minor * quantity for sku, quantity in lines.items())
    goods = {by_sku[sku].goods_type for sku in lines}
    picked = choose_carrier(rules, warehouse, request.destination, goods, weight, request.priority)
    if picked is None:
        return None
    rule, rate = picked
    cost = rate.per_parcel_minor + rate.per_kg_minor * math.ceil(weight / 1000)
    return Shipment(
        warehouse.warehouse_id,
        tuple(sorted(lines.items())),
        rule.carrier,
        rule.service,
        cost,
        rate.days,
        weight,
        value,
    )


def _score(rules: RuleSet, proximity: Proximity, shipment: Shipment, priority: str) -> float:
    weights = rules.weights
    days_weight = weights.days + (weights.expedited_days if priority == "expedited" else 0.0)
    return (
        PROXIMITY_RANK[proximity] * weights.proximity
        + shipment.cost_minor / 100 * weights.cost
        + shipment.days * days_weight
    )


def plan(
    request: RouteRequest, rules: RuleSet, stock: Mapping[tuple[str, str], int], load: Mapping[str, int]
) -> Decision:
    """The best single warehouse; a split only when none can fill the order; else parked, with reasons."""
    destination = request.destination
    excluded: list[Verdict] = []
    eligible: list[tuple[Warehouse, Proximity]] = []
    for warehouse in sorted(rules.warehouses, key=lambda w: w.warehouse_id):
        tier = rules.tier_for(warehouse.warehouse_id, destination)
        reason = ""
        if not warehouse.open:
            reason = "closed"
        elif load.get(warehouse.warehouse_id, 0) >= warehouse.daily_capacity:
            reason = f"at its daily capacity of {warehouse.daily_capacity} orders"
        elif tier is None:
            reason = f"does not cover {destination.region}"
        elif request.cold and not warehouse.cold_chain:
            reason = "cannot ship cold-chain goods"
        if reason:
            excluded.append(Verdict(warehouse.warehouse_id, False, reason=reason))
            continue
        assert tier is not None
        eligible.append((warehouse, _proximity(warehouse, destination, tier)))

    whole = {line.sku: line.quantity for line in request.lines}
    singles: list[tuple[float, Shipment, Warehouse, Proximity]] = []
    for warehouse, proximity in eligible:
        missing = [
            f"{sku} (has {stock.get((sku, warehouse.warehouse_id), 0)}, needs {qty})"
            for sku, qty in whole.items()
            if stock.get((sku, warehouse.warehouse_id), 0) < qty
        ]
        shipment = _shipment(rules, warehouse, request, whole)
        if shipment is None:
            excluded.append(
                Verdict(warehouse.warehouse_id, False, proximity.value, reason="no carrier rule fits")
            )
        elif missing:
            excluded.append(
                Verdict(
                    warehouse.warehouse_id,
                    False,
                    proximity.value,
                    shipment.cost_minor,
                    shipment.days,
                    reason="lacks stock of " + ", ".join(missing),
                )
            )
        else:
            singles.append(
                (_score(rules, proximity, shipment, request.priority), shipment, warehouse, proximity)
            )

    if singles:
        singles.sort(key=lambda item: (item[0], item[2].warehouse_id))
        _, best, winner, winner_proximity = singles[0]
        verdicts = [
            Verdict(
                w.warehouse_id,
                True,
                p.value,
                s.cost_minor,
                s.days,
                score,
                chosen=(w is winner),
                reason="" if w is winner else _lost(s, p, best, winner_proximity),
            )
            for score, s, w, p in singles
        ]
        return _decision(request, rules, (best,), verdicts + excluded)

    split = _best_split(request, rules, eligible, stock)
    if split is not None:
        verdicts = [
            Verdict(
                s.warehouse_id,
                True,
                cost_minor=s.cost_minor,
                days=s.days,
                chosen=True,
                reason="part of a split: no single warehouse holds the whole order",
            )
            for s in split
        ]
        chosen = {s.warehouse_id for s in split}
        return _decision(
            request, rules, split, verdicts + [v for v in excluded if v.warehouse_id not in chosen]
        )

    reason, detail = _park_reason(request, rules, excluded, stock)
    return _decision(request, rules, (), excluded, reason, detail)


def _lost(shipment: Shipment, proximity: Proximity, best: Shipment, best_proximity: Proximity) -> str:
    if PROXIMITY_RANK[proximity] > PROXIMITY_RANK[best_proximity]:
        return f"{proximity.value} ranks after {best_proximity.value}"
    return f"costs {yuan(shipment.cost_minor)} against {yuan(best.cost_minor)}"


def _best_split(
    request: RouteRequest,
    rules: RuleSet,
    eligible: list[tuple[Warehouse, Proximity]],
    stock: Mapping[tuple[str, str], int],
) -> tuple[Shipment, ...] | None:
    """Fewest shipments first, then (shipments under the minimum value, cost)."""
    for size in range(2, len(eligible) + 1):
        options: list[tuple[int, int, tuple[Shipment, ...]]] = []
        for combo in itertools.combinations([w for w, _ in eligible], size):
            allocation = _allocate(request, rules, combo, stock)
            if allocation is None:
                continue
            shipments = []
            for warehouse in combo:
                shipment = _shipment(rules, warehouse, request, allocation[warehouse.warehouse_id])
                if shipment is None:
                    break
                shipments.append(shipment)
            else:
                small = sum(s.value_minor < rules.min_shipment_value_minor for s in shipments)
                options.append((small, sum(s.cost_minor for s in shipments), tuple(shipments)))
        if options:
            return min(
                options, key=lambda option: (option[0], option[1], [s.warehouse_id for s in option[2]])
            )[2]
    return None


def _allocate(
    request: RouteRequest, rules: RuleSet, combo: tuple[Warehouse, ...], stock: Mapping[tuple[str, str], int]
) -> dict[str, dict[str, int]] | None:
    """Each line from the combination's cheapest warehouses that hold it; every one must ship something."""
    destination = request.destination

    def base_cost(warehouse: Warehouse) -> int:
        rates = [
            r.per_parcel_minor
            for r in rules.rates
            if r.warehouse_id == warehouse.warehouse_id and r.province == destination.region
        ]
        return min(rates, default=10**9)

    ordered = sorted(combo, key=lambda w: (base_cost(w), w.warehouse_id))
    allocation: dict[str, dict[str, int]] = {w.warehouse_id: {} for w in combo}
    for line in request.lines:
        remaining = line.quantity
        for warehouse in ordered:
            take = min(remaining, stock.get((line.sku, warehouse.warehouse_id), 0))
            if take > 0:
                allocation[warehouse.warehouse_id][line.sku] = take
                remaining -= take
            if remaining == 0:
                break
        if remaining:
            return None
    if any(not lines for lines in allocation.values()):
        return None
    return allocation


def _park_reason(
    request: RouteRequest, rules: RuleSet, excluded: list[Verdict], stock: Mapping[tuple[str, str], int]
) -> tuple[ParkReason, str]:
    province = request.destination.region
    covering = {
        w.warehouse_id for w in rules.warehouses if rules.tier_for(w.warehouse_id, request.destination)
    }
    if not covering:
        return ParkReason.NO_COVERAGE, f"no warehouse covers {province}"
    if request.cold:
        cold = {w.warehouse_id for w in rules.warehouses if w.cold_chain} & covering
        if not cold:
            return ParkReason.COLD_CHAIN_IMPOSSIBLE, f"no cold-chain warehouse covers {province}"
        unreachable = {v.warehouse_id for v in excluded if v.reason == "no carrier rule fits"}
        if cold <= unreachable:
            return ParkReason.COLD_CHAIN_IMPOSSIBLE, f"no cold-chain carrier reaches {province}"
        warm = {w.warehouse_id for w in rules.warehouses if not w.cold_chain}
        for line in request.lines:
            if line.goods_type not in CHILLED:
                continue
            in_cold = sum(stock.get((line.sku, w), 0) for w in cold)
            holders = sorted(w for w in warm if stock.get((line.sku, w), 0) > 0)
            # the stock exists, only where it may not leave from: waiting for a restock there is useless
            if in_cold < line.quantity and holders:
                return (
                    ParkReason.COLD_CHAIN_IMPOSSIBLE,
                    f"{line.sku} needs a cold chain: the cold-chain warehouses that ship to {province} "
                    f"hold {in_cold} of {line.quantity}; it is stocked at {', '.join(holders)}, "
                    "without cold chain",
                )
    return ParkReason.OUT_OF_STOCK, f"not enough stock in the warehouses that can ship to {province}"


def _decision(
    request: RouteRequest,
    rules: RuleSet,
    shipments: tuple[Shipment, ...],
    verdicts: list[Verdict],
    parked: ParkReason | None = None,
    detail: str = "",
) -> Decision:
    decision = Decision(
        request.order_id,
        rules.version,
        request.destination,
        shipments,
        tuple(sorted(verdicts, key=lambda v: (not v.chosen, not v.eligible, v.score, v.warehouse_id))),
        parked,
        detail,
    )
    return Decision(**{**decision.__dict__, "explanation": explain(decision, rules)})


def explain(decision: Decision, rules: RuleSet) -> tuple[str, ...]:
    """The decision in plain language, one sentence per warehouse."""
    names = {w.warehouse_id: w.name for w in rules.warehouses}
    destination = decision.destination
    where = f"{destination.city}, {destination.province}"
    if destination.cross_border and destination.province != destination.country:
        where += f" ({destination.country})"
    lines: list[str] = []
    if decision.parked:
        lines.append(f"Parked ({decision.parked.value}): {decision.park_detail}.")
    elif decision.split:
        parts = "; ".join(
            f"{names[s.warehouse_id]} ships {', '.join(f'{q}× {sku}' for sku, q in s.lines)} by {s.carrier} "
            f"{s.service}, {s.days} day{'s' if s.days != 1 else ''}, {yuan(s.cost_minor)}"
            for s in decision.shipments
        )
        lines.append(f"Split into {len(decision.shipments)} shipments to {where}: {parts}.")
    for verdict in decision.verdicts:
        name = names.get(verdict.warehouse_id, verdict.warehouse_id)
        timing = f"{verdict.days} day{'s' if verdict.days != 1 else ''}, {yuan(verdict.cost_minor)}"
        if verdict.chosen and not decision.split:
            shipment = decision.shipments[0]
            carrier = f"{shipment.carrier} {shipment.service}"
            lines.append(f"{name} chosen: {verdict.proximity} for {where}, {timing} by {carrier}.")
        elif verdict.eligible and not verdict.chosen:
            lines.append(f"{name} lost: {timing}; {verdict.reason}.")
        elif not verdict.eligible:
            lines.append(f"{name} excluded: {verdict.reason}.")
    return tuple(lines)


@dataclass(frozen=True)
class ExpectedDecision:
    """A case a rule set must keep deciding the same way, e.g. "Hangzhou, 1 × SKU X → Shanghai"."""

    name: str
    destination: Place
    lines: tuple[RouteLine, ...]
    expect_warehouse: str = ""
    expect_carrier: str = ""
    stock: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class CaseResult:
    case: ExpectedDecision
    passed: bool
    actual_warehouses: tuple[str, ...]
    actual_carriers: tuple[str, ...]
    detail: str


AMPLE = 1_000_000


def check_expected(rules: RuleSet, case: ExpectedDecision) -> CaseResult:
    """Plan the case with its own stock (default: plenty everywhere) and compare with what is expected."""
    stock: dict[tuple[str, str], int] = {(sku, w): qty for sku, w, qty in case.stock}
    if not case.stock:
        stock = {(line.sku, w.warehouse_id): AMPLE for line in case.lines for w in rules.warehouses}
    decision = plan(RouteRequest(f"dry-run:{case.name}", case.destination, case.lines), rules, stock, {})
    warehouses = tuple(s.warehouse_id for s in decision.shipments)
    carriers = tuple(s.carrier for s in decision.shipments)
    problems = []
    if case.expect_warehouse and warehouses != (case.expect_warehouse,):
        problems.append(f"expected {case.expect_warehouse}, got {', '.join(warehouses) or 'parked'}")
    if case.expect_carrier and carriers != (case.expect_carrier,):
        problems.append(f"expected carrier {case.expect_carrier}, got {', '.join(carriers) or 'none'}")
    detail = "; ".join(problems) or " ".join(decision.explanation[:1])
    return CaseResult(case, not problems, warehouses, carriers, detail)
