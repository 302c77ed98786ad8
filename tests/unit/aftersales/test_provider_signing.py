"""The provider clients' pure parts: the signed texts exactly as the providers define them, signatures
checked across the two independent implementations (the clients' and the sandbox's), WeChat's resource
encryption and its tampering, Alipay's response node text, amounts in yuan to the fen, key formats,
the bad input a refund request refuses, and the same request always giving the same wire content."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sandboxes.payments.protocols import alipay as sandbox_alipay
from sandboxes.payments.protocols import wechat as sandbox_wechat
from services.aftersales.providers.alipay import refund_biz
from services.aftersales.providers.ports import RefundRequest
from services.aftersales.providers.wechat import refund_payload
from services.kit.errors import InvalidArgument
from services.kit.provider_signing import (
    BadKey,
    alipay_sign,
    alipay_sign_content,
    alipay_verify_notify,
    load_private_key,
    load_public_key,
    response_node_text,
    rsa_sign,
    rsa_verify,
    wechat_authorization,
    wechat_decrypt,
    wechat_encrypt,
    wechat_reply_message,
    wechat_request_message,
)
from services.kit.yuan import fen_to_yuan, yuan_to_fen

APIV3 = b"0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(scope="module")
def merchant() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_the_wechat_signed_texts_are_the_documented_lines() -> None:
    body = '{"out_refund_no":"R1"}'
    assert wechat_request_message("POST", "/v3/refund/domestic/refunds", "1554208460", "593BEC0C", body) == (
        b'POST\n/v3/refund/domestic/refunds\n1554208460\n593BEC0C\n{"out_refund_no":"R1"}\n'
    )
    # a GET signs an empty body, still followed by its newline
    assert wechat_request_message("GET", "/v3/refund/domestic/refunds/R1", "1", "N", "") == (
        b"GET\n/v3/refund/domestic/refunds/R1\n1\nN\n\n"
    )
    assert wechat_reply_message("1554209980", "c5ac7061", "{}") == b"1554209980\nc5ac7061\n{}\n"


def test_a_client_authorization_is_what_the_sandbox_accepts_and_nothing_else(
    merchant: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey
) -> None:
    now = int(time.time())
    body = '{"amount":{"refund":1}}'
    header = wechat_authorization("1900000109", "SERIAL1", merchant, "POST", "/v3/x", body, str(now), "NONCE")
    assert header.startswith("WECHATPAY2-SHA256-RSA2048 ")
    parsed = sandbox_wechat.parse_authorization(header)
    assert parsed is not None and (parsed.mchid, parsed.serial_no, parsed.nonce_str) == (
        "1900000109",
        "SERIAL1",
        "NONCE",
    )

    def problem(
        header: str = header,
        method: str = "POST",
        url: str = "/v3/x",
        body: str = body,
        key: rsa.RSAPublicKey | None = None,
    ) -> str:
        public = key or merchant.public_key()
        return sandbox_wechat.check_request(header, method, url, body, "1900000109", "SERIAL1", public, now)

    assert problem() == ""
    assert "signature" in problem(body='{"amount":{"refund":2}}')
    assert "signature" in problem(url="/v3/y")
    assert "signature" in problem(method="PUT")
    assert "signature" in problem(key=other.public_key())
    stale = wechat_authorization(
        "1900000109", "SERIAL1", merchant, "POST", "/v3/x", body, str(now - 301), "N"
    )
    assert "timestamp" in problem(header=stale)


def test_a_sandbox_reply_signature_verifies_with_the_client_and_breaks_when_the_body_changes(
    merchant: rsa.RSAPrivateKey,
) -> None:
    body = '{"status":"SUCCESS"}'
    headers = sandbox_wechat.signed_headers(merchant, "PUB_KEY_ID_1", body, time.time())
    message = wechat_reply_message(headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body)
    assert rsa_verify(merchant.public_key(), message, headers["Wechatpay-Signature"])
    altered = wechat_reply_message(
        headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body.replace("S", "s", 1)
    )
    assert not rsa_verify(merchant.public_key(), altered, headers["Wechatpay-Signature"])
    assert not rsa_verify(
        merchant.public_key(), message, "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    )
    assert not rsa_verify(merchant.public_key(), message, "not base64!")


def test_a_resource_sealed_by_the_sandbox_opens_only_with_its_key_nonce_and_associated_data() -> None:
    plain = {"out_refund_no": "R1", "refund_status": "SUCCESS", "amount": {"refund": 1999}}
    resource = sandbox_wechat.encrypt_resource(APIV3, plain, "refund", "refund")
    sealed = base64.b64decode(resource["ciphertext"])
    # the ciphertext is the encrypted bytes followed by the 16-byte GCM tag
    assert len(sealed) == len(json.dumps(plain, separators=(",", ":")).encode()) + 16
    opened = wechat_decrypt(APIV3, resource["nonce"], resource["associated_data"], resource["ciphertext"])
    assert json.loads(opened) == plain
    with pytest.raises(ValueError, match="does not decrypt"):
        wechat_decrypt(b"x" * 32, resource["nonce"], "refund", resource["ciphertext"])
    with pytest.raises(ValueError, match="does not decrypt"):
        wechat_decrypt(APIV3, resource["nonce"], "transaction", resource["ciphertext"])
    with pytest.raises(ValueError, match="does not decrypt"):
        wechat_decrypt(APIV3, "000000000000", "refund", resource["ciphertext"])
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    with pytest.raises(ValueError, match="does not decrypt"):
        wechat_decrypt(APIV3, resource["nonce"], "refund", base64.b64encode(flipped).decode())
    with pytest.raises(ValueError, match="32 bytes"):
        wechat_decrypt(b"short", resource["nonce"], "refund", resource["ciphertext"])
    again = wechat_encrypt(APIV3, resource["nonce"], "refund", opened)
    assert again == resource["ciphertext"]


def test_the_alipay_sign_content_is_sorted_without_sign_and_empty_values() -> None:
    params = {
        "method": "alipay.trade.refund",
        "app_id": "2021",
        "sign": "x",
        "charset": "utf-8",
        "notify_url": "",
    }
    assert alipay_sign_content(params) == "app_id=2021&charset=utf-8&method=alipay.trade.refund"
    with_type = {**params, "sign_type": "RSA2"}
    assert "sign_type=RSA2" in alipay_sign_content(with_type)
    assert "sign_type" not in alipay_sign_content(with_type, ("sign", "sign_type"))
    # the same text as the sandbox's independent implementation
    assert alipay_sign_content(with_type) == sandbox_alipay.sign_content(with_type)


def test_an_alipay_call_signed_by_the_client_verifies_at_the_sandbox(
    merchant: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey
) -> None:
    params = {"app_id": "2021", "method": "alipay.trade.refund", "biz_content": '{"refund_amount":"0.01"}'}
    params["sign"] = alipay_sign(merchant, params)
    assert sandbox_alipay.verify(merchant.public_key(), sandbox_alipay.sign_content(params), params["sign"])
    assert not sandbox_alipay.verify(other.public_key(), sandbox_alipay.sign_content(params), params["sign"])
    changed = {**params, "biz_content": '{"refund_amount":"100.00"}'}
    assert not sandbox_alipay.verify(
        merchant.public_key(), sandbox_alipay.sign_content(changed), params["sign"]
    )


def test_an_alipay_notify_is_verified_without_sign_type(merchant: rsa.RSAPrivateKey) -> None:
    form = sandbox_alipay.notify_form(
        merchant, {"out_trade_no": "A1", "total_amount": "9.99", "app_id": "2021"}
    )
    assert form["sign_type"] == "RSA2"
    assert alipay_verify_notify(merchant.public_key(), form)
    assert not alipay_verify_notify(merchant.public_key(), {**form, "total_amount": "0.01"})
    assert not alipay_verify_notify(merchant.public_key(), {k: v for k, v in form.items() if k != "sign"})


def test_the_response_node_text_is_exactly_what_was_signed(merchant: rsa.RSAPrivateKey) -> None:
    node = {
        "code": "10000",
        "msg": "Success",
        "sub_msg": 'a "quoted" {brace}',
        "nested": {"x": [1, {"y": "}"}]},
    }
    body = sandbox_alipay.signed_response(merchant, "alipay_trade_refund_response", node)
    text = response_node_text(body, "alipay_trade_refund_response")
    assert text is not None and json.loads(text) == node
    assert rsa_verify(merchant.public_key(), text.encode(), json.loads(body)["sign"])
    spaced = '{ "alipay_trade_refund_response" :  {"code":"10000", "msg":"Success"} , "sign":"s"}'
    assert response_node_text(spaced, "alipay_trade_refund_response") == '{"code":"10000", "msg":"Success"}'
    # the name inside a string value is not the node
    tricky = '{"note":"alipay_trade_refund_response","alipay_trade_refund_response":{"code":"40004"}}'
    assert response_node_text(tricky, "alipay_trade_refund_response") == '{"code":"40004"}'
    assert response_node_text('{"error_response":{}}', "alipay_trade_refund_response") is None


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [
        (0, "0.00"),
        (1, "0.01"),
        (10, "0.10"),
        (1234, "12.34"),
        (100000, "1000.00"),
        (10**12 + 7, "10000000000.07"),
    ],
)
def test_fen_and_yuan_convert_exactly_both_ways(fen: int, yuan: str) -> None:
    assert fen_to_yuan(fen) == yuan
    assert yuan_to_fen(yuan) == fen


def test_yuan_without_two_decimals_and_bad_amounts() -> None:
    assert yuan_to_fen("12") == 1200
    assert yuan_to_fen("12.3") == 1230
    # 0.1 + 0.2 would not be 0.3 in floats; in fen it is
    assert yuan_to_fen("0.1") + yuan_to_fen("0.2") == yuan_to_fen("0.3")
    for bad in ("12.345", "-1.00", "1e2", "abc", "", "1.2.3", " ", "NaN", "Infinity"):
        with pytest.raises(ValueError):
            yuan_to_fen(bad)
    for bad_fen in (-1, True, 1.5):
        with pytest.raises(ValueError):
            fen_to_yuan(bad_fen)  # type: ignore[arg-type]


def test_keys_load_as_pem_or_one_line_of_base64_der(merchant: rsa.RSAPrivateKey) -> None:
    from sandboxes.payments.protocols import keys

    message = b"m"
    for private_text, public_text in (
        (keys.private_pem(merchant), keys.public_pem(merchant.public_key())),
        (keys.private_line(merchant), keys.public_line(merchant.public_key())),
    ):
        signature = rsa_sign(load_private_key(private_text), message)
        assert rsa_verify(load_public_key(public_text), message, signature)
    for bad in (
        "",
        "not a key",
        base64.b64encode(b"junk").decode(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ):
        with pytest.raises(BadKey):
            load_private_key(bad)
        with pytest.raises(BadKey):
            load_public_key(bad)


def test_a_refund_request_names_each_bad_field() -> None:
    with pytest.raises(InvalidArgument) as bad:
        RefundRequest(
            refund_no="", out_trade_no="x", amount=0, total=-1, currency="USD", notify_url="ftp://x"
        )
    assert [field for field, _ in bad.value.violations] == [
        "refund_no",
        "out_trade_no",
        "amount",
        "total",
        "currency",
        "notify_url",
    ]
    with pytest.raises(InvalidArgument) as more:
        RefundRequest(refund_no="T-1", out_trade_no="ORDER-1", amount=101, total=100)
    assert more.value.field == "amount" and "more than" in more.value.problem
    with pytest.raises(InvalidArgument):
        RefundRequest(refund_no="T 1", out_trade_no="ORDER-1", amount=1, total=100)


def test_the_same_request_always_gives_the_same_wire_content() -> None:
    request = RefundRequest(refund_no="T-1", out_trade_no="ORDER-1", amount=1999, total=3000, reason="退货")
    twin = RefundRequest(refund_no="T-1", out_trade_no="ORDER-1", amount=1999, total=3000, reason="退货")
    assert json.dumps(refund_payload(request, "")) == json.dumps(refund_payload(twin, ""))
    assert refund_payload(request, "https://m.example/notify") == {
        "out_trade_no": "ORDER-1",
        "out_refund_no": "T-1",
        "reason": "退货",
        "notify_url": "https://m.example/notify",
        "amount": {"refund": 1999, "total": 3000, "currency": "CNY"},
    }
    assert refund_biz(request) == {
        "out_trade_no": "ORDER-1",
        "refund_amount": "19.99",
        "out_request_no": "T-1",
        "refund_reason": "退货",
    }
    assert json.dumps(refund_biz(request)) == json.dumps(refund_biz(twin))
