from __future__ import annotations

import json
from dataclasses import replace

import pytest

from services.kit.errors import InvalidArgument
from services.routing.domain.defaults import default_rules
from services.routing.domain.documents import from_document, to_document
from services.routing.domain.geography import PROVINCES, normalise
from services.routing.domain.model import (
    COLD_CHAIN,
    FRESH,
    ParkReason,
    RouteLine,
    RouteRequest,
    SkuFacts,
    with_catalogue,
)
from services.routing.domain.planner import plan
from services.routing.domain.regression import ExpectedDecision, check_expected
from services.routing.domain.rules import Coverage, RuleSet

RULES = default_rules()
WAREHOUSES = [w.warehouse_id for w in RULES.warehouses]
HANGZHOU = normalise("浙江省", "杭州市")


def everywhere(sku: str, units: int = 10) -> dict[tuple[str, str], int]:
    return {(sku, w): units for w in WAREHOUSES}


def request(place=HANGZHOU, *lines: RouteLine, priority: str = "standard") -> RouteRequest:  # type: ignore[no-untyped-def]
    return RouteRequest("o-1", place, lines or (RouteLine("TEA", 1),), priority)


def without_zhejiang_at_shanghai(rules: RuleSet) -> RuleSet:
    coverage = tuple(
        replace(c, regions=tuple(r for r in c.regions if r != "Zhejiang")) if c.warehouse_id == "WH-SH" else c
        for c in rules.coverage
    )
    return replace(rules, version=rules.version + 1, coverage=coverage)


def test_the_default_data_knows_all_31_province_level_regions_and_their_capitals() -> None:
    assert len(PROVINCES) == 31
    for province in PROVINCES:
        assert normalise(province.chinese, province.capital).province == province.name
    assert normalise("新疆维吾尔自治区", "乌鲁木齐市").city == "Urumqi"
    with pytest.raises(InvalidArgument) as refused:
        normalise("Atlantis", "Poseidonia")
    assert refused.value.field == "address.province"


def test_hangzhou_ships_from_shanghai_and_the_explanation_says_why() -> None:
    decision = plan(request(), RULES, everywhere("TEA"), {})
    assert [s.warehouse_id for s in decision.shipments] == ["WH-SH"]
    assert decision.explanation[0].startswith(
        "Shanghai chosen: next-day coverage for Hangzhou, Zhejiang, 1 day"
    )
    assert any(line.startswith("Chengdu lost:") for line in decision.explanation)


def test_the_zhejiang_incident_fails_its_dry_run_and_the_fixed_table_passes() -> None:
    case = ExpectedDecision("Hangzhou → Shanghai", HANGZHOU, (RouteLine("X", 1),), expect_warehouse="WH-SH")
    broken = check_expected(without_zhejiang_at_shanghai(RULES), case)
    assert not broken.passed and broken.actual_warehouses != ("WH-SH",)
    assert "expected WH-SH" in broken.detail
    assert check_expected(RULES, case).passed


def test_remote_regions_go_by_ems_and_east_china_by_sf_economy() -> None:
    urumqi = check_expected(
        RULES,
        ExpectedDecision(
            "Urumqi → EMS", normalise("新疆", "乌鲁木齐"), (RouteLine("X", 1),), expect_carrier="EMS"
        ),
    )
    assert urumqi.passed, urumqi.detail
    decision = plan(request(normalise("Jiangsu", "Suzhou")), RULES, everywhere("TEA"), {})
    assert (decision.shipments[0].carrier, decision.shipments[0].service) == ("SF", "economy")


def test_an_order_splits_only_when_no_single_warehouse_can_fill_it() -> None:
    lines = (RouteLine("TEA", 3), RouteLine("CUP", 2))
    stock = {("TEA", "WH-SH"): 3, ("CUP", "WH-WH"): 2, ("CUP", "WH-BJ"): 1}
    split = plan(request(HANGZHOU, *lines), RULES, stock, {})
    assert split.split and sorted(s.warehouse_id for s in split.shipments) == ["WH-SH", "WH-WH"]
    stock[("CUP", "WH-SH")] = 2
    whole = plan(request(HANGZHOU, *lines), RULES, stock, {})
    assert [s.warehouse_id for s in whole.shipments] == ["WH-SH"]


def test_a_small_shipment_does_not_stop_a_split_that_is_the_only_way() -> None:
    lines = (RouteLine("TEA", 1, unit_value_minor=50_000), RouteLine("PIN", 1, unit_value_minor=300))
    stock = {("TEA", "WH-SH"): 1, ("PIN", "WH-WH"): 1}
    decision = plan(request(HANGZHOU, *lines), replace(RULES, min_shipment_value_minor=1_000), stock, {})
    assert sorted((s.warehouse_id, s.value_minor) for s in decision.shipments) == [
        ("WH-SH", 50_000),
        ("WH-WH", 300),
    ]


