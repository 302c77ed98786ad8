"""The planner: which warehouse(s) ship an order, with which carrier, and why.

Given the same rule set, stock and load, `plan` always returns the same decision, which is what makes
decisions reproducible from the log and rule changes testable before they go live.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

from services.routing.domain.explain import explain, yuan
from services.routing.domain.geography import Place
from services.routing.domain.model import (
    CHILLED,
    PROXIMITY_RANK,
    Decision,
    ParkReason,
    Proximity,
    RouteRequest,
    Shipment,
    Verdict,
)
from services.routing.domain.rules import RuleSet, Tier, Warehouse, choose_carrier


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
    # eligible warehouses no carrier rule reaches the destination from, with these goods
    unreachable: set[str] = set()
    for warehouse, proximity in eligible:
        missing = [
            f"{sku} (has {stock.get((sku, warehouse.warehouse_id), 0)}, needs {qty})"
            for sku, qty in whole.items()
            if stock.get((sku, warehouse.warehouse_id), 0) < qty
        ]
        shipment = _shipment(rules, warehouse, request, whole)
        if shipment is None:
            unreachable.add(warehouse.warehouse_id)
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

    reason, detail = _park_reason(request, rules, unreachable, stock)
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
    request: RouteRequest, rules: RuleSet, unreachable: set[str], stock: Mapping[tuple[str, str], int]
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
