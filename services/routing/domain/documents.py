"""Rule sets and expected decisions as JSON documents (how operations edit them and how they are stored)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from services.kit.errors import InvalidArgument
from services.routing.domain.geography import BY_NAME, Place, is_region_code, normalise
from services.routing.domain.model import RouteLine
from services.routing.domain.regression import ExpectedDecision
from services.routing.domain.rules import (
    Carrier,
    CarrierRule,
    Coverage,
    Rate,
    RuleSet,
    Tier,
    Warehouse,
    Weights,
)

FIELD = "document_json"


def to_document(rules: RuleSet) -> dict[str, Any]:
    document = asdict(rules)
    document.pop("version")
    document.pop("_rate_index", None)
    return document


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise InvalidArgument(where, "must be an object")
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise InvalidArgument(f"{where}.{sorted(unknown)[0]}", "is not a known field")
    values = dict(raw)
    for f in fields(cls):
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    try:
        return cls(**values)
    except TypeError as error:
        raise InvalidArgument(where, str(error)) from None


def _items(document: dict[str, Any], key: str, cls: type) -> tuple[Any, ...]:
    raw = document.get(key, [])
    if not isinstance(raw, list):
        raise InvalidArgument(f"{FIELD}.{key}", "must be a list")
    return tuple(_build(cls, item, f"{FIELD}.{key}[{index}]") for index, item in enumerate(raw))


def from_document(version: int, document: Any) -> RuleSet:
    """Parse and check a rule set; every problem is named by its path in the document."""
    if not isinstance(document, dict):
        raise InvalidArgument(FIELD, "must be a JSON object")
    warehouses = _items(document, "warehouses", Warehouse)
    if not warehouses:
        raise InvalidArgument(f"{FIELD}.warehouses", "a rule set needs at least one warehouse")
    ids = {w.warehouse_id for w in warehouses}
    for index, warehouse in enumerate(warehouses):
        if warehouse.province not in BY_NAME:
            raise InvalidArgument(
                f"{FIELD}.warehouses[{index}].province", f"unknown province {warehouse.province}"
            )
    coverage = tuple(
        Coverage(c.warehouse_id, _tier(c.tier, f"{FIELD}.coverage[{i}].tier"), c.regions)
        for i, c in enumerate(_items(document, "coverage", Coverage))
    )
    cross_border = {w.warehouse_id for w in warehouses if w.cross_border}
    for index, entry in enumerate(coverage):
        if entry.warehouse_id not in ids:
            raise InvalidArgument(
                f"{FIELD}.coverage[{index}].warehouse_id", f"unknown warehouse {entry.warehouse_id}"
            )
        for region in entry.regions:
            head = region.split("/")[0]
            if head not in BY_NAME and not is_region_code(head):
                raise InvalidArgument(f"{FIELD}.coverage[{index}].regions", f"unknown region {region}")
            if is_region_code(head) and entry.warehouse_id not in cross_border:
                raise InvalidArgument(
                    f"{FIELD}.coverage[{index}].regions",
                    f"{region} is outside mainland China and {entry.warehouse_id} "
                    "is not a cross-border warehouse",
                )
    carriers = _items(document, "carriers", Carrier)
    codes = {c.code for c in carriers}
    rates = _items(document, "rates", Rate)
    for index, rate in enumerate(rates):
        known_region = rate.province in BY_NAME or is_region_code(rate.province)
        if rate.warehouse_id not in ids or rate.carrier not in codes or not known_region:
            raise InvalidArgument(
                f"{FIELD}.rates[{index}]", "names an unknown warehouse, carrier or province"
            )
        if rate.per_parcel_minor < 0 or rate.per_kg_minor < 0 or rate.days < 1:
            raise InvalidArgument(f"{FIELD}.rates[{index}]", "costs must not be negative and days at least 1")
    rules = _items(document, "carrier_rules", CarrierRule)
    for index, rule in enumerate(rules):
        if rule.carrier not in codes:
            raise InvalidArgument(
                f"{FIELD}.carrier_rules[{index}].carrier", f"unknown carrier {rule.carrier}"
            )
    weights = _build(Weights, document.get("weights", {}), f"{FIELD}.weights")
    minimum = document.get("min_shipment_value_minor", 0)
    if not isinstance(minimum, int) or minimum < 0:
        raise InvalidArgument(f"{FIELD}.min_shipment_value_minor", "must be a non-negative integer")
    return RuleSet(version, warehouses, coverage, rates, carriers, rules, weights, minimum)


def _tier(value: Any, where: str) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        raise InvalidArgument(where, "must be same_day, next_day or standard") from None


def case_to_document(case: ExpectedDecision) -> dict[str, Any]:
    return {
        "name": case.name,
        "country": case.destination.country,
        "province": case.destination.province,
        "city": case.destination.city,
        "lines": [asdict(line) for line in case.lines],
        "expect_warehouse": case.expect_warehouse,
        "expect_carrier": case.expect_carrier,
    }


def case_from_document(raw: dict[str, Any]) -> ExpectedDecision:
    place: Place = normalise(raw["province"], raw["city"], country=raw.get("country", "CN"))
    return ExpectedDecision(
        raw["name"],
        place,
        tuple(RouteLine(**line) for line in raw["lines"]),
        raw["expect_warehouse"],
        raw["expect_carrier"],
    )
