"""Uploads on a fake store and a fake orders: the target-rights decision at begin and at complete, the
first answer kept, the target's refusals as the uploader's errors."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from services.gateway.domain.attempts import AttemptReason
from services.gateway.domain.errors import UpstreamFailure
from services.gateway.domain.uploads import BeginUpload, Target, UploadStatus
from services.gateway.handlers.uploads import Uploads
from services.kit.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from tests.unit.gateway.fakes import FakeAudit, FakeOrders, FakeUploads, caller

NOW = 1_700_000_000.0
PAYLOAD = b'{"channel": "CHANNEL_TAOBAO", "orders": [{"tid": "1"}]}'
OPS = caller("ops-1", "ops")
FINANCE = caller("fin-1", "finance")
CHANNEL = caller("tb-key", "channel", channel="TAOBAO", kind="integration")


def begin(target: Target | None = Target.ORDERS_BATCH, chunk_bytes: int = 16) -> BeginUpload:
    return BeginUpload(target, len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(), chunk_bytes)


def uploads(orders: FakeOrders | None = None) -> tuple[Uploads, FakeUploads, FakeOrders, FakeAudit]:
    store, orders, audit = FakeUploads(), orders or FakeOrders(), FakeAudit()
    return Uploads(store, orders, audit, lambda: NOW), store, orders, audit


async def send_all(handler: Uploads, who: str, upload_id: str, chunk_bytes: int = 16) -> None:
    for index, start in enumerate(range(0, len(PAYLOAD), chunk_bytes)):
        await handler.put_chunk(caller(who, "ops"), upload_id, index, PAYLOAD[start : start + chunk_bytes])


@pytest.mark.parametrize(
    ("who", "target", "method"),
    [
        (FINANCE, Target.ORDERS_BATCH, "IngestOrders"),
        (FINANCE, Target.ORDER, "IngestOrders"),
        (CHANNEL, Target.PAYMENT_STATEMENT, "ImportStatement"),
    ],
)
async def test_an_upload_to_a_target_its_uploader_may_not_call_is_refused_before_a_byte_is_stored(
    who: object, target: Target, method: str
) -> None:
    handler, store, _, audit = uploads()

    with pytest.raises(PermissionDenied, match=f"handed to {method}, which this caller may not call"):
        await handler.begin(who, begin(target), "BeginUpload")  # type: ignore[arg-type]

    assert store.calls == [] and not store.uploads
    [(_, attempted, result, reason)] = audit.attempts
    assert (attempted, result, reason) == (
        "/oms.gateway.v1.GatewayService/BeginUpload",
        "PERMISSION_DENIED",
        AttemptReason.TARGET_NOT_ALLOWED,
    )


@pytest.mark.parametrize(
    ("who", "target"),
    [(FINANCE, Target.PAYMENT_STATEMENT), (CHANNEL, Target.ORDERS_BATCH), (OPS, Target.PAYMENT_STATEMENT)],
)
async def test_an_uploader_allowed_to_call_the_target_may_begin(who: object, target: Target) -> None:
    handler, _, _, audit = uploads()

    state = await handler.begin(who, begin(target), "BeginUpload")  # type: ignore[arg-type]

    assert state.status == UploadStatus.OPEN and state.target == target and not audit.attempts


async def test_an_unknown_target_is_named_as_the_bad_field() -> None:
    handler, store, _, _ = uploads()

    with pytest.raises(InvalidArgument) as refused:
        await handler.begin(OPS, begin(None), "BeginUpload")

    assert refused.value.field == "target" and not store.calls


async def test_completing_hands_over_the_payload_as_the_uploader_once_a_repeat_gets_the_first_answer() -> (
    None
):
    handler, _, orders, _ = uploads()
    state = await handler.begin(OPS, begin(), "BeginUpload")
    await send_all(handler, "ops-1", state.upload_id)

    first = await handler.complete(OPS, state.upload_id, "CompleteUpload")
    orders.answer = b"a different answer"
    again = await handler.complete(OPS, state.upload_id, "CompleteUpload")

    assert orders.handed == [("ops-1", "orders.batch", PAYLOAD)]
    assert first.state.status == UploadStatus.COMPLETE and first.result == again.result == b"\x12\x02\x08\x01"


async def test_a_completed_upload_is_not_handed_back_to_a_caller_who_lost_the_right_to_its_target() -> None:
    handler, _, orders, audit = uploads()
    state = await handler.begin(OPS, begin(Target.PAYMENT_STATEMENT), "BeginUpload")
    await send_all(handler, "ops-1", state.upload_id)
    demoted = caller("ops-1", "warehouse")

    with pytest.raises(PermissionDenied):
        await handler.complete(demoted, state.upload_id, "CompleteUpload")

    assert not orders.handed and audit.attempts[0][3] == AttemptReason.TARGET_NOT_ALLOWED


async def test_another_principals_upload_is_not_found() -> None:
    handler, _, _, _ = uploads()
    state = await handler.begin(OPS, begin(), "BeginUpload")

    with pytest.raises(NotFound):
        await handler.complete(caller("ops-2", "ops"), state.upload_id, "CompleteUpload")


async def test_the_targets_field_refusal_names_the_payloads_field_and_the_upload_stays_verified() -> None:
    refusal = UpstreamFailure(
        "INVALID_ARGUMENT", "items[0].channel_order: refused", (("items[0].channel_order", "refused"),)
    )
    handler, store, _, _ = uploads(FakeOrders(failure=refusal))
    state = await handler.begin(OPS, begin(), "BeginUpload")
    await send_all(handler, "ops-1", state.upload_id)

    with pytest.raises(InvalidArgument) as refused:
        await handler.complete(OPS, state.upload_id, "CompleteUpload")

    assert (refused.value.field, refused.value.problem) == ("payload.items[0].channel_order", "refused")
    assert (await store.status("ops-1", state.upload_id)).status == UploadStatus.VERIFIED


async def test_a_target_refusing_the_uploader_counts_as_a_failed_attempt() -> None:
    handler, _, _, audit = uploads(FakeOrders(failure=UpstreamFailure("PERMISSION_DENIED", "not yours")))
    state = await handler.begin(CHANNEL, begin(), "BeginUpload")
    for index, start in enumerate(range(0, len(PAYLOAD), 16)):
        await handler.put_chunk(CHANNEL, state.upload_id, index, PAYLOAD[start : start + 16])

    with pytest.raises(PermissionDenied, match="not yours"):
        await handler.complete(CHANNEL, state.upload_id, "CompleteUpload")

    assert audit.attempts == [
        ("tb-key", "/oms.gateway.v1.GatewayService/CompleteUpload", "PERMISSION_DENIED", "service_refused")
    ]


async def test_a_target_outage_is_passed_on_and_an_unknown_failure_stays_one() -> None:
    handler, _, orders, _ = uploads(FakeOrders(failure=UpstreamFailure("UNAVAILABLE", "orders is down")))
    state = await handler.begin(OPS, begin(), "BeginUpload")
    await send_all(handler, "ops-1", state.upload_id)

    with pytest.raises(Unavailable, match="orders is down"):
        await handler.complete(OPS, state.upload_id, "CompleteUpload")
    orders.failure = UpstreamFailure("DEADLINE_EXCEEDED", "too slow")
    with pytest.raises(UpstreamFailure):
        await handler.complete(OPS, state.upload_id, "CompleteUpload")


async def parts(*items: BeginUpload | bytes) -> AsyncIterator[BeginUpload | bytes]:
    for item in items:
        yield item


async def test_a_stream_resumes_an_upload_skipping_the_chunks_it_already_holds() -> None:
    handler, _, orders, _ = uploads()
    command = BeginUpload(Target.ORDERS_BATCH, len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(), 16, "u-1")
    await handler.begin(OPS, command, "BeginUpload")
    await handler.put_chunk(OPS, "u-1", 1, PAYLOAD[16:32])

    done = await handler.stream(
        OPS, parts(command, PAYLOAD[:16], PAYLOAD[32:48], PAYLOAD[48:]), "UploadStream"
    )

    assert done.state.status == UploadStatus.COMPLETE and orders.handed == [
        ("ops-1", "orders.batch", PAYLOAD)
    ]


@pytest.mark.parametrize(
    ("items", "problem"),
    [((b"chunk",), "must come before the chunks"), ((), "is required")],
)
async def test_a_stream_without_its_header_first_is_refused(items: tuple[bytes, ...], problem: str) -> None:
    handler, _, _, _ = uploads()

    with pytest.raises(InvalidArgument, match=problem):
        await handler.stream(OPS, parts(*items), "UploadStream")


async def test_a_stream_with_a_second_header_is_refused() -> None:
    handler, _, _, _ = uploads()

    with pytest.raises(InvalidArgument, match="comes once, first"):
        await handler.stream(OPS, parts(begin(), begin()), "UploadStream")