def test_capacity_closure_and_missing_stock_exclude_warehouses_with_reasons() -> None:
    stock = everywhere("TEA")
    stock[("TEA", "WH-WH")] = 0  # not sellable below safety stock: inventory reports 0 available
    rules = replace(
        RULES,
        warehouses=tuple(
            replace(w, open=False) if w.warehouse_id == "WH-GZ" else w for w in RULES.warehouses
        ),
    )
    decision = plan(request(), rules, stock, {"WH-SH": 8000})
    verdicts = {v.warehouse_id: v.reason for v in decision.verdicts}
    assert verdicts["WH-SH"] == "at its daily capacity of 8000 orders"
    assert verdicts["WH-GZ"] == "closed"
    assert verdicts["WH-WH"].startswith("lacks stock of TEA (has 0, needs 1)")
    assert decision.shipments[0].warehouse_id not in ("WH-SH", "WH-GZ", "WH-WH")


def test_cold_chain_goods_never_leave_a_warehouse_or_travel_with_a_carrier_without_cold_chain() -> None:
    fish = RouteLine("FISH", 1, goods_type=COLD_CHAIN)
    for place in (HANGZHOU, normalise("Beijing", ""), normalise("Sichuan", "Chengdu")):
        decision = plan(request(place, fish), RULES, everywhere("FISH"), {})
        cold = {w.warehouse_id for w in RULES.warehouses if w.cold_chain}
        assert decision.shipments and all(
            s.warehouse_id in cold and s.carrier == "SF-COLD" for s in decision.shipments
        )
    parked = plan(request(normalise("Xinjiang", "Urumqi"), fish), RULES, everywhere("FISH"), {})
    assert parked.parked is ParkReason.COLD_CHAIN_IMPOSSIBLE and not parked.shipments


def test_unroutable_orders_are_parked_with_the_reason() -> None:
    assert plan(request(), RULES, {}, {}).parked is ParkReason.OUT_OF_STOCK
    nowhere = replace(
        RULES,
        coverage=tuple(
            c for c in RULES.coverage if c.warehouse_id == "WH-GZ" and "Zhejiang" not in c.regions
        ),
    )
    assert plan(request(), nowhere, everywhere("TEA"), {}).parked is ParkReason.NO_COVERAGE


def test_a_city_entry_in_coverage_counts_for_that_city_only() -> None:
    rules = without_zhejiang_at_shanghai(RULES)
    rules = replace(
        rules, coverage=(*rules.coverage, Coverage("WH-SH", RULES.coverage[1].tier, ("Zhejiang/Hangzhou",)))
    )
    assert plan(request(), rules, everywhere("TEA"), {}).shipments[0].warehouse_id == "WH-SH"
    ningbo = plan(request(normalise("Zhejiang", "Ningbo")), rules, everywhere("TEA"), {})
    assert ningbo.shipments[0].warehouse_id != "WH-SH"


def test_the_same_inputs_always_give_the_same_decision() -> None:
    lines = (RouteLine("TEA", 2), RouteLine("CUP", 1))
    stock = {("TEA", "WH-SH"): 1, ("TEA", "WH-WH"): 5, ("CUP", "WH-BJ"): 3, ("CUP", "WH-WH"): 1}
    first = plan(request(HANGZHOU, *lines), RULES, stock, {})
    assert all(
        plan(request(HANGZHOU, *lines), RULES, dict(reversed(stock.items())), {}) == first for _ in range(5)
    )


def test_expedited_orders_weigh_delivery_days() -> None:
    decision = plan(request(HANGZHOU, priority="expedited"), RULES, everywhere("TEA"), {})
    assert (decision.shipments[0].carrier, decision.shipments[0].service) == ("SF", "express")


def test_a_cold_chain_sku_held_only_by_warehouses_without_cold_chain_parks_as_cold_chain_impossible() -> None:
    fish = RouteLine("FISH", 2, goods_type=COLD_CHAIN)
    warm_only = {("FISH", "WH-BJ"): 50, ("FISH", "WH-WH"): 50}
    decision = plan(request(HANGZHOU, fish), RULES, warm_only, {})
    assert decision.parked is ParkReason.COLD_CHAIN_IMPOSSIBLE and not decision.shipments
    assert "FISH needs a cold chain" in decision.park_detail and "WH-BJ, WH-WH" in decision.park_detail
    verdicts = {v.warehouse_id: v.reason for v in decision.verdicts}
    assert verdicts["WH-BJ"] == verdicts["WH-WH"] == "cannot ship cold-chain goods"


def test_a_cold_chain_sku_out_of_stock_everywhere_is_simply_out_of_stock() -> None:
    fish = RouteLine("FISH", 2, goods_type=COLD_CHAIN)
    assert plan(request(HANGZHOU, fish), RULES, {}, {}).parked is ParkReason.OUT_OF_STOCK


