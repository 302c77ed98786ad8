"""Each carrier's tracking codes mapped onto the one node set, and their push and query formats read
into scans. Pure: bodies in, scans (or the reason a body cannot be read) out.

- SF (丰桥) route push, RoutePushService JSON: ``{"Body": {"WaybillRoute": [{mailno, orderid,
  acceptTime, acceptAddress, remark, opCode}]}}``; the route query (EXP_RECE_SEARCH_ROUTES) answers
  ``routeResps: [{mailNo, routes: [{acceptTime, acceptAddress, remark, opCode}]}]``.
- Kuaidi100 push: a form with ``param`` = ``{status, message, autoCheck, comOld, comNew, lastResult}``
  and ``sign``; ``lastResult`` (also the query's answer) is ``{nu, com, state, data: [{time, context,
  areaName, status, statusCode}]}``, newest scan first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from services.logistics.domain.model import Node

CHINA = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# SF opCodes. The route scans SF documents and its SDKs map; SF has many more intermediate scan codes
# (sorting, loading, transfers), and any code not listed is one of those: in transit.
SF_OP_CODES: dict[str, Node] = {
    "50": Node.PICKED_UP,  # 顺丰已收取快件
    "54": Node.PICKED_UP,  # 上门收件
    "30": Node.IN_TRANSIT,  # 快件在…完成分拣
    "31": Node.IN_TRANSIT,  # 快件到达…
    "36": Node.IN_TRANSIT,  # 快件离开…，已发往…
    "44": Node.OUT_FOR_DELIVERY,  # 正在派送途中
    "204": Node.OUT_FOR_DELIVERY,  # 快件交给…派送
    "80": Node.DELIVERED,  # 已签收
    "70": Node.PROBLEM,  # 派件不成功
    "99": Node.RETURNED,  # 快件退回
}
SF_DEFAULT_NODE = Node.IN_TRANSIT

# Kuaidi100 lastResult.state (and the family of each resultv2 sub-state).
KUAIDI100_STATES: dict[str, Node] = {
    "0": Node.IN_TRANSIT,  # 在途
    "1": Node.PICKED_UP,  # 揽收
    "2": Node.PROBLEM,  # 疑难
    "3": Node.DELIVERED,  # 签收
    "4": Node.RETURNED,  # 退签: signed for by the sender after the return
    "5": Node.OUT_FOR_DELIVERY,  # 派件
    "6": Node.RETURNED,  # 退回
    "7": Node.IN_TRANSIT,  # 转投
    "8": Node.IN_TRANSIT,  # 清关
    "10": Node.IN_TRANSIT,  # 待清关
    "11": Node.IN_TRANSIT,  # 清关中
    "12": Node.IN_TRANSIT,  # 已清关
    "13": Node.PROBLEM,  # 清关异常
    "14": Node.REFUSED,  # 拒签
}
# resultv2 sub-states carry their state as a prefix: 101–103 揽收, 1001–1003 在途, 201–210 疑难,
# 301–304 签收, 401 退签, 501 派件 (投柜或驿站)
KUAIDI100_SUB_STATES: dict[str, str] = {"1": "1", "10": "0", "2": "2", "3": "3", "4": "4", "5": "5", "6": "6"}

SF_PUSH_OK = ("application/json;charset=UTF-8", '{"return_code":"0000","return_msg":"成功"}')
KUAIDI100_PUSH_OK = ("application/json;charset=UTF-8", '{"result":true,"returnCode":"200","message":"成功"}')


@dataclass(frozen=True)
class PollPolicy:
    """How often a parcel on its way is polled (default every 6 h), each interval jittered so the polls
    of a busy hour's parcels spread out instead of arriving together."""

    interval: timedelta = timedelta(hours=6)
    jitter: float = 0.1

    def next_poll(self, now: datetime, draw: float) -> datetime:
        """`draw` is uniform in [0, 1)."""
        return now + self.interval * (1 - self.jitter + 2 * self.jitter * draw)


@dataclass(frozen=True)
class TrackingAnswer:
    """A carrier's answer about one waybill: its scans so far, or why it could not say."""

    waybill_no: str
    scans: tuple[Scan, ...] = ()
    error: str = ""


class MalformedPush(Exception):
    """A body that is not the carrier's format; the reason says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Scan:
    """One scan as a carrier reported it: the parcel (by number, or by our order id at the carrier),
    its node and the carrier's own words."""

    waybill_no: str
    carrier_order_id: str
    node: Node
    carrier_code: str
    description: str
    area: str
    at: datetime


def sf_node(op_code: str) -> Node:
    return SF_OP_CODES.get(op_code, SF_DEFAULT_NODE)


def kuaidi100_node(code: str) -> Node | None:
    """The node of a state or resultv2 sub-state; None for a code Kuaidi100 does not have."""
    if code in KUAIDI100_STATES:
        return KUAIDI100_STATES[code]
    if code.isdigit() and len(code) in (3, 4):
        family = KUAIDI100_SUB_STATES.get(code[: len(code) - 2])
        if family is not None:
            return KUAIDI100_STATES[family]
    return None


# the longest carrier scan code kept (SF's are 2–3 digits, Kuaidi100's states 1–4)
MAX_CODE = 16


def china_time(text: Any, field: str) -> datetime:
    try:
        return datetime.strptime(str(text), TIME_FORMAT).replace(tzinfo=CHINA).astimezone(UTC)
    except ValueError:
        raise MalformedPush(f"{field} {_text(text)[:40]!r} is not a time like 2026-01-01 10:00:00") from None


