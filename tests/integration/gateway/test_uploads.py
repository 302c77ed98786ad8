from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from redis.asyncio import Redis

from omsctl.stack import Infra
from services.gateway.domain.uploads import UploadError, UploadState
from services.gateway.store.uploads import UploadStore

NOW = 1_700_000_000.0
CHUNK = 4096
PAYLOAD = os.urandom(3 * CHUNK + 1808)  # four chunks, the last one short


@pytest.fixture
def store(redis: Redis, key_prefix: str) -> UploadStore:
    return UploadStore(redis, prefix=f"{key_prefix}:up", max_total_bytes=1 << 20, max_chunk_bytes=64 << 10)


def chunks_of(payload: bytes) -> list[bytes]:
    return [payload[start : start + CHUNK] for start in range(0, len(payload), CHUNK)]


async def begin(
    store: UploadStore, owner: str = "tenant-a", payload: bytes = PAYLOAD, **kw: str
) -> UploadState:
    return await store.begin(
        owner, "orders.IngestBatch", len(payload), hashlib.sha256(payload).hexdigest(), CHUNK, NOW, **kw
    )


async def send(store: UploadStore, state: UploadState, indexes: list[int], payload: bytes = PAYLOAD) -> None:
    chunks = chunks_of(payload)
    for index in indexes:
        await store.put_chunk(state.owner, state.upload_id, index, chunks[index], NOW)


async def test_chunks_sent_out_of_order_are_assembled_and_verified(store: UploadStore) -> None:
    state = await begin(store)

    await send(store, state, [2, 0, 3, 1])
    payload = await store.assemble("tenant-a", state.upload_id)

    assert state.total_chunks == 4
    assert payload == PAYLOAD
    assert (await store.status("tenant-a", state.upload_id)).status == "verified"


async def test_a_retried_identical_chunk_is_accepted_and_a_different_one_refused(store: UploadStore) -> None:
    state = await begin(store)
    await send(store, state, [0])

    retried = await store.put_chunk("tenant-a", state.upload_id, 0, chunks_of(PAYLOAD)[0], NOW)
    with pytest.raises(UploadError) as refused:
        await store.put_chunk("tenant-a", state.upload_id, 0, bytes(CHUNK), NOW)

    assert retried.received == {0}
    assert (refused.value.code, refused.value.field) == ("failed_precondition", "data")


async def test_after_a_disconnect_the_status_lists_the_missing_chunks_and_the_upload_completes(
    store: UploadStore, infra: Infra, key_prefix: str
) -> None:
    state = await begin(store)
    await send(store, state, [0, 2])

    other_client = Redis.from_url(infra.redis_url)  # the client comes back through another replica
    try:
        other_replica = UploadStore(other_client, prefix=f"{key_prefix}:up", max_total_bytes=1 << 20)
        resumed = await other_replica.status("tenant-a", state.upload_id)
        await send(other_replica, resumed, resumed.missing)
        payload = await other_replica.assemble("tenant-a", state.upload_id)
    finally:
        await other_client.aclose()

    assert resumed.missing == [1, 3]
    assert payload == PAYLOAD


async def test_an_upload_with_missing_chunks_is_not_assembled(store: UploadStore) -> None:
    state = await begin(store)
    await send(store, state, [0, 3])

    with pytest.raises(UploadError, match="2 of 4 chunks are missing") as refused:
        await store.assemble("tenant-a", state.upload_id)

    assert refused.value.code == "failed_precondition"


async def test_a_tampered_chunk_fails_the_checksum_and_nothing_is_handed_over(
    store: UploadStore, redis: Redis, key_prefix: str
) -> None:
    state = await begin(store)
    tampered = bytearray(PAYLOAD)
    tampered[5000] ^= 0xFF
    await send(store, state, [0, 1, 2, 3], payload=bytes(tampered))

    with pytest.raises(UploadError, match="checksum mismatch") as refused:
        await store.assemble("tenant-a", state.upload_id)
    with pytest.raises(UploadError) as again:
        await store.assemble("tenant-a", state.upload_id)

    assert refused.value.code == "failed_precondition"
    assert again.value.code == "failed_precondition"
    assert (await store.status("tenant-a", state.upload_id)).status == "failed"
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}:up:*:c:*")] == []


async def test_a_payload_over_the_size_cap_is_refused(store: UploadStore) -> None:
    with pytest.raises(UploadError) as refused:
        await store.begin("tenant-a", "orders.IngestBatch", (1 << 20) + 1, "0" * 64, CHUNK, NOW)

    assert (refused.value.code, refused.value.field) == ("resource_exhausted", "total_bytes")


