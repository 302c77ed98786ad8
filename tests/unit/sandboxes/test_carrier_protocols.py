"""The carriers' signatures against vectors worked out by hand (openssl over the documented formula), and
every code table mapped onto the one set of tracking nodes."""

from __future__ import annotations

import json
import random

import pytest

from sandboxes.carriers.behaviour import Behaviour, ControlError, changed, parse_assignment
from sandboxes.carriers.control import Control
from sandboxes.carriers.protocols import cainiao, kuaidi100, sf
from sandboxes.carriers.routes import ACTION_NODE, Action, Node, plan_route
from sandboxes.carriers.state import Store

# printf '%s' '%7B%22orderId%22%3A%22OMS-1+%E6%B5%8B%E8%AF%95*%7E%22%7D1700000000000cw-123' \
#   | openssl md5 -binary | base64
SF_VECTOR = ('{"orderId":"OMS-1 测试*~"}', "1700000000000", "cw-123", "1EHXF/34sPdfD6XrtmI82g==")


def test_sf_digest_url_encodes_like_java_then_base64s_the_raw_md5() -> None:
    msg_data, timestamp, checkword, expected = SF_VECTOR
    assert sf.msg_digest(msg_data, timestamp, checkword) == expected


def test_sf_url_encoding_keeps_the_star_and_escapes_the_tilde_as_java_does() -> None:
    assert sf.java_urlencode('a b*~{"测"}') == "a+b*%7E%7B%22%E6%B5%8B%22%7D"


def test_sf_digest_changes_with_the_checkword() -> None:
    msg_data, timestamp, _, expected = SF_VECTOR
    assert sf.msg_digest(msg_data, timestamp, "another-checkword") != expected


def test_sf_envelope_carries_the_business_result_as_a_json_string() -> None:
    result = sf.business_result({"orderId": "O1"}, sf.DUPLICATE_ORDER)
    envelope = sf.api_response("r1", sf.API_OK, result)
    assert envelope["apiResultCode"] == "A1000"
    assert isinstance(envelope["apiResultData"], str)
    inner = json.loads(envelope["apiResultData"])
    assert inner == {
        "success": False,
        "errorCode": "8016",
        "errorMsg": "重复下单",
        "msgData": {"orderId": "O1"},
    }


def test_sf_refusal_has_no_result_data() -> None:
    envelope = sf.api_response("r1", sf.API_BAD_DIGEST)
    assert envelope["apiResultData"] is None
    assert envelope["apiErrorMsg"] == "数字签名无效"


def test_kuaidi100_label_sign_is_upper_md5_of_param_t_key_secret() -> None:
    # printf '%s' '{"kuaidicom":"zhongtong","orderId":"A1"}1576123932000KS' | openssl md5
    param = '{"kuaidicom":"zhongtong","orderId":"A1"}'
    assert kuaidi100.label_sign(param, "1576123932000", "K", "S") == "D497BE54092A303A1315684B92E3C475"


def test_kuaidi100_query_sign_is_upper_md5_of_param_key_customer() -> None:
    param = '{"com":"yuantong","num":"YT1234567890123"}'
    assert kuaidi100.query_sign(param, "K", "C") == "DDA2877D14313686E68363FC860FD82D"


def test_kuaidi100_push_sign_is_upper_md5_of_param_and_salt() -> None:
    assert kuaidi100.push_sign('{"status":"polling"}', "salt123") == "D3E37349DAA1504C5808621A3D636F88"


def test_kuaidi100_push_carries_no_sign_without_a_salt() -> None:
    assert kuaidi100.push_form('{"status":"polling"}', "") == {"param": '{"status":"polling"}'}


def test_top_sign_wraps_sorted_names_and_values_in_the_secret_and_skips_sign_and_empty_values() -> None:
    params = {
        "method": "cainiao.waybill.ii.get",
        "app_key": "12345678",
        "timestamp": "2026-01-01 00:00:00",
        "v": "2.0",
        "sign_method": "md5",
        "format": "json",
        "session": "",
        "sign": "ignored",
    }
    assert cainiao.top_sign(params, "sec") == "FD2E2FCA7B5F0B375986E841A4C4C429"


@pytest.mark.parametrize(
    ("state", "node"),
    [
        ("0", Node.IN_TRANSIT),
        ("1", Node.PICKED_UP),
        ("2", Node.PROBLEM),
        ("3", Node.DELIVERED),
        ("4", Node.RETURNED),
        ("5", Node.OUT_FOR_DELIVERY),
        ("6", Node.RETURNED),
        ("7", Node.IN_TRANSIT),
        ("14", Node.REFUSED),
    ],
)
def test_every_kuaidi100_state_maps_to_a_node(state: str, node: Node) -> None:
    assert kuaidi100.STATES[state] is node
    assert kuaidi100.STATE_NAMES[state]


def test_every_node_has_a_kuaidi100_state_that_maps_back_to_it() -> None:
    for node in Node:
        assert kuaidi100.STATES[kuaidi100.NODE_STATE[node]] is node


