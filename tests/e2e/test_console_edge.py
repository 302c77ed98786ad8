"""The console's server side through Envoy: its files on the API's origin with a strict content
security policy, console users kept by admins, and a password exchanged for a user's token whose row
scope is the user's."""

from __future__ import annotations

import argparse
import asyncio
import io
from typing import Any

import pytest

from omsctl import users
from omsctl.stack import Platform, write_state
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_logistics_edge import until
from tests.e2e.test_walking_skeleton import order_json


async def test_the_console_page_and_its_files_are_served_with_a_strict_policy(platform: Platform) -> None:
    for path in ("/console", "/console/", "/console/index.html"):
        status, headers, page = await call(platform, "GET", path)
        assert status == 200, (path, page)
        assert headers["content-type"].startswith("text/html")
        assert b'<script src="/console/core.js">' in page
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    status, headers, script = await call(platform, "GET", "/console/core.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert b"localStorage" not in script  # the token lives in memory only
    for missing in ("/console/nope.js", "/console/..%2f..%2fREADME.md", "/console/../gateway/auth.py"):
        status, _, _ = await call(platform, "GET", missing)
        assert status == 404, missing


async def test_only_an_admin_keeps_users_and_a_bad_user_is_refused_naming_the_field(
    platform: Platform,
) -> None:
    admin = bearer(platform, "admin", sub="e2e-admin")
    sub = random_ref("ana")
    body = {"subject": sub, "password": "long-enough-pass", "roles": ["ops"]}
    status, _, refused = await call(platform, "POST", "/v1/users", body, bearer(platform, "ops"))
    assert status == 403, refused
    status, _, made = await call(platform, "POST", "/v1/users", body, admin)
    assert status == 200 and made["created"] is True and made["roles"] == ["ops"], made
    status, _, again = await call(platform, "POST", "/v1/users", body, admin)
    assert status == 200 and again["created"] is False
    for bad, field in (
        ({**body, "password": "short"}, "password"),
        ({**body, "roles": ["service"]}, "roles"),
        ({**body, "roles": ["root"]}, "roles"),
        ({**body, "roles": ["customer"]}, "customer_id"),
        ({**body, "subject": "a b"}, "subject"),
    ):
        status, _, answer = await call(platform, "POST", "/v1/users", bad, admin)
        assert status == 400 and answer["message"].startswith(field), (bad, answer)


async def test_a_password_gives_a_user_token_and_a_wrong_one_is_refused_alike(platform: Platform) -> None:
    admin = bearer(platform, "admin", sub="e2e-admin")
    buyer = random_ref("buyer")
    sub = random_ref("cust")
    user = {"subject": sub, "password": "buyer-pass-123", "roles": ["customer"], "customerId": buyer}
    assert (await call(platform, "POST", "/v1/users", user, admin))[0] == 200
    mine = {**order_json(random_ref("mine")), "buyerId": buyer}
    theirs = order_json(random_ref("theirs"))
    ops = bearer(platform, "ops")
    for order in (mine, theirs):
        assert (await call(platform, "POST", "/v1/orders", order, ops))[0] == 200

    status, _, session = await call(
        platform, "POST", "/v1/sessions", {"username": sub, "password": "buyer-pass-123"}
    )
    assert status == 200, session
    assert session["roles"] == ["customer"] and session["customerId"] == buyer
    assert session["tokenType"] == "Bearer" and session["expiresIn"] == 8 * 3600
    status, _, listed = await call(platform, "GET", "/v1/orders", token=session["accessToken"])
    assert status == 200
    assert {o["channelOrderId"] for o in listed["orders"]} == {mine["channelOrderId"]}

    wrong = await call(platform, "POST", "/v1/sessions", {"username": sub, "password": "not-the-password"})
    unknown = await call(
        platform, "POST", "/v1/sessions", {"username": "nobody-" + sub, "password": "x" * 12}
    )
    assert wrong[0] == unknown[0] == 401
    assert wrong[2]["message"] == unknown[2]["message"] == "wrong user name or password"


async def test_omsctl_user_add_makes_a_user_who_signs_in_and_a_bad_one_is_refused(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_state(platform.home, platform.infra, platform)
    sub = random_ref("ops")
    args = argparse.Namespace(sub=sub, roles=["ops"], customer="", password_stdin=True)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert await asyncio.to_thread(users.run, args, platform.home) == 0
    assert f"created console user {sub} (ops)" in capsys.readouterr().out
    status, _, session = await call(
        platform, "POST", "/v1/sessions", {"username": sub, "password": "a-long-password"}
    )
    assert status == 200 and session["roles"] == ["ops"]
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert await asyncio.to_thread(users.run, args, platform.home) == 1
    assert "password: must be" in capsys.readouterr().err


async def test_the_pipeline_shows_each_stream_and_its_consumers_to_staff_only(platform: Platform) -> None:
    await call(platform, "POST", "/v1/orders", order_json(random_ref("PIPE")), bearer(platform, "ops"))
    status, _, pipeline = await call(platform, "GET", "/v1/pipeline", token=bearer(platform, "ops"))
    assert status == 200, pipeline
    streams = {stream["stream"]: stream for stream in pipeline["streams"]}
    prefix = platform.subject_prefix.upper().replace("-", "_")
    assert f"{prefix}_ORDERS" in streams and all(name.startswith(prefix + "_") for name in streams)
    orders = streams[f"{prefix}_ORDERS"]
    assert int(orders["lastSequence"]) >= 1 and orders["consumers"], orders
    assert all(c["consumer"] for c in orders["consumers"])

    async def caught_up() -> bool:
        _, _, read = await call(platform, "GET", "/v1/pipeline", token=bearer(platform, "ops"))
        lags = [c for s in read["streams"] if s["stream"] == f"{prefix}_ORDERS" for c in s["consumers"]]
        return all(int(c.get("pending", 0)) + int(c.get("ackPending", 0)) == 0 for c in lags)

    # the consumers take the new order's events: nothing left behind once they have
    assert await until(caught_up, within=30)
    status, _, _ = await call(platform, "GET", "/v1/pipeline", token=bearer(platform, "cs_agent"))
    assert status == 403

    async def outboxes() -> dict[str, Any]:
        _, _, read = await call(platform, "GET", "/v1/pipeline", token=bearer(platform, "ops"))
        return {outbox["service"]: outbox for outbox in read.get("outboxes", [])}

    # each service reports its outbox every 5 s, from its one reporting replica
    reported = await until(lambda: _all_reported(outboxes), within=30)
    # the relays keep up here: what the reports say waits is little and young
    assert int(reported["orders"].get("unpublished", 0)) < 100
    assert float(reported["orders"].get("oldestAgeSeconds", 0)) < 60
    assert reported["orders"]["reportedAt"]


async def _all_reported(outboxes: Any) -> dict[str, Any] | None:
    found = await outboxes()
    return (
        found
        if {"orders", "logistics", "aftersales", "gateway", "inventory", "routing"} <= found.keys()
        else None
    )