async def test_an_owner_may_keep_only_a_few_uploads_open(redis: Redis, key_prefix: str) -> None:
    store = UploadStore(redis, prefix=f"{key_prefix}:up", max_open_per_owner=2)
    first = await begin(store)
    await begin(store)

    with pytest.raises(UploadError) as refused:
        await begin(store)
    others = await begin(store, owner="tenant-b")
    await send(store, first, [0, 1, 2, 3])
    await store.assemble("tenant-a", first.upload_id)
    await store.finish("tenant-a", first.upload_id, b"ok")
    after_finishing_one = await begin(store)

    assert (refused.value.code, refused.value.field) == ("resource_exhausted", "owner")
    assert others.status == after_finishing_one.status == "open"


async def test_beginning_the_same_upload_again_is_idempotent_unless_the_parameters_differ(
    store: UploadStore,
) -> None:
    first = await begin(store, upload_id="client-chosen-1")
    await send(store, first, [1])

    again = await begin(store, upload_id="client-chosen-1")
    with pytest.raises(UploadError) as refused:
        await begin(store, payload=PAYLOAD[:-1], upload_id="client-chosen-1")

    assert again.upload_id == first.upload_id == "client-chosen-1"
    assert again.received == {1}
    assert refused.value.code == "failed_precondition"


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("sha256", {"sha256": "xyz"}),
        ("chunk_bytes", {"chunk_bytes": 0}),
        ("chunk_bytes", {"chunk_bytes": 128 << 10}),
        ("total_bytes", {"total_bytes": 0}),
        ("upload_id", {"upload_id": "no spaces please"}),
    ],
)
async def test_bad_upload_parameters_are_refused_naming_the_field(
    store: UploadStore, field: str, change: dict[str, object]
) -> None:
    arguments: dict[str, object] = {
        "owner": "tenant-a",
        "target": "orders.IngestBatch",
        "total_bytes": 100,
        "sha256": "a" * 64,
        "chunk_bytes": 10,
        "now": NOW,
    } | change

    with pytest.raises(UploadError) as refused:
        await store.begin(**arguments)  # type: ignore[arg-type]

    assert (refused.value.code, refused.value.field) == ("invalid", field)


async def test_another_owner_cannot_tell_the_upload_exists(store: UploadStore) -> None:
    state = await begin(store)
    await send(store, state, [0, 1, 2, 3])

    attempts = [
        store.status("tenant-b", state.upload_id),
        store.put_chunk("tenant-b", state.upload_id, 0, chunks_of(PAYLOAD)[0], NOW),
        store.assemble("tenant-b", state.upload_id),
        store.finish("tenant-b", state.upload_id, b"stolen"),
        store.abort("tenant-b", state.upload_id),
    ]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)

    assert all(isinstance(o, UploadError) and o.code == "not_found" for o in outcomes), outcomes
    assert await store.assemble("tenant-a", state.upload_id) == PAYLOAD


async def test_a_chunk_of_the_wrong_size_or_index_is_refused(store: UploadStore) -> None:
    state = await begin(store)
    chunks = chunks_of(PAYLOAD)

    problems = await asyncio.gather(
        store.put_chunk("tenant-a", state.upload_id, 0, chunks[0][:-1], NOW),
        store.put_chunk("tenant-a", state.upload_id, 3, chunks[3] + b"x", NOW),
        store.put_chunk("tenant-a", state.upload_id, 3, chunks[0], NOW),
        store.put_chunk("tenant-a", state.upload_id, 4, chunks[3], NOW),
        store.put_chunk("tenant-a", state.upload_id, -1, chunks[0], NOW),
        return_exceptions=True,
    )

    assert [(p.code, p.field) for p in problems if isinstance(p, UploadError)] == [
        ("invalid", "data"),
        ("invalid", "data"),
        ("invalid", "data"),
        ("invalid", "index"),
        ("invalid", "index"),
    ]
    assert (await store.status("tenant-a", state.upload_id)).received == frozenset()