def _text(value: Any) -> str:
    """A field's text, without NUL characters (no Postgres text can hold one)."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text.replace("\x00", "")


def _sf_scan(route: Any, index: str, number: str = "", order_id: str = "") -> Scan:
    if not isinstance(route, dict):
        raise MalformedPush(f"{index} is not an object")
    op_code = _text(route.get("opCode")).strip()
    if not op_code:
        raise MalformedPush(f"{index}.opCode is missing")
    if len(op_code) > MAX_CODE:
        raise MalformedPush(f"{index}.opCode is longer than {MAX_CODE} characters")
    waybill_no = number or _text(route.get("mailno")).strip()
    if not waybill_no and not order_id:
        raise MalformedPush(f"{index}.mailno is missing")
    return Scan(
        waybill_no=waybill_no,
        carrier_order_id=order_id,
        node=sf_node(op_code),
        carrier_code=op_code,
        description=_text(route.get("remark"))[:500],
        area=_text(route.get("acceptAddress"))[:200],
        at=china_time(route.get("acceptTime"), f"{index}.acceptTime"),
    )


def parse_sf_push(body: bytes) -> list[Scan]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedPush("the body is not JSON") from None
    routes = (document.get("Body") or {}).get("WaybillRoute") if isinstance(document, dict) else None
    if not isinstance(routes, list) or not routes:
        raise MalformedPush("Body.WaybillRoute is missing or empty")
    scans = []
    for number, route in enumerate(routes):
        where = f"Body.WaybillRoute[{number}]"
        order_id = _text(route.get("orderid")).strip() if isinstance(route, dict) else ""
        scans.append(_sf_scan(route, where, order_id=order_id))
    return scans


def parse_sf_routes(result: Any) -> dict[str, list[Scan]]:
    """The route query's business msgData: each waybill's scans, oldest first."""
    answers = result.get("routeResps") if isinstance(result, dict) else None
    if not isinstance(answers, list):
        raise MalformedPush("msgData.routeResps is missing")
    found: dict[str, list[Scan]] = {}
    for index, answer in enumerate(answers):
        if not isinstance(answer, dict) or not _text(answer.get("mailNo")):
            raise MalformedPush(f"routeResps[{index}].mailNo is missing")
        number = _text(answer["mailNo"])
        routes = answer.get("routes") or []
        found[number] = [
            _sf_scan(route, f"routeResps[{index}].routes[{n}]", number=number)
            for n, route in enumerate(routes)
        ]
    return found


def parse_kuaidi100_track(track: Any, where: str = "lastResult") -> list[Scan]:
    """A track (the query's answer or a push's lastResult), oldest scan first. Scans without their own
    statusCode (a subscription without resultv2) take the track's state only for the newest one."""
    if not isinstance(track, dict):
        raise MalformedPush(f"{where} is not an object")
    number = _text(track.get("nu")).strip()
    items = track.get("data")
    if not number:
        raise MalformedPush(f"{where}.nu is missing")
    if not isinstance(items, list):
        raise MalformedPush(f"{where}.data is not a list")
    state = _text(track.get("state"))
    scans = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedPush(f"{where}.data[{index}] is not an object")
        code = _text(item.get("statusCode")) or (state if index == 0 else "")
        if not code:
            continue
        node = kuaidi100_node(code)
        if node is None:
            raise MalformedPush(f"{where}.data[{index}].statusCode {code[:8]!r} is not a Kuaidi100 state")
        scans.append(
            Scan(
                waybill_no=number,
                carrier_order_id="",
                node=node,
                carrier_code=code,
                description=_text(item.get("context"))[:500],
                area=_text(item.get("areaName"))[:200],
                at=china_time(item.get("ftime") or item.get("time"), f"{where}.data[{index}].time"),
            )
        )
    return list(reversed(scans))


def kuaidi100_push_param(body: bytes) -> tuple[str, str]:
    """The form's `param` text and `sign` (the gateway checked the sign; the salt is its setting too)."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise MalformedPush("the body is not a URL-encoded form") from None
    params = form.get("param")
    if not params:
        raise MalformedPush("the form has no param")
    return params[0], (form.get("sign") or [""])[0]


def parse_kuaidi100_push(body: bytes) -> list[Scan]:
    param, _ = kuaidi100_push_param(body)
    try:
        document = json.loads(param)
    except (ValueError, RecursionError):
        raise MalformedPush("param is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("status"), str):
        raise MalformedPush("param.status is missing")
    last = document.get("lastResult")
    # an `abort` names no scans (a wrong company code, or three days without a record): nothing to take
    if last is None or (isinstance(last, dict) and not last.get("data")):
        return []
    return parse_kuaidi100_track(last, "param.lastResult")


def parse_push(carrier: str, body: bytes) -> list[Scan]:
    if carrier == "sf":
        return parse_sf_push(body)
    if carrier == "kuaidi100":
        return parse_kuaidi100_push(body)
    raise MalformedPush(f"no push format is known for carrier {carrier[:32]!r} (sf, kuaidi100)")


def push_reply(carrier: str) -> tuple[str, str]:
    """What the carrier's protocol expects back once a push is taken (or kept in quarantine: a
    malformed body pushed again would be just as malformed)."""
    return SF_PUSH_OK if carrier == "sf" else KUAIDI100_PUSH_OK
