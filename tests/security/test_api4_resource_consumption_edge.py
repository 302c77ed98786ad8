"""API4 Unrestricted Resource Consumption: wrong client secrets are throttled with growing back-off, and
one principal cannot hold an unbounded number of WatchAlerts streams."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from oms.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from omsctl.stack import Platform
from services.gateway.credentials import ThrottleSettings
from tests.conftest import random_ref
from tests.e2e.conftest import auth_metadata
from tests.e2e.test_edge import call

pytestmark = pytest.mark.e2e

# the gateway's defaults, which the session's platform runs with
FREE_FAILURES_PER_CLIENT = ThrottleSettings().free_per_client
WATCH_STREAMS_PER_PRINCIPAL = 5


async def _wrong_secret(platform: Platform, client_id: str) -> tuple[int, dict[str, str], object]:
    return await call(platform, "POST", "/v1/tokens", {"clientId": client_id, "clientSecret": "wrong"})


async def test_wrong_client_secrets_are_throttled_per_client_id_with_growing_back_off(
    platform: Platform,
) -> None:
    client_id = random_ref("guessed-")
    # spaced under the anonymous rate limit (5/s), so only the credential throttle can answer 429
    for _ in range(FREE_FAILURES_PER_CLIENT + 1):
        status, _, body = await _wrong_secret(platform, client_id)
        assert status == 401, body
        await asyncio.sleep(0.25)
    status, headers, body = await _wrong_secret(platform, client_id)
    assert status == 429, body
    assert "failed attempts" in str(body) and headers.get("retry-after") == "1", (headers, body)
    await asyncio.sleep(1.2)
    status, _, body = await _wrong_secret(platform, client_id)
    assert status == 401, body
    status, headers, body = await _wrong_secret(platform, client_id)
    assert status == 429 and headers.get("retry-after") == "2", (status, headers, body)


async def test_one_principal_holds_at_most_its_cap_of_watch_alerts_streams(platform: Platform) -> None:
    watcher = random_ref("watcher-")
    async with grpc.aio.insecure_channel(platform.endpoints["envoy"]) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        def watch(sub: str) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
            return stub.WatchAlerts(
                gateway_pb2.WatchAlertsRequest(), metadata=auth_metadata(platform, "ops", sub=sub), timeout=30
            )

        held = [watch(watcher) for _ in range(WATCH_STREAMS_PER_PRINCIPAL)]
        try:
            # a stream that is admitted stays open: it answers nothing until an alert comes
            await asyncio.sleep(1.5)
            assert not any(stream.done() for stream in held)
            over = watch(watcher)
            assert await asyncio.wait_for(over.code(), 5) == grpc.StatusCode.RESOURCE_EXHAUSTED
            other = watch(random_ref("other-watcher-"))
            held.append(other)
            # closing a stream gives its place back
            held.pop(0).cancel()
            await asyncio.sleep(0.5)
            again = watch(watcher)
            held.append(again)
            await asyncio.sleep(1.5)
            assert not other.done() and not again.done()
        finally:
            for stream in held:
                with contextlib.suppress(Exception):
                    stream.cancel()