async def test_an_abandoned_upload_expires_by_itself(redis: Redis, key_prefix: str) -> None:
    store = UploadStore(redis, prefix=f"{key_prefix}:up", ttl_seconds=0.5)
    state = await begin(store)
    await send(store, state, [0])

    await asyncio.sleep(0.7)

    with pytest.raises(UploadError) as gone:
        await store.status("tenant-a", state.upload_id)
    with pytest.raises(UploadError) as too_late:
        await store.put_chunk("tenant-a", state.upload_id, 1, chunks_of(PAYLOAD)[1], NOW + 0.7)

    assert gone.value.code == too_late.value.code == "not_found"
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}:*")] == []


async def test_sweeping_drops_expired_uploads_from_the_owners_open_set(redis: Redis, key_prefix: str) -> None:
    store = UploadStore(redis, prefix=f"{key_prefix}:up", ttl_seconds=60, max_open_per_owner=2)
    early = await store.begin("tenant-a", "orders.IngestBatch", 10, "a" * 64, 10, NOW)
    await store.begin("tenant-a", "orders.IngestBatch", 10, "a" * 64, 10, NOW + 30)
    await store.begin("tenant-b", "orders.IngestBatch", 10, "a" * 64, 10, NOW + 30)

    swept = await store.sweep(NOW + 61)

    assert swept == 1
    assert (await store.status("tenant-a", early.upload_id)).status == "open"  # Redis still holds it
    declared = [key async for key in redis.scan_iter(match=f"{key_prefix}:up:*:bytes")]
    held = {upload_id for key in declared for upload_id in await redis.hkeys(key)}
    assert early.upload_id.encode() not in held and len(held) == 2


async def test_finishing_stores_the_result_and_a_retried_finish_returns_the_first(
    store: UploadStore, redis: Redis, key_prefix: str
) -> None:
    state = await begin(store)
    await send(store, state, [0, 1, 2, 3])
    await store.assemble("tenant-a", state.upload_id)

    first = await store.finish("tenant-a", state.upload_id, b"batch-42 accepted")
    retried = await store.finish("tenant-a", state.upload_id, b"batch-43 accepted")
    status = await store.status("tenant-a", state.upload_id)
    with pytest.raises(UploadError) as late_chunk:
        await store.put_chunk("tenant-a", state.upload_id, 0, chunks_of(PAYLOAD)[0], NOW)

    assert first.status == retried.status == status.status == "complete"
    assert first.result == retried.result == status.result == b"batch-42 accepted"
    assert late_chunk.value.code == "failed_precondition"
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}:up:*:c:*")] == []


async def test_an_upload_is_not_finished_before_it_is_verified(store: UploadStore) -> None:
    state = await begin(store)
    await send(store, state, [0, 1, 2, 3])

    with pytest.raises(UploadError) as refused:
        await store.finish("tenant-a", state.upload_id, b"too early")

    assert refused.value.code == "failed_precondition"


async def test_of_concurrent_assembles_exactly_one_wins(store: UploadStore) -> None:
    state = await begin(store)
    await send(store, state, [0, 1, 2, 3])

    outcomes = await asyncio.gather(
        *(store.assemble("tenant-a", state.upload_id) for _ in range(8)), return_exceptions=True
    )

    assert [o for o in outcomes if isinstance(o, bytes)] == [PAYLOAD]
    assert all(
        isinstance(o, UploadError) and o.problem == "already completing" for o in outcomes if o != PAYLOAD
    )


async def test_an_owners_open_uploads_declare_at_most_the_quota_and_another_owner_is_not_charged(
    redis: Redis, key_prefix: str
) -> None:
    store = UploadStore(redis, prefix=f"{key_prefix}:up", max_open_per_owner=10, quota_bytes_per_owner=25)
    await store.begin("tenant-a", "orders.IngestBatch", 10, "a" * 64, 10, NOW)
    await store.begin("tenant-a", "orders.IngestBatch", 15, "a" * 64, 10, NOW)

    with pytest.raises(UploadError) as refused:
        await store.begin("tenant-a", "orders.IngestBatch", 1, "a" * 64, 10, NOW)
    others = await store.begin("tenant-b", "orders.IngestBatch", 25, "a" * 64, 10, NOW)

    assert (refused.value.code, refused.value.field) == ("resource_exhausted", "total_bytes")
    assert "quota of 25 bytes" in refused.value.problem and "25 already declared" in refused.value.problem
    assert others.status == "open"


