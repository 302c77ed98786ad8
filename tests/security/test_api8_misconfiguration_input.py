"""API8 Security misconfiguration, bad input: every malformed input is a 4xx naming the field, the logs
keep no SQL parameters, and an unsupported verb on a REST path is refused (never 200)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from oms.orders.v1 import orders_pb2
from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata, bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _violations(answer: Any) -> list[str]:
    return [
        violation["field"]
        for detail in answer.get("details", [])
        for violation in detail.get("fieldViolations", [])
    ]


async def test_a_nul_byte_in_any_string_field_is_a_400_naming_the_field(platform: Platform) -> None:
    token = bearer(platform, "admin")
    marker = random_ref("nul-marker")
    probes: list[tuple[str, str, dict[str, Any], str]] = []
    top = order_json(random_ref("dy-nul"))
    top["buyerId"] = f"{marker}\x00"
    probes.append(("POST", "/v1/orders", top, "buyer_id"))
    nested = order_json(random_ref("dy-nul"))
    nested["shippingAddress"]["city"] = f"Shen\x00zhen {marker}"
    probes.append(("POST", "/v1/orders", nested, "shipping_address.city"))
    repeated = order_json(random_ref("dy-nul"))
    repeated["lines"][0]["title"] = f"Mug\x00{marker}"
    probes.append(("POST", "/v1/orders", repeated, "lines[0].title"))
    for verb, path, body, field in probes:
        status, _, answer = await call(platform, verb, path, body, token)
        assert status == 400, (field, status, answer)
        assert answer["code"] == 3
        assert field in _violations(answer), answer
    status, _, answer = await call(platform, "GET", f"/v1/orders?filter.buyerId=a%00{marker}", None, token)
    assert status == 400, answer
    assert "filter.buyer_id" in _violations(answer), answer
    # nothing reached the database: no service logged the SQL or the value sent
    logs = "".join(path.read_text(errors="replace") for path in (platform.home / "logs").glob("*.log"))
    assert marker not in logs


async def test_payload_json_nested_a_thousand_levels_is_a_400_naming_the_field(platform: Platform) -> None:
    deep = '{"a":' * 1200 + "1" + "}" * 1200
    status, _, answer = await call(
        platform,
        "POST",
        "/v1/channel-orders",
        {"channel": "CHANNEL_SHOPEE", "payloadJson": deep},
        bearer(platform, "admin"),
    )
    assert status == 400, answer
    assert "payload_json" in _violations(answer), answer


async def test_invalid_utf8_in_a_json_body_is_a_400(platform: Platform) -> None:
    body = json.dumps(order_json(random_ref("dy-utf8"))).encode().replace(b"dy-buyer-7", b"dy-\xff\xfe-7")
    status, _, answer = await call(platform, "POST", "/v1/orders", body, bearer(platform, "admin"))
    assert status == 400, answer
    assert answer["code"] == 3


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/grpc-web", "application/grpc-web-text"]
)
@pytest.mark.parametrize(
    ("verb", "path"), [("DELETE", "/v1/orders/x"), ("PATCH", "/v1/orders"), ("PUT", "/v1/order-stats")]
)
async def test_an_unsupported_verb_on_a_rest_path_is_a_405_with_a_json_error(
    platform: Platform, verb: str, path: str, content_type: str
) -> None:
    status, headers, answer = await call(
        platform, verb, path, {}, bearer(platform, "admin"), **{"content-type": content_type}
    )
    assert (status, "grpc-status" in headers) == (405, False), (status, headers, answer)
    assert headers["content-type"].startswith("application/json")
    assert headers["allow"] == "GET, POST"
    assert answer["code"] == 12 and answer["message"]


async def test_a_grpc_content_type_with_another_verb_than_post_is_never_a_call_that_fails_inside(
    platform: Platform,
) -> None:
    """Envoy answers a request with the gRPC content type gRPC-style (HTTP 200 and a grpc-status) whatever
    happens: the answer is UNIMPLEMENTED or UNKNOWN from the edge, never INTERNAL from the gateway."""
    status, headers, _ = await call(
        platform,
        "DELETE",
        "/v1/orders/x",
        b"",
        bearer(platform, "admin"),
        **{"content-type": "application/grpc"},
    )
    assert headers.get("grpc-status") != "13", (status, headers)


async def test_invalid_utf8_in_a_grpc_string_field_is_invalid_argument(platform: Platform) -> None:
    request = orders_pb2.IngestOrderRequest(channel=orders_pb2.CHANNEL_DOUYIN, buyer_id="BUYER-UTF8")
    raw = request.SerializeToString().replace(b"BUYER-UTF8", b"BUYER-\xff\xfe\xfd8")
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        ingest = channel.unary_unary("/oms.orders.v1.OrdersService/IngestOrder")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ingest(raw, metadata=auth_metadata(platform, "admin"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