@pytest.mark.parametrize(
    ("op_code", "node"),
    [
        ("50", Node.PICKED_UP),
        ("54", Node.PICKED_UP),
        ("30", Node.IN_TRANSIT),
        ("31", Node.IN_TRANSIT),
        ("36", Node.IN_TRANSIT),
        ("44", Node.OUT_FOR_DELIVERY),
        ("204", Node.OUT_FOR_DELIVERY),
        ("80", Node.DELIVERED),
        ("70", Node.PROBLEM),
        ("99", Node.RETURNED),
    ],
)
def test_every_sf_op_code_maps_to_a_node(op_code: str, node: Node) -> None:
    assert sf.OP_CODES[op_code] is node


def test_the_sf_op_code_emitted_for_each_scan_means_that_scan_s_node() -> None:
    for action in Action:
        assert sf.OP_CODES[sf.ACTION_OP_CODE[action]] is ACTION_NODE[action]


def test_a_route_goes_from_pickup_through_transit_and_delivery_to_signed() -> None:
    route = plan_route("深圳", "上海", random.Random(1))
    nodes = [step.node for step in route]
    assert nodes[0] is Node.PICKED_UP
    assert nodes[-2:] == [Node.OUT_FOR_DELIVERY, Node.DELIVERED]
    assert set(nodes[1:-2]) == {Node.IN_TRANSIT}
    assert route[0].city == "深圳"
    assert route[-1].city == "上海"


def test_kuaidi100_track_lists_the_newest_scan_first_and_marks_it_signed() -> None:
    route = plan_route("深圳", "上海", random.Random(1))
    items = [
        kuaidi100.track_item(step, f"2026-01-01 00:00:0{i}", resultv2=True) for i, step in enumerate(route)
    ]
    track = kuaidi100.track_result("zhongtong", "75123", items, "3")
    assert track["data"][0]["time"] == "2026-01-01 00:00:06"
    assert track["data"][0]["status"] == "签收"
    assert track["ischeck"] == "1"


def test_push_answers_are_read_the_carriers_way() -> None:
    assert sf.push_accepted(200, b'{"return_code":"0000","return_msg":"\xe6\x88\x90\xe5\x8a\x9f"}')
    assert not sf.push_accepted(200, b'{"return_code":"1000"}')
    assert not sf.push_accepted(500, b'{"return_code":"0000"}')
    assert kuaidi100.push_accepted(200, json.dumps(kuaidi100.PUSH_OK).encode())
    assert not kuaidi100.push_accepted(200, b'{"result":false,"returnCode":"500"}')
    assert not kuaidi100.push_accepted(200, b"ok")


def test_the_same_order_id_gets_the_same_waybill_and_another_carrier_its_own() -> None:
    store = Store(seed=3)
    first, created = store.create("sf", "O-1", "sf", "sf", "深圳", "上海", now=0.0)
    again, created_again = store.create("sf", "O-1", "sf", "sf", "深圳", "上海", now=1.0)
    other, _ = store.create("zto", "O-1", "zhongtong", "zto", "深圳", "上海", now=1.0)
    assert created and not created_again
    assert again is first
    assert other.waybill_no != first.waybill_no


def test_without_an_order_id_every_call_is_a_new_waybill() -> None:
    store = Store(seed=3)
    first, _ = store.create("zto", None, "zhongtong", "zto", "", "", now=0.0)
    second, _ = store.create("zto", None, "zhongtong", "zto", "", "", now=0.0)
    assert first.waybill_no != second.waybill_no


def test_a_seed_replays_the_same_waybill_numbers_and_dice() -> None:
    numbers = [Store(seed=9).create("sf", "O", "sf", "sf", "", "", 0.0)[0].waybill_no for _ in range(2)]
    assert numbers[0] == numbers[1]

    def rolls(seed: int) -> list[bool]:
        control = Control(seed=seed)
        return [control.roll("sf", 0.5) for _ in range(32)]

    assert rolls(9) == rolls(9)
    assert rolls(9) != rolls(10)


def test_switches_are_checked() -> None:
    with pytest.raises(ControlError, match="failure_rate"):
        changed(Behaviour(), {"failure_rate": 2})
    with pytest.raises(ControlError, match="unknown switch"):
        changed(Behaviour(), {"latency": 5})
    with pytest.raises(ControlError, match="dead_mode"):
        changed(Behaviour(), {"dead_mode": "sometimes"})
    assert changed(Behaviour(), {"no_first_scan": True}).no_first_scan == 1.0


def test_command_line_assignments_parse_json_values() -> None:
    assert parse_assignment("sf.latency_ms=50") == ("sf", "latency_ms", 50)
    assert parse_assignment("all.dead=true") == ("all", "dead", True)
    assert parse_assignment("zto.timeout_mode=drop") == ("zto", "timeout_mode", "drop")
    with pytest.raises(ControlError, match="unknown carrier"):
        parse_assignment("dhl.dead=true")


def test_reset_restores_the_startup_switches() -> None:
    control = Control(seed=1, startup=[("sf", "latency_ms", 50)])
    control.change("all", {"latency_ms": 5, "dead": True})
    control.reset()
    assert control.of("sf").latency_ms == 50
    assert control.of("zto").latency_ms == 0
    assert not control.of("sf").dead


def test_the_rate_window_admits_the_limit_per_second() -> None:
    control = Control(seed=1)
    control.change("sf", {"rate_limit_per_s": 2})
    assert [control.admit("sf", 10.0), control.admit("sf", 10.1), control.admit("sf", 10.2)] == [
        True,
        True,
        False,
    ]
    assert control.admit("sf", 11.05)
    assert control.admit("zto", 10.2)
