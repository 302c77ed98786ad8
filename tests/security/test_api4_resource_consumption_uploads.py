"""API4 Unrestricted Resource Consumption: uploads can be aborted and count against a per-principal
byte quota. Before the fix two abandoned "64 MiB" uploads kept their chunks in Redis for an hour with
no way to abort them, and a principal could declare as many bytes as its four open uploads allowed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from omsctl.stack import Platform
from services.gateway.config import DEFAULT_UPLOAD_MAX_BYTES, DEFAULT_UPLOAD_QUOTA_BYTES
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call, put_chunk, shopee_order

pytestmark = pytest.mark.e2e

LARGEST = DEFAULT_UPLOAD_MAX_BYTES
CHUNK = 4 << 20


@pytest.fixture
async def redis(platform: Platform) -> AsyncIterator[Redis]:
    client = Redis.from_url(platform.infra.redis_url)
    yield client
    await client.aclose()


async def _begin(
    platform: Platform, token: str, total_bytes: int, chunk_bytes: int = CHUNK
) -> tuple[int, str, object]:
    upload_id = random_ref("up")
    status, _, body = await call(
        platform,
        "POST",
        "/v1/uploads",
        {
            "uploadId": upload_id,
            "target": "UPLOAD_TARGET_ORDERS_BATCH",
            "totalBytes": str(total_bytes),
            "sha256": "0" * 64,
            "chunkBytes": chunk_bytes,
        },
        token=token,
    )
    return status, upload_id, body


async def _abort(platform: Platform, token: str, upload_id: str) -> tuple[int, object]:
    status, _, body = await call(platform, "POST", f"/v1/uploads/{upload_id}:abort", {}, token=token)
    return status, body


async def test_a_principals_open_uploads_declare_at_most_the_quota_and_aborting_one_frees_it(
    platform: Platform,
) -> None:
    token = bearer(platform, "ops", sub=random_ref("hoarder-"))
    fitting = DEFAULT_UPLOAD_QUOTA_BYTES // LARGEST
    held = []
    for _ in range(fitting):
        status, upload_id, body = await _begin(platform, token, LARGEST)
        assert status == 200, body
        held.append(upload_id)

    status, _, refused = await _begin(platform, token, LARGEST)
    other = bearer(platform, "ops", sub=random_ref("other-"))
    others_status, others_upload, _ = await _begin(platform, other, LARGEST)

    assert status == 429, refused
    assert isinstance(refused, dict) and refused["message"].startswith("total_bytes:"), refused
    assert others_status == 200
    assert await _abort(platform, token, held.pop()) == (200, {})
    status, after_abort, body = await _begin(platform, token, LARGEST)
    assert status == 200, body
    for upload_id in [*held, after_abort]:
        assert (await _abort(platform, token, upload_id))[0] == 200
    assert (await _abort(platform, other, others_upload))[0] == 200


async def test_an_aborted_upload_and_its_chunks_are_gone_at_once(platform: Platform, redis: Redis) -> None:
    token = bearer(platform, "ops", sub=random_ref("aborter-"))
    status, upload_id, body = await _begin(platform, token, 3000, chunk_bytes=1000)
    assert status == 200, body
    for index in (0, 2):
        assert await put_chunk(platform, token, upload_id, index, bytes(1000)) == 200
    stored = [key async for key in redis.scan_iter(match=f"oms:up:*:{upload_id}:*")]
    assert len(stored) >= 3, stored  # metadata, the received set and two chunks

    assert await _abort(platform, token, upload_id) == (200, {})

    assert [key async for key in redis.scan_iter(match=f"oms:up:*:{upload_id}:*")] == []
    status, _, _ = await call(platform, "GET", f"/v1/uploads/{upload_id}", token=token)
    assert status == 404
    assert (await _abort(platform, token, upload_id))[0] == 404


async def test_a_completed_upload_is_not_aborted(platform: Platform) -> None:
    token = bearer(platform, "ops", sub=random_ref("completer-"))
    payload = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": [shopee_order(random_ref("SPC"))]}).encode()
    status, _, begun = await call(
        platform,
        "POST",
        "/v1/uploads",
        {
            "target": "UPLOAD_TARGET_ORDERS_BATCH",
            "totalBytes": str(len(payload)),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "chunkBytes": len(payload),
        },
        token=token,
    )
    assert status == 200, begun
    upload_id = begun["upload"]["uploadId"]
    assert await put_chunk(platform, token, upload_id, 0, payload) == 200
    status, _, done = await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=token)
    assert status == 200, done

    status, refused = await _abort(platform, token, upload_id)

    assert status == 400 and "already complete" in str(refused), refused
    status, _, state = await call(platform, "GET", f"/v1/uploads/{upload_id}", token=token)
    assert state["upload"]["status"] == "UPLOAD_STATUS_COMPLETE"