async def test_parallel_begins_cannot_overshoot_the_quota(redis: Redis, key_prefix: str) -> None:
    store = UploadStore(redis, prefix=f"{key_prefix}:up", max_open_per_owner=10, quota_bytes_per_owner=100)

    outcomes = await asyncio.gather(
        *(store.begin("tenant-a", "orders.IngestBatch", 40, "a" * 64, 10, NOW) for _ in range(8)),
        return_exceptions=True,
    )

    begun = [o for o in outcomes if isinstance(o, UploadState)]
    refused = [o for o in outcomes if isinstance(o, UploadError)]
    assert len(begun) == 2 and len(refused) == 6, outcomes
    assert {(o.code, o.field) for o in refused} == {("resource_exhausted", "total_bytes")}


async def test_completing_failing_aborting_or_expiring_an_upload_frees_its_share_of_the_quota(
    redis: Redis, key_prefix: str
) -> None:
    store = UploadStore(
        redis,
        prefix=f"{key_prefix}:up",
        ttl_seconds=60,
        max_open_per_owner=10,
        quota_bytes_per_owner=len(PAYLOAD),
    )

    async def quota_refuses() -> bool:
        try:
            state = await store.begin("tenant-a", "orders.IngestBatch", 1, "a" * 64, 1, NOW + 1)
        except UploadError as error:
            assert (error.code, error.field) == ("resource_exhausted", "total_bytes")
            return True
        await store.abort("tenant-a", state.upload_id)
        return False

    completed = await begin(store)
    assert await quota_refuses()
    await send(store, completed, [0, 1, 2, 3])
    await store.assemble("tenant-a", completed.upload_id)
    await store.finish("tenant-a", completed.upload_id, b"done")
    assert not await quota_refuses()

    failed = await begin(store)
    await send(store, failed, [0, 1, 2, 3], payload=bytes(len(PAYLOAD)))
    with pytest.raises(UploadError):
        await store.assemble("tenant-a", failed.upload_id)
    assert not await quota_refuses()

    aborted = await begin(store)
    await send(store, aborted, [0, 1])
    assert await quota_refuses()
    await store.abort("tenant-a", aborted.upload_id)
    assert not await quota_refuses()

    await store.begin("tenant-a", "orders.IngestBatch", len(PAYLOAD), "a" * 64, CHUNK, NOW)
    assert await quota_refuses()
    # its time is up (Redis drops its keys a little later): the next begin no longer counts it
    expired_by_then = await store.begin("tenant-a", "orders.IngestBatch", 1, "a" * 64, 1, NOW + 61)
    assert expired_by_then.status == "open"


async def test_an_aborted_upload_is_gone_at_once_with_its_chunks_and_its_id_can_begin_afresh(
    store: UploadStore, redis: Redis, key_prefix: str
) -> None:
    state = await begin(store, upload_id="abort-me")
    await send(store, state, [0, 2])

    await store.abort("tenant-a", "abort-me")

    with pytest.raises(UploadError) as gone:
        await store.status("tenant-a", "abort-me")
    with pytest.raises(UploadError) as again:
        await store.abort("tenant-a", "abort-me")
    assert gone.value.code == again.value.code == "not_found"
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}:up:*:abort-me:*")] == []
    afresh = await begin(store, upload_id="abort-me")
    assert afresh.missing == [0, 1, 2, 3]


async def test_an_upload_being_completed_or_ended_is_not_aborted(
    store: UploadStore, redis: Redis, key_prefix: str
) -> None:
    completing = await begin(store)
    await send(store, completing, [0, 1, 2, 3])
    await store.assemble("tenant-a", completing.upload_id)  # verified; the completion lease is held
    complete = await begin(store)
    await send(store, complete, [0, 1, 2, 3])
    await store.assemble("tenant-a", complete.upload_id)
    await store.finish("tenant-a", complete.upload_id, b"done")

    refusals = await asyncio.gather(
        store.abort("tenant-a", completing.upload_id),
        store.abort("tenant-a", complete.upload_id),
        return_exceptions=True,
    )

    assert [(r.code, r.problem) for r in refusals if isinstance(r, UploadError)] == [
        ("failed_precondition", "is being completed"),
        ("failed_precondition", "upload is already complete"),
    ]
    assert (await store.status("tenant-a", completing.upload_id)).status == "verified"
    # the hand-over failed and its lease lapsed: the verified upload may now be given up
    [lease] = [key async for key in redis.scan_iter(match=f"{key_prefix}:up:*:{completing.upload_id}:lock")]
    await redis.delete(lease)
    await store.abort("tenant-a", completing.upload_id)
    with pytest.raises(UploadError) as gone:
        await store.status("tenant-a", completing.upload_id)
    assert gone.value.code == "not_found"
