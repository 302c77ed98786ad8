from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from services.orders.domain.anchor import InvalidRules, Observation, RuleBook, agrees
from services.orders.domain.lifecycle import OrderStatus
from services.orders.status_rules import DEFAULT_RULES_PATH, load_rules

S = OrderStatus


@pytest.fixture(scope="module")
def shipped() -> RuleBook:
    return load_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))


def book(*rules: dict[str, Any], version: int = 1) -> RuleBook:
    return load_rules(yaml.safe_dump({"version": version, "rules": list(rules)}))


def rule(*when: str, name: str = "r", source: str = "SRC", **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": source, "when": list(when), "status": "PACKED", **extra}


def holds(condition: str, fields: dict[str, Any]) -> bool:
    return book(rule(condition)).evaluate("SRC", fields) is not None


# --- the shipped rules file


def test_the_shipped_rules_file_loads_and_covers_every_source(shipped: RuleBook) -> None:
    assert shipped.version == 1
    assert shipped.sources() == {"WMS", "ERP", "CARRIER", "TAOBAO", "JD", "PINDUODUO", "DOUYIN", "SHOPEE"}


def test_wms_packaged_with_a_waybill_drives_shipped_but_is_not_scan_out_proof(shipped: RuleBook) -> None:
    seen = shipped.evaluate(
        "WMS", {"status": "PACKED", "packaged_time": 1767225600, "logistics_no": "SF1001"}
    )
    assert seen == Observation(
        rule="wms-packaged-with-waybill",
        source="WMS",
        raw_status="PACKED",
        status=S.SHIPPED,
        means=frozenset({S.PACKED, S.SHIPPED, S.DELIVERED, S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED}),
        waybill_no="SF1001",
        scanned_out=False,
    )
    # The caller holds SHIPPED back until scan-out, so PACKED must not show up as drift meanwhile.
    assert agrees(seen, S.PACKED)


def test_wms_packaged_without_a_waybill_is_only_packed(shipped: RuleBook) -> None:
    for waybill in ("", None):
        seen = shipped.evaluate("WMS", {"status": "PACKED", "packaged_time": 5, "logistics_no": waybill})
        assert seen is not None
        assert (seen.rule, seen.status, seen.waybill_no) == ("wms-packaged", S.PACKED, "")


def test_wms_scan_out_is_the_shipment_proof_and_carries_the_waybill(shipped: RuleBook) -> None:
    seen = shipped.evaluate(
        "WMS", {"status": "SHIPPED", "packaged_time": 1, "scan_out_time": 2, "logistics_no": "ZT9"}
    )
    assert seen is not None
    assert (seen.rule, seen.status, seen.scanned_out, seen.waybill_no) == (
        "wms-scanned-out",
        S.SHIPPED,
        True,
        "ZT9",
    )
    assert agrees(seen, S.DELIVERED) and not agrees(seen, S.PACKED)


def test_a_wms_picking_report_drives_picking_and_a_picked_one_too(shipped: RuleBook) -> None:
    for code in ("PICKING", "PICKED"):
        seen = shipped.evaluate("WMS", {"status": code, "packaged_time": 0})
        assert seen is not None and seen.status is S.PICKING and seen.raw_status == code


def test_the_erp_calling_it_shipped_only_means_a_label_was_printed(shipped: RuleBook) -> None:
    seen = shipped.evaluate("ERP", {"status": "SHIPPED"})
    assert seen is not None and seen.status is None
    assert agrees(seen, S.PACKED) and not agrees(seen, S.PICKING)


def test_carrier_nodes_deliver_or_only_observe(shipped: RuleBook) -> None:
    delivered = shipped.evaluate("CARRIER", {"waybill_no": "SF1", "tracking": {"node": "SIGNED"}})
    picked_up = shipped.evaluate("CARRIER", {"waybill_no": "SF1", "tracking": {"node": "PICKED_UP"}})
    returned = shipped.evaluate("CARRIER", {"waybill_no": "SF1", "tracking": {"node": "RETURNED"}})
    assert delivered is not None and delivered.status is S.DELIVERED and delivered.waybill_no == "SF1"
    assert picked_up is not None and picked_up.status is None
    assert agrees(picked_up, S.SHIPPED) and not agrees(picked_up, S.PACKED)
    # A returned parcel on an order that still reads plainly SHIPPED is drift someone must see.
    assert returned is not None and returned.status is None
    assert not agrees(returned, S.SHIPPED) and agrees(returned, S.REFUNDED)


def test_marketplace_reports_drive_nothing_and_say_which_statuses_agree(shipped: RuleBook) -> None:
    waiting = shipped.evaluate("TAOBAO", {"status": "WAIT_SELLER_SEND_GOODS"})
    assert waiting is not None and waiting.status is None
    for status in (S.PAID, S.ALLOCATED, S.PICKING, S.PACKED, S.ON_HOLD):
        assert agrees(waiting, status)
    for status in (S.PENDING_PAYMENT, S.SHIPPED, S.CANCELLED):
        assert not agrees(waiting, status)
    finished = shipped.evaluate("TAOBAO", {"status": "TRADE_FINISHED"})
    assert finished is not None and agrees(finished, S.COMPLETED) and not agrees(finished, S.PACKED)


def test_every_marketplace_status_the_rules_name_maps_to_an_observation(shipped: RuleBook) -> None:
    reports: dict[str, list[str | int]] = {
        "TAOBAO": ["WAIT_BUYER_PAY", "WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"],
        "JD": ["WAIT_SELLER_STOCK_OUT", "WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L", "TRADE_CANCELED"],
        "PINDUODUO": [1, 2, 3],
        "DOUYIN": [1, 2, 3, 4, 5, 101, 105],
        "SHOPEE": ["UNPAID", "READY_TO_SHIP", "SHIPPED", "COMPLETED", "CANCELLED"],
    }
    for source, statuses in reports.items():
        for status in statuses:
            seen = shipped.evaluate(source, {"status": status})
            assert seen is not None, (source, status)
            assert seen.status is None and seen.means and seen.raw_status == str(status)
    assert shipped.evaluate("TAOBAO", {"status": "SOMETHING_NEW"}) is None


def test_a_closed_trade_disagrees_with_an_order_the_platform_still_ships(shipped: RuleBook) -> None:
    closed = shipped.evaluate("TAOBAO", {"status": "TRADE_CLOSED"})
    assert closed is not None and agrees(closed, S.CANCELLED) and not agrees(closed, S.PICKING)


def test_a_completed_pinduoduo_refund_outranks_the_order_status(shipped: RuleBook) -> None:
    seen = shipped.evaluate("PINDUODUO", {"status": 3, "refund_status": 4})
    assert seen is not None and seen.rule == "pinduoduo-refunded" and seen.raw_status == "3"


def test_reports_from_an_unknown_source_match_nothing(shipped: RuleBook) -> None:
    assert shipped.evaluate("KUAISHOU", {"status": "WAIT_SELLER_SEND_GOODS"}) is None


# --- evaluation semantics


def test_the_first_matching_rule_of_the_source_wins_in_file_order() -> None:
    rules = book(
        rule("a == 1", name="other-source", source="ELSEWHERE", status="PAID"),
        rule("a > 0", name="first", status="PICKING"),
        rule("a == 1", name="second", status="PACKED"),
    )
    seen = rules.evaluate("SRC", {"a": 1})
    assert seen is not None and (seen.rule, seen.status) == ("first", S.PICKING)
    assert rules.evaluate("SRC", {"a": 0}) is None


def test_all_conditions_of_a_rule_must_hold() -> None:
    rules = book(rule("a == 1", "b == 2"))
    assert rules.evaluate("SRC", {"a": 1, "b": 2}) is not None
    assert rules.evaluate("SRC", {"a": 1, "b": 3}) is None


@pytest.mark.parametrize(
    ("condition", "true_for", "false_for"),
    [
        ("n == 5", 5, 6),
        ("n != 5", 6, 5),
        ("n > 5", 6, 5),
        ("n >= 5", 5, 4),
        ("n < 5", 4, 5),
        ("n <= 5", 5, 6),
        ("n == 'x'", "x", "y"),
        ('n != "x"', "y", "x"),
        ("n == true", True, False),
        ("n == false", False, True),
        ("n == -1.5", -1.5, 1.5),
        ("n >= 1e3", 1000, 999),
    ],
)
def test_every_operator_compares_as_documented(condition: str, true_for: Any, false_for: Any) -> None:
    assert holds(condition, {"n": true_for})
    assert not holds(condition, {"n": false_for})


def test_numbers_and_numeric_strings_compare_numerically() -> None:
    assert holds("n == 5", {"n": "5.0"})
    assert holds("n > 10", {"n": " 11 "})
    assert holds("n > 0", {"n": "1767225600"})
    assert holds("n == 0.1", {"n": 0.1})
    assert not holds("n > 5", {"n": "5"})
    # "10" < "9" as text; numeric comparison is what a rule author means
    assert holds("n > 9", {"n": "10"})


def test_non_numeric_values_compare_as_text_for_equality_and_never_for_ordering() -> None:
    assert holds("n != 5", {"n": "five"})
    assert not holds("n == 5", {"n": "five"})
    assert not holds("n > 5", {"n": "five"})
    assert not holds("n < 5", {"n": "five"})
    assert not holds("n > 0", {"n": True})
    assert holds("n == 'true'", {"n": True})


def test_a_missing_or_null_field_makes_the_condition_false_whatever_the_operator() -> None:
    for condition in ("n == 1", "n != 1", "n > 1", "n < 1", "n in [1, 2]", "n != ''"):
        assert not holds(condition, {})
        assert not holds(condition, {"n": None})
        assert not holds(condition, {"n": {"nested": 1}})


def test_dotted_paths_walk_into_nested_mappings() -> None:
    assert holds("tracking.node == 'SIGNED'", {"tracking": {"node": "SIGNED"}})
    assert holds("a.b.c >= 2", {"a": {"b": {"c": "3"}}})
    assert not holds("tracking.node == 'SIGNED'", {"tracking": "SIGNED"})
    assert not holds("tracking.node == 'SIGNED'", {"tracking.node": "SIGNED"})
    assert not holds("a.b.c >= 2", {"a": {"b": [1, 2, 3]}})


def test_in_matches_any_listed_literal_with_equality_semantics() -> None:
    assert holds("n in ['A', \"B\"]", {"n": "B"})
    assert holds("n in [105, 2]", {"n": "2"})
    assert holds("n in [true]", {"n": True})
    assert not holds("n in ['A', 'B']", {"n": "C"})
    assert holds("n in [ 'a,b' , 'c]' ]", {"n": "a,b"})


def test_quoted_strings_allow_escaped_quotes_and_spaces() -> None:
    assert holds("n == 'it\\'s'", {"n": "it's"})
    assert holds('n == "two words"', {"n": "two words"})
    assert holds("n == ''", {"n": ""})


def test_raw_status_falls_back_to_the_tested_fields_when_the_rule_names_no_status_field() -> None:
    rules = book(rule("packaged_time > 0", "tracking.node != ''", "packaged_time < 99"))
    seen = rules.evaluate("SRC", {"packaged_time": 7, "tracking": {"node": "X"}, "other": 1})
    assert seen is not None and seen.raw_status == "packaged_time=7, tracking.node=X"


def test_raw_status_falls_back_when_the_report_lacks_its_status_field() -> None:
    rules = book(rule("n > 0", raw_status_field="status"))
    seen = rules.evaluate("SRC", {"n": 1})
    assert seen is not None and seen.raw_status == "n=1"
    seen = rules.evaluate("SRC", {"n": 1, "status": "OK"})
    assert seen is not None and seen.raw_status == "OK"


def test_means_defaults_to_the_driven_status() -> None:
    seen = book(rule("n > 0", status="PICKING")).evaluate("SRC", {"n": 1})
    assert seen is not None and seen.means == {S.PICKING}
    assert agrees(seen, S.PICKING) and not agrees(seen, S.PACKED)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["1e999999999", "NaN", "inf", "-0", " 5 ", "1_000", "0x10"]),
)
reports = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["n", "a", "b", "c"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["n", "a", "status", "tracking", "x"]), reports, max_size=5))
def test_evaluate_never_raises_on_arbitrary_reports(fields: dict[str, Any]) -> None:
    rules = book(
        rule("n > 1.5", "a.b != 'x'", name="one"),
        rule("n in [1, 'a', true]", name="two", raw_status_field="status", waybill_from="a.b"),
        rule("status <= -3", name="three"),
        rule("n == false", name="four"),
    )
    seen = rules.evaluate("SRC", fields)
    assert seen is None or isinstance(seen.raw_status, str)


