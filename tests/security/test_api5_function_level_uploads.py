"""API5 Broken Function Level Authorization: an upload keeps its uploader's rights. Before the fix a
channel's key, which may not call ImportStatement, completed an upload with target
UPLOAD_TARGET_PAYMENT_STATEMENT and got a report naming another channel's order, and finance, which may
not ingest orders, created one through an upload: the gateway handed the payload over whatever the
uploader's roles. Now the target method's own rule is checked at begin (before a byte is stored) and at
complete, and the target is called as the uploader, so its row scope applies too."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from oms.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from omsctl.stack import Platform, edge_settings
from services.gateway import auth
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import begin_upload, call, put_chunk, shopee_order
from tests.e2e.test_walking_skeleton import order_json
from tests.fixtures.channels.builders import load
from tests.security.test_api2_authentication_edge import COUNT, _wait_for_records

GATEWAY = "oms.gateway.v1.GatewayService"
KEY_ID = "demo-taobao"  # the platform's demo channel key: role channel, channel TAOBAO


def _signed(platform: Platform, method: str, body: bytes) -> tuple[tuple[str, str], ...]:
    secret = base64.b64decode(edge_settings(platform.home)["DEMO_CHANNEL_KEY_SECRET"])
    timestamp, nonce = str(int(time.time())), secrets.token_hex(12)
    return (
        ("x-oms-key-id", KEY_ID),
        ("x-oms-timestamp", timestamp),
        ("x-oms-nonce", nonce),
        ("x-oms-signature", auth.sign(secret, f"/{GATEWAY}/{method}", timestamp, nonce, body)),
    )


async def as_channel_key(platform: Platform, method: str, request: Message) -> Any:
    """One call of the gateway's own `method`, signed with the Taobao channel's key."""
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        metadata = _signed(platform, method, request.SerializeToString())
        return await getattr(stub, method)(request, metadata=metadata, timeout=30)


def _header(target: int, payload: bytes, upload_id: str = "") -> gateway_pb2.BeginUploadRequest:
    return gateway_pb2.BeginUploadRequest(
        upload_id=upload_id,
        target=target,  # type: ignore[arg-type]
        total_bytes=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        chunk_bytes=len(payload),
    )


async def _upload_with_channel_key(
    platform: Platform, target: int, payload: bytes
) -> gateway_pb2.CompleteUploadResponse:
    upload_id = random_ref("up")
    await as_channel_key(platform, "BeginUpload", _header(target, payload, upload_id))
    await as_channel_key(
        platform, "PutChunk", gateway_pb2.PutChunkRequest(upload_id=upload_id, index=0, data=payload)
    )
    reply: gateway_pb2.CompleteUploadResponse = await as_channel_key(
        platform, "CompleteUpload", gateway_pb2.CompleteUploadRequest(upload_id=upload_id)
    )
    return reply


async def _statement_naming_an_own_shop_order(platform: Platform) -> bytes:
    _, _, created = await call(
        platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=bearer(platform, "ops")
    )
    order = created["order"]
    paid_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    amount = int(order["total"]["amountMinor"]) / 100
    row = f"{random_ref('wx')},{order['orderId']},{amount:.2f},{paid_at}"
    csv = f"transaction_id,merchant_order_no,amount,paid_at\n{row}\n"
    return json.dumps({"provider": "wechat_pay", "csv": csv}).encode()


async def test_a_channel_key_cannot_import_a_statement_through_an_upload(platform: Platform) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    payload = await _statement_naming_an_own_shop_order(platform)
    upload_id = random_ref("up")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await as_channel_key(
            platform,
            "BeginUpload",
            _header(gateway_pb2.UPLOAD_TARGET_PAYMENT_STATEMENT, payload, upload_id),
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    assert "ImportStatement" in (refused.value.details() or "")
    # refused before anything was stored
    with pytest.raises(grpc.aio.AioRpcError) as nothing:
        await as_channel_key(platform, "GetUpload", gateway_pb2.GetUploadRequest(upload_id=upload_id))
    assert nothing.value.code() == grpc.StatusCode.NOT_FOUND
    records = await _wait_for_records(
        platform, f"{GATEWAY}/BeginUpload", since, "PERMISSION_DENIED", attempts=1
    )
    counted = [r for r in records if r["principal"] == KEY_ID and "target_not_allowed" in r["detail"]]
    assert counted and all(COUNT.match(r["detail"]) for r in counted), records


async def test_a_channel_key_cannot_stream_a_statement_either(platform: Platform) -> None:
    payload = await _statement_naming_an_own_shop_order(platform)

    async def parts() -> AsyncIterator[gateway_pb2.UploadStreamRequest]:
        yield gateway_pb2.UploadStreamRequest(
            header=_header(gateway_pb2.UPLOAD_TARGET_PAYMENT_STATEMENT, payload)
        )
        yield gateway_pb2.UploadStreamRequest(chunk=payload)

    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            # a client stream is signed over an empty body
            await stub.UploadStream(parts(), metadata=_signed(platform, "UploadStream", b""), timeout=30)

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()


async def test_finance_cannot_create_orders_through_an_upload(platform: Platform) -> None:
    finance = bearer(platform, "finance", sub=random_ref("finance-"))
    ref = random_ref("SPF")
    payload = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": [shopee_order(ref)]}).encode()
    upload_id = random_ref("up")

    status, _, body = await call(
        platform,
        "POST",
        "/v1/uploads",
        {
            "uploadId": upload_id,
            "target": "UPLOAD_TARGET_ORDERS_BATCH",
            "totalBytes": str(len(payload)),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "chunkBytes": len(payload),
        },
        token=finance,
    )

    assert status == 403 and "IngestOrders" in body["message"], body
    status, _, _ = await call(platform, "GET", f"/v1/uploads/{upload_id}", token=finance)
    assert status == 404
    ops = bearer(platform, "ops")
    status, _, _ = await call(platform, "GET", f"/v1/channel-orders/CHANNEL_SHOPEE/{ref}", token=ops)
    assert status == 404


async def test_an_upload_is_completed_only_while_its_uploader_may_call_the_target(
    platform: Platform,
) -> None:
    """The same subject begins as ops and completes with a token that no longer carries a role allowed
    to import statements: the completion is refused and nothing is handed over."""
    subject = random_ref("uploader-")
    payload = await _statement_naming_an_own_shop_order(platform)
    as_ops = bearer(platform, "ops", sub=subject)
    upload_id = await begin_upload(platform, as_ops, "UPLOAD_TARGET_PAYMENT_STATEMENT", payload, len(payload))
    assert await put_chunk(platform, as_ops, upload_id, 0, payload) == 200
    demoted = bearer(platform, "channel", sub=subject, channel="TAOBAO")

    status, _, body = await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=demoted)

    assert status == 403, body
    status, _, state = await call(platform, "GET", f"/v1/uploads/{upload_id}", token=as_ops)
    assert status == 200 and state["upload"]["status"] == "UPLOAD_STATUS_OPEN", state


async def test_a_channel_keys_orders_upload_carries_only_its_own_channels_orders(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops")
    foreign = random_ref("SPK")
    shopee = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": [shopee_order(foreign)]}).encode()
    own = load("taobao", "paid")
    own["tid"] = secrets.randbelow(10**18) + 10**18
    taobao = json.dumps({"channel": "CHANNEL_TAOBAO", "orders": [own]}).encode()

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _upload_with_channel_key(platform, gateway_pb2.UPLOAD_TARGET_ORDERS_BATCH, shopee)
    accepted = await _upload_with_channel_key(platform, gateway_pb2.UPLOAD_TARGET_ORDERS_BATCH, taobao)

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
    status, _, _ = await call(platform, "GET", f"/v1/channel-orders/CHANNEL_SHOPEE/{foreign}", token=ops)
    assert status == 404
    assert accepted.orders.created == 1, accepted
    status, _, _ = await call(platform, "GET", f"/v1/channel-orders/CHANNEL_TAOBAO/{own['tid']}", token=ops)
    assert status == 200
