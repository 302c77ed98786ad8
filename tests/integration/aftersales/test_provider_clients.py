"""After-sales' provider clients against the payment sandbox as a real process: configured from the
PAYMENT_* settings `omsctl` hands a service, a timeout after acceptance and a retry with the identical
request refund once (the sandbox's executed count says so), system errors retried, refusals returned as
statuses, forged answers not believed, and notifications verified and decrypted (tampered ones refused)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sandboxes.payments.protocols import keys as sandbox_keys
from sandboxes.payments.protocols import wechat as sandbox_wechat
from services.aftersales.providers.alipay import AlipayClient
from services.aftersales.providers.config import (
    AlipayConfig,
    WechatPayConfig,
    alipay_from_env,
    wechat_from_env,
)
from services.aftersales.providers.ports import (
    CallRefused,
    RefundRequest,
    RefundStatus,
    RetryableError,
)
from services.aftersales.providers.retry import refund_retrying
from services.aftersales.providers.wechat import WechatPayClient
from services.gateway.provider_notifications import (
    NotificationRejected,
    verify_alipay_notify,
    verify_wechat_notification,
    wechat_refund_of,
)
from services.kit.errors import InvalidArgument
from services.kit.provider_signing import load_public_key
from tests.payments_sandbox import Delivery, Receiver, Sandbox, receiving, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


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


@pytest.fixture
def wechat_config(sandbox: Sandbox) -> WechatPayConfig:
    config = wechat_from_env({**sandbox.client_env(), "PAYMENT_TIMEOUT_SECONDS": "0.5"})
    assert config is not None
    return config


@pytest.fixture
def alipay_config(sandbox: Sandbox) -> AlipayConfig:
    config = alipay_from_env({**sandbox.client_env(), "PAYMENT_TIMEOUT_SECONDS": "0.5"})
    assert config is not None
    return config


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def ref(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


async def no_sleep(_: float) -> None:
    return None


# WeChat Pay


async def test_a_wechat_timeout_after_acceptance_then_the_identical_retry_refunds_once(
    sandbox: Sandbox, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    client = WechatPayClient(session, wechat_config)
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 10000)
    request = RefundRequest(
        refund_no=ref("T"), out_trade_no=trade_no, amount=2500, total=10000, reason="退货"
    )
    await sandbox.control("wechat_pay", timeout_next=1, hang_ms=3000)
    with pytest.raises(RetryableError) as timed_out:
        await client.refund(request)
    assert timed_out.value.uncertain
    result = await client.refund(request)
    assert (result.status, result.amount, result.refund_no) == (RefundStatus.SUCCESS, 2500, request.refund_no)
    (refund,) = await sandbox.refunds("wechat_pay", refund_no=request.refund_no)
    assert (refund["executed"], refund["attempts"]) == (1, 2)
    assert result.provider_refund_id == refund["refund_id"]
    trade = await sandbox.trade("wechat_pay", trade_no)
    assert (trade["refunded"], len(trade["refunds"])) == (2500, 1)


async def test_wechat_system_errors_are_retried_with_the_identical_request(
    sandbox: Sandbox, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    client = WechatPayClient(session, wechat_config)
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 990)
    request = RefundRequest(refund_no=ref("T"), out_trade_no=trade_no, amount=990, total=990)
    await sandbox.control("wechat_pay", fail_next=2)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    result = await refund_retrying(client, request, attempts=3, first_delay_seconds=0.1, sleep=sleep)
    assert result.status is RefundStatus.SUCCESS
    assert delays == [0.1, 0.2]
    (refund,) = await sandbox.refunds("wechat_pay", refund_no=request.refund_no)
    assert (refund["executed"], refund["attempts"]) == (1, 3)
    await sandbox.control("wechat_pay", fail_next=3)
    with pytest.raises(RetryableError, match="SYSTEM_ERROR"):
        await refund_retrying(client, replace(request, refund_no=ref("T")), attempts=3, sleep=no_sleep)


async def test_wechat_refusals_are_statuses_not_retries(
    sandbox: Sandbox, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    client = WechatPayClient(session, wechat_config)
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 1000)
    assert (await client.refund(RefundRequest(ref("T"), trade_no, 800, 1000))).status is RefundStatus.SUCCESS
    refused = await client.refund(RefundRequest(ref("T"), trade_no, 201, 1000))
    assert (refused.status, refused.code, refused.amount) == (RefundStatus.NOT_ENOUGH, "NOT_ENOUGH", 0)
    assert refused.status.refused
    unknown = await client.refund(RefundRequest(ref("T"), ref("WX"), 1, 1000))
    assert unknown.status is RefundStatus.NOT_FOUND
    assert (await sandbox.trade("wechat_pay", trade_no))["refunded"] == 800


async def test_wechat_query_follows_processing_to_closed(
    sandbox: Sandbox, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    client = WechatPayClient(session, wechat_config)
    await sandbox.control("wechat_pay", processing_ms=300, refund_outcome="CLOSED")
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 600)
    # characters a URL path quotes (|) or keeps (@, *): the query path is signed as it is sent
    request = RefundRequest(ref("T") + "|@*", trade_no, 600, 600)
    accepted = await client.refund(request)
    assert accepted.status is RefundStatus.PROCESSING and not accepted.status.final
    assert (await client.query(request.refund_no, trade_no)).status is RefundStatus.PROCESSING

    async def closed() -> bool:
        return (await client.query(request.refund_no, trade_no)).status is RefundStatus.CLOSED

    await eventually(closed, within=5)
    assert (await client.query(ref("T"), trade_no)).status is RefundStatus.NOT_FOUND
    other_trade = await client.query(request.refund_no, ref("WX"))
    assert (other_trade.status, other_trade.code) == (RefundStatus.NOT_FOUND, "OTHER_TRADE")
    with pytest.raises(InvalidArgument) as bad:
        await client.query("T/../1", trade_no)
    assert bad.value.field == "refund_no"


async def test_a_wechat_answer_not_signed_by_the_platform_key_is_not_believed(
    sandbox: Sandbox, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    stranger = sandbox_keys.public_pem(sandbox_keys.generate().public_key())
    serial = next(iter(wechat_config.platform_public_keys))
    client = WechatPayClient(session, replace(wechat_config, platform_public_keys={serial: stranger}))
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 100)
    with pytest.raises(RetryableError, match="answer not trusted: Wechatpay-Signature") as untrusted:
        await client.refund(RefundRequest(ref("T"), trade_no, 100, 100))
    assert untrusted.value.uncertain


async def test_a_wechat_call_signed_with_the_wrong_key_is_refused_and_not_retried(
    sandbox: Sandbox, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    stranger = sandbox_keys.private_pem(sandbox_keys.generate())
    client = WechatPayClient(session, replace(wechat_config, merchant_private_key=stranger))
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 100)
    with pytest.raises(CallRefused) as refused:
        await client.refund(RefundRequest(ref("T"), trade_no, 100, 100))
    assert refused.value.code == "SIGN_ERROR"
    assert (await sandbox.trade("wechat_pay", trade_no))["refunded"] == 0


def platform_keys(sandbox: Sandbox) -> dict[str, rsa.RSAPublicKey]:
    return {
        sandbox.keys["WECHAT_PLATFORM_SERIAL"]: load_public_key(sandbox.keys["WECHAT_PLATFORM_PUBLIC_KEY"])
    }


async def refund_delivery(
    sandbox: Sandbox, receiver: Receiver, client: WechatPayClient, request: RefundRequest
) -> Delivery:
    await client.refund(request)
    apiv3 = sandbox.keys["WECHAT_APIV3_KEY"].encode()

    def mine() -> list[Delivery]:
        # the refund number is inside the ciphertext only
        return [
            delivery
            for delivery in receiver.wechat
            if sandbox_wechat.decrypt_resource(apiv3, json.loads(delivery.body)["resource"]).get(
                "out_refund_no"
            )
            == request.refund_no
        ]

    await eventually(lambda: len(mine()) == 1, within=5)
    return mine()[0]


async def test_a_wechat_refund_notification_verifies_and_decrypts_and_tampering_is_refused(
    sandbox: Sandbox, receiver: Receiver, session: aiohttp.ClientSession, wechat_config: WechatPayConfig
) -> None:
    client = WechatPayClient(session, wechat_config)
    trade_no = ref("WX")
    await sandbox.pay("wechat_pay", trade_no, 3000)
    request = RefundRequest(ref("T"), trade_no, 1999, 3000, notify_url=f"{receiver.url}/wechat")
    delivery = await refund_delivery(sandbox, receiver, client, request)
    keys_by_serial = platform_keys(sandbox)
    apiv3 = wechat_config.apiv3_key.encode()
    notification = verify_wechat_notification(
        delivery.headers, delivery.body, keys_by_serial, apiv3, time.time()
    )
    assert (notification.event_type, notification.original_type) == ("REFUND.SUCCESS", "refund")
    result = wechat_refund_of(notification)
    assert (result.status, result.refund_no, result.amount, result.out_trade_no) == (
        "SUCCESS",
        request.refund_no,
        1999,
        trade_no,
    )

    def rejected(
        headers: dict[str, str], body: bytes, apiv3_key: bytes = apiv3, now: float | None = None
    ) -> str:
        with pytest.raises(NotificationRejected) as refusal:
            verify_wechat_notification(headers, body, keys_by_serial, apiv3_key, now or time.time())
        return refusal.value.check

    tampered = delivery.body.replace(b'"REFUND.SUCCESS"', b'"REFUND.CLOSED"')
    assert tampered != delivery.body
    assert rejected(delivery.headers, tampered) == "signature"
    assert rejected(delivery.headers, delivery.body, now=time.time() + 600) == "timestamp"
    assert rejected({**delivery.headers, "Wechatpay-Serial": "PUB_KEY_ID_OTHER"}, delivery.body) == "serial"
    without = {k: v for k, v in delivery.headers.items() if k.lower() != "wechatpay-signature"}
    assert rejected(without, delivery.body) == "headers"
    assert rejected(delivery.headers, delivery.body, apiv3_key=b"x" * 32) == "decryption"
    # correctly signed (with the platform's own key) but the ciphertext altered: decryption fails
    envelope = json.loads(delivery.body)
    sealed = envelope["resource"]["ciphertext"]
    envelope["resource"]["ciphertext"] = ("A" if sealed[0] != "A" else "B") + sealed[1:]
    text = json.dumps(envelope)
    platform = sandbox_keys.load_private_key(sandbox.keys["WECHAT_PLATFORM_PRIVATE_KEY"])
    resigned = sandbox_wechat.signed_headers(
        platform, sandbox.keys["WECHAT_PLATFORM_SERIAL"], text, time.time()
    )
    assert rejected(resigned, text.encode()) == "decryption"


# Alipay


async def test_an_alipay_timeout_after_acceptance_then_the_identical_retry_refunds_once(
    sandbox: Sandbox, session: aiohttp.ClientSession, alipay_config: AlipayConfig
) -> None:
    client = AlipayClient(session, alipay_config)
    trade_no = ref("AL")
    await sandbox.pay("alipay", trade_no, 10001)
    request = RefundRequest(ref("T"), trade_no, 3333, 10001)
    await sandbox.control("alipay", timeout_next=1, hang_ms=3000)
    with pytest.raises(RetryableError) as timed_out:
        await client.refund(request)
    assert timed_out.value.uncertain
    retried = await client.refund(request)
    # the replay moved no money; the query inside says the refund it made before stands
    assert (retried.status, retried.fund_change, retried.amount) == (RefundStatus.SUCCESS, False, 3333)
    (refund,) = await sandbox.refunds("alipay", refund_no=request.refund_no)
    assert (refund["amount"], refund["executed"], refund["attempts"]) == (3333, 1, 2)
    assert (await sandbox.trade("alipay", trade_no))["refunded"] == 3333


async def test_alipay_system_errors_retried_refusals_and_queries(
    sandbox: Sandbox, session: aiohttp.ClientSession, alipay_config: AlipayConfig
) -> None:
    client = AlipayClient(session, alipay_config)
    trade_no = ref("AL")
    await sandbox.pay("alipay", trade_no, 1001)
    request = RefundRequest(ref("T"), trade_no, 1, 1001)
    await sandbox.control("alipay", fail_next=1)
    done = await refund_retrying(client, request, attempts=2, sleep=no_sleep)
    assert (done.status, done.fund_change, done.amount) == (RefundStatus.SUCCESS, True, 1)
    (refund,) = await sandbox.refunds("alipay", refund_no=request.refund_no)
    assert (refund["executed"], refund["attempts"]) == (1, 2)
    queried = await client.query(request.refund_no, trade_no)
    assert (queried.status, queried.amount) == (RefundStatus.SUCCESS, 1)
    assert (await client.query(ref("T"), trade_no)).status is RefundStatus.NOT_FOUND
    too_much = await client.refund(RefundRequest(ref("T"), trade_no, 1001, 1001))
    assert (too_much.status, too_much.code) == (RefundStatus.NOT_ENOUGH, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    missing = await client.refund(RefundRequest(ref("T"), ref("AL"), 5, 1001))
    assert missing.status is RefundStatus.NOT_FOUND
    rest = await client.refund(RefundRequest(ref("T"), trade_no, 1000, 1001))
    assert (rest.status, rest.amount) == (RefundStatus.SUCCESS, 1000)
    assert (await sandbox.trade("alipay", trade_no))["refundable"] == 0


async def test_an_alipay_answer_or_call_with_the_wrong_keys(
    sandbox: Sandbox, session: aiohttp.ClientSession, alipay_config: AlipayConfig
) -> None:
    trade_no = ref("AL")
    await sandbox.pay("alipay", trade_no, 100)
    stranger = sandbox_keys.generate()
    doubting = AlipayClient(
        session, replace(alipay_config, alipay_public_key=sandbox_keys.public_line(stranger.public_key()))
    )
    with pytest.raises(RetryableError, match="not trusted"):
        await doubting.refund(RefundRequest(ref("T"), trade_no, 100, 100))
    forging = AlipayClient(
        session, replace(alipay_config, app_private_key=sandbox_keys.private_line(stranger))
    )
    with pytest.raises(CallRefused) as refused:
        await forging.refund(RefundRequest(ref("T"), trade_no, 1, 100))
    assert refused.value.code == "isv.invalid-signature"


async def test_an_alipay_payment_notify_verifies_and_tampering_is_refused(
    sandbox: Sandbox, receiver: Receiver, alipay_config: AlipayConfig
) -> None:
    trade_no = ref("AL")
    trade = await sandbox.pay("alipay", trade_no, 100001)
    await eventually(lambda: any(form.get("out_trade_no") == trade_no for form in receiver.alipay))
    form = next(form for form in receiver.alipay if form.get("out_trade_no") == trade_no)
    public = load_public_key(alipay_config.alipay_public_key)
    notify = verify_alipay_notify(form, public, alipay_config.app_id)
    assert (notify.trade_status, notify.total_amount, notify.trade_no) == (
        "TRADE_SUCCESS",
        100001,
        trade["trade_no"],
    )

    def rejected(fields: dict[str, str], app_id: str = alipay_config.app_id) -> str:
        with pytest.raises(NotificationRejected) as refusal:
            verify_alipay_notify(fields, public, app_id)
        return refusal.value.check

    assert rejected({**form, "total_amount": "0.01"}) == "signature"
    assert rejected({**form, "trade_status": "TRADE_CLOSED"}) == "signature"
    assert rejected({**form, "sign_type": "RSA"}) == "sign_type"
    assert rejected({k: v for k, v in form.items() if k != "sign"}) == "signature"
    assert rejected(form, app_id="2021000000009999") == "app_id"