@given(st.integers(), st.integers(min_value=-(10**6), max_value=10**6))
def test_numeric_strings_and_numbers_order_alike(value: int, bound: int) -> None:
    for op, expected in ((">", value > bound), ("<=", value <= bound), ("==", value == bound)):
        assert holds(f"n {op} {bound}", {"n": value}) is expected
        assert holds(f"n {op} {bound}", {"n": str(value)}) is expected


# --- refusing bad documents


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("version: 1\nrules: []\n", "rules"),
        ("version: 1\n", "rules"),
        ("rules: [{name: a, source: S, when: ['a == 1'], status: PAID}]\n", "version"),
        ("version: '1'\nrules: [{name: a, source: S, when: ['a == 1'], status: PAID}]\n", "version"),
        ("version: 1.5\nrules: [{name: a, source: S, when: ['a == 1'], status: PAID}]\n", "version"),
        ("version: true\nrules: [{name: a, source: S, when: ['a == 1'], status: PAID}]\n", "version"),
        ("version: 1\nextra: 1\nrules: [{name: a, source: S, when: ['a == 1'], status: PAID}]\n", "extra"),
        ("- just\n- a list\n", "document"),
        ("version: 1\nrules: [\n", "YAML"),
    ],
)
def test_a_document_without_a_valid_version_or_rules_is_refused(document: str, message: str) -> None:
    with pytest.raises(InvalidRules, match=message):
        load_rules(document)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"when": ["a =~ 'x'"]}, r"when\[0\]"),
        ({"when": ["a == 1", "a <> 1"]}, r"when\[1\]"),
        ({"when": ["a == x"]}, r"when\[0\]"),
        ({"when": ["a > 'x'"]}, "needs a number"),
        ({"when": ["a in []"]}, "non-empty list"),
        ({"when": ["a in ['x' 'y']"]}, "non-empty list"),
        ({"when": ["a == 1 == 2"]}, r"when\[0\]"),
        ({"when": ["a..b == 1"]}, r"when\[0\]"),
        ({"when": ["== 1"]}, r"when\[0\]"),
        ({"when": ["a == 1e9999999999999999999999"]}, r"when\[0\]"),
        ({"when": [5]}, "must be a string"),
        ({"when": []}, "when"),
        ({"when": "a == 1"}, "when"),
        ({"status": "SENT"}, "status"),
        ({"status": None}, "means"),
        ({"means": ["PAID", "GONE"]}, "means"),
        ({"means": "PAID"}, "means"),
        ({"status": "PAID", "means": ["ALLOCATED"]}, "must include"),
        ({"colour": "red"}, "colour"),
        ({"scan_out": "yes"}, "scan_out"),
        ({"scan_out": True, "status": "PACKED"}, "scan_out"),
        ({"waybill_from": "a b"}, "waybill_from"),
        ({"raw_status_field": 3}, "raw_status_field"),
        ({"source": "wms"}, "source"),
        ({"source": None}, "source"),
    ],
)
def test_an_invalid_rule_is_refused_with_a_message_naming_the_rule_and_key(
    bad: dict[str, Any], message: str
) -> None:
    good = rule("a == 1", name="fine")
    with pytest.raises(InvalidRules, match=message) as refused:
        book(good, {**rule("a == 1", name="broken"), **bad})
    assert "rule 1 (broken)" in str(refused.value)


