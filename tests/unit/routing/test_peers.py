from __future__ import annotations

import grpc

from services.kit.errors import InvalidArgument
from services.kit.status import DETAILS_KEY, bad_request
from services.routing.peers import refusal


def refused(details: str, trailers: grpc.aio.Metadata) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), trailers, details)


def test_inventorys_refusal_is_read_from_the_field_violations_not_from_its_message() -> None:
    sent = InvalidArgument("skus[2]", "unknown SKU X: not in the catalogue", ("skus[4]", "unknown SKU Y"))
    trailers = grpc.aio.Metadata((DETAILS_KEY, bad_request(sent).SerializeToString()))

    error = refusal(refused("a message worded any way", trailers))

    assert error.violations == (
        ("skus[2]", "unknown SKU X: not in the catalogue"),
        ("skus[4]", "unknown SKU Y"),
    )


def test_a_refusal_without_details_is_still_a_refusal_of_the_skus() -> None:
    error = refusal(refused("skus[0]: unknown SKU X", grpc.aio.Metadata()))

    assert (error.field, error.problem) == ("skus", "skus[0]: unknown SKU X")
