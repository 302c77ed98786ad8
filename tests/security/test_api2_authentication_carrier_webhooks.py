"""API2 Broken Authentication, carrier webhooks: SF and Kuaidi100 push tracking in their own formats. SF
signs nothing, so its push address carries a secret token; Kuaidi100 signs each push with the salt
logistics subscribed with (sign = upper(MD5(param + salt))). A push that does not prove its sender is
refused 401 before anything reads it: it reaches no shipment, no quarantine and no audit record of its
own, only the counted failed attempts; the token itself is written nowhere (not in Envoy's access log,
not in any service's log, not in the audit log). The old HMAC carrier webhook no longer takes SF."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from omsctl.stack import KUAIDI100_PUSH_PATH, SF_PUSH_PATH, Platform, push_settings
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call, webhook_signature
from tests.e2e.test_logistics_edge import create_shipments, sandbox, service_token, tracking, until

pytestmark = pytest.mark.e2e

METHOD = "oms.gateway.v1.GatewayService/ReceiveTrackingPush"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json;charset=UTF-8"
COUNT = re.compile(r"^(\d+) failed attempts? \(([a-z_]+)\)")


def _sf_body(waybill_no: str, shipment_id: str, remark: str) -> bytes:
    route = {
        "id": "9",
        "mailno": waybill_no,
        "orderid": shipment_id,
        "acceptTime": "2021-06-01 08:00:00",
        "acceptAddress": "深圳",
        "remark": remark,
        "opCode": "80",  # signed for: a forger's favourite
    }
    return json.dumps({"Body": {"WaybillRoute": [route]}}, ensure_ascii=False).encode()


def _kuaidi100_param(waybill_no: str, remark: str) -> str:
    track = {
        "message": "ok",
        "nu": waybill_no,
        "com": "zhongtong",
        "state": "3",
        "data": [{"time": "2021-06-01 08:00:00", "ftime": "2021-06-01 08:00:00", "context": remark}],
    }
    return json.dumps({"status": "shutdown", "message": "", "lastResult": track}, ensure_ascii=False)


def _sign(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


async def _waybilled_pair(platform: Platform) -> tuple[dict[str, str], dict[str, str]]:
    """An SF and a ZTO shipment with their waybills, the sandbox pushing nothing about them."""
    service, ops = await service_token(platform), bearer(platform, "ops")
    made = await create_shipments(platform, service, random_ref("SEC"), ("WH-SH", "SF"), ("WH-BJ", "ZTO"))
    [sf, zto] = sorted(made, key=lambda s: s["carrier"])
    ids = [sf["shipmentId"], zto["shipmentId"]]
    status, _, queued = await call(
        platform, "POST", "/v1/logistics/waybill-batches", {"shipmentIds": ids}, token=ops
    )
    assert status == 200, queued

    async def waybilled() -> list[str] | None:
        numbers = [
            str((await tracking(platform, i, ops))["shipment"].get("waybill", {}).get("waybillNo", ""))
            for i in ids
        ]
        return numbers if all(numbers) else None

    sf_no, zto_no = await until(waybilled)
    return {"id": ids[0], "waybill": sf_no}, {"id": ids[1], "waybill": zto_no}


async def _forged_attempts(platform: Platform, sf: dict[str, str], zto: dict[str, str], marker: str) -> int:
    token = push_settings(platform.home)["SF_PUSH_TOKEN"]
    salt = push_settings(platform.home)["KUAIDI100_PUSH_SALT"]
    sf_body = _sf_body(sf["waybill"], sf["id"], marker)
    param = _kuaidi100_param(zto["waybill"], marker)
    forged: list[tuple[str, bytes, dict[str, str]]] = [
        # SF without its token, with a wrong one, with a prefix of it, and with it where no one reads it
        (SF_PUSH_PATH, sf_body, {}),
        (f"{SF_PUSH_PATH}?token=", sf_body, {}),
        (f"{SF_PUSH_PATH}?token={'A' * len(token)}", sf_body, {}),
        (f"{SF_PUSH_PATH}?token={token[: len(token) // 2]}", sf_body, {}),
        (f"{SF_PUSH_PATH}?token={token}x", sf_body, {}),
        (SF_PUSH_PATH, sf_body, {"x-oms-webhook-signature": token}),
        # a platform token proves nothing to a webhook that authenticates its sender itself
        (SF_PUSH_PATH, sf_body, {"authorization": f"Bearer {bearer(platform, 'carrier', sub='sf')}"}),
        # Kuaidi100 without a sign, with a wrong one, signed with another salt, with SF's token as the
        # salt, a sign of another param, and two params (the sign of one, the content of the other)
        (KUAIDI100_PUSH_PATH, urlencode({"param": param}).encode(), {}),
        (KUAIDI100_PUSH_PATH, urlencode({"param": param, "sign": "0" * 32}).encode(), {}),
        (
            KUAIDI100_PUSH_PATH,
            urlencode({"param": param, "sign": _sign(param + "guessed-salt")}).encode(),
            {},
        ),
        (KUAIDI100_PUSH_PATH, urlencode({"param": param, "sign": _sign(param + token)}).encode(), {}),
        (
            f"{KUAIDI100_PUSH_PATH}?token={token}",
            urlencode({"param": param, "sign": _sign("{}" + salt)}).encode(),
            {},
        ),
        (
            KUAIDI100_PUSH_PATH,
            urlencode([("param", "{}"), ("sign", _sign("{}" + salt)), ("param", param)]).encode(),
            {},
        ),
    ]
    for path, body, headers in forged:
        content_type = FORM if path.startswith(KUAIDI100_PUSH_PATH) else JSON
        status, _, answer = await call(
            platform, "POST", path, body, **{"content-type": content_type, **headers}
        )
        assert status == 401, (path, headers, answer)
        if path.startswith(SF_PUSH_PATH):
            assert answer == {"return_code": "1000", "return_msg": "authentication required"}, answer
        else:
            assert answer == {"result": False, "returnCode": "401", "message": "authentication required"}
    return len(forged)


async def test_a_carrier_push_without_its_token_or_sign_is_refused_and_leaves_nothing_behind(
    platform: Platform,
) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    sandbox(platform, "/_control/all", {"push_enabled": False})
    try:
        sf, zto = await _waybilled_pair(platform)
        marker = random_ref("forged")
        attempts = await _forged_attempts(platform, sf, zto, marker)
    finally:
        sandbox(platform, "/_control/reset", {})
    ops, admin = bearer(platform, "ops"), bearer(platform, "admin")

    # no shipment moved, nothing was quarantined
    for shipment in (sf, zto):
        read = await tracking(platform, shipment["id"], ops)
        assert read["events"] == [] and read["shipment"]["status"] == "SHIPMENT_STATUS_CREATED", read
    status, _, page = await call(
        platform, "GET", "/v1/logistics/quarantined-pushes?page.pageSize=200", token=ops
    )
    assert status == 200 and not [p for p in page["pushes"] if marker in p["body"]], page

    # no audit record of a push about these waybills; the attempts are counted, without what was sent
    for shipment in (sf, zto):
        status, _, audit = await call(
            platform, "GET", f"/v1/audit-records?targetId={shipment['waybill']}", token=admin
        )
        assert status == 200 and not [r for r in audit["records"] if r["method"] == METHOD], audit

    async def counted() -> list[dict[str, Any]] | None:
        status, _, audit = await call(
            platform, "GET", f"/v1/audit-records?method={METHOD}&page.pageSize=200", token=admin
        )
        assert status == 200, audit
        found = [
            r
            for r in audit["records"]
            if r["result"] == "UNAUTHENTICATED" and datetime.fromisoformat(r["at"]) >= since
        ]
        total = sum(int(m[1]) for r in found if (m := COUNT.match(r["detail"])) and m[2] == "push_signature")
        return found if total >= attempts else None

    records = await until(counted, within=20)
    text = json.dumps(records, ensure_ascii=False)
    token = push_settings(platform.home)["SF_PUSH_TOKEN"]
    assert marker not in text and token not in text and sf["waybill"] not in text


async def test_the_push_token_is_written_in_no_log(platform: Platform) -> None:
    """A push with the right token is taken, and its token appears in no log of the platform: Envoy logs
    paths without their query, the gateway logs no request fields."""
    token = push_settings(platform.home)["SF_PUSH_TOKEN"]
    body = json.dumps(
        {
            "Body": {
                "WaybillRoute": [
                    {"mailno": random_ref("SF"), "opCode": "50", "acceptTime": "2021-06-01 08:00:00"}
                ]
            }
        }
    ).encode()
    status, _, answer = await call(
        platform, "POST", f"{SF_PUSH_PATH}?token={token}", body, **{"content-type": JSON}
    )
    assert status == 200 and answer["return_code"] == "0000", answer
    envoy_log = platform.home / "logs" / "envoy.log"

    def logged() -> bool:
        return SF_PUSH_PATH in envoy_log.read_text(errors="replace")

    give_up = time.monotonic() + 10
    while not logged():  # Envoy flushes its access log on a timer
        assert time.monotonic() < give_up, "Envoy never logged the push"
        await asyncio.sleep(0.2)
    for path in (platform.home / "logs").glob("*.log"):
        assert token not in path.read_text(errors="replace"), path.name


async def test_sf_is_not_taken_through_the_hmac_carrier_webhook_any_more(platform: Platform) -> None:
    body = json.dumps(
        {"waybill_no": random_ref("SF"), "order_id": random_ref("o"), "node": "DELIVERED"}
    ).encode()
    for sender in ("sf", "kuaidi100"):
        # even signed with a carrier's valid secret: these senders push in their own formats only
        headers = webhook_signature(platform, body, "carrier/zto")
        status, _, answer = await call(platform, "POST", f"/v1/webhooks/carriers/{sender}", body, **headers)
        assert status == 400 and f"/v1/webhooks/tracking/{sender}" in answer["message"], answer