def test_a_rule_without_a_name_is_refused_by_its_index() -> None:
    with pytest.raises(InvalidRules, match=r"rule 1: name"):
        book(rule("a == 1", name="fine"), {"source": "S", "when": ["a == 1"], "status": "PAID"})
    with pytest.raises(InvalidRules, match=r"rule 0: must be a mapping"):
        load_rules("version: 1\nrules: [just-a-string]\n")


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(InvalidRules, match=r"rule 2 \(twice\): name: duplicate of rule 0"):
        book(rule("a == 1", name="twice"), rule("a == 2", name="other"), rule("a == 3", name="twice"))


def test_a_key_written_twice_in_one_rule_is_refused_rather_than_silently_overridden() -> None:
    document = (
        "version: 1\nrules:\n  - {name: a, source: S, when: ['a == 1'], status: PAID, status: PACKED}\n"
    )
    with pytest.raises(InvalidRules, match="duplicate key 'status'"):
        load_rules(document)


def test_yaml_merge_keys_may_be_overridden() -> None:
    document = (
        "version: 1\nrules:\n"
        "  - &base {name: a, source: S, when: ['a == 1'], status: PAID}\n"
        "  - {<<: *base, name: b, status: PACKED}\n"
    )
    assert [r.status for r in load_rules(document).rules] == [S.PAID, S.PACKED]


# --- describe


def test_describe_returns_the_original_condition_strings_and_reloads_to_the_same_book(
    shipped: RuleBook,
) -> None:
    described = shipped.describe()
    wms = next(entry for entry in described if entry["name"] == "wms-packaged-with-waybill")
    assert wms == {
        "name": "wms-packaged-with-waybill",
        "source": "WMS",
        "when": ["packaged_time > 0", "logistics_no != ''"],
        "status": "SHIPPED",
        "means": ["PACKED", "SHIPPED", "DELIVERED", "COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"],
        "waybill_from": "logistics_no",
        "scan_out": False,
        "raw_status_field": "status",
    }
    assert load_rules(yaml.safe_dump({"version": shipped.version, "rules": described})) == shipped


def test_describe_keeps_conditions_exactly_as_written() -> None:
    written = ["n   ==  'x y'", "a.b in [1,2 , 'c']", "z>=-0.5"]
    assert book(rule(*written)).describe()[0]["when"] == written
