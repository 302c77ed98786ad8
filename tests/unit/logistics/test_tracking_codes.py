"""Every carrier code mapped onto the one node set, and the carriers' push and query formats read into
scans (or refused with the reason)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from services.logistics.domain.model import Node
from services.logistics.domain.tracking import (
    KUAIDI100_STATES,
    SF_OP_CODES,
    MalformedPush,
    kuaidi100_node,
    parse_kuaidi100_push,
    parse_push,
    parse_sf_push,
    parse_sf_routes,
    sf_node,
)


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
def test_every_sf_op_code_maps_to_its_node(op_code: str, node: Node) -> None:
    assert sf_node(op_code) is node


def test_the_sf_table_is_exactly_the_codes_tested_and_other_sf_codes_are_transit_scans() -> None:
    assert set(SF_OP_CODES) == {"50", "54", "30", "31", "36", "44", "204", "80", "70", "99"}
    assert sf_node("607") is Node.IN_TRANSIT


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
        ("8", Node.IN_TRANSIT),
        ("10", Node.IN_TRANSIT),
        ("11", Node.IN_TRANSIT),
        ("12", Node.IN_TRANSIT),
        ("13", Node.PROBLEM),
        ("14", Node.REFUSED),
    ],
)
def test_every_kuaidi100_state_maps_to_its_node(state: str, node: Node) -> None:
    assert kuaidi100_node(state) is node


def test_the_kuaidi100_table_is_exactly_the_states_tested() -> None:
    assert set(KUAIDI100_STATES) == {
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "10",
        "11",
        "12",
        "13",
        "14",
    }


@pytest.mark.parametrize(
    ("sub_state", "node"),
    [
        ("101", Node.PICKED_UP),
        ("103", Node.PICKED_UP),
        ("1001", Node.IN_TRANSIT),
        ("1003", Node.IN_TRANSIT),
        ("201", Node.PROBLEM),
        ("210", Node.PROBLEM),
        ("301", Node.DELIVERED),
        ("304", Node.DELIVERED),
        ("401", Node.RETURNED),
        ("501", Node.OUT_FOR_DELIVERY),
    ],
)
def test_resultv2_sub_states_map_by_their_family(sub_state: str, node: Node) -> None:
    assert kuaidi100_node(sub_state) is node


def test_a_code_kuaidi100_does_not_have_maps_to_nothing() -> None:
    assert kuaidi100_node("9") is None
    assert kuaidi100_node("901") is None
    assert kuaidi100_node("x") is None


def sf_push(*routes: dict[str, str]) -> bytes:
    return json.dumps({"Body": {"WaybillRoute": list(routes)}}, ensure_ascii=False).encode()


ROUTE = {
    "id": "17",
    "mailno": "SF1234567890123",
    "orderid": "s-1",
    "acceptTime": "2026-01-01 10:00:00",
    "acceptAddress": "深圳",
    "remark": "快件已由【深圳南山营业点】收取",
    "opCode": "50",
}


def test_an_sf_push_is_read_with_china_time_in_utc() -> None:
    (found,) = parse_sf_push(sf_push(ROUTE))
    assert (found.waybill_no, found.carrier_order_id, found.node, found.area) == (
        "SF1234567890123",
        "s-1",
        Node.PICKED_UP,
        "深圳",
    )
    assert found.at == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)


def test_nul_characters_are_dropped_from_what_a_push_says_postgres_text_cannot_hold_them() -> None:
    route = {**ROUTE, "mailno": "SF1\x0023", "remark": "收\x00取", "acceptAddress": "\x00深圳"}
    (found,) = parse_sf_push(sf_push(route))
    assert (found.waybill_no, found.description, found.area) == ("SF123", "收取", "深圳")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<xml/>", "the body is not JSON"),
        (b'{"Body": {}}', "Body.WaybillRoute is missing or empty"),
        (sf_push({**ROUTE, "opCode": ""}), "Body.WaybillRoute[0].opCode is missing"),
        (sf_push({**ROUTE, "acceptTime": "yesterday"}), "Body.WaybillRoute[0].acceptTime 'yesterday' is not"),
        (sf_push({**ROUTE, "mailno": "", "orderid": ""}), "Body.WaybillRoute[0].mailno is missing"),
        (sf_push({**ROUTE, "opCode": "9" * 17}), "Body.WaybillRoute[0].opCode is longer than 16"),
        (sf_push({**ROUTE, "acceptTime": "\x00"}), "Body.WaybillRoute[0].acceptTime '' is not"),
    ],
)
def test_a_malformed_sf_push_says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPush) as refused:
        parse_sf_push(body)
    assert refused.value.reason.startswith(reason)


def kuaidi100_form(param: dict[str, object] | str) -> bytes:
    text = param if isinstance(param, str) else json.dumps(param, ensure_ascii=False)
    return urlencode({"param": text, "sign": "X"}).encode()


TRACK = {
    "nu": "75000000000001",
    "com": "zhongtong",
    "state": "0",
    "data": [
        {"time": "2026-01-01 12:00:00", "context": "到达", "areaName": "上海", "statusCode": "0"},
        {"time": "2026-01-01 10:00:00", "context": "收取", "areaName": "深圳", "statusCode": "1"},
    ],
}


def test_a_kuaidi100_push_is_read_oldest_scan_first() -> None:
    scans = parse_kuaidi100_push(kuaidi100_form({"status": "polling", "lastResult": TRACK}))
    assert [(s.node, s.area) for s in scans] == [(Node.PICKED_UP, "深圳"), (Node.IN_TRANSIT, "上海")]
    assert all(s.waybill_no == "75000000000001" for s in scans)


def test_without_resultv2_only_the_newest_scan_takes_the_track_s_state() -> None:
    plain = {
        **TRACK,
        "state": "5",
        "data": [{k: v for k, v in d.items() if k != "statusCode"} for d in TRACK["data"]],
    }  # type: ignore[union-attr]
    (found,) = parse_kuaidi100_push(kuaidi100_form({"status": "polling", "lastResult": plain}))
    assert (found.node, found.carrier_code) == (Node.OUT_FOR_DELIVERY, "5")


def test_an_abort_push_names_no_scans() -> None:
    empty = {**TRACK, "data": []}
    assert (
        parse_kuaidi100_push(
            kuaidi100_form({"status": "abort", "message": "3天查询无记录", "lastResult": empty})
        )
        == []
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "the body is not a URL-encoded form"),
        (b"sign=X", "the form has no param"),
        (kuaidi100_form("{not json"), "param is not JSON"),
        (kuaidi100_form({"lastResult": TRACK}), "param.status is missing"),
        (
            kuaidi100_form({"status": "polling", "lastResult": {**TRACK, "nu": ""}}),
            "param.lastResult.nu is missing",
        ),
        (
            kuaidi100_form(
                {"status": "polling", "lastResult": {**TRACK, "data": [{"time": "x", "statusCode": "99"}]}}
            ),
            "param.lastResult.data[0].statusCode '99' is not a Kuaidi100 state",
        ),
    ],
)
def test_a_malformed_kuaidi100_push_says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPush) as refused:
        parse_kuaidi100_push(body)
    assert refused.value.reason == reason


def test_a_push_in_an_unknown_format_is_refused() -> None:
    with pytest.raises(MalformedPush, match="no push format is known for carrier 'dhl'"):
        parse_push("dhl", b"{}")


def test_the_sf_route_query_is_read_per_waybill() -> None:
    answer = {
        "routeResps": [
            {
                "mailNo": "SF1",
                "routes": [{k: v for k, v in ROUTE.items() if k not in ("mailno", "orderid", "id")}],
            },
            {"mailNo": "SF2", "routes": []},
        ]
    }
    found = parse_sf_routes(answer)
    assert [s.node for s in found["SF1"]] == [Node.PICKED_UP]
    assert found["SF2"] == []