def test_fresh_goods_stay_chilled_like_cold_chain() -> None:
    milk = RouteLine("MILK", 1, goods_type=FRESH)
    decision = plan(request(HANGZHOU, milk), RULES, everywhere("MILK"), {})
    [shipment] = decision.shipments
    assert (shipment.warehouse_id, shipment.carrier) == ("WH-SH", "SF-COLD")


def test_the_catalogue_replaces_what_the_caller_said_about_goods_type_and_weight() -> None:
    said = request(HANGZHOU, RouteLine("FISH", 1), RouteLine("TEA", 2, unit_weight_g=300))
    known = with_catalogue(said, {"FISH": SkuFacts(COLD_CHAIN, 1200), "TEA": SkuFacts("normal", 0)})
    assert [(line.goods_type, line.unit_weight_g) for line in known.lines] == [
        (COLD_CHAIN, 1200),
        ("normal", 300),
    ]
    assert known.cold


def test_addresses_outside_mainland_china_are_normalised_by_country() -> None:
    singapore = normalise("SG", "SG", country="SG")  # what the Shopee adapter makes of a city-state
    assert (singapore.country, singapore.province, singapore.city, singapore.region) == (
        "SG",
        "Singapore",
        "Singapore",
        "SG",
    )
    selangor = normalise("Selangor", "Petaling Jaya", country="my")
    assert (selangor.region, selangor.province, selangor.city) == ("MY", "Selangor", "Petaling Jaya")
    assert normalise("香港", "", country="CN").region == "HK"
    assert normalise("Zhejiang", "Hangzhou", country="").region == "Zhejiang"
    with pytest.raises(InvalidArgument) as bad_country:
        normalise("X", "Y", country="S1")
    assert bad_country.value.field == "address.country_code"
    with pytest.raises(InvalidArgument) as unknown:
        normalise("SG", "SG", country="CN")
    assert unknown.value.problem == "unknown province 'SG' in mainland China (CN)"


def test_a_singapore_order_ships_from_the_cross_border_warehouse_by_a_cross_border_carrier() -> None:
    decision = plan(request(normalise("SG", "SG", country="SG")), RULES, everywhere("TEA"), {})
    [shipment] = decision.shipments
    assert (shipment.warehouse_id, shipment.carrier, shipment.service) == (
        "WH-XB",
        "SF-INTL",
        "international",
    )
    assert decision.explanation[0].startswith("Shenzhen cross-border chosen: standard coverage for Singapore")
    verdicts = {v.warehouse_id: v.reason for v in decision.verdicts}
    assert verdicts["WH-SH"] == "does not cover SG"


def test_mainland_orders_never_ship_from_the_cross_border_warehouse() -> None:
    stock = {("TEA", "WH-XB"): 100}
    decision = plan(request(), RULES, stock, {})
    assert decision.parked is ParkReason.OUT_OF_STOCK
    assert {v.warehouse_id: v.reason for v in decision.verdicts}["WH-XB"] == "does not cover Zhejiang"


def test_a_destination_no_warehouse_covers_parks_no_coverage_in_plain_words() -> None:
    mainland_only = replace(
        RULES,
        warehouses=tuple(w for w in RULES.warehouses if not w.cross_border),
        coverage=tuple(c for c in RULES.coverage if c.warehouse_id != "WH-XB"),
        rates=tuple(r for r in RULES.rates if r.warehouse_id != "WH-XB"),
    )
    decision = plan(request(normalise("SG", "SG", country="SG")), mainland_only, everywhere("TEA"), {})
    assert (decision.parked, decision.park_detail) == (ParkReason.NO_COVERAGE, "no warehouse covers SG")
    unknown_country = plan(
        request(normalise("Bavaria", "Munich", country="DE")), RULES, everywhere("TEA"), {}
    )
    assert (unknown_country.parked, unknown_country.park_detail) == (
        ParkReason.NO_COVERAGE,
        "no warehouse covers DE",
    )


def test_cold_chain_goods_abroad_park_when_no_cold_chain_reaches_there() -> None:
    fish = RouteLine("FISH", 1, goods_type=COLD_CHAIN)
    decision = plan(request(normalise("SG", "SG", country="SG"), fish), RULES, everywhere("FISH"), {})
    assert decision.parked is ParkReason.COLD_CHAIN_IMPOSSIBLE and not decision.shipments


def test_a_rule_set_may_not_let_a_mainland_warehouse_cover_a_region_abroad() -> None:
    document = json.loads(json.dumps(to_document(RULES)))  # as operations send it
    document["coverage"].append({"warehouse_id": "WH-SH", "tier": "standard", "regions": ["SG"]})
    with pytest.raises(InvalidArgument) as refused:
        from_document(2, document)
    assert "not a cross-border warehouse" in refused.value.problem
    assert from_document(2, json.loads(json.dumps(to_document(RULES)))).coverage == RULES.coverage
