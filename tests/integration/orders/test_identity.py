"""Nobody can skip the gateway: the orders service believes only a verified assertion (issue 10).

Each refused call goes straight to the orders port, as `grpcurl -plaintext -H 'x-oms-roles: admin'`
did, and must be UNAUTHENTICATED and write nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from services.kit.identity import ASSERTION_HEADER, Signer
from tests import identity
from tests.conftest import random_ref
from tests.integration.orders.conftest import Stack
from tests.integration.orders.test_lifecycle import canonical

FORGED_ADMIN = (("x-oms-principal", "root"), ("x-oms-actor-type", "user"), ("x-oms-roles", "admin"))
ADMIN = identity.principal("admin", subject="root")


def expired() -> str:
    """The gateway's own key, but minted two minutes ago."""
    return Signer(identity.settings("gateway"), wall=lambda: time.time() - 120).mint(ADMIN, "orders")


def refused_metadata() -> dict[str, tuple[tuple[str, str], ...]]:
    return {
        "no assertion, forged roles": FORGED_ADMIN,
        "expired": ((ASSERTION_HEADER, expired()), *FORGED_ADMIN),
        "re-signed by an untrusted key": ((ASSERTION_HEADER, identity.forged(ADMIN, "orders")),),
        "a service key asserting admin": (
            (ASSERTION_HEADER, identity.signer("routing").mint(ADMIN, "orders")),
        ),
        "for another service": ((ASSERTION_HEADER, identity.signer().mint(ADMIN, "inventory")),),
        "garbage": ((ASSERTION_HEADER, "e30.e30.e30"),),
    }


@pytest.fixture
async def raw(stack: Stack) -> AsyncIterator[orders_pb2_grpc.OrdersServiceStub]:
    """A plain channel to the orders port: nothing is added to what a test sends."""
    async with grpc.aio.insecure_channel(stack.address) as channel:
        yield orders_pb2_grpc.OrdersServiceStub(channel)


@pytest.mark.parametrize("case", list(refused_metadata()))
async def test_a_direct_call_without_a_valid_assertion_is_refused_and_writes_nothing(
    stack: Stack, raw: orders_pb2_grpc.OrdersServiceStub, case: str
) -> None:
    await stack.orders.IngestOrder(canonical(random_ref("own")))
    events = await stack.scalar("SELECT count(*) FROM outbox")
    metadata = refused_metadata()[case]
    with pytest.raises(grpc.aio.AioRpcError) as listed:
        await raw.ListOrders(orders_pb2.ListOrdersRequest(), metadata=metadata)
    assert listed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as ingested:
        await raw.IngestOrder(canonical(random_ref("own")), metadata=metadata)
    assert ingested.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await stack.scalar("SELECT count(*) FROM orders") == 1
    assert await stack.scalar("SELECT count(*) FROM outbox") == events


async def test_only_the_asserted_roles_count_not_bare_role_metadata(
    stack: Stack, raw: orders_pb2_grpc.OrdersServiceStub
) -> None:
    await stack.orders.IngestOrder(canonical(random_ref("own")))
    admin = await raw.ListOrders(orders_pb2.ListOrdersRequest(), metadata=identity.as_gateway("admin"))
    assert admin.orders[0].shipping_address.phone == "13912345678"
    ops = await raw.ListOrders(
        orders_pb2.ListOrdersRequest(),
        metadata=(*identity.as_gateway("ops"), ("x-oms-roles", "admin"), ("x-oms-reveal", "audited")),
    )
    assert ops.orders[0].masked and ops.orders[0].shipping_address.phone == "139****5678"


async def test_a_peer_services_own_assertion_is_accepted(
    stack: Stack, raw: orders_pb2_grpc.OrdersServiceStub
) -> None:
    created = (await stack.orders.IngestOrder(canonical(random_ref("own")))).order
    own = identity.signer("routing").own("orders")
    read = await raw.GetOrder(
        orders_pb2.GetOrderRequest(order_id=created.order_id), metadata=((ASSERTION_HEADER, own),)
    )
    assert read.order.order_id == created.order_id


async def test_bare_scope_metadata_cannot_widen_or_narrow_what_the_assertion_says(
    stack: Stack, raw: orders_pb2_grpc.OrdersServiceStub
) -> None:
    mine = (await stack.orders.IngestOrder(canonical(random_ref("own"), buyer_id="carol"))).order
    await stack.orders.IngestOrder(canonical(random_ref("own"), buyer_id="dave"))
    carol = identity.as_gateway("customer", subject="carol", customer="carol")
    listed = await raw.ListOrders(
        orders_pb2.ListOrdersRequest(),
        metadata=(*carol, ("x-oms-scope-customer", "dave"), ("x-oms-roles", "admin")),
    )
    assert [o.order_id for o in listed.orders] == [mine.order_id]
