"""The edge as callers meet it: Envoy + gateway with real Redis, Postgres and NATS.

Tokens, signed integration calls, row scope, rate limits, chunked uploads of a payload too large
for one request, signed webhooks, and one trace id followed into the timeline, the event and the
audit log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import io
import json
import secrets
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2
from redis.asyncio import Redis

from oms.common.v1 import common_pb2
from oms.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl.stack import Platform, edge_settings, write_state
from omsctl.tracing import show
from services.gateway import auth
from services.gateway.routes import EDGE_SERVICES, public_proto_modules
from services.kit import bus, tracing
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata, bearer
from tests.e2e.test_walking_skeleton import http_call, order_json, own_shop_order_json
from tests.fixtures.channels.builders import big_shopee_payload, load

CHUNK = 512 * 1024
GRPCURL = str(Path(sysconfig.get_path("scripts")) / "grpcurl")
public_proto_modules()


async def call(
    platform: Platform, method: str, path: str, body: Any = None, token: str | None = None, **headers: str
) -> tuple[int, dict[str, str], Any]:
    sent = {"authorization": f"Bearer {token}" if token else "", **headers}
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    status, answer_headers, answer = await asyncio.to_thread(http_call, platform, method, path, raw, sent)
    try:
        parsed = json.loads(answer) if answer else None
    except ValueError:
        parsed = answer
    return status, answer_headers, parsed


def shopee_order(order_sn: str) -> dict[str, Any]:
    order = copy.deepcopy(load("shopee", "paid"))
    order["order_sn"] = order_sn
    return order


async def begin_upload(
    platform: Platform, token: str, target: str, payload: bytes, chunk_bytes: int, upload_id: str = ""
) -> str:
    """Declare an upload of `payload` (its size and SHA-256); returns its id."""
    upload_id = upload_id or random_ref("up")
    status, _, begun = await call(
        platform,
        "POST",
        "/v1/uploads",
        {
            "uploadId": upload_id,
            "target": target,
            "totalBytes": str(len(payload)),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "chunkBytes": chunk_bytes,
        },
        token=token,
    )
    assert status == 200, begun
    return upload_id


async def put_chunk(platform: Platform, token: str, upload_id: str, index: int, data: bytes) -> int:
    status, _, _ = await call(
        platform,
        "POST",
        f"/v1/uploads/{upload_id}/chunks/{index}",
        {"data": base64.b64encode(data).decode()},
        token=token,
    )
    return status


# ---- authentication -----------------------------------------------------------------------------


async def test_bad_tokens_are_refused_alike_and_a_good_one_passes(platform: Platform) -> None:
    env = edge_settings(platform.home)
    settings = auth.JwtSettings.from_settings(env)
    now = int(time.time())
    claims = {"sub": "mallory", "roles": ["admin"], "iss": settings.issuer, "aud": settings.audience}
    secret = base64.b64decode(env["JWT_KEYS"].split(":", 1)[1])
    forged = {
        "alg=none": jwt.encode(
            {**claims, "iat": now, "exp": now + 600}, key="", algorithm="none", headers={"kid": "dev1"}
        ),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "exp": now - 3600}, secret, "HS256", headers={"kid": "dev1"}
        ),
        "wrong audience": jwt.encode(
            {**claims, "aud": "someone-else", "iat": now, "exp": now + 600},
            secret,
            "HS256",
            headers={"kid": "dev1"},
        ),
        "wrong key": jwt.encode(
            {**claims, "iat": now, "exp": now + 600},
            secrets.token_bytes(32),
            "HS256",
            headers={"kid": "dev1"},
        ),
    }
    answers = set()
    for name, token in forged.items():
        status, _, body = await call(platform, "GET", "/v1/orders", token=token)
        assert status == 401, name
        answers.add(json.dumps(body, sort_keys=True))
    status, _, body = await call(platform, "GET", "/v1/orders")
    assert status == 401
    answers.add(json.dumps(body, sort_keys=True))
    assert len(answers) == 1, "no answer may tell an attacker which check failed"
    status, _, _ = await call(platform, "GET", "/v1/orders", token=bearer(platform, "ops"))
    assert status == 200


async def test_a_service_account_exchanges_its_credentials_for_a_token(platform: Platform) -> None:
    env = edge_settings(platform.home)
    status, _, body = await call(
        platform,
        "POST",
        "/v1/tokens",
        {"clientId": "demo-service", "clientSecret": env["DEMO_SERVICE_SECRET"]},
    )
    assert status == 200 and body["tokenType"] == "Bearer"
    status, _, _ = await call(platform, "GET", "/v1/orders", token=body["accessToken"])
    assert status == 200
    status, _, _ = await call(
        platform, "POST", "/v1/tokens", {"clientId": "demo-service", "clientSecret": "guess"}
    )
    assert status == 401


async def test_a_signed_integration_call_works_once_and_its_replay_is_refused(platform: Platform) -> None:
    env = edge_settings(platform.home)
    secret = base64.b64decode(env["DEMO_CHANNEL_KEY_SECRET"])
    request = orders_pb2.IngestOrderRequest(**_taobao_order(random_ref("TB")))
    body = request.SerializeToString()
    method = "/oms.orders.v1.OrdersService/IngestOrder"
    timestamp, nonce = str(int(time.time())), secrets.token_hex(12)
    signed = (
        ("x-oms-key-id", "demo-taobao"),
        ("x-oms-timestamp", timestamp),
        ("x-oms-nonce", nonce),
        ("x-oms-signature", auth.sign(secret, method, timestamp, nonce, body)),
    )
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        reply = await stub.IngestOrder(request, metadata=signed, timeout=10)
        assert reply.created and reply.order.channel == orders_pb2.CHANNEL_TAOBAO
        with pytest.raises(grpc.aio.AioRpcError) as replayed:
            await stub.IngestOrder(request, metadata=signed, timeout=10)
        assert replayed.value.code() == grpc.StatusCode.UNAUTHENTICATED
        other = orders_pb2.IngestOrderRequest(**_taobao_order(random_ref("TB")))
        other.channel = orders_pb2.CHANNEL_JD
        other_body = other.SerializeToString()
        nonce = secrets.token_hex(12)
        with pytest.raises(grpc.aio.AioRpcError) as wrong_channel:
            await stub.IngestOrder(
                other,
                metadata=(
                    ("x-oms-key-id", "demo-taobao"),
                    ("x-oms-timestamp", timestamp),
                    ("x-oms-nonce", nonce),
                    ("x-oms-signature", auth.sign(secret, method, timestamp, nonce, other_body)),
                ),
                timeout=10,
            )
        assert wrong_channel.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _taobao_order(ref: str) -> dict[str, Any]:
    return {
        "channel": orders_pb2.CHANNEL_TAOBAO,
        "channel_order_id": ref,
        "buyer_id": "tb-buyer",
        "lines": [
            orders_pb2.OrderLine(
                sku="TEA", quantity=1, unit_price=common_pb2.Money(currency_code="CNY", amount_minor=990)
            )
        ],
        "shipping_address": common_pb2.Address(
            recipient_name="Li",
            phone="13800000000",
            country_code="CN",
            province="Zhejiang",
            city="Hangzhou",
            detail="1",
        ),
    }


# ---- authorisation and scope --------------------------------------------------------------------


async def test_an_agent_cannot_tell_another_agents_customer_order_from_an_unknown_id(
    platform: Platform,
) -> None:
    agent, mine, theirs = random_ref("agent"), random_ref("cust"), random_ref("cust")
    ops = bearer(platform, "ops")
    created = {}
    for buyer in (mine, theirs):
        body = order_json(random_ref("OWN"))
        body["buyerId"] = buyer
        status, _, answer = await call(platform, "POST", "/v1/orders", body, token=ops)
        assert status == 200, answer
        created[buyer] = answer["order"]["orderId"]
    status, _, _ = await call(
        platform,
        "POST",
        f"/v1/agents/{agent}/customers",
        {"buyerIds": [mine]},
        token=bearer(platform, "admin"),
    )
    assert status == 200
    agent_token = bearer(platform, "cs_agent", sub=agent)
    status, _, own = await call(platform, "GET", f"/v1/orders/{created[mine]}", token=agent_token)
    assert status == 200 and own["order"]["orderId"] == created[mine]
    assert own["order"]["masked"] is True
    other = await call(platform, "GET", f"/v1/orders/{created[theirs]}", token=agent_token)
    unknown_id = "01a20000-0000-7000-8000-000000000000"
    unknown = await call(platform, "GET", f"/v1/orders/{unknown_id}", token=agent_token)
    assert other[0] == unknown[0] == 404
    assert json.dumps(other[2]).replace(created[theirs], "<id>") == json.dumps(unknown[2]).replace(
        unknown_id, "<id>"
    )
    status, _, _ = await call(platform, "POST", "/v1/order-dead-letters/step:x/replay", {}, token=agent_token)
    assert status == 403
    status, _, revealed = await call(
        platform,
        "POST",
        f"/v1/orders/{created[mine]}/reveal",
        {"reason": "customer called back"},
        token=agent_token,
    )
    assert status == 200 and revealed["order"]["masked"] is False
    status, _, audit = await call(
        platform, "GET", f"/v1/audit-records?targetId={created[mine]}", token=bearer(platform, "admin")
    )
    assert any(r["method"].endswith("/RevealOrder") and r["principal"] == agent for r in audit["records"])


async def test_the_rate_limit_answers_429_with_retry_after_and_recovers(platform: Platform) -> None:
    token = bearer(platform, "ops", "carrier")  # carrier has the tight test limit (tests/conftest.py)
    statuses = []
    for _ in range(6):
        status, headers, _ = await call(platform, "GET", "/v1/order-stats", token=token)
        statuses.append(status)
        if status == 429:
            retry_after = float(headers["retry-after"])
            break
    assert 429 in statuses, statuses
    assert retry_after >= 1
    await asyncio.sleep(retry_after)
    status, _, _ = await call(platform, "GET", "/v1/order-stats", token=token)
    assert status == 200


async def test_two_hundred_concurrent_writes_under_a_service_limit_all_pass(platform: Platform) -> None:
    metadata = auth_metadata(platform, "service", sub=random_ref("svc"))
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        results = await asyncio.gather(
            *(
                stub.IngestOrder(
                    orders_pb2.IngestOrderRequest(**_taobao_order(random_ref("TB"))),
                    metadata=metadata,
                    timeout=60,
                )
                for _ in range(200)
            ),
            return_exceptions=True,
        )
    refused = [r.code().name for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert not [r for r in results if isinstance(r, BaseException)], refused
    assert all(r.created for r in results if not isinstance(r, BaseException))


async def test_a_paused_redis_answers_writes_rate_limiter_unavailable_not_the_callers_limit(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops", sub=random_ref("ops"))
    redis = Redis.from_url(platform.infra.redis_url)
    answers: list[tuple[int, Any, str]] = []
    # longer than the limiter's timeout (1 s) plus the time without answers that makes Redis down (2 s)
    await redis.execute_command("CLIENT", "PAUSE", "6000", "ALL")
    try:
        started = time.monotonic()
        while time.monotonic() - started < 4.5:
            status, headers, body = await call(
                platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=ops
            )
            answers.append((status, body, headers.get("retry-after", "")))
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await redis.aclose()
    assert 429 not in [status for status, _, _ in answers], answers
    unavailable = [(body, retry) for status, body, retry in answers if status == 503]
    assert unavailable, answers
    assert unavailable[0][0]["message"] == "rate limiter unavailable; retry" and unavailable[0][1] == "1"
    await asyncio.sleep(1.5)
    status, _, _ = await call(platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=ops)
    assert status == 200


# ---- Envoy's own answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/v1/no-such-route", None, 404, 5),
        ("DELETE", "/v1/orders", None, 405, 12),
        ("POST", "/v1/orders", b'{"channel": ', 400, 3),
        ("GET", "/v1/orders?noSuchParameter=1", None, 400, 3),
    ],
)
async def test_envoys_own_errors_are_json_like_the_services(
    platform: Platform, method: str, path: str, body: bytes | None, status: int, code: int
) -> None:
    answered, headers, answer = await call(
        platform, method, path, body, token=bearer(platform, "ops"), **{"content-type": "application/json"}
    )
    assert (answered, headers["content-type"]) == (status, "application/json"), answer
    assert answer["code"] == code and answer["message"] and answer["details"] == []


async def test_an_unknown_json_body_field_is_refused_naming_it_and_nothing_is_written(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops")
    sku = random_ref("SKU-")
    status, _, answer = await call(
        platform, "PUT", f"/v1/inventory/skus/{sku}", {"title": "Tea", "colour": "green"}, token=ops
    )
    assert (status, answer["code"], answer["message"]) == (400, 3, "colour: is not a field of this request")
    order = order_json(random_ref("OWN"))
    order["lines"][0]["unitPrice"]["currencyKode"] = "CNY"
    status, _, answer = await call(platform, "POST", "/v1/orders", order, token=ops)
    assert status == 400 and answer["message"].startswith("lines.unitPrice.currencyKode:"), answer
    status, _, _ = await call(
        platform, "GET", f"/v1/channel-orders/CHANNEL_DOUYIN/{order['channelOrderId']}", token=ops
    )
    assert status == 404
    del order["lines"][0]["unitPrice"]["currencyKode"]
    status, _, answer = await call(platform, "POST", "/v1/orders", order, token=ops)
    assert status == 200, answer


async def test_a_native_grpc_call_cannot_plant_the_json_field_list(platform: Platform) -> None:
    metadata = (*auth_metadata(platform, "ops"), ("x-oms-json-fields", "no_such_field"))
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        reply = await orders_pb2_grpc.OrdersServiceStub(channel).IngestOrder(
            orders_pb2.IngestOrderRequest(**_taobao_order(random_ref("TB"))), metadata=metadata, timeout=10
        )
    assert reply.created


# ---- large payloads -----------------------------------------------------------------------------


async def test_a_2_1_mb_push_is_refused_whole_and_accepted_in_chunks_out_of_order_resumed(
    platform: Platform,
) -> None:
    big = big_shopee_payload(2_200_000)
    big["order_sn"] = random_ref("SPBIG")
    orders = [big, *(shopee_order(random_ref("SP")) for _ in range(3))]
    ops = bearer(platform, "ops")
    status, _, _ = await call(
        platform,
        "POST",
        "/v1/channel-orders",
        {"channel": "CHANNEL_SHOPEE", "payloadJson": json.dumps(big)},
        token=ops,
    )
    assert status == 413
    payload = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": orders}).encode()
    assert len(payload) > 2_100_000
    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
    upload_id = await begin_upload(platform, ops, "UPLOAD_TARGET_ORDERS_BATCH", payload, CHUNK)
    order = list(reversed(range(len(chunks))))
    first_half, second_half = order[: len(order) // 2], order[len(order) // 2 :]
    for index in [*first_half, first_half[0]]:  # out of order, and one chunk sent twice
        assert await put_chunk(platform, ops, upload_id, index, chunks[index]) == 200
    # the client "disconnects" and asks what is missing before resuming
    status, _, state = await call(platform, "GET", f"/v1/uploads/{upload_id}", token=ops)
    assert sorted(state["upload"]["missingChunks"]) == sorted(second_half)
    for index in second_half:
        assert await put_chunk(platform, ops, upload_id, index, chunks[index]) == 200
    status, _, done = await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=ops)
    assert status == 200, done
    assert done["orders"]["created"] == 4 and done["upload"]["status"] == "UPLOAD_STATUS_COMPLETE"
    status, _, again = await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=ops)
    assert again["orders"] == done["orders"]
    for sent in orders:
        status, _, _ = await call(
            platform, "GET", f"/v1/channel-orders/CHANNEL_SHOPEE/{sent['order_sn']}", token=ops
        )
        assert status == 200, sent["order_sn"]


async def test_a_tampered_chunk_fails_the_checksum_and_nothing_is_ingested(platform: Platform) -> None:
    ref = random_ref("SPT")
    payload = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": [shopee_order(ref)]}).encode()
    ops = bearer(platform, "ops")
    upload_id = await begin_upload(platform, ops, "UPLOAD_TARGET_ORDERS_BATCH", payload, len(payload))
    tampered = payload.replace(b'"paid"', b'"PAID"') if b'"paid"' in payload else payload[:-2] + b" }"
    tampered = tampered[: len(payload)].ljust(len(payload), b" ")
    assert tampered != payload
    assert await put_chunk(platform, ops, upload_id, 0, tampered) == 200
    status, _, body = await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=ops)
    assert status == 400 and "checksum" in body["message"]
    status, _, _ = await call(platform, "GET", f"/v1/channel-orders/CHANNEL_SHOPEE/{ref}", token=ops)
    assert status == 404


# ---- webhooks and trace ids ---------------------------------------------------------------------


async def test_a_signed_payment_webhook_is_forwarded_once_and_its_retry_gets_the_first_answer(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops")
    status, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    assert status == 200
    order = created["order"]
    body, headers = signed_payment(platform, order, random_ref("wx"))
    first = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **headers)
    assert first[0] == 200 and first[2]["result"]["accepted"] is True
    again = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **headers)
    assert again[2]["result"]["duplicate"] is True
    assert again[2]["result"]["reference"] == first[2]["result"]["reference"]
    forged = await call(
        platform,
        "POST",
        "/v1/webhooks/payments/wechat_pay",
        body,
        **{**headers, "x-oms-webhook-signature": "0" * 64},
    )
    assert forged[0] == 401
    _, _, read = await call(platform, "GET", f"/v1/orders/{order['orderId']}", token=ops)
    assert read["order"]["paidAt"]


def signed_payment(
    platform: Platform, order: dict[str, Any], transaction_id: str, secret_of: str = "payment/wechat_pay"
) -> tuple[bytes, dict[str, str]]:
    """A provider's payment notification for the order, signed with the secret `secret_of` names."""
    body = json.dumps(
        {
            "transaction_id": transaction_id,
            "out_trade_no": order["orderId"],
            "trade_state": "SUCCESS",
            "amount": {"total": int(order["total"]["amountMinor"]), "currency": "CNY"},
            "success_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
    ).encode()
    return body, webhook_signature(platform, body, secret_of)


def webhook_signature(platform: Platform, body: bytes, secret_of: str) -> dict[str, str]:
    """The signature headers of a webhook body, with the secret `secret_of` names (`carrier/zto`)."""
    secret = base64.b64decode(json.loads(edge_settings(platform.home)["WEBHOOK_SECRETS"])[secret_of])
    timestamp = str(int(time.time()))
    signature = hmac.new(secret, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return {"x-oms-webhook-timestamp": timestamp, "x-oms-webhook-signature": signature}


async def test_five_concurrent_identical_webhooks_get_one_first_answer_and_four_duplicates(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops")
    _, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    body, headers = signed_payment(platform, created["order"], random_ref("wx"))

    answers = await asyncio.gather(
        *(call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **headers) for _ in range(5))
    )

    assert [status for status, _, _ in answers] == [200] * 5, answers
    results = [answer["result"] for _, _, answer in answers]
    assert sorted(result["duplicate"] for result in results) == [False, True, True, True, True]
    assert len({result["reference"] for result in results}) == 1
    _, _, payments = await call(
        platform,
        "GET",
        f"/v1/payment-notifications?orderId={created['order']['orderId']}",
        token=bearer(platform, "finance"),
    )
    assert len(payments["payments"]) == 1


async def test_a_webhooks_audit_record_names_its_sender_and_the_ids_it_touched(platform: Platform) -> None:
    ops = bearer(platform, "ops")
    _, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    order_id, transaction_id = created["order"]["orderId"], random_ref("wx")
    body, headers = signed_payment(platform, created["order"], transaction_id)
    status, _, first = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **headers)
    assert status == 200, first
    forged = {**headers, "x-oms-webhook-signature": "0" * 64}
    assert (await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", body, **forged))[0] == 401

    status, _, audit = await call(
        platform, "GET", f"/v1/audit-records?targetId={transaction_id}", token=bearer(platform, "admin")
    )

    assert status == 200, audit
    records = audit["records"]
    assert {record["principal"] for record in records} == {"payment/wechat_pay"}
    assert all(record["method"].endswith("/ReceivePaymentWebhook") for record in records)
    assert sorted(record["result"] for record in records) == ["OK", "UNAUTHENTICATED"]
    accepted = next(record for record in records if record["result"] == "OK")
    assert {order_id, transaction_id, first["result"]["reference"]} <= set(accepted["targetIds"])


async def test_one_trace_id_reaches_the_timeline_the_event_and_the_audit_record(platform: Platform) -> None:
    nc = await bus.connect(platform.infra.nats_url, "e2e-trace")
    seen: asyncio.Queue[Any] = asyncio.Queue()
    await nc.subscribe(f"{platform.subject_prefix}.orders.created", cb=seen.put)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    status, headers, created = await call(
        platform,
        "POST",
        "/v1/orders",
        order_json(random_ref("OWN")),
        token=bearer(platform, "ops"),
        traceparent=traceparent,
    )
    assert status == 200 and headers["x-trace-id"] == trace_id and headers.get("x-request-id")
    order_id = created["order"]["orderId"]
    status, _, timeline = await call(
        platform, "GET", f"/v1/orders/{order_id}/timeline", token=bearer(platform, "ops")
    )
    assert timeline["entries"][0]["traceId"] == trace_id
    while True:
        msg = await asyncio.wait_for(seen.get(), 10)
        if order_id.encode() in msg.data:
            break
    assert tracing.trace_id_of(msg.headers["traceparent"]) == trace_id
    await nc.close()
    status, _, audit = await call(
        platform, "GET", f"/v1/audit-records?traceId={trace_id}", token=bearer(platform, "admin")
    )
    assert [record["method"] for record in audit["records"]] == ["oms.orders.v1.OrdersService/IngestOrder"]
    assert order_id in audit["records"][0]["targetIds"] and audit["records"][0]["result"] == "OK"
    # `omsctl trace` gathers the same trace from the logs and both databases
    write_state(platform.home, platform.infra, platform)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert await asyncio.to_thread(show, platform.home, trace_id) == 0
    lines = printed.getvalue().splitlines()
    assert any(line.startswith("[gateway]") for line in lines)
    assert any('"source": "orders db"' in line and order_id in line for line in lines)
    assert any('"source": "gateway db"' in line for line in lines)


async def test_the_console_watches_alerts_live(platform: Platform) -> None:
    ops = bearer(platform, "ops")
    _, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    order = created["order"]
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        watch = gateway_pb2_grpc.GatewayServiceStub(channel).WatchAlerts(
            gateway_pb2.WatchAlertsRequest(), metadata=auth_metadata(platform, "ops"), timeout=20
        )
        await asyncio.sleep(0.5)
        # a payment of the wrong amount is parked and raises an alert
        status, _, _ = await call(
            platform,
            "POST",
            "/v1/payment-notifications",
            {
                "provider": "wechat_pay",
                "transactionId": random_ref("wx"),
                "merchantOrderNo": order["orderId"],
                "amount": {"currencyCode": "CNY", "amountMinor": "1"},
                "paidAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "status": "PAYMENT_STATUS_SUCCESS",
            },
            token=bearer(platform, "finance"),
        )
        assert status == 200
        # the order's SKU is not in this platform's catalogue, so its routing refusal (or routing's
        # parking of it) may come first
        kinds = []
        async for item in watch:
            if item.alert.order_id == order["orderId"]:
                kinds.append(item.alert.kind)
                if item.alert.kind == "payment_parked":
                    break
        watch.cancel()
        assert set(kinds) <= {"order_step_refused", "order_parked", "payment_parked"}, kinds


async def test_a_client_stream_uploads_a_large_push_in_one_call(platform: Platform) -> None:
    orders = [shopee_order(random_ref("SPS")) for _ in range(2)]
    big = big_shopee_payload(1_500_000)
    big["order_sn"] = random_ref("SPSB")
    orders.append(big)
    payload = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": orders}).encode()

    def parts() -> Any:
        yield gateway_pb2.UploadStreamRequest(
            header=gateway_pb2.BeginUploadRequest(
                target=gateway_pb2.UPLOAD_TARGET_ORDERS_BATCH,
                total_bytes=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                chunk_bytes=CHUNK,
            )
        )
        for start in range(0, len(payload), CHUNK):
            yield gateway_pb2.UploadStreamRequest(chunk=payload[start : start + CHUNK])

    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        reply = await gateway_pb2_grpc.GatewayServiceStub(channel).UploadStream(
            parts(), metadata=auth_metadata(platform, "ops"), timeout=60
        )
    assert reply.orders.created == 3
    assert reply.upload.status == gateway_pb2.UPLOAD_STATUS_COMPLETE
    status, _, audit = await call(
        platform,
        "GET",
        f"/v1/audit-records?targetId={reply.upload.upload_id}",
        token=bearer(platform, "admin"),
    )
    assert status == 200, audit
    assert [record["method"] for record in audit["records"]] == ["oms.gateway.v1.GatewayService/UploadStream"]


async def test_a_payment_statement_is_uploaded_in_chunks_and_reconciled(platform: Platform) -> None:
    ops, finance = bearer(platform, "ops"), bearer(platform, "finance")
    _, _, created = await call(
        platform, "POST", "/v1/orders", own_shop_order_json(random_ref("OWN")), token=ops
    )
    order = created["order"]
    amount = int(order["total"]["amountMinor"]) / 100
    paid_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    line = f"{random_ref('wx')},{order['orderId']},{amount:.2f},{paid_at}"
    csv = f"transaction_id,merchant_order_no,amount,paid_at\n{line}\n"
    payload = json.dumps({"provider": "wechat_pay", "csv": csv}).encode()
    upload_id = await begin_upload(platform, finance, "UPLOAD_TARGET_PAYMENT_STATEMENT", payload, 64)
    for index, start in reversed(list(enumerate(range(0, len(payload), 64)))):
        assert await put_chunk(platform, finance, upload_id, index, payload[start : start + 64]) == 200
    status, _, done = await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=finance)
    assert status == 200, done
    unrecorded = done["statement"]["paidNotRecorded"]
    assert [item["orderId"] for item in unrecorded] == [order["orderId"]]
    status, _, repaired = await call(
        platform,
        "POST",
        f"/v1/payment-statements/{done['statement']['statementId']}/repairs",
        {"transactionId": unrecorded[0]["row"]["transactionId"]},
        token=finance,
    )
    assert status == 200 and repaired["payment"]["state"] == "PAYMENT_STATE_APPLIED"


@pytest.mark.parametrize(
    "method", ["/oms.orders.v1.OrdersService/GetOrder", "/oms.gateway.v1.GatewayService/GetUpload"]
)
async def test_garbage_bytes_are_refused_as_invalid_and_break_nothing(
    platform: Platform, method: str
) -> None:
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        raw = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw(b"\xff\xff\xff\xff", metadata=auth_metadata(platform, "ops"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status, _, _ = await call(platform, "GET", "/v1/order-stats", token=bearer(platform, "ops"))
    assert status == 200


# ---- reflection ---------------------------------------------------------------------------------


async def test_grpcurl_describes_a_method_through_envoy(platform: Platform) -> None:
    described = await asyncio.to_thread(
        subprocess.run,
        [
            GRPCURL,
            "-plaintext",
            platform.endpoints["envoy"],
            "describe",
            "oms.orders.v1.OrdersService.GetOrder",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert described.returncode == 0, described.stderr
    assert "rpc GetOrder ( .oms.orders.v1.GetOrderRequest ) returns ( .oms.orders.v1.GetOrderResponse )" in (
        described.stdout
    )


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_through_envoy_describes_every_public_method(
    platform: Platform, version: str
) -> None:
    methods = [
        f"{service}.{method.name}"
        for service in EDGE_SERVICES
        for method in descriptor_pool.Default().FindServiceByName(service).methods
    ]
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        info = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        replies = [
            reply
            async for reply in info(
                iter(
                    [reflection_pb2.ServerReflectionRequest(file_containing_symbol=name) for name in methods]
                ),
                timeout=30,
            )
        ]
    not_found = [
        reply.original_request.file_containing_symbol for reply in replies if reply.HasField("error_response")
    ]
    assert not not_found
    assert len(replies) == len(methods)
    for reply in replies:
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in reply.file_descriptor_response.file_descriptor_proto
        ]
        service, _, method = reply.original_request.file_containing_symbol.rpartition(".")
        assert any(
            f"{file.package}.{declared.name}" == service and method in [m.name for m in declared.method]
            for file in files
            for declared in file.service
        ), reply.original_request.file_containing_symbol


async def test_an_empty_order_over_http_is_a_400_naming_channel_first_with_its_field_violations(
    platform: Platform,
) -> None:
    status, _, body = await call(platform, "POST", "/v1/orders", {}, token=bearer(platform, "ops"))
    assert status == 400, body
    assert body["message"] == "channel: is required"
    [details] = body["details"]
    assert details["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    fields = [violation["field"] for violation in details["fieldViolations"]]
    assert fields == ["channel", "channel_order_id", "lines", "shipping_address"]


async def test_dead_steps_are_replayed_in_bulk_through_the_edge_by_staff_only(platform: Platform) -> None:
    body = {"reasonContains": random_ref("no-such-error"), "dryRun": True}
    status, _, counted = await call(
        platform, "POST", "/v1/order-dead-letters:replay-steps", body, token=bearer(platform, "ops")
    )
    assert status == 200, counted
    assert counted.get("matched", 0) == 0 and counted.get("replayed", 0) == 0
    refused, _, _ = await call(
        platform, "POST", "/v1/order-dead-letters:replay-steps", body, token=bearer(platform, "cs_agent")
    )
    assert refused == 403
    backwards = {"failedFrom": "2026-12-01T10:00:00Z", "failedTo": "2026-12-01T09:00:00Z"}
    status, _, error = await call(
        platform, "POST", "/v1/order-dead-letters:replay-steps", backwards, token=bearer(platform, "ops")
    )
    assert status == 400 and "failed_to" in json.dumps(error)
