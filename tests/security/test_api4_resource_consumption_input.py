"""API4 Unrestricted resource consumption, exports: an export that outlasts the old 5 s client default
finishes; a stream cut by its caller's deadline ends with an error, never as a complete answer."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

import grpc
import pytest

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata, bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# the platform fixture's orders export 2 orders a chunk and pause 1 s between chunks: 14 orders take 7 s
ORDERS = 14


async def _buyer_with_orders(platform: Platform) -> str:
    buyer = random_ref("export-buyer")
    token = bearer(platform, "admin")
    for _ in range(ORDERS):
        order = order_json(random_ref("dy-export"))
        order["buyerId"] = buyer
        status, _, answer = await call(platform, "POST", "/v1/orders", order, token)
        assert status == 200, answer
    return buyer


def _http_export(platform: Platform, buyer: str, **headers: str) -> tuple[int, list[dict[str, Any]]]:
    host, port = platform.endpoints["envoy"].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        sent = {"content-type": "application/json", "authorization": f"Bearer {bearer(platform, 'admin')}"}
        conn.request("POST", "/v1/order-exports", json.dumps({"filter": {"buyerId": buyer}}), sent | headers)
        reply = conn.getresponse()
        try:
            return reply.status, json.loads(reply.read())
        except http.client.IncompleteRead:
            return reply.status, []  # Envoy reset the stream: the body is cut mid-way
    finally:
        conn.close()


async def test_an_export_longer_than_five_seconds_returns_every_order(platform: Platform) -> None:
    buyer = await _buyer_with_orders(platform)
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        started = asyncio.get_running_loop().time()
        chunks = [
            chunk
            async for chunk in stub.ExportOrders(
                orders_pb2.ExportOrdersRequest(filter=orders_pb2.OrderFilter(buyer_id=buyer)),
                metadata=auth_metadata(platform, "admin"),
                timeout=25,
            )
        ]
        took = asyncio.get_running_loop().time() - started
    assert took > 5.5
    assert len({order.order_id for chunk in chunks for order in chunk.orders}) == ORDERS
    assert [chunk.complete for chunk in chunks][-2:] == [False, True]
    # over HTTP too, the last element saying the export is whole
    status, answer = await asyncio.to_thread(_http_export, platform, buyer)
    assert status == 200, answer
    assert sum(len(chunk["orders"]) for chunk in answer) == ORDERS
    assert answer[-1]["complete"] is True


async def test_an_export_cut_by_the_callers_deadline_never_looks_complete(platform: Platform) -> None:
    buyer = await _buyer_with_orders(platform)
    got = 0
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            async for chunk in stub.ExportOrders(
                orders_pb2.ExportOrdersRequest(filter=orders_pb2.OrderFilter(buyer_id=buyer)),
                metadata=auth_metadata(platform, "admin"),
                timeout=2.5,
            ):
                got += len(chunk.orders)
    # the gateway's DEADLINE_EXCEEDED, or Envoy's reset when its timer fires first
    assert cut.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL)
    assert 0 < got < ORDERS
    # Envoy ends a transcoded stream cut after its first data as a well-formed JSON array with HTTP 200
    # (the grpc-status goes into trailers an HTTP/1.1 client does not see), or its body is cut mid-way
    # when Envoy resets it: either way no element says `complete`
    status, answer = await asyncio.to_thread(_http_export, platform, buyer, **{"grpc-timeout": "2500m"})
    assert status == 200
    assert sum(len(chunk["orders"]) for chunk in answer) < ORDERS
    assert not any(chunk["complete"] for chunk in answer)
