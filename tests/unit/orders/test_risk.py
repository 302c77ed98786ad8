"""The risk rules: conditions parsed (never run as code), each default rule's facts and outcome, the
score and the freeze level, dry runs over recorded facts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.orders.domain import risk
from services.orders.domain.model import Address, Discount, DiscountKind, OrderLine, accept
from tests.unit.orders.fakes import NOW
from tests.unit.orders.test_model import ADDRESS, command

DEFAULTS = risk.rule_set_from_document(1, risk.default_document())


def facts(**changes: object) -> dict[str, Any]:
    base: dict[str, Any] = {
        "amount_minor": 12000,
        "address": "Zhejiang Hangzhou Xihu 18 Longjing Road",
        "max_line_discount_pct": 10.0,
        "campaign": False,
        "phone_orders_1h": 1,
        "phone_addresses_1h": 1,
        "channel": "TAOBAO",
    }
    base.update(changes)
    return base


def result(evaluation: risk.Evaluation, rule_id: str) -> risk.RuleResult:
    return next(item for item in evaluation.results if item.rule_id == rule_id)


def test_an_ordinary_order_passes_and_every_rule_says_what_it_saw() -> None:
    judged = risk.evaluate(DEFAULTS, facts())
    assert (judged.outcome, judged.score, judged.hits, judged.version) == (risk.Outcome.PASSED, 0, [], 1)
    assert [item.rule_id for item in judged.results] == ["address", "velocity", "price"]
    assert result(judged, "velocity").seen == {"phone_addresses_1h": 1, "phone_orders_1h": 1}
    assert result(judged, "price").seen == {"campaign": False, "max_line_discount_pct": 10.0}


def test_a_hotel_address_over_500_is_held_and_the_address_it_saw_is_masked() -> None:
    judged = risk.evaluate(
        DEFAULTS, facts(amount_minor=50001, address="Shanghai Jing'an Grand Hotel room 1208")
    )
    assert (judged.outcome, judged.hits, judged.frozen) == (risk.Outcome.HELD, ["address"], False)
    seen = result(judged, "address").seen
    assert seen["address_matched"] == ["hotel"]
    assert "1208" not in seen["address"]  # personal data is kept masked
    assert judged.reason == "held for risk review: rule address"
    assert judged.notify == ("risk",)


def test_the_keywords_match_chinese_addresses_and_the_amount_must_exceed_500() -> None:
    assert risk.evaluate(DEFAULTS, facts(amount_minor=60000, address="杭州市 西湖区 某某网吧")).hits == [
        "address"
    ]
    assert risk.evaluate(DEFAULTS, facts(amount_minor=50000, address="丰巢快递柜 12")).hits == []


def test_five_orders_to_scattered_addresses_score_90_and_freeze_the_order() -> None:
    fourth = risk.evaluate(DEFAULTS, facts(phone_orders_1h=4, phone_addresses_1h=4))
    assert fourth.outcome is risk.Outcome.PASSED
    fifth = risk.evaluate(DEFAULTS, facts(phone_orders_1h=5, phone_addresses_1h=3))
    assert (fifth.outcome, fifth.score, fifth.frozen) == (risk.Outcome.HELD, 90, True)
    assert "risk score 90 ≥ 85" in fifth.reason
    same_place = risk.evaluate(DEFAULTS, facts(phone_orders_1h=9, phone_addresses_1h=1))
    assert same_place.outcome is risk.Outcome.PASSED  # many orders to one address is a loyal customer


def test_a_deep_discount_without_a_campaign_locks_the_order_and_tells_operations() -> None:
    judged = risk.evaluate(DEFAULTS, facts(max_line_discount_pct=90.0))
    assert (judged.outcome, judged.hits, judged.notify) == (risk.Outcome.HELD, ["price"], ("risk", "ops"))
    assert risk.evaluate(DEFAULTS, facts(max_line_discount_pct=90.0, campaign=True)).hits == []


def test_a_switched_off_rule_is_not_run() -> None:
    document = risk.default_document()
    document["rules"][2]["enabled"] = False
    rules = risk.rule_set_from_document(2, document)
    judged = risk.evaluate(rules, facts(max_line_discount_pct=99.0))
    assert judged.outcome is risk.Outcome.PASSED and "price" not in [r.rule_id for r in judged.results]


def test_an_alert_rule_tells_its_roles_and_holds_nothing() -> None:
    document = {
        "rules": [
            {
                "id": "big",
                "when": {"fact": "amount_minor", "op": ">=", "value": 1_000_000},
                "action": "alert",
                "notify": ["finance"],
            }
        ]
    }
    judged = risk.evaluate(risk.rule_set_from_document(3, document), facts(amount_minor=2_000_000))
    assert (judged.outcome, judged.hits, judged.notify) == (risk.Outcome.PASSED, ["big"], ("finance",))


def test_an_orders_facts_come_from_its_lines_discounts_and_address() -> None:
    lines = (OrderLine("SKU-1", "Tea", 2, 10000, discount_minor=18000), OrderLine("SKU-2", "Cup", 1, 1999))
    address = Address(**{**ADDRESS.__dict__, "detail": "Room 3, Hilton Hotel"})
    order = accept(command(lines=lines, shipping_address=address), "o-1", NOW)
    seen = risk.order_facts(order, 5, 3)
    assert seen["max_line_discount_pct"] == 90.0
    assert seen["campaign"] is False
    assert "Hilton Hotel" in seen["address"]
    assert (seen["phone_orders_1h"], seen["phone_addresses_1h"], seen["channel"]) == (5, 3, "TAOBAO")
    promoted = accept(command(discounts=(Discount(DiscountKind.PROMOTION, 100, "double-11"),)), "o-2", NOW)
    assert risk.order_facts(promoted, 1, 1)["campaign"] is True


def _bad(path: list[Any], value: object) -> dict[str, Any]:
    document = copy.deepcopy(risk.default_document())
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ([], "document"),
        ({"rules": [], "oops": 1}, "document"),
        (_bad(["freeze_score"], 0), "freeze_score"),
        (_bad(["rules", 0, "action"], "delete"), "rules[0].action"),
        (_bad(["rules", 1, "score"], 0), "rules[1].score"),
        (_bad(["rules", 1, "id"], "address"), "rules[1].id"),
        (_bad(["rules", 0, "when"], {"fact": "__class__", "op": "==", "value": 1}), "rules[0].when.fact"),
        (_bad(["rules", 0, "when"], {"fact": "amount_minor", "op": "in", "value": 1}), "rules[0].when.op"),
        (
            _bad(["rules", 0, "when"], {"fact": "amount_minor", "op": ">", "value": "500"}),
            "rules[0].when.value",
        ),
        (_bad(["rules", 0, "when"], {"fact": "campaign", "op": ">", "value": True}), "rules[0].when.value"),
        (
            _bad(["rules", 0, "when"], {"fact": "amount_minor", "op": "contains_any", "value": ["x"]}),
            "rules[0].when.op",
        ),
        (_bad(["rules", 0, "when"], {"all": []}), "rules[0].when.all"),
        (_bad(["rules", 0, "when"], "amount_minor > 500"), "rules[0].when"),
        (
            _bad(
                ["rules", 0, "when"],
                {
                    "not": {
                        "not": {
                            "not": {
                                "not": {
                                    "not": {
                                        "not": {
                                            "not": {
                                                "not": {
                                                    "not": {"fact": "campaign", "op": "==", "value": True}
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            ),
            "rules[0].when",
        ),
    ],
)
def test_a_doubtful_rule_set_is_refused_naming_where(document: object, where: str) -> None:
    with pytest.raises(risk.InvalidRiskRules) as refused:
        risk.rule_set_from_document(9, document)
    assert refused.value.path.startswith(where)


def test_a_dry_run_counts_hits_per_rule_and_the_orders_that_would_change() -> None:
    recorded = [
        ("o-1", facts(), False),
        ("o-2", facts(max_line_discount_pct=90.0), True),
        ("o-3", facts(amount_minor=90000, address="Holiday Hotel"), True),
        ("o-4", facts(max_line_discount_pct=70.0), False),
    ]
    stricter = risk.default_document()
    stricter["rules"][2]["when"]["all"][0]["value"] = 60
    stricter["rules"][0]["enabled"] = False
    run = risk.dry_run(risk.rule_set_from_document(4, stricter), recorded)
    assert (run.version, run.orders, run.held, run.held_now) == (4, 4, 2, 2)
    assert {item.rule_id: item.hits for item in run.per_rule} == {"velocity": 0, "price": 2}
    assert (run.newly_held, run.no_longer_held) == (("o-4",), ("o-3",))
