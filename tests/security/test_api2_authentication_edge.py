"""API2 Broken Authentication: failed attempts (401 and 403) leave a trace: an audit record per address,
method, reason class and minute-window with the count, and a log line with the caller's real address."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call

pytestmark = pytest.mark.e2e

COUNT = re.compile(r"^(\d+) failed attempts? \(([a-z_]+)\)")


async def _failed_records(
    platform: Platform, method: str, since: datetime, result: str
) -> list[dict[str, Any]]:
    status, _, audit = await call(
        platform,
        "GET",
        f"/v1/audit-records?method={method}&page.pageSize=200",
        token=bearer(platform, "admin"),
    )
    assert status == 200, audit
    return [
        record
        for record in audit["records"]
        if record["result"] == result and datetime.fromisoformat(record["at"]) >= since
    ]


async def _wait_for_records(
    platform: Platform, method: str, since: datetime, result: str, attempts: int
) -> list[dict[str, Any]]:
    give_up = time.monotonic() + 20
    while True:
        records = await _failed_records(platform, method, since, result)
        counted = sum(
            int(COUNT.match(record["detail"])[1]) for record in records if COUNT.match(record["detail"])
        )
        if counted >= attempts or time.monotonic() > give_up:
            return records
        await asyncio.sleep(0.5)


async def test_a_flood_of_bad_tokens_is_audited_as_counted_records_with_the_real_address(
    platform: Platform,
) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    for _ in range(12):
        status, _, body = await call(
            platform,
            "GET",
            "/v1/orders/does-not-matter",
            token="not.a.token",
            **{"x-forwarded-for": "192.0.2.9"},
        )
        assert status == 401, body
    method = "oms.orders.v1.OrdersService/GetOrder"
    records = await _wait_for_records(platform, method, since, "UNAUTHENTICATED", 12)
    mine = [record for record in records if "bearer_token" in record["detail"]]
    assert mine, records
    assert {record["sourceIp"] for record in mine} == {"127.0.0.1"}
    assert {record["principal"] for record in mine} == {"anonymous"}
    # aggregated: a handful of records (one per window) count the twelve attempts
    assert len(mine) <= 3 and sum(int(COUNT.match(record["detail"])[1]) for record in mine) >= 12, mine
    assert "not.a.token" not in str(mine)


async def test_a_forbidden_call_is_audited_with_its_principal_reason_and_address(platform: Platform) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    customer = random_ref("cust-")
    for _ in range(3):
        status, _, body = await call(
            platform,
            "GET",
            "/v1/audit-records",
            token=bearer(platform, "customer", sub=customer, customer_id=customer),
        )
        assert status == 403, body
    method = "oms.gateway.v1.GatewayService/ListAuditRecords"
    records = await _wait_for_records(platform, method, since, "PERMISSION_DENIED", 3)
    mine = [record for record in records if record["principal"] == customer]
    assert mine, records
    assert {record["sourceIp"] for record in mine} == {"127.0.0.1"}
    assert sum(int(COUNT.match(record["detail"])[1]) for record in mine) == 3
    assert all(COUNT.match(record["detail"])[2] == "role_not_allowed" for record in mine), mine


async def test_the_log_line_of_a_refused_call_names_the_callers_address(platform: Platform) -> None:
    marker = random_ref("probe-")
    status, _, _ = await call(platform, "POST", "/v1/tokens", {"clientId": marker, "clientSecret": "wrong"})
    assert status in (401, 429)
    log = (platform.home / "logs" / "gateway.log").read_text(errors="replace")
    lines = [line for line in log.splitlines() if "IssueToken" in line and "refused" in line]
    assert lines and all("127.0.0.1" in line for line in lines[-3:]), lines[-3:]
