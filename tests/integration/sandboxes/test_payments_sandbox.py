"""The payment sandbox as a real process over HTTP: WeChat Pay v3 and Alipay calls signed here with the
sandbox's own protocol functions and the keys `omsctl` mints, their refusals, refunds once per number,
statuses, habits, and notifications encrypted, signed and sent again until the merchant answers."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from sandboxes.payments.protocols import alipay, keys, wechat
from tests.payments_sandbox import Receiver, Sandbox, receiving, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as hooks:
        yield hooks


@pytest.fixture(scope="session")
async def running_sandbox(
    receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Sandbox]:
    async with running(tmp_path_factory.mktemp("payments-home"), receiver) as sandbox:
        yield sandbox


@pytest.fixture
async def sandbox(running_sandbox: Sandbox, receiver: Receiver) -> Sandbox:
    await running_sandbox.reset()
    receiver.refuse.update(wechat=0, alipay=0)
    return running_sandbox


def ref(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


# WeChat Pay v3, signed as a merchant would


async def wechat_call(
    sandbox: Sandbox,
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    tamper: bool = False,
    timestamp: int | None = None,
    client_timeout: float = 10.0,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = "" if payload is None else json.dumps(payload, ensure_ascii=False)
    private = keys.load_private_key(key or sandbox.keys["WECHAT_MERCHANT_PRIVATE_KEY"])
    authorization = wechat.authorization(
        sandbox.keys["WECHAT_MCHID"],
        sandbox.keys["WECHAT_MERCHANT_SERIAL"],
        private,
        method,
        path,
        body,
        str(timestamp if timestamp is not None else int(time.time())),
        wechat.nonce(),
    )
    sent = body.replace('"refund": ', '"refund": 9') if tamper else body
    headers = {
        "Authorization": authorization,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    limit = aiohttp.ClientTimeout(total=client_timeout)
    async with sandbox.session.request(
        method,
        sandbox.base + path,
        data=sent.encode() if payload is not None else None,
        headers=headers,
        timeout=limit,
    ) as response:
        text = await response.text()
        return response.status, json.loads(text), {**dict(response.headers), "_body": text}


def platform_signed(sandbox: Sandbox, headers: dict[str, str], body: str) -> bool:
    key = keys.load_public_key(sandbox.keys["WECHAT_PLATFORM_PUBLIC_KEY"])
    message = wechat.reply_message(headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body)
    return headers["Wechatpay-Serial"] == sandbox.keys["WECHAT_PLATFORM_SERIAL"] and wechat.verify(
        key, message, headers["Wechatpay-Signature"]
    )


def refund_body(
    out_trade_no: str, out_refund_no: str, refund: int, total: int, **extra: Any
) -> dict[str, Any]:
    return {
        "out_trade_no": out_trade_no,
        "out_refund_no": out_refund_no,
        "reason": "商品已退货",
        "amount": {"refund": refund, "total": total, "currency": "CNY"},
        **extra,
    }


def decrypted(sandbox: Sandbox, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    envelope = json.loads(body)
    apiv3 = sandbox.keys["WECHAT_APIV3_KEY"].encode()
    return envelope, wechat.decrypt_resource(apiv3, envelope["resource"])


def deliveries_of(
    receiver: Receiver, sandbox: Sandbox, out_refund_no: str
) -> list[tuple[dict[str, Any], Any]]:
    found = []
    for delivery in receiver.wechat:
        envelope, plain = decrypted(sandbox, delivery.body)
        if plain.get("out_refund_no") == out_refund_no:
            found.append((envelope, delivery))
    return found


async def test_wechat_refuses_a_call_not_signed_by_the_merchant_and_refunds_nothing(sandbox: Sandbox) -> None:
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 10000)
    stranger = keys.private_pem(keys.generate())
    body = refund_body(trade_no, ref("R"), 1000, 10000)
    for label, call in (
        ("another key", wechat_call(sandbox, "POST", REFUNDS, body, key=stranger)),
        ("a body changed after signing", wechat_call(sandbox, "POST", REFUNDS, body, tamper=True)),
        ("a stale timestamp", wechat_call(sandbox, "POST", REFUNDS, body, timestamp=int(time.time()) - 600)),
    ):
        status, answer, headers = await call
        assert (status, answer["code"]) == (401, "SIGN_ERROR"), (label, answer)
        assert platform_signed(sandbox, headers, headers["_body"])
    assert await sandbox.refunds("wechat_pay", out_trade_no=trade_no) == []
    assert (await sandbox.trade("wechat_pay", trade_no))["refunded"] == 0


async def test_wechat_refunds_an_out_refund_no_once_and_answers_the_same_again(sandbox: Sandbox) -> None:
    trade_no, refund_no = ref("WX"), ref("R")
    trade = await sandbox.pay("wechat_pay", trade_no, 10000)
    first = await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 3000, 10000))
    again = await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 3000, 10000))
    assert first[0] == again[0] == 200
    assert first[1] == again[1]
    assert first[1]["status"] == "SUCCESS"
    assert (first[1]["out_refund_no"], first[1]["transaction_id"]) == (refund_no, trade["trade_no"])
    assert (first[1]["amount"]["refund"], first[1]["amount"]["total"]) == (3000, 10000)
    assert platform_signed(sandbox, first[2], first[2]["_body"])
    (refund,) = await sandbox.refunds("wechat_pay", refund_no=refund_no)
    assert (refund["executed"], refund["attempts"]) == (1, 2)
    assert (await sandbox.trade("wechat_pay", trade_no))["refunded"] == 3000
    # the same number with another amount is not a replay: refused, nothing more refunded
    status, answer, _ = await wechat_call(
        sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 2000, 10000)
    )
    assert (status, answer["code"]) == (400, "INVALID_REQUEST")
    assert (await sandbox.trade("wechat_pay", trade_no))["refunded"] == 3000


async def test_wechat_refuses_more_than_is_left_and_unknown_trades(sandbox: Sandbox) -> None:
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 1000)
    ok = await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, ref("R"), 600, 1000))
    assert ok[0] == 200
    status, answer, _ = await wechat_call(
        sandbox, "POST", REFUNDS, refund_body(trade_no, ref("R"), 401, 1000)
    )
    assert (status, answer["code"]) == (400, "NOT_ENOUGH")
    last = await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, ref("R"), 400, 1000))
    assert last[0] == 200
    assert (await sandbox.trade("wechat_pay", trade_no))["refundable"] == 0
    status, answer, _ = await wechat_call(sandbox, "POST", REFUNDS, refund_body(ref("WX"), ref("R"), 1, 1000))
    assert (status, answer["code"]) == (404, "RESOURCE_NOT_EXISTS")
    status, answer, _ = await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, ref("R"), 1, 999))
    assert (status, answer["code"]) == (400, "PARAM_ERROR")
    assert "amount.total" in answer["message"]


@pytest.mark.parametrize("outcome", ["CLOSED", "ABNORMAL"])
async def test_a_refund_stays_processing_then_ends_closed_or_abnormal(
    sandbox: Sandbox, receiver: Receiver, outcome: str
) -> None:
    await sandbox.control("wechat_pay", processing_ms=300, refund_outcome=outcome)
    trade_no, refund_no = ref("WX"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 5000)
    status, answer, _ = await wechat_call(
        sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 5000, 5000)
    )
    assert (status, answer["status"]) == (200, "PROCESSING")
    _, queried, _ = await wechat_call(sandbox, "GET", f"{REFUNDS}/{refund_no}")
    assert queried["status"] == "PROCESSING"

    async def settled() -> bool:
        return (await wechat_call(sandbox, "GET", f"{REFUNDS}/{refund_no}"))[1]["status"] == outcome

    await eventually(settled, within=5)
    await eventually(lambda: len(deliveries_of(receiver, sandbox, refund_no)) == 1, within=5)
    ((envelope, _),) = deliveries_of(receiver, sandbox, refund_no)
    assert envelope["event_type"] == f"REFUND.{outcome}"
    # a closed refund gives its amount back; an abnormal one keeps it until someone settles it
    refundable = (await sandbox.trade("wechat_pay", trade_no))["refundable"]
    assert refundable == (5000 if outcome == "CLOSED" else 0)
    status, missing, _ = await wechat_call(sandbox, "GET", f"{REFUNDS}/{ref('R')}")
    assert (status, missing["code"]) == (404, "RESOURCE_NOT_EXISTS")


async def test_refund_notifications_are_encrypted_signed_and_sent_until_answered(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    receiver.refuse["wechat"] = 3
    trade_no, refund_no = ref("WX"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 8800, notify_url="http://127.0.0.1:9/payments")
    # the refund's own notify_url wins over the merchant's default
    notify_url = f"{receiver.url}/wechat"
    await wechat_call(
        sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 1234, 8800, notify_url=notify_url)
    )
    await eventually(
        lambda: any(d.status == 204 for _, d in deliveries_of(receiver, sandbox, refund_no)), within=5
    )
    deliveries = deliveries_of(receiver, sandbox, refund_no)
    assert [delivery.status for _, delivery in deliveries] == [500, 500, 500, 204]
    assert len({delivery.body for _, delivery in deliveries}) == 1
    # each delivery is signed afresh, and every signature holds
    assert len({delivery.headers["Wechatpay-Nonce"] for _, delivery in deliveries}) == 4
    assert all(platform_signed(sandbox, d.headers, d.body.decode()) for _, d in deliveries)
    envelope, plain = decrypted(sandbox, deliveries[0][1].body)
    assert (envelope["event_type"], envelope["resource_type"], envelope["summary"]) == (
        "REFUND.SUCCESS",
        "encrypt-resource",
        "退款成功",
    )
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert envelope["resource"]["original_type"] == "refund"
    assert "1234" not in envelope["resource"]["ciphertext"]
    assert (plain["refund_status"], plain["out_trade_no"], plain["amount"]["refund"]) == (
        "SUCCESS",
        trade_no,
        1234,
    )
    (notice,) = await sandbox.notifications("wechat_pay", subject=refund_no)
    assert (notice["sent"], notice["accepted"], notice["abandoned"]) == (4, 1, False)


async def test_duplicate_notifications_arrive_twice_with_one_id(sandbox: Sandbox, receiver: Receiver) -> None:
    await sandbox.control("wechat_pay", duplicate_notify_rate=1.0)
    trade_no, refund_no = ref("WX"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 500)
    await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 500, 500))
    await eventually(lambda: len(deliveries_of(receiver, sandbox, refund_no)) == 2, within=5)
    first, second = deliveries_of(receiver, sandbox, refund_no)
    assert first[0]["id"] == second[0]["id"]
    assert first[1].status == second[1].status == 204


async def test_a_late_notification_comes_after_the_query_already_says_success(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    await sandbox.control("wechat_pay", notify_delay_ms=700)
    trade_no, refund_no = ref("WX"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 500)
    await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 100, 500))
    _, queried, _ = await wechat_call(sandbox, "GET", f"{REFUNDS}/{refund_no}")
    assert queried["status"] == "SUCCESS"
    assert deliveries_of(receiver, sandbox, refund_no) == []
    await eventually(lambda: len(deliveries_of(receiver, sandbox, refund_no)) == 1, within=5)


def payment_notified(receiver: Receiver, sandbox: Sandbox, trade_no: str) -> bool:
    resources = [decrypted(sandbox, delivery.body)[1] for delivery in receiver.wechat]
    return any(r.get("trade_state") == "SUCCESS" and r["out_trade_no"] == trade_no for r in resources)


async def test_reordered_notifications_of_one_trade_arrive_newest_first(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    trade_no, first, second = ref("WX"), ref("R"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 900)
    # the payment's own notification first, in order; then the refunds' are held back one by one
    await eventually(lambda: payment_notified(receiver, sandbox, trade_no))
    await sandbox.control("wechat_pay", reorder_notifications=True, reorder_window_ms=3000)
    await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, first, 100, 900))
    await wechat_call(sandbox, "POST", REFUNDS, refund_body(trade_no, second, 200, 900))
    await eventually(lambda: all(deliveries_of(receiver, sandbox, no) for no in (first, second)), within=5)
    order = [decrypted(sandbox, d.body)[1].get("out_refund_no") for d in receiver.wechat]
    assert order.index(second) < order.index(first)


async def test_a_timeout_after_acceptance_leaves_the_refund_made(sandbox: Sandbox) -> None:
    await sandbox.control("wechat_pay", timeout_next=1, hang_ms=3000)
    trade_no, refund_no = ref("WX"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 700)
    with pytest.raises(TimeoutError):
        await wechat_call(
            sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 700, 700), client_timeout=0.5
        )
    (refund,) = await sandbox.refunds("wechat_pay", refund_no=refund_no)
    assert (refund["status"], refund["executed"]) == ("SUCCESS", 1)
    status, answer, _ = await wechat_call(
        sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 700, 700)
    )
    assert (status, answer["refund_id"]) == (200, refund["refund_id"])


async def test_system_errors_and_latency_are_switched_per_provider(sandbox: Sandbox) -> None:
    await sandbox.control("wechat_pay", failure_rate=1.0)
    await sandbox.control("alipay", latency_ms=300)
    trade_no, refund_no = ref("WX"), ref("R")
    await sandbox.pay("wechat_pay", trade_no, 700)
    status, answer, _ = await wechat_call(
        sandbox, "POST", REFUNDS, refund_body(trade_no, refund_no, 700, 700)
    )
    assert (status, answer["code"]) == (500, "SYSTEM_ERROR")
    assert await sandbox.refunds("wechat_pay", refund_no=refund_no) == []
    assert (await sandbox.trade("wechat_pay", trade_no))["refunded"] == 0
    started = time.monotonic()
    await alipay_call(sandbox, alipay.REFUND_QUERY, {"out_trade_no": ref("AL"), "out_request_no": "X1"})
    assert time.monotonic() - started >= 0.3
    async with sandbox.session.post(f"{sandbox.base}/_control/alipay", json={"latency": 5}) as response:
        assert response.status == 400
        assert "unknown switch 'latency'" in (await response.json())["error"]


async def test_a_payment_is_notified_as_transaction_success(sandbox: Sandbox, receiver: Receiver) -> None:
    trade_no = ref("WX")
    trade = await sandbox.pay("wechat_pay", trade_no, 12345)
    await eventually(
        lambda: any(decrypted(sandbox, d.body)[1].get("out_trade_no") == trade_no for d in receiver.wechat)
    )
    delivery = next(
        d for d in receiver.wechat if decrypted(sandbox, d.body)[1].get("out_trade_no") == trade_no
    )
    envelope, plain = decrypted(sandbox, delivery.body)
    assert (envelope["event_type"], envelope["resource"]["original_type"]) == (
        "TRANSACTION.SUCCESS",
        "transaction",
    )
    assert (plain["transaction_id"], plain["trade_state"]) == (trade["trade_no"], "SUCCESS")
    assert plain["amount"] == {
        "total": 12345,
        "payer_total": 12345,
        "currency": "CNY",
        "payer_currency": "CNY",
    }
    assert platform_signed(sandbox, delivery.headers, delivery.body.decode())
    path = f"/v3/pay/transactions/out-trade-no/{trade_no}?mchid={sandbox.keys['WECHAT_MCHID']}"
    status, queried, _ = await wechat_call(sandbox, "GET", path)
    assert (status, queried["trade_state"], queried["success_time"]) == (
        200,
        "SUCCESS",
        plain["success_time"],
    )


async def test_a_provider_whose_clock_is_off_stamps_the_paid_time_by_its_own_clock(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    trade_no = ref("WX")
    trade = await sandbox.pay("wechat_pay", trade_no, 500, clock_skew_s=-1800)
    paid = datetime.fromisoformat(trade["paid_at"])
    assert abs((datetime.now(UTC) - paid).total_seconds() - 1800) < 60
    await eventually(
        lambda: any(decrypted(sandbox, d.body)[1].get("out_trade_no") == trade_no for d in receiver.wechat)
    )
    delivery = next(
        d for d in receiver.wechat if decrypted(sandbox, d.body)[1].get("out_trade_no") == trade_no
    )
    # RFC 3339 to the second, in China time
    assert datetime.fromisoformat(decrypted(sandbox, delivery.body)[1]["success_time"]) == paid.replace(
        microsecond=0
    )
    # the delivery itself is signed by the real clock, so a receiver still takes it
    assert abs(int(delivery.headers["Wechatpay-Timestamp"]) - time.time()) < 60
    async with sandbox.session.post(
        f"{sandbox.base}/_control/payments",
        json={"provider": "alipay", "out_trade_no": ref("AL"), "amount": 1, "clock_skew_s": 86401},
    ) as response:
        assert response.status == 400 and "clock_skew_s" in (await response.json())["error"]


# Alipay, signed as an app would


async def alipay_call(
    sandbox: Sandbox, method: str, biz: dict[str, Any], key: str | None = None, client_timeout: float = 10.0
) -> tuple[dict[str, Any], str]:
    params = {
        "app_id": sandbox.keys["ALIPAY_APP_ID"],
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
        "biz_content": json.dumps(biz, ensure_ascii=False),
    }
    private = keys.load_private_key(key or sandbox.keys["ALIPAY_APP_PRIVATE_KEY"])
    params["sign"] = alipay.sign(private, alipay.sign_content(params))
    limit = aiohttp.ClientTimeout(total=client_timeout)
    async with sandbox.session.post(f"{sandbox.base}/gateway.do", data=params, timeout=limit) as response:
        assert response.status == 200
        text = await response.text()
    answer = json.loads(text)
    name = alipay.response_key(method)
    node_text = json.dumps(answer[name], ensure_ascii=False, separators=(",", ":"))
    assert node_text in text
    public = keys.load_public_key(sandbox.keys["ALIPAY_PUBLIC_KEY"])
    assert alipay.verify(public, node_text, answer["sign"]), "the answer is signed over its node's text"
    return dict(answer[name]), text


async def test_alipay_refunds_a_request_number_once_and_a_replay_moves_no_money(sandbox: Sandbox) -> None:
    trade_no, request_no = ref("AL"), ref("Q")
    trade = await sandbox.pay("alipay", trade_no, 10000)
    biz = {"out_trade_no": trade_no, "refund_amount": "12.34", "out_request_no": request_no}
    first, _ = await alipay_call(sandbox, alipay.REFUND, biz)
    again, _ = await alipay_call(sandbox, alipay.REFUND, biz)
    assert (first["code"], first["msg"], first["fund_change"], first["trade_no"]) == (
        "10000",
        "Success",
        "Y",
        trade["trade_no"],
    )
    assert (again["code"], again["fund_change"], again["refund_fee"]) == ("10000", "N", "12.34")
    (refund,) = await sandbox.refunds("alipay", refund_no=request_no)
    assert (refund["amount"], refund["executed"], refund["attempts"]) == (1234, 1, 2)
    queried, _ = await alipay_call(
        sandbox, alipay.REFUND_QUERY, {"out_trade_no": trade_no, "out_request_no": request_no}
    )
    assert (queried["refund_status"], queried["refund_amount"]) == ("REFUND_SUCCESS", "12.34")
    unknown, _ = await alipay_call(
        sandbox, alipay.REFUND_QUERY, {"out_trade_no": trade_no, "out_request_no": ref("Q")}
    )
    assert unknown["code"] == "10000" and "refund_status" not in unknown


async def test_alipay_refusals(sandbox: Sandbox) -> None:
    trade_no = ref("AL")
    await sandbox.pay("alipay", trade_no, 1000)
    forged, _ = await alipay_call(
        sandbox,
        alipay.REFUND,
        {"out_trade_no": trade_no, "refund_amount": "1.00", "out_request_no": ref("Q")},
        key=keys.private_line(keys.generate()),
    )
    assert (forged["code"], forged["sub_code"]) == ("40002", "isv.invalid-signature")
    too_much, _ = await alipay_call(
        sandbox,
        alipay.REFUND,
        {"out_trade_no": trade_no, "refund_amount": "10.01", "out_request_no": ref("Q")},
    )
    assert (too_much["code"], too_much["sub_code"]) == ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    partial, _ = await alipay_call(
        sandbox, alipay.REFUND, {"out_trade_no": trade_no, "refund_amount": "1.00"}
    )
    assert (partial["code"], partial["sub_code"]) == ("40002", "isv.missing-parameter")
    missing, _ = await alipay_call(
        sandbox,
        alipay.REFUND,
        {"out_trade_no": ref("AL"), "refund_amount": "1.00", "out_request_no": ref("Q")},
    )
    assert (missing["code"], missing["sub_code"]) == ("40004", "ACQ.TRADE_NOT_EXIST")
    assert (await sandbox.trade("alipay", trade_no))["refunded"] == 0
    # a whole refund may go without a request number: the trade numbers it
    whole, _ = await alipay_call(sandbox, alipay.REFUND, {"out_trade_no": trade_no, "refund_amount": "10.00"})
    assert (whole["code"], whole["fund_change"]) == ("10000", "Y")


async def test_alipay_system_error_then_the_identical_call_refunds_once(sandbox: Sandbox) -> None:
    await sandbox.control("alipay", fail_next=1)
    trade_no, request_no = ref("AL"), ref("Q")
    await sandbox.pay("alipay", trade_no, 300)
    biz = {"out_trade_no": trade_no, "refund_amount": "0.01", "out_request_no": request_no}
    failed, _ = await alipay_call(sandbox, alipay.REFUND, biz)
    assert (failed["code"], failed["sub_code"]) == ("40004", "ACQ.SYSTEM_ERROR")
    assert await sandbox.refunds("alipay", refund_no=request_no) == []
    done, _ = await alipay_call(sandbox, alipay.REFUND, biz)
    assert (done["fund_change"], done["send_back_fee"]) == ("Y", "0.01")
    (refund,) = await sandbox.refunds("alipay", refund_no=request_no)
    assert (refund["amount"], refund["executed"], refund["attempts"]) == (1, 1, 2)


async def test_an_alipay_payment_notify_is_signed_and_sent_until_success(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    receiver.refuse["alipay"] = 1
    trade_no = ref("AL")
    trade = await sandbox.pay("alipay", trade_no, 4321)

    def forms() -> list[dict[str, str]]:
        return [form for form in receiver.alipay if form.get("out_trade_no") == trade_no]

    # Alipay's first retry is 4 minutes away: 240 ms at the tests' factor
    await eventually(lambda: len(forms()) == 2, within=5)
    first, second = forms()
    assert first["notify_id"] == second["notify_id"]
    assert (second["trade_status"], second["total_amount"], second["trade_no"]) == (
        "TRADE_SUCCESS",
        "43.21",
        trade["trade_no"],
    )
    public = keys.load_public_key(sandbox.keys["ALIPAY_PUBLIC_KEY"])
    assert second["sign_type"] == "RSA2"
    assert alipay.verify(public, alipay.sign_content(second, ("sign", "sign_type")), second["sign"])
    forged = {**second, "total_amount": "4321.00"}
    assert not alipay.verify(public, alipay.sign_content(forged, ("sign", "sign_type")), forged["sign"])
    await asyncio.sleep(0.3)
    assert len(forms()) == 2, "nothing more once answered success"


async def test_keys_handed_over_are_never_shown_and_kept_private(sandbox: Sandbox) -> None:
    async with sandbox.session.get(f"{sandbox.base}/_control/credentials") as response:
        shown = await response.json()
    # every key was given (minted by omsctl): none is shown
    assert shown["generated"] == {}
    assert shown["WECHAT_MCHID"] == sandbox.keys["WECHAT_MCHID"]
    assert os.stat(sandbox.home / "payment-keys.json").st_mode & 0o077 == 0
