"""Alerts that reach a person, through the whole platform: an alert on the bus becomes a record the
console lists over HTTP (repeats counted into it), its on-call phone gets one text from the SMS
sandbox, and it is acknowledged and resolved by name; the refusals as HTTP callers see them."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest

from oms.alerts.v1 import events_pb2
from omsctl.stack import Platform
from services.kit import bus
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)
OPS_PHONE = "13800000001"


async def raise_alert(platform: Platform, dedupe_key: str, event_id: str) -> None:
    nc = await bus.connect(platform.infra.nats_url, "e2e-alerts")
    try:
        event = events_pb2.AlertRaised(
            event_id=event_id,
            kind="inventory_invariant_breached",
            severity=events_pb2.SEVERITY_CRITICAL,
            source="inventory",
            message=f"{dedupe_key}: stock disagrees with the ledger",
            dedupe_key=dedupe_key,
        )
        await nc.jetstream().publish(
            f"{platform.subject_prefix}.alerts.raised",
            event.SerializeToString(),
            headers={bus.MSG_ID: event_id, bus.EVENT_TYPE: "oms.alerts.v1.AlertRaised"},
        )
    finally:
        await nc.close()


def texts_to(platform: Platform, phone: str) -> list[dict[str, Any]]:
    url = f"http://{platform.endpoints['sms']}/_control/messages?phone={phone}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return list(json.loads(answer.read())["messages"])


async def test_an_alert_is_listed_folded_texted_acknowledged_and_resolved_over_http(
    platform: Platform,
) -> None:
    key = random_ref("e2e-invariant-")
    ops = bearer(platform, "ops", sub="han.mei")
    await raise_alert(platform, key, random_ref("ev"))
    listed: list[dict[str, Any]] = []

    async def recorded(count: int) -> bool:
        _, _, answer = await call(platform, "GET", "/v1/alerts?kind=inventory_invariant_breached", token=ops)
        listed[:] = [a for a in answer.get("alerts", []) if a["foldKey"] == key]
        return len(listed) == 1 and listed[0]["count"] == count

    await eventually(lambda: recorded(1), within=20)
    await raise_alert(platform, key, random_ref("ev"))
    await eventually(lambda: recorded(2), within=20)
    (alert,) = listed
    assert (alert["state"], alert["assignedTo"], alert["severity"]) == (
        "ALERT_STATE_OPEN",
        "role:ops",
        "SEVERITY_CRITICAL",
    )
    assert "escalateAt" in alert

    # the first occurrence texted the on-call phone; the repeat only counted
    def texted() -> list[dict[str, Any]]:
        return [m for m in texts_to(platform, OPS_PHONE) if m["template_param"]["summary"].startswith(key)]

    await eventually(lambda: len(texted()) == 1, within=10)
    alert_id = alert["alertId"]

    status, _, acked = await call(
        platform, "POST", f"/v1/alerts/{alert_id}:acknowledge", {"note": "checking the ledger"}, token=ops
    )
    assert status == 200, acked
    assert (acked["alert"]["state"], acked["alert"]["acknowledgedBy"]) == (
        "ALERT_STATE_ACKNOWLEDGED",
        "han.mei",
    )
    assert "escalateAt" not in acked["alert"]
    status, _, done = await call(
        platform, "POST", f"/v1/alerts/{alert_id}:resolve", {"resolution": "recount posted"}, token=ops
    )
    assert status == 200 and done["alert"]["resolvedBy"] == "han.mei"

    status, _, again = await call(platform, "POST", f"/v1/alerts/{alert_id}:resolve", {}, token=ops)
    assert status == 400 and again["code"] == 9, again  # FAILED_PRECONDITION
    status, _, unknown = await call(platform, "POST", f"/v1/alerts/{uuid.uuid4()}:acknowledge", {}, token=ops)
    assert status == 404, unknown
    assert len(texted()) == 1
    status, _, bad = await call(platform, "GET", "/v1/alerts?assignedTo=ops", token=ops)
    assert status == 400 and "assigned_to" in json.dumps(bad), bad
    status, _, _ = await call(platform, "GET", "/v1/alerts", token=bearer(platform, "cs_agent"))
    assert status == 403
