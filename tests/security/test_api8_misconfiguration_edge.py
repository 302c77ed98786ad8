"""API8 Security Misconfiguration: the client address is Envoy's to say, never the caller's header.

A caller rotating `x-forwarded-for` (or sending its own `x-oms-client-address`) must neither escape the
anonymous rate limit nor write an address of its choosing into the audit log.
"""

from __future__ import annotations

import asyncio

import pytest

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json

pytestmark = pytest.mark.e2e


async def test_rotating_x_forwarded_for_does_not_escape_the_anonymous_rate_limit(platform: Platform) -> None:
    statuses = []
    for attempt in range(40):
        spoofed = f"203.0.113.{attempt + 1}"
        status, _, _ = await call(
            platform,
            "POST",
            "/v1/tokens",
            {"clientId": random_ref("nobody-"), "clientSecret": "wrong"},
            **{"x-forwarded-for": spoofed, "x-oms-client-address": spoofed},
        )
        statuses.append(status)
    assert statuses.count(429) >= 20, statuses
    # the limit is per real address; let the bucket refill for the tests that follow
    await asyncio.sleep(2.5)


async def test_an_audit_record_holds_the_real_address_not_the_callers_header(platform: Platform) -> None:
    status, _, created = await call(
        platform,
        "POST",
        "/v1/orders",
        order_json(random_ref("xff-")),
        token=bearer(platform, "ops"),
        **{"x-forwarded-for": "198.51.100.7", "x-oms-client-address": "198.51.100.8"},
    )
    assert status == 200, created
    order_id = created["order"]["orderId"]
    status, _, audit = await call(
        platform, "GET", f"/v1/audit-records?targetId={order_id}", token=bearer(platform, "admin")
    )
    assert status == 200, audit
    addresses = {record["sourceIp"] for record in audit["records"]}
    assert addresses == {"127.0.0.1"}, addresses
