"""Aliyun's RPC signature v1, as the SMS sink signs and the SMS sandbox checks: the vector from Aliyun's
own SendSms signing example (dysmsapi "HTTP协议及签名"), computed by both."""

from __future__ import annotations

import pytest

from sandboxes.sms.signing import expected_signature, signed
from services.gateway.alerts import aliyun

EXAMPLE = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
EXAMPLE_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_the_sink_signs_aliyuns_documented_example_as_aliyun_does() -> None:
    assert aliyun.signature("testSecret", "GET", EXAMPLE) == EXAMPLE_SIGNATURE


def test_the_sandbox_checks_the_same_example_and_refuses_it_changed() -> None:
    assert expected_signature("testSecret", "GET", EXAMPLE) == EXAMPLE_SIGNATURE
    assert signed("testSecret", "GET", {**EXAMPLE, "Signature": EXAMPLE_SIGNATURE})
    assert not signed("testSecret", "POST", {**EXAMPLE, "Signature": EXAMPLE_SIGNATURE})
    assert not signed(
        "testSecret", "GET", {**EXAMPLE, "PhoneNumbers": "15300000002", "Signature": EXAMPLE_SIGNATURE}
    )


@pytest.mark.parametrize(
    ("text", "encoded"), [("a b", "a%20b"), ("*", "%2A"), ("~-_.", "~-_."), ("/", "%2F")]
)
def test_percent_encoding_follows_rfc_3986_as_aliyun_asks(text: str, encoded: str) -> None:
    assert aliyun.percent_encode(text) == encoded
