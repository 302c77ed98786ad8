"""The channel sandbox as a real process over HTTP: Taobao TOP and Douyin calls signed here with the
sandbox's own protocol functions, tokens that expire and refresh, paging by modified time, error shapes,
habits, and pushes signed as the gateway checks them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omsctl.stack import CHANNEL_APPS
from sandboxes.channels.protocols import douyin, taobao
from tests.channels_sandbox import ChannelSandbox, Hooks, hooks_running, running

pytestmark = pytest.mark.timeout(60)
TB, DY = CHANNEL_APPS["taobao"], CHANNEL_APPS["douyin"]


@pytest.fixture(scope="module")
async def hooks() -> AsyncIterator[Hooks]:
    async with hooks_running() as running_hooks:
        yield running_hooks


@pytest.fixture(scope="module")
async def running_sandbox(hooks: Hooks) -> AsyncIterator[ChannelSandbox]:
    async with running(hooks.url) as sandbox:
        yield sandbox


@pytest.fixture
async def sandbox(running_sandbox: ChannelSandbox, hooks: Hooks) -> ChannelSandbox:
    await running_sandbox.reset()
    hooks.received.clear()
    return running_sandbox


async def taobao_token(sandbox: ChannelSandbox, refresh_token: str = TB["refresh_token"]) -> tuple[int, Any]:
    form = {
        "grant_type": "refresh_token",
        "client_id": TB["app_key"],
        "client_secret": TB["app_secret"],
        "refresh_token": refresh_token,
    }
    async with sandbox.session.post(f"{sandbox.base}/token", data=form) as response:
        return response.status, await response.json()


async def increment(
    sandbox: ChannelSandbox, session: str, page_no: int = 1, span_hours: float = 1, forged: str = ""
) -> Any:
    now = datetime.now(UTC)
    params = {
        "method": taobao.INCREMENT_GET,
        "app_key": TB["app_key"],
        "session": session,
        "timestamp": taobao.format_time(now),
        "v": "2.0",
        "format": "json",
        "sign_method": "md5",
        "start_modified": taobao.format_time(now - timedelta(hours=span_hours)),
        "end_modified": taobao.format_time(now + timedelta(seconds=5)),
        "page_no": str(page_no),
        "page_size": "2",
        "use_has_next": "true",
    }
    params["sign"] = forged or taobao.sign(params, TB["app_secret"])
    async with sandbox.session.post(f"{sandbox.base}/router/rest", data=params) as response:
        return await response.json()


async def douyin_call(sandbox: ChannelSandbox, method: str, params: dict[str, Any], token: str = "") -> Any:
    body = douyin.param_json(params)
    stamp = taobao.format_time(datetime.now(UTC))
    query = {
        "app_key": DY["app_key"],
        "method": method,
        "v": "2",
        "timestamp": stamp,
        "sign_method": "hmac-sha256",
    }
    query["sign"] = douyin.sign(DY["app_key"], DY["app_secret"], method, body, stamp, "2", "hmac-sha256")
    if token:
        query["access_token"] = token
    async with sandbox.session.post(
        f"{sandbox.base}{douyin.path_of(method)}", params=query, data=body
    ) as response:
        return await response.json()


async def test_taobao_pages_orders_modified_in_the_window_with_a_refreshed_session(
    sandbox: ChannelSandbox,
) -> None:
    await sandbox.make("taobao", 3, push=0)
    status, token = await taobao_token(sandbox)
    assert status == 200 and token["expires_in"] == 86400 and token["refresh_token"]

    first = (await increment(sandbox, token["access_token"]))["trades_sold_increment_get_response"]
    second = (await increment(sandbox, token["access_token"], 2))["trades_sold_increment_get_response"]

    assert (len(first["trades"]["trade"]), first["has_next"]) == (2, True)
    assert (len(second["trades"]["trade"]), second["has_next"]) == (1, False)
    assert {t["status"] for t in first["trades"]["trade"]} == {"WAIT_SELLER_SEND_GOODS"}


async def test_taobao_refuses_a_bad_session_a_bad_sign_and_a_window_over_a_day(
    sandbox: ChannelSandbox,
) -> None:
    _, token = await taobao_token(sandbox)

    bad_session = await increment(sandbox, "6201nonsense")
    bad_sign = await increment(sandbox, token["access_token"], forged="0" * 32)
    too_long = await increment(sandbox, token["access_token"], span_hours=25)
    status, refused = await taobao_token(sandbox, "not-a-refresh-token")

    assert bad_session["error_response"]["code"] == 27
    assert bad_session["error_response"]["sub_code"] == "invalid-sessionkey"
    assert bad_session["error_response"]["msg"] == "Invalid session"
    assert too_long["error_response"]["code"] == 41
    assert (status, refused["error"]) == (400, "invalid_grant")
    assert bad_sign["error_response"]["code"] == 25


async def test_a_short_lived_token_lapses_and_a_revoked_one_is_refused(sandbox: ChannelSandbox) -> None:
    await sandbox.control("douyin", token_lifetime_s=1)
    created = await douyin_call(
        sandbox, douyin.TOKEN_REFRESH, {"grant_type": "refresh_token", "refresh_token": DY["refresh_token"]}
    )
    assert created["code"] == 10000 and created["data"]["expires_in"] == 1
    await asyncio.sleep(1.1)
    window = {
        "update_time_start": int(time.time()) - 60,
        "update_time_end": int(time.time()),
        "page": 0,
        "size": 10,
    }

    expired = await douyin_call(sandbox, douyin.SEARCH_LIST, window, created["data"]["access_token"])
    assert (expired["code"], expired["msg"]) == (30002, "access_token已过期")

    await sandbox.control("taobao", token_lifetime_s=3600)
    _, token = await taobao_token(sandbox)
    await sandbox.revoke("taobao")
    assert (await increment(sandbox, token["access_token"]))["error_response"]["code"] == 27


async def test_douyin_pages_by_update_time_and_spikes_errors_on_demand(sandbox: ChannelSandbox) -> None:
    await sandbox.make("douyin", 3, push=0)
    token = (
        await douyin_call(
            sandbox,
            douyin.TOKEN_REFRESH,
            {"grant_type": "refresh_token", "refresh_token": DY["refresh_token"]},
        )
    )["data"]["access_token"]
    window = {
        "update_time_start": int(time.time()) - 60,
        "update_time_end": int(time.time()) + 5,
        "page": 1,
        "size": 2,
    }

    page = await douyin_call(sandbox, douyin.SEARCH_LIST, window, token)
    await sandbox.control("douyin", failure_rate=1.0)
    busy = await douyin_call(sandbox, douyin.SEARCH_LIST, window, token)

    assert (page["code"], page["data"]["total"], len(page["data"]["shop_order_list"])) == (10000, 3, 1)
    assert busy["code"] == 50002
    assert (await sandbox.shown())["calls"]["douyin"]["code_50002"] == 1


async def test_orders_are_pushed_signed_only_as_asked_and_not_while_the_push_is_stopped(
    sandbox: ChannelSandbox, hooks: Hooks
) -> None:
    async def ingest(channel: str, body: bytes) -> str:
        return channel

    hooks.ingest = ingest
    made = await sandbox.make("taobao", 3, push=2)
    await sandbox.control("taobao", push_enabled=False)
    await sandbox.make("taobao", 2)

    assert hooks.received == [("taobao", 200), ("taobao", 200)]
    assert [order["pushed"] for order in made] == [True, True, False]


async def test_padding_grows_the_payload(sandbox: ChannelSandbox) -> None:
    await sandbox.control("douyin", pad_bytes=100_000)
    (order,) = await sandbox.make("douyin", 1, push=0)
    assert 100_000 <= order["size_bytes"] < 110_000
