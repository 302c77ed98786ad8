"""The carrier sandbox as a real process over HTTP: each carrier's protocol, its refusals, its
misbehaviour switches, and tracking pushed to a receiver here in the carriers' real formats."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sandboxes.carriers.protocols import cainiao, kuaidi100, sf
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[3]
STEP = 0.1
ROUTE_LENGTH = 7
SF_PARTNER, SF_CHECKWORD = "TEST_PARTNER", "test-sf-checkword"
K100_KEY, K100_SECRET, K100_CUSTOMER = "test-k100-key", "test-k100-secret", "TESTCUSTOMER"
CN_APP_KEY, CN_SECRET = "23456789", "test-cainiao-secret"


@dataclass
class Receiver:
    """The webhooks a carrier pushes to: records what arrives, and refuses on demand."""

    url: str = ""
    sf_pushes: list[dict[str, Any]] = field(default_factory=list)
    kuaidi100_pushes: list[dict[str, str]] = field(default_factory=list)
    refuse: dict[str, int] = field(default_factory=dict)

    def routes_of(self, waybill_no: str) -> list[dict[str, str]]:
        return [
            route
            for push in self.sf_pushes
            for route in push["Body"]["WaybillRoute"]
            if route["mailno"] == waybill_no
        ]

    def tracks_of(self, number: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        found = []
        for form in self.kuaidi100_pushes:
            param = json.loads(form["param"])
            if (param.get("lastResult") or {}).get("nu") == number:
                found.append((param, form))
        return found

    async def sf(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sf_pushes.append(body)
        route = body["Body"]["WaybillRoute"][0]
        scan = f"{route['mailno']}:{route['opCode']}"
        if self.refuse.get(scan, 0) > 0:
            self.refuse[scan] -= 1
            return web.json_response({"return_code": "1000", "return_msg": "系统繁忙"})
        return web.json_response({"return_code": "0000", "return_msg": "成功"})

    async def kuaidi100(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.kuaidi100_pushes.append(form)
        return web.json_response(kuaidi100.PUSH_OK)


@dataclass
class Sandbox:
    base: str
    session: aiohttp.ClientSession
    receiver: Receiver

    async def control(self, carrier: str, **switches: Any) -> dict[str, Any]:
        async with self.session.post(f"{self.base}/_control/{carrier}", json=switches) as response:
            assert response.status == 200, await response.text()
            return dict(await response.json())

    async def waybills(self, carrier: str, order_id: str) -> list[dict[str, Any]]:
        query = {"carrier": carrier, "order_id": order_id}
        async with self.session.get(f"{self.base}/_control/waybills", params=query) as response:
            return list((await response.json())["waybills"])


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/sf", hooks.sf)
    app.router.add_post("/kuaidi100", hooks.kuaidi100)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hooks.url = f"http://127.0.0.1:{port}"
    yield hooks
    await runner.cleanup()


@pytest.fixture(scope="session")
async def running(receiver: Receiver) -> AsyncIterator[Sandbox]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "gen"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandboxes.carriers",
        "--host=127.0.0.1",
        "--port=0",
        f"--push-url={receiver.url}/kuaidi100",
        "--seed=13",
        f"--step-seconds={STEP}",
        "--push-retry-seconds=0.05",
        "--push-timeout-seconds=2",
        f"--sf-partner-id={SF_PARTNER}",
        f"--sf-checkword={SF_CHECKWORD}",
        f"--kuaidi100-key={K100_KEY}",
        f"--kuaidi100-secret={K100_SECRET}",
        f"--kuaidi100-customer={K100_CUSTOMER}",
        f"--cainiao-app-key={CN_APP_KEY}",
        f"--cainiao-app-secret={CN_SECRET}",
        f"--set=sf.push_url={receiver.url}/sf",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert line.startswith("listening on "), line
        base = line.removeprefix("listening on ").strip()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/_health") as response:
                assert await response.json() == {"status": "ok"}
            yield Sandbox(base, session, receiver)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


@pytest.fixture
async def sandbox(running: Sandbox) -> Sandbox:
    async with running.session.post(f"{running.base}/_control/reset") as response:
        assert response.status == 200
    return running


def ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# SF Express


def sf_order(order_id: str) -> dict[str, Any]:
    return {
        "language": "zh-CN",
        "orderId": order_id,
        "monthlyCard": "7551234567",
        "expressTypeId": 1,
        "cargoDetails": [{"name": "T恤", "count": 1}],
        "contactInfoList": [
            {
                "contactType": 1,
                "contact": "仓库",
                "mobile": "13800000000",
                "province": "广东省",
                "city": "深圳市",
                "address": "南山区科技园",
            },
            {
                "contactType": 2,
                "contact": "张三",
                "mobile": "13900000000",
                "province": "上海市",
                "city": "上海市",
                "address": "浦东新区世纪大道 1 号",
            },
        ],
    }


async def sf_call(
    sandbox: Sandbox,
    service: str,
    msg: dict[str, Any],
    checkword: str = SF_CHECKWORD,
    client_timeout: float = 10.0,
) -> tuple[int, dict[str, Any]]:
    msg_data = json.dumps(msg, ensure_ascii=False)
    timestamp = str(int(time.time() * 1000))
    form = {
        "partnerID": SF_PARTNER,
        "requestID": uuid.uuid4().hex,
        "serviceCode": service,
        "timestamp": timestamp,
        "msgDigest": sf.msg_digest(msg_data, timestamp, checkword),
        "msgData": msg_data,
    }
    limit = aiohttp.ClientTimeout(total=client_timeout)
    async with sandbox.session.post(f"{sandbox.base}/std/service", data=form, timeout=limit) as response:
        return response.status, await response.json()


def business(envelope: dict[str, Any]) -> dict[str, Any]:
    assert envelope["apiResultCode"] == sf.API_OK, envelope
    return dict(json.loads(envelope["apiResultData"]))


async def sf_routes(sandbox: Sandbox, number: str, by_order: bool = False) -> list[dict[str, Any]]:
    msg = {
        "language": "0",
        "trackingType": "2" if by_order else "1",
        "trackingNumber": [number],
        "methodType": "1",
    }
    _, envelope = await sf_call(sandbox, sf.SEARCH_ROUTES, msg)
    result = business(envelope)
    assert result["success"] is True
    return list(result["msgData"]["routeResps"])


async def sf_create(sandbox: Sandbox, order_id: str) -> str:
    _, envelope = await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id))
    result = business(envelope)
    assert result["errorCode"] == sf.OK, result
    return str(result["msgData"]["waybillNoInfoList"][0]["waybillNo"])


async def test_sf_creates_a_labelled_waybill_and_the_same_order_again_is_8016_with_the_same_number(
    sandbox: Sandbox,
) -> None:
    order_id = ref("SF")
    status, envelope = await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id))
    first = business(envelope)
    assert status == 200
    assert (first["success"], first["errorCode"]) == (True, "S0000")
    waybill_no = first["msgData"]["waybillNoInfoList"][0]["waybillNo"]
    assert waybill_no.startswith("SF")
    assert first["msgData"]["routeLabelInfo"][0]["routeLabelData"]["destRouteLabel"].startswith("021W")
    _, again = await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id))
    second = business(again)
    assert (second["success"], second["errorCode"], second["errorMsg"]) == (False, "8016", "重复下单")
    assert second["msgData"]["waybillNoInfoList"][0]["waybillNo"] == waybill_no
    assert len(await sandbox.waybills("sf", order_id)) == 1


async def test_sf_refuses_a_bad_digest_and_creates_nothing(sandbox: Sandbox) -> None:
    order_id = ref("SF")
    status, envelope = await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id), checkword="guessed")
    assert status == 200
    assert envelope["apiResultCode"] == "A1006"
    assert envelope["apiResultData"] is None
    assert await sf_routes(sandbox, order_id, by_order=True) == []


# Kuaidi100


async def k100_label(
    sandbox: Sandbox, company: str, order_id: str, secret: str = K100_SECRET, **extra: Any
) -> tuple[int, dict[str, Any]]:
    param = json.dumps(
        {
            "kuaidicom": company,
            "orderId": order_id,
            "partnerId": "monthly-account",
            "recMan": {"name": "张三", "mobile": "13900000000", "printAddr": "上海市浦东新区世纪大道1号"},
            "sendMan": {"name": "仓库", "mobile": "13800000000", "printAddr": "广东省深圳市南山区科技园"},
            "cargo": "T恤",
            "payType": "MONTHLY",
            **extra,
        },
        ensure_ascii=False,
    )
    t = str(int(time.time() * 1000))
    form = {"method": "order", "key": K100_KEY, "t": t, "param": param}
    form["sign"] = kuaidi100.label_sign(param, t, K100_KEY, secret)
    async with sandbox.session.post(f"{sandbox.base}/label/order", data=form) as response:
        return response.status, await response.json()


async def k100_subscribe(
    sandbox: Sandbox, company: str, number: str, salt: str, key: str = K100_KEY
) -> dict[str, Any]:
    callback = f"{sandbox.receiver.url}/kuaidi100"
    param = {
        "company": company,
        "number": number,
        "key": key,
        "parameters": {"callbackurl": callback, "salt": salt, "resultv2": "1"},
    }
    form = {"schema": "json", "param": json.dumps(param)}
    async with sandbox.session.post(f"{sandbox.base}/poll", data=form) as response:
        return dict(await response.json())


async def k100_query(
    sandbox: Sandbox, company: str, number: str, customer: str = K100_CUSTOMER
) -> dict[str, Any]:
    param = json.dumps({"com": company, "num": number, "resultv2": "1"})
    form = {
        "customer": customer,
        "param": param,
        "sign": kuaidi100.query_sign(param, K100_KEY, K100_CUSTOMER),
    }
    async with sandbox.session.post(f"{sandbox.base}/poll/query.do", data=form) as response:
        return dict(await response.json())


@pytest.mark.parametrize(
    ("company", "carrier"), [("zhongtong", "zto"), ("yuantong", "yto"), ("ems", "ems"), ("jd", "jd")]
)
async def test_kuaidi100_creates_one_waybill_per_order_for_each_aggregated_carrier(
    sandbox: Sandbox, company: str, carrier: str
) -> None:
    order_id = ref(carrier)
    status, first = await k100_label(sandbox, company, order_id)
    assert status == 200
    assert (first["success"], first["code"]) == (True, 200), first
    number = first["data"]["kuaidinum"]
    assert first["data"]["bulkpen"].startswith("上海")
    _, again = await k100_label(sandbox, company, order_id)
    assert again["data"]["kuaidinum"] == number
    assert len(await sandbox.waybills(carrier, order_id)) == 1


async def test_kuaidi100_refuses_bad_signs_and_keys(sandbox: Sandbox) -> None:
    order_id = ref("zto")
    _, label = await k100_label(sandbox, "zhongtong", order_id, secret="guessed")
    assert (label["success"], label["code"]) == (False, 503)
    assert await sandbox.waybills("zto", order_id) == []
    subscribed = await k100_subscribe(sandbox, "zhongtong", "75000000000001", "salt", key="guessed")
    assert (subscribed["result"], subscribed["returnCode"]) == (False, "600")
    queried = await k100_query(sandbox, "zhongtong", "75000000000001", customer="SOMEONE")
    assert (queried["result"], queried["returnCode"]) == (False, "503")


# Cainiao


async def cainiao_call(
    sandbox: Sandbox, method: str, api_params: dict[str, str], secret: str = CN_SECRET
) -> dict[str, Any]:
    params = {
        "method": method,
        "app_key": CN_APP_KEY,
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
        "v": "2.0",
        "sign_method": "md5",
        "format": "json",
        **api_params,
    }
    params["sign"] = cainiao.top_sign(params, secret)
    async with sandbox.session.post(f"{sandbox.base}/router/rest", data=params) as response:
        return dict(await response.json())


def cainiao_apply(orders: list[str], cp_code: str = "STO") -> dict[str, str]:
    request = {
        "cp_code": cp_code,
        "sender": {
            "name": "仓库",
            "mobile": "13800000000",
            "address": {"province": "浙江省", "city": "杭州市", "district": "余杭区", "detail": "仓前街道"},
        },
        "trade_order_info_dtos": [
            {
                "object_id": str(index),
                "order_info": {"order_channels_type": "OTHERS", "trade_order_list": [order]},
                "package_info": {"id": "1", "items": [{"count": 1, "name": "T恤"}]},
                "recipient": {
                    "name": "张三",
                    "mobile": "13900000000",
                    "address": {
                        "province": "北京",
                        "city": "北京市",
                        "district": "朝阳区",
                        "detail": "建国路",
                    },
                },
                "template_url": "https://cloudprint.cainiao.com/template/standard/101/1",
            }
            for index, order in enumerate(orders, start=1)
        ],
    }
    return {"param_waybill_cloud_print_apply_new_request": json.dumps(request, ensure_ascii=False)}


def modules(answer: dict[str, Any], method: str = cainiao.GET_WAYBILL) -> list[dict[str, str]]:
    assert "error_response" not in answer, answer
    inner = answer[cainiao.response_key(method)]["modules"]
    return list(next(iter(inner.values())))


async def test_cainiao_gets_ten_waybills_in_one_call_and_refuses_eleven(sandbox: Sandbox) -> None:
    ten = [ref("cn") for _ in range(10)]
    got = modules(await cainiao_call(sandbox, cainiao.GET_WAYBILL, cainiao_apply(ten)))
    assert [module["object_id"] for module in got] == [str(i) for i in range(1, 11)]
    assert len({module["waybill_code"] for module in got}) == 10
    assert json.loads(got[0]["print_data"])["data"]["routingInfo"]["sortation"]["name"].startswith("010")
    eleven = [ref("cn") for _ in range(11)]
    refused = await cainiao_call(sandbox, cainiao.GET_WAYBILL, cainiao_apply(eleven))
    assert refused["error_response"]["code"] == 15
    assert refused["error_response"]["sub_code"] == "isv.invalid-parameter"
    assert await sandbox.waybills("cainiao", eleven[0]) == []


async def test_cainiao_refuses_a_bad_signature_reuses_an_order_s_waybill_and_finds_it_by_order(
    sandbox: Sandbox,
) -> None:
    order = ref("cn")
    refused = await cainiao_call(sandbox, cainiao.GET_WAYBILL, cainiao_apply([order]), secret="guessed")
    assert refused["error_response"]["code"] == 25
    assert await sandbox.waybills("cainiao", order) == []
    first = modules(await cainiao_call(sandbox, cainiao.GET_WAYBILL, cainiao_apply([order])))
    again = modules(await cainiao_call(sandbox, cainiao.GET_WAYBILL, cainiao_apply([order])))
    assert first[0]["waybill_code"] == again[0]["waybill_code"]
    missing = ref("cn")
    param_list = json.dumps(
        [
            {"object_id": "a", "trade_order_list": [order]},
            {"object_id": "b", "trade_order_list": [missing]},
        ]
    )
    found = await cainiao_call(sandbox, cainiao.QUERY_BY_TRADE_CODE, {"param_list": param_list})
    assert [(m["object_id"], m["waybill_code"]) for m in modules(found, cainiao.QUERY_BY_TRADE_CODE)] == [
        ("a", first[0]["waybill_code"])
    ]


# misbehaviour


async def test_latency_slows_only_the_switched_carrier(sandbox: Sandbox) -> None:
    await sandbox.control("sf", latency_ms=400)
    started = time.monotonic()
    await sf_create(sandbox, ref("SF"))
    slow = time.monotonic() - started
    started = time.monotonic()
    await k100_label(sandbox, "zhongtong", ref("zto"))
    fast = time.monotonic() - started
    assert slow >= 0.4
    assert fast < 0.4


async def test_failures_answer_each_carrier_s_error_and_create_nothing(sandbox: Sandbox) -> None:
    await sandbox.control("all", failure_rate=1.0)
    order_id = ref("SF")
    _, envelope = await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id))
    assert envelope["apiResultCode"] == "A1009"
    _, label = await k100_label(sandbox, "yuantong", order_id)
    assert (label["success"], label["code"]) == (False, 500)
    refused = await cainiao_call(sandbox, cainiao.GET_WAYBILL, cainiao_apply([order_id]))
    assert refused["error_response"]["code"] == 15
    for carrier in ("sf", "yto", "cainiao"):
        assert await sandbox.waybills(carrier, order_id) == []


async def test_a_timeout_after_create_leaves_a_waybill_the_query_finds_and_a_retry_returns(
    sandbox: Sandbox,
) -> None:
    await sandbox.control("sf", timeout_after_create_rate=1.0, hang_ms=3000)
    order_id = ref("SF")
    with pytest.raises(TimeoutError):
        await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id), client_timeout=0.5)
    await sandbox.control("sf", timeout_after_create_rate=0.0)
    (found,) = await sf_routes(sandbox, order_id, by_order=True)
    _, envelope = await sf_call(sandbox, sf.CREATE_ORDER, sf_order(order_id))
    retried = business(envelope)
    assert retried["errorCode"] == "8016"
    assert retried["msgData"]["waybillNoInfoList"][0]["waybillNo"] == found["mailNo"]


async def test_a_dropped_connection_after_create_leaves_one_waybill(sandbox: Sandbox) -> None:
    await sandbox.control("zto", timeout_after_create_rate=1.0, timeout_mode="drop")
    order_id = ref("zto")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await k100_label(sandbox, "zhongtong", order_id)
    (created,) = await sandbox.waybills("zto", order_id)
    await sandbox.control("zto", timeout_after_create_rate=0.0)
    _, again = await k100_label(sandbox, "zhongtong", order_id)
    assert again["data"]["kuaidinum"] == created["waybill_no"]


async def test_a_dead_carrier_closes_connections_or_answers_503_while_others_work(sandbox: Sandbox) -> None:
    await sandbox.control("sf", dead=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await sf_call(sandbox, sf.CREATE_ORDER, sf_order(ref("SF")))
    await sandbox.control("sf", dead_mode="503")
    form = {"partnerID": SF_PARTNER}
    async with sandbox.session.post(f"{sandbox.base}/std/service", data=form) as response:
        assert response.status == 503
    _, label = await k100_label(sandbox, "ems", ref("ems"))
    assert label["success"] is True


async def test_a_rate_limit_answers_429_with_retry_after(sandbox: Sandbox) -> None:
    await sandbox.control("cainiao", rate_limit_per_s=3)
    answers = []
    for _ in range(6):
        params = {"method": cainiao.GET_WAYBILL, "app_key": CN_APP_KEY}
        async with sandbox.session.post(f"{sandbox.base}/router/rest", data=params) as response:
            answers.append((response.status, response.headers.get("Retry-After"), await response.json()))
    limited = [answer for answer in answers if answer[0] == 429]
    assert len(limited) == 3
    assert all(retry_after == "1" and body["error_response"]["code"] == 7 for _, retry_after, body in limited)


# tracking


async def test_sf_pushes_every_route_in_order_and_the_route_query_answers_the_same(sandbox: Sandbox) -> None:
    order_id = ref("SF")
    number = await sf_create(sandbox, order_id)
    await eventually(lambda: len(sandbox.receiver.routes_of(number)) == ROUTE_LENGTH, within=5)
    pushed = sandbox.receiver.routes_of(number)
    assert [route["opCode"] for route in pushed] == ["50", "30", "36", "31", "31", "44", "80"]
    assert all(route["orderid"] == order_id for route in pushed)
    assert all(route["acceptTime"] and route["acceptAddress"] and route["remark"] for route in pushed)
    (by_number,) = await sf_routes(sandbox, number)
    (by_order,) = await sf_routes(sandbox, order_id, by_order=True)
    assert by_number == by_order
    assert [(r["opCode"], r["acceptTime"], r["remark"]) for r in by_number["routes"]] == [
        (r["opCode"], r["acceptTime"], r["remark"]) for r in pushed
    ]


async def test_kuaidi100_pushes_signed_whole_tracks_and_the_query_answers_the_same(sandbox: Sandbox) -> None:
    _, label = await k100_label(sandbox, "zhongtong", ref("zto"))
    number = label["data"]["kuaidinum"]
    assert (await k100_subscribe(sandbox, "zhongtong", number, salt="s3cr3t"))["returnCode"] == "200"
    await eventually(
        lambda: any(p["status"] == "shutdown" for p, _ in sandbox.receiver.tracks_of(number)), within=5
    )
    tracks = sandbox.receiver.tracks_of(number)
    assert all(form["sign"] == kuaidi100.push_sign(form["param"], "s3cr3t") for _, form in tracks)
    states = [param["lastResult"]["state"] for param, _ in tracks]
    assert states[0] == "1" and states[-1] == "3"
    assert {"0", "5"} <= set(states)
    final = tracks[-1][0]["lastResult"]
    assert (final["com"], final["ischeck"], len(final["data"])) == ("zhongtong", "1", ROUTE_LENGTH)
    queried = await k100_query(sandbox, "zhongtong", number)
    assert (queried["state"], queried["data"]) == ("3", final["data"])


async def test_a_label_ordered_with_need_subscribe_is_pushed_to_its_callback(sandbox: Sandbox) -> None:
    callback = f"{sandbox.receiver.url}/kuaidi100"
    _, label = await k100_label(
        sandbox, "jd", ref("jd"), needSubscribe=True, pollCallBackUrl=callback, salt="jd-salt", resultv2="1"
    )
    number = label["data"]["kuaidinum"]
    await eventually(lambda: len(sandbox.receiver.tracks_of(number)) >= 2, within=5)
    param, form = sandbox.receiver.tracks_of(number)[0]
    assert form["sign"] == kuaidi100.push_sign(form["param"], "jd-salt")
    assert param["lastResult"]["data"][0]["status"] == "揽收"


async def test_duplicated_pushes_arrive_twice(sandbox: Sandbox) -> None:
    await sandbox.control("sf", duplicate_push_rate=1.0)
    number = await sf_create(sandbox, ref("SF"))
    await eventually(lambda: len(sandbox.receiver.routes_of(number)) == 2 * ROUTE_LENGTH, within=5)
    ids = [route["id"] for route in sandbox.receiver.routes_of(number)]
    assert ids[0::2] == ids[1::2]
    assert len(set(ids)) == ROUTE_LENGTH


async def test_reordered_pushes_arrive_out_of_order_but_all_arrive(sandbox: Sandbox) -> None:
    await sandbox.control("all", reorder_pushes=True)
    number = await sf_create(sandbox, ref("SF"))
    _, label = await k100_label(sandbox, "yuantong", ref("yto"))
    tracked = label["data"]["kuaidinum"]
    await k100_subscribe(sandbox, "yuantong", tracked, salt="x")
    await eventually(lambda: len(sandbox.receiver.routes_of(number)) == ROUTE_LENGTH, within=5)
    op_codes = [route["opCode"] for route in sandbox.receiver.routes_of(number)]
    assert op_codes[:2] == ["30", "50"]
    assert sorted(op_codes) == sorted(["50", "30", "36", "31", "31", "44", "80"])
    await eventually(lambda: len(sandbox.receiver.tracks_of(tracked)) == ROUTE_LENGTH, within=5)
    lengths = [len(param["lastResult"]["data"]) for param, _ in sandbox.receiver.tracks_of(tracked)]
    assert lengths != sorted(lengths)
    assert sorted(lengths) == list(range(1, ROUTE_LENGTH + 1))


async def test_a_parcel_without_a_first_scan_is_never_pushed_nor_found(sandbox: Sandbox) -> None:
    await sandbox.control("sf", no_first_scan=True)
    order_id = ref("SF")
    number = await sf_create(sandbox, order_id)
    await eventually(lambda: sandbox.waybills("sf", order_id), within=2)
    await asyncio.sleep(STEP * 4)
    (waybill,) = await sandbox.waybills("sf", order_id)
    assert waybill["stalled"] is True
    assert sandbox.receiver.routes_of(number) == []
    assert await sf_routes(sandbox, number) == [{"mailNo": number, "routes": []}]


async def test_a_refused_sf_push_is_pushed_again_until_taken(sandbox: Sandbox) -> None:
    number = await sf_create(sandbox, ref("SF"))
    # the pickup scan is a step away: refuse its push twice
    sandbox.receiver.refuse[f"{number}:50"] = 2
    await eventually(lambda: len(sandbox.receiver.routes_of(number)) == ROUTE_LENGTH + 2, within=5)
    pickups = [route for route in sandbox.receiver.routes_of(number) if route["opCode"] == "50"]
    assert len(pickups) == 3
    assert len({route["id"] for route in pickups}) == 1
    async with sandbox.session.get(f"{sandbox.base}/_control") as response:
        assert (await response.json())["pushes"]["sf.retried"] >= 2


async def test_lost_pushes_are_caught_by_the_poll(sandbox: Sandbox) -> None:
    await sandbox.control("sf", push_enabled=False)
    number = await sf_create(sandbox, ref("SF"))
    await eventually(lambda: _delivered(sandbox, number), within=5)
    assert sandbox.receiver.routes_of(number) == []


async def _delivered(sandbox: Sandbox, number: str) -> bool:
    (answer,) = await sf_routes(sandbox, number)
    return bool(answer["routes"]) and answer["routes"][-1]["opCode"] == "80"


async def test_the_aggregator_corrects_a_wrong_company_code_when_switched_on(sandbox: Sandbox) -> None:
    await sandbox.control("zto", code_correction=True)
    _, label = await k100_label(sandbox, "zhongtong", ref("zto"))
    number = label["data"]["kuaidinum"]
    await k100_subscribe(sandbox, "yuantong", number, salt="x")
    await eventually(
        lambda: any(p["status"] == "shutdown" for p, _ in sandbox.receiver.tracks_of(number)), within=5
    )
    tracks = [param for param, _ in sandbox.receiver.tracks_of(number)]
    assert (tracks[0]["status"], tracks[0]["autoCheck"], tracks[0]["comNew"]) == ("abort", "0", "zhongtong")
    assert all(
        (p["autoCheck"], p["comOld"], p["comNew"]) == ("1", "yuantong", "zhongtong") for p in tracks[1:]
    )
    assert (await k100_query(sandbox, "yuantong", number))["com"] == "zhongtong"


async def test_without_correction_a_wrong_company_code_is_aborted_and_finds_nothing(sandbox: Sandbox) -> None:
    _, label = await k100_label(sandbox, "zhongtong", ref("zto"))
    number = label["data"]["kuaidinum"]
    await k100_subscribe(sandbox, "ems", number, salt="x")
    await eventually(lambda: sandbox.receiver.tracks_of(number) != [], within=5)
    await asyncio.sleep(STEP * 3)
    (only,) = [param for param, _ in sandbox.receiver.tracks_of(number)]
    assert (only["status"], only["message"], only["comNew"]) == ("abort", "3天查询无记录", "")
    assert (await k100_query(sandbox, "ems", number))["returnCode"] == "500"


# the control API


async def test_the_control_api_shows_every_carrier_and_refuses_unknown_switches(sandbox: Sandbox) -> None:
    async with sandbox.session.get(f"{sandbox.base}/_control") as response:
        shown = await response.json()
    assert set(shown["carriers"]) == {"sf", "zto", "yto", "ems", "jd", "cainiao"}
    assert shown["carriers"]["sf"]["push_url"] == f"{sandbox.receiver.url}/sf"
    async with sandbox.session.post(f"{sandbox.base}/_control/sf", json={"latency": 5}) as response:
        assert response.status == 400
        assert "unknown switch" in (await response.json())["error"]
    async with sandbox.session.post(f"{sandbox.base}/_control/dhl", json={"dead": True}) as response:
        assert response.status == 400
