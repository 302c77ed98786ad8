"""Envoy's authoriser of direct reads: which methods may go direct, what a call must be to go, and the
assertion it carries; everything else is sent on through the gateway's proxy (never refused here)."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from oms.orders.v1 import orders_pb2
from services.gateway import auth
from services.gateway.domain.policy import POLICY, Reach, direct_read, rule_for
from services.gateway.edge_authz import EdgeAuthoriser, unframed, well_formed
from services.gateway.gate import Gate
from services.gateway.limits import LocalTokenBucket, RateLimiter, parse_limits
from services.gateway.routes import public_proto_modules
from tests import identity
from tests.unit.gateway.test_auth import hs_settings
from tests.unit.gateway.test_local_limiter import FlakyRedisBucket

public_proto_modules()
GET_ORDER = "/oms.orders.v1.OrdersService/GetOrder"
NOW = time.time()


def frame(message: bytes, compressed: bool = False) -> bytes:
    return bytes([1 if compressed else 0]) + len(message).to_bytes(4, "big") + message


def test_the_direct_lane_holds_plain_reads_only() -> None:
    assert direct_read(GET_ORDER)
    assert direct_read("oms.inventory.v1.InventoryService/GetSku")  # shared reference data
    for method in (
        "/oms.orders.v1.OrdersService/IngestOrder",  # mutating: its audit record is owed
        "/oms.orders.v1.OrdersService/ExportOrders",  # an export, limited as an upload
        "/oms.gateway.v1.GatewayService/GetUpload",  # the gateway's own
        "/oms.gateway.v1.GatewayService/ExchangeToken",  # public
        "/oms.orders.v1.OrdersService/NoSuchMethod",
    ):
        assert not direct_read(method), method
    for method, rule in POLICY.items():  # an order-reach read needs the gateway's look at the order
        if rule.reach is Reach.ORDER:
            assert not direct_read(method), method


def test_a_request_body_is_one_uncompressed_grpc_message_or_nothing() -> None:
    message = orders_pb2.GetOrderRequest(order_id="o-1").SerializeToString()
    assert unframed(frame(message)) == message
    assert unframed(frame(b"")) == b""
    assert unframed(frame(message, compressed=True)) is None
    assert unframed(frame(message)[:-1]) is None  # shorter than it says
    assert unframed(frame(message) + b"\x00") is None  # a second message, or trailing bytes
    assert unframed(b"\x00\x00") is None


def test_only_a_call_the_proxy_would_forward_is_well_formed() -> None:
    good = orders_pb2.GetOrderRequest(order_id="o-1").SerializeToString()
    assert well_formed(GET_ORDER, good, "")
    assert well_formed(GET_ORDER, good, "orderId")
    assert not well_formed(GET_ORDER, b"\xff\xff\xff\xff", "")
    assert not well_formed(GET_ORDER, orders_pb2.GetOrderRequest(order_id="o\x00-1").SerializeToString(), "")
    # a JSON body's unknown field (GetOrder has no body: its query is the transcoder's to refuse)
    ingest = "/oms.orders.v1.OrdersService/IngestOrder"
    assert well_formed(ingest, b"", "channel,buyerId")
    assert not well_formed(ingest, b"", "channel,sneaky")
    assert not well_formed("/oms.orders.v1.OrdersService/NoSuchMethod", good, "")


def gate(limits: str = "read=100/s:200") -> Gate:
    return Gate(
        jwt=hs_settings(),
        api_keys={},
        signature_window_seconds=300,
        redis=cast(Any, None),
        limiter=RateLimiter(FlakyRedisBucket(), LocalTokenBucket()),
        limits=parse_limits(limits),
        new_uow=lambda: cast(Any, None),
        signer=identity.signer(),
        wall=lambda: NOW,
    )


def bearer(*roles: str, **claims: str) -> dict[str, str]:
    token = auth.issue_token(hs_settings(), "user-7", roles, NOW, kind="user", **claims)
    return {"authorization": f"Bearer {token}"}


async def test_an_admitted_read_carries_the_callers_assertion_for_the_owning_service() -> None:
    authoriser = EdgeAuthoriser(gate())
    body = frame(orders_pb2.GetOrderRequest(order_id="o-1").SerializeToString())
    assertion = await authoriser.decide(GET_ORDER, bearer("customer", customer_id="c-9"), body)
    assert assertion is not None
    principal = identity.verifier().verify(assertion, "orders")
    assert (principal.subject, principal.customer_id, principal.roles) == (
        "user-7",
        "c-9",
        frozenset({"customer"}),
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no credentials: the proxy answers UNAUTHENTICATED
        {"authorization": "Bearer not-a-token"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"x-oms-key-id": "k1", "x-oms-signature": "s"},  # a signed call: the proxy checks its signature
    ],
    ids=["none", "bad-token", "not-bearer", "signed"],
)
async def test_a_call_without_a_good_bearer_token_goes_through_the_proxy(headers: dict[str, str]) -> None:
    body = frame(orders_pb2.GetOrderRequest(order_id="o-1").SerializeToString())
    assert await EdgeAuthoriser(gate()).decide(GET_ORDER, headers, body) is None


async def test_a_role_that_may_not_read_or_a_caller_past_its_limit_goes_through_the_proxy() -> None:
    body = frame(orders_pb2.GetOrderRequest(order_id="o-1").SerializeToString())
    assert rule_for(GET_ORDER) is not None
    assert await EdgeAuthoriser(gate()).decide(GET_ORDER, bearer("wms"), body) is None
    tight = EdgeAuthoriser(gate("read=1/s:1"))
    assert await tight.decide(GET_ORDER, bearer("ops"), body) is not None
    assert await tight.decide(GET_ORDER, bearer("ops"), body) is None  # the proxy says RESOURCE_EXHAUSTED
    written = EdgeAuthoriser(gate())
    ingest = "/oms.orders.v1.OrdersService/IngestOrder"
    assert await written.decide(ingest, bearer("ops"), frame(b"")) is None
