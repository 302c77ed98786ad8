"""Channels through the whole platform as `make run` starts it: the channel sandbox pushes through Envoy
to the gateway's channel webhook, orders polls the sandbox for what was never pushed, and staff read
each channel's health at GET /v1/channel-health."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest

from omsctl.stack import Platform
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call

pytestmark = pytest.mark.timeout(90)


def sandbox_orders(platform: Platform, channel: str, count: int, push: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{platform.endpoints['channels']}/_control/orders",
        data=json.dumps({"channel": channel, "count": count, "push": push}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return list(json.load(reply)["orders"])


async def test_pushed_and_unpushed_orders_all_arrive_once_and_health_shows_the_channels(
    platform: Platform,
) -> None:
    made = await asyncio.to_thread(sandbox_orders, platform, "taobao", 4, 2)
    assert [order["push_answers"] for order in made[:2]] == [[200], [200]]
    ops = bearer(platform, "ops")

    deadline = time.monotonic() + 30
    while True:
        found = [
            await call(platform, "GET", f"/v1/channel-orders/CHANNEL_TAOBAO/{order['order_id']}", token=ops)
            for order in made
        ]
        if all(status == 200 for status, _, _ in found) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)

    assert [status for status, _, _ in found] == [200, 200, 200, 200]
    status, _, health = await call(platform, "GET", "/v1/channel-health", token=ops)
    assert status == 200
    by_channel = {entry["channel"]: entry for entry in health["channels"]}
    assert set(by_channel) == {"CHANNEL_TAOBAO", "CHANNEL_DOUYIN"}
    taobao = by_channel["CHANNEL_TAOBAO"]
    assert taobao["tokenState"] == "CHANNEL_TOKEN_STATE_VALID"
    assert taobao["lastOrderAt"] and taobao["pollCursor"] and int(taobao["apiCalls"]) >= 2
    assert int(taobao["payloadP99Bytes"]) > 0

    warehouse = bearer(platform, "warehouse")
    refused, _, _ = await call(platform, "GET", "/v1/channel-health", token=warehouse)
    assert refused == 403
