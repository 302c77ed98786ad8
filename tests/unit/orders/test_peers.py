"""How a peer's failure is classified: permanent (hold at once), an outage (wait it out), or unexpected."""

from __future__ import annotations

import grpc
import pytest

from services.kit.errors import InvalidArgument
from services.kit.status import DETAILS_KEY, bad_request
from services.orders.peers import PeerFailed, PeerRefused, PeerUnavailable, _call


async def failing(code: grpc.StatusCode, details: str, *violations: tuple[str, str]) -> None:
    """What a peer's failed call raises; field violations travel in the status details, as the kit's
    servers send them."""
    trailers = grpc.aio.Metadata()
    if violations:
        trailers = grpc.aio.Metadata(
            (DETAILS_KEY, bad_request(InvalidArgument.of(violations)).SerializeToString())
        )
    raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details)


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
    ],
)
async def test_a_refusal_is_permanent_and_says_why_in_words(code: grpc.StatusCode) -> None:
    with pytest.raises(PeerRefused) as refused:
        await _call(
            failing(code, "lines[0].sku: unknown SKU SKU-X", ("lines[0].sku", "unknown SKU SKU-X")), "routing"
        )
    assert refused.value.message == "routing: unknown SKU SKU-X (lines[0].sku)"
    assert refused.value.status is code


async def test_a_refusal_names_its_first_field_from_the_details_not_from_the_message() -> None:
    violations = [("lines[1].sku", "unknown SKU B"), ("lines[2].sku", "unknown SKU C")]
    with pytest.raises(PeerRefused) as refused:
        await _call(failing(grpc.StatusCode.INVALID_ARGUMENT, "request refused", *violations), "routing")
    assert refused.value.message == "routing: unknown SKU B (lines[1].sku)"


async def test_a_message_that_only_looks_like_a_field_and_problem_is_kept_as_words() -> None:
    with pytest.raises(PeerRefused) as refused:
        await _call(failing(grpc.StatusCode.FAILED_PRECONDITION, "order_id: already committed"), "inventory")
    assert refused.value.message == "inventory: order_id: already committed"


async def test_a_refusal_without_a_field_keeps_the_peers_words() -> None:
    with pytest.raises(PeerRefused) as refused:
        await _call(failing(grpc.StatusCode.NOT_FOUND, "reservation for order o-1 not found"), "inventory")
    assert refused.value.message == "inventory: reservation for order o-1 not found"


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    ],
)
async def test_an_outage_is_transient_and_names_the_peer(code: grpc.StatusCode) -> None:
    with pytest.raises(PeerUnavailable) as down:
        await _call(failing(code, "connection refused"), "routing")
    assert down.value.peer == "routing" and code.name in down.value.message


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS]
)
async def test_anything_else_is_unexpected_and_spends_an_attempt(code: grpc.StatusCode) -> None:
    with pytest.raises(PeerFailed):
        await _call(failing(code, "internal error"), "inventory")
