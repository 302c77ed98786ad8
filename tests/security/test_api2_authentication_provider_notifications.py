"""API2 Broken Authentication, payment providers' own notifications: WeChat Pay v3 signs each one with
its platform key over `timestamp\\nnonce\\nbody\\n` and encrypts the resource under the merchant's APIv3
key; Alipay signs its form RSA2. A notification that does not prove its sender (no headers, another key,
a tampered body, a stale timestamp, a resource that does not decrypt, an Alipay sign that fails) is
refused 401 before anything reads it and pays nothing; the genuine one, signed with the development
keys the stack minted, pays its order once however often it is delivered."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from omsctl.stack import Platform, payment_settings
from services.kit.provider_signing import (
    alipay_sign_content,
    load_private_key,
    rsa_sign,
    wechat_encrypt,
    wechat_reply_message,
)
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_logistics_edge import until
from tests.e2e.test_walking_skeleton import http_call, own_shop_order_json

pytestmark = pytest.mark.e2e


def _wechat(
    platform: Platform,
    order: dict[str, Any],
    *,
    key: Any = None,
    apiv3: bytes | None = None,
    at: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    keys = payment_settings(platform.home)
    resource = {
        "transaction_id": random_ref("42"),
        "out_trade_no": order["orderId"].replace("-", ""),
        "trade_state": "SUCCESS",
        "success_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "amount": {
            "total": int(order["total"]["amountMinor"]),
            "payer_total": int(order["total"]["amountMinor"]),
            "currency": "CNY",
        },
    }
    nonce = secrets.token_hex(6)
    ciphertext = wechat_encrypt(
        apiv3 or keys["WECHAT_APIV3_KEY"].encode(), nonce, "transaction", json.dumps(resource).encode()
    )
    body = json.dumps(
        {
            "id": random_ref("n"),
            "create_time": resource["success_time"],
            "event_type": "TRANSACTION.SUCCESS",
            "resource_type": "encrypt-resource",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "nonce": nonce,
                "associated_data": "transaction",
            },
        }
    )
    stamp, header_nonce = str(at or int(time.time())), secrets.token_hex(8)
    signer = key or load_private_key(keys["WECHAT_PLATFORM_PRIVATE_KEY"])
    headers = {
        "wechatpay-timestamp": stamp,
        "wechatpay-nonce": header_nonce,
        "wechatpay-signature": rsa_sign(signer, wechat_reply_message(stamp, header_nonce, body)),
        "wechatpay-serial": keys["WECHAT_PLATFORM_SERIAL"],
    }
    return body.encode(), headers


async def _order(platform: Platform) -> dict[str, Any]:
    status, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("PN")), token=bearer(platform, "ops")
    )
    assert status == 200, created
    return dict(created["order"])


async def _payments(platform: Platform, order_id: str) -> list[dict[str, Any]]:
    """The payment notifications orders holds for the order (whatever its stock did meanwhile)."""
    token = bearer(platform, "finance")
    status, _, listed = await call(
        platform, "GET", f"/v1/payment-notifications?orderId={order_id}", token=token
    )
    assert status == 200, listed
    return list(listed.get("payments", []))


def _post(
    platform: Platform, provider: str, body: bytes, headers: dict[str, str], content_type: str
) -> tuple[int, bytes]:
    status, _, reply = http_call(
        platform,
        "POST",
        f"/v1/webhooks/providers/{provider}",
        body,
        {"content-type": content_type, "authorization": "", **headers},
    )
    return status, reply


async def test_forged_wechat_notifications_are_refused_401_and_pay_nothing(platform: Platform) -> None:
    order = await _order(platform)
    body, headers = _wechat(platform, order)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [
        (body, {}),  # no signature headers at all
        _wechat(platform, order, key=stranger),  # signed with another key
        (body.replace(b"SUCCESS", b"SUCCES5"), headers),  # tampered after signing
        _wechat(platform, order, at=int(time.time()) - 3600),  # an hour old
        _wechat(platform, order, apiv3=secrets.token_hex(16).encode()),  # signed, but not for our APIv3 key
        (body, {**headers, "wechatpay-serial": "0000"}),  # a platform key we do not hold
    ]
    for forged_body, forged_headers in forged:
        status, reply = _post(platform, "wechat_pay", forged_body, forged_headers, "application/json")
        assert status == 401, reply
    assert await _payments(platform, order["orderId"]) == [], "nothing forged reached orders"
    # the genuine one pays the order, and delivered again pays nothing more
    for _ in range(2):
        status, reply = _post(platform, "wechat_pay", body, headers, "application/json")
        assert status == 200 and json.loads(reply)["code"] == "SUCCESS", reply

    async def applied() -> list[dict[str, Any]] | None:
        found = await _payments(platform, order["orderId"])
        return found if found and found[0]["state"] == "PAYMENT_STATE_APPLIED" else None

    paid = await until(applied, within=30)
    assert [(p["provider"], int(p["amount"]["amountMinor"])) for p in paid] == [
        ("wechat_pay", int(order["total"]["amountMinor"]))
    ], "paid once, however often it was delivered"


async def test_an_alipay_notify_with_a_bad_sign_is_refused_and_a_good_one_pays(platform: Platform) -> None:
    order = await _order(platform)
    keys = payment_settings(platform.home)
    form = {
        "notify_id": random_ref("ali"),
        "notify_type": "trade_status_sync",
        "notify_time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "app_id": keys["ALIPAY_APP_ID"],
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": random_ref("2026"),
        "out_trade_no": order["orderId"].replace("-", ""),
        "trade_status": "TRADE_SUCCESS",
        "total_amount": f"{int(order['total']['amountMinor']) / 100:.2f}",
        "gmt_payment": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600)),
    }
    alipay_key = load_private_key(keys["ALIPAY_PRIVATE_KEY"])

    def alipay_sign(key: Any, fields: dict[str, str]) -> str:
        """As Alipay signs a notify: RSA2 over every field but sign and sign_type, sorted."""
        return rsa_sign(key, alipay_sign_content(fields, ("sign", "sign_type")).encode())

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {**form, "sign": alipay_sign(stranger, form)}
    status, reply = _post(
        platform, "alipay", urlencode(forged).encode(), {}, "application/x-www-form-urlencoded"
    )
    assert status == 401, reply
    tampered = {**form, "sign": alipay_sign(alipay_key, form), "total_amount": "0.01"}
    status, reply = _post(
        platform, "alipay", urlencode(tampered).encode(), {}, "application/x-www-form-urlencoded"
    )
    assert status == 401, reply
    assert await _payments(platform, order["orderId"]) == [], "nothing forged reached orders"
    genuine = {**form, "sign": alipay_sign(alipay_key, form)}
    status, reply = _post(
        platform, "alipay", urlencode(genuine).encode(), {}, "application/x-www-form-urlencoded"
    )
    assert status == 200 and reply == b"success", reply

    async def applied() -> list[dict[str, Any]] | None:
        found = await _payments(platform, order["orderId"])
        return found if found and found[0]["state"] == "PAYMENT_STATE_APPLIED" else None

    paid = await until(applied, within=30)
    assert [(p["provider"], int(p["amount"]["amountMinor"])) for p in paid] == [
        ("alipay", int(order["total"]["amountMinor"]))
    ]
