"""Logistics through the edge, as its callers meet it: Envoy, the gateway's policy, logistics, the carrier
sandbox as a real process, and the sandbox's tracking pushes coming back through the gateway's webhooks in
the carriers' own formats (SF's JSON route push, Kuaidi100's signed form)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request
from typing import Any
from urllib.parse import urlencode

from omsctl.stack import KUAIDI100_PUSH_PATH, SF_PUSH_PATH, Platform, edge_settings, push_settings
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json

GATEWAY = "oms.gateway.v1.GatewayService"
PNG = b"\x89PNG\r\n\x1a\n"
UNKNOWN_ID = "01a20000-0000-7000-8000-000000000000"


def sandbox(
    platform: Platform, path: str, body: dict[str, Any] | None = None, name: str = "carriers"
) -> dict[str, Any]:
    """A sandbox's control API (the carriers' by default)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{platform.endpoints[name]}{path}",
        data=data,
        method="GET" if data is None else "POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer: dict[str, Any] = json.load(reply)
    return answer


async def service_token(platform: Platform) -> str:
    """What orders' process manager holds: a client-credentials token of role `service`."""
    secret = edge_settings(platform.home)["DEMO_SERVICE_SECRET"]
    status, _, issued = await call(
        platform, "POST", "/v1/tokens", {"clientId": "demo-service", "clientSecret": secret}
    )
    assert status == 200, issued
    return str(issued["accessToken"])


def planned(warehouse_id: str, carrier: str) -> dict[str, Any]:
    return {
        "warehouseId": warehouse_id,
        "carrier": carrier,
        "service": "standard",
        "lines": [{"sku": "SKU-TEA-250G", "title": "龙井茶 250 g", "quantity": "2"}],
        "origin": {
            "countryCode": "CN",
            "province": "上海市",
            "city": "上海市",
            "district": "青浦区",
            "detail": "华新镇 1 号",
        },
    }


async def create_shipments(
    platform: Platform, token: str, order_id: str, *plan: tuple[str, str], customer_id: str = "buyer-1"
) -> list[dict[str, Any]]:
    status, _, created = await call(
        platform,
        "POST",
        "/v1/logistics/shipments",
        {
            "orderId": order_id,
            "customerId": customer_id,
            "channel": "OWN_SHOP",
            "address": {
                "recipientName": "李雷",
                "phone": "13800000000",
                "countryCode": "CN",
                "province": "北京市",
                "city": "北京市",
                "district": "朝阳区",
                "detail": "建国路 1 号",
            },
            "priority": "PRIORITY_STANDARD",
            "shipments": [planned(warehouse, carrier) for warehouse, carrier in plan],
        },
        token=token,
    )
    assert status == 200, created
    shipments: list[dict[str, Any]] = created["shipments"]
    return shipments


async def tracking(platform: Platform, shipment_id: str, token: str) -> dict[str, Any]:
    status, _, answer = await call(
        platform, "GET", f"/v1/logistics/shipments/{shipment_id}/tracking", token=token
    )
    assert status == 200, answer
    return dict(answer)


async def until(condition: Any, within: float = 30.0, every: float = 0.25) -> Any:
    """The condition's first truthy answer, waiting at most `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        answer = await condition()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"not reached within {within} s"
        await asyncio.sleep(every)


async def test_an_order_is_waybilled_picked_packed_scanned_out_and_tracked_to_its_door_through_the_edge(
    platform: Platform,
) -> None:
    sandbox(platform, "/_control/reset", {})
    service, ops = await service_token(platform), bearer(platform, "ops", sub="ops-lin")
    warehouse = bearer(platform, "warehouse", sub="picker-wang")
    order_id = random_ref("LOG")

    # a split order: one parcel from Shanghai by SF, one from Beijing by ZTO (through Kuaidi100)
    made = await create_shipments(platform, service, order_id, ("WH-SH", "SF"), ("WH-BJ", "ZTO"))
    shipments = sorted(made, key=lambda s: s["carrier"])  # SF, then ZTO
    assert [(s["warehouseId"], s["carrier"], s["status"]) for s in shipments] == [
        ("WH-SH", "SF", "SHIPMENT_STATUS_CREATED"),
        ("WH-BJ", "ZTO", "SHIPMENT_STATUS_CREATED"),
    ]
    again = await create_shipments(platform, service, order_id, ("WH-SH", "SF"), ("WH-BJ", "ZTO"))
    assert {s["shipmentId"] for s in again} == {s["shipmentId"] for s in shipments}  # idempotent
    # people change an order through orders, never its shipments directly
    refused, _, _ = await call(platform, "POST", "/v1/logistics/shipments", {"orderId": order_id}, token=ops)
    assert refused == 403
    ids = [s["shipmentId"] for s in shipments]

    status, _, queued = await call(
        platform,
        "POST",
        "/v1/logistics/waybill-batches",
        {"shipmentIds": ids, "requestId": random_ref("batch")},
        token=ops,
    )
    assert status == 200 and queued["queued"] == 2, queued

    async def finished() -> dict[str, Any] | None:
        status, _, read = await call(
            platform, "GET", f"/v1/logistics/waybill-batches/{queued['batchId']}", token=ops
        )
        assert status == 200, read
        return read["batch"] if read["batch"]["finished"] else None

    batch = await until(finished)
    assert (batch["total"], batch["created"], batch["dead"]) == (2, 2, 0)
    waybills = {item["shipmentId"]: item["waybillNo"] for item in batch["items"]}
    assert all(waybills.values())
    # warehouse staff do not run waybill batches
    assert (
        await call(platform, "POST", "/v1/logistics/waybill-batches", {"shipmentIds": ids}, token=warehouse)
    )[0] == 403

    for shipment in shipments:
        shipment_id, at = shipment["shipmentId"], shipment["warehouseId"]
        status, _, tasks = await call(
            platform, "GET", f"/v1/logistics/warehouses/{at}/pick-tasks?limit=1000", token=warehouse
        )
        assert status == 200 and shipment_id in [t["shipmentId"] for t in tasks["tasks"]], tasks
        status, _, made = await call(
            platform,
            "POST",
            f"/v1/logistics/warehouses/{at}/pick-lists",
            {"shipmentIds": [shipment_id]},
            token=warehouse,
        )
        assert status == 200, made
        pick_list = made["pickList"]
        assert [s["shipmentId"] for s in pick_list["shipments"]] == [shipment_id]

        status, headers, page = await call(
            platform, "GET", f"/v1/logistics/pick-lists/{pick_list['pickListId']}/page", token=warehouse
        )
        assert status == 200 and headers["content-type"].startswith("text/html"), headers
        text = page.decode("utf-8") if isinstance(page, bytes) else str(page)
        assert text.lstrip().lower().startswith("<!doctype html") and order_id in text
        assert text.count("<svg") >= 2  # the order's QR code and one per line

        for step in ("picks", "packs"):
            status, _, scanned = await call(
                platform,
                "POST",
                f"/v1/logistics/warehouses/{at}/{step}",
                {"shipmentId": shipment_id},
                token=warehouse,
            )
            assert status == 200, scanned
        status, _, out = await call(
            platform,
            "POST",
            f"/v1/logistics/warehouses/{at}/scan-outs",
            {"code": waybills[shipment_id]},
            token=warehouse,
        )
        assert status == 200, out
        assert out["shipment"]["status"] != "SHIPMENT_STATUS_PACKED"  # shipped, or further along

    status, headers, image = await call(
        platform, "GET", f"/v1/logistics/orders/{order_id}/code?format=png", token=warehouse
    )
    assert status == 200 and headers["content-type"] == "image/png" and image[:8] == PNG, headers
    status, headers, svg = await call(
        platform, "GET", f"/v1/logistics/orders/{order_id}/code", token=warehouse
    )
    assert status == 200 and headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg

    # the sandbox's parcels travel (one scan a second here) and it pushes each scan to the gateway
    async def delivered() -> list[dict[str, Any]] | None:
        found = [await tracking(platform, shipment_id, ops) for shipment_id in ids]
        done = all(t["shipment"]["status"] == "SHIPMENT_STATUS_DELIVERED" for t in found)
        return found if done else None

    tracked = await until(delivered, within=60)
    for answer in tracked:
        nodes = [event["node"] for event in answer["events"]]
        assert nodes[0] == "TRACKING_NODE_PICKED_UP" and nodes[-1] == "TRACKING_NODE_DELIVERED", nodes
        # the poll runs every 6 h: every node came through the webhooks
        assert {event["source"] for event in answer["events"]} == {"TRACKING_SOURCE_PUSH"}
        assert answer["shipment"]["deliveredAt"]
    pushes = sandbox(platform, "/_control")["pushes"]
    assert pushes.get("sf.accepted", 0) >= 7 and pushes.get("zto.accepted", 0) >= 1, pushes

    # each push is audited as its carrier, naming the waybill it was about
    admin = bearer(platform, "admin")
    for shipment_id, carrier in zip(ids, ("sf", "kuaidi100"), strict=True):
        status, _, audit = await call(
            platform, "GET", f"/v1/audit-records?targetId={waybills[shipment_id]}", token=admin
        )
        assert status == 200, audit
        pushed = [r for r in audit["records"] if r["method"] == f"{GATEWAY}/ReceiveTrackingPush"]
        assert pushed and {(r["principal"], r["result"]) for r in pushed} == {(f"carrier/{carrier}", "OK")}, (
            audit
        )


def sf_push(waybill_no: str, shipment_id: str, remark: str) -> bytes:
    route = {
        "id": "1",
        "mailno": waybill_no,
        "orderid": shipment_id,
        "acceptTime": "2020-01-01 10:00:00",
        "acceptAddress": "深圳",
        "remark": remark,
        "opCode": "80",
    }
    return json.dumps({"Body": {"WaybillRoute": [route]}}, ensure_ascii=False).encode()


def kuaidi100_push(waybill_no: str, remark: str) -> str:
    track = {
        "message": "ok",
        "nu": waybill_no,
        "ischeck": "1",
        "com": "zhongtong",
        "state": "3",
        "data": [{"time": "2020-01-01 10:00:00", "ftime": "2020-01-01 10:00:00", "context": remark}],
    }
    return json.dumps({"status": "shutdown", "message": "", "lastResult": track}, ensure_ascii=False)


async def quarantined_bodies(platform: Platform, ops: str) -> list[str]:
    status, _, page = await call(
        platform, "GET", "/v1/logistics/quarantined-pushes?page.pageSize=200", token=ops
    )
    assert status == 200, page
    return [push["body"] for push in page["pushes"]]


async def test_a_push_without_its_token_or_with_a_bad_sign_is_refused_401_and_stored_nowhere(
    platform: Platform,
) -> None:
    service, ops = await service_token(platform), bearer(platform, "ops")
    made = await create_shipments(platform, service, random_ref("LOG"), ("WH-SH", "SF"), ("WH-BJ", "ZTO"))
    [sf, zto] = sorted(made, key=lambda s: s["carrier"])
    sandbox(platform, "/_control/all", {"push_enabled": False})  # only the forged pushes below
    try:
        status, _, queued = await call(
            platform,
            "POST",
            "/v1/logistics/waybill-batches",
            {"shipmentIds": [sf["shipmentId"], zto["shipmentId"]]},
            token=ops,
        )
        assert status == 200, queued

        async def waybilled() -> dict[str, str] | None:
            found = {}
            for shipment_id in (sf["shipmentId"], zto["shipmentId"]):
                read = await tracking(platform, shipment_id, ops)
                found[shipment_id] = str(read["shipment"].get("waybill", {}).get("waybillNo", ""))
            return found if all(found.values()) else None

        numbers = await until(waybilled)
        marker = random_ref("forged")
        token, salt = (
            push_settings(platform.home)["SF_PUSH_TOKEN"],
            push_settings(platform.home)["KUAIDI100_PUSH_SALT"],
        )
        forged_sf = sf_push(numbers[sf["shipmentId"]], sf["shipmentId"], marker)
        param = kuaidi100_push(numbers[zto["shipmentId"]], marker)
        form = "application/x-www-form-urlencoded"
        attempts = [
            (f"{SF_PUSH_PATH}", forged_sf, "application/json;charset=UTF-8"),
            (f"{SF_PUSH_PATH}?token={'x' * len(token)}", forged_sf, "application/json;charset=UTF-8"),
            (f"{SF_PUSH_PATH}?token={token[:-1]}", forged_sf, "application/json;charset=UTF-8"),
            (KUAIDI100_PUSH_PATH, urlencode({"param": param}).encode(), form),
            (KUAIDI100_PUSH_PATH, urlencode({"param": param, "sign": "0" * 32}).encode(), form),
            # SF's token proves nothing about a Kuaidi100 push
            (
                f"{KUAIDI100_PUSH_PATH}?token={token}",
                urlencode({"param": param, "sign": "A" * 32}).encode(),
                form,
            ),
            # a sign of another param, with the right salt
            (
                KUAIDI100_PUSH_PATH,
                urlencode(
                    {"param": param, "sign": hashlib.md5(("{}" + salt).encode()).hexdigest().upper()}
                ).encode(),
                form,
            ),
        ]
        for path, body, content_type in attempts:
            status, headers, answer = await call(
                platform, "POST", path, body, **{"content-type": content_type}
            )
            assert status == 401 and headers["content-type"] == "application/json;charset=UTF-8", (
                path,
                answer,
            )
            # refused in the carrier's own words, so the carrier retries instead of taking it as received
            if path.startswith(SF_PUSH_PATH):
                assert answer["return_code"] == "1000", answer
            else:
                assert answer["result"] is False and answer["returnCode"] == "401", answer

        for shipment_id in (sf["shipmentId"], zto["shipmentId"]):
            read = await tracking(platform, shipment_id, ops)
            assert read["events"] == [] and read["shipment"]["status"] == "SHIPMENT_STATUS_CREATED"
        assert not [body for body in await quarantined_bodies(platform, ops) if marker in body]

        # the same pushes with their proof are taken: the refusals were about the proof alone
        status, _, taken = await call(
            platform,
            "POST",
            f"{SF_PUSH_PATH}?token={token}",
            forged_sf,
            **{"content-type": "application/json"},
        )
        assert status == 200 and taken == {"return_code": "0000", "return_msg": "成功"}, taken
        sign = hashlib.md5((param + salt).encode()).hexdigest().upper()
        status, _, taken = await call(
            platform,
            "POST",
            KUAIDI100_PUSH_PATH,
            urlencode({"param": param, "sign": sign}).encode(),
            **{"content-type": form},
        )
        assert status == 200 and taken["result"] is True and taken["returnCode"] == "200", taken
        for shipment_id in (sf["shipmentId"], zto["shipmentId"]):
            read = await tracking(platform, shipment_id, ops)
            assert [e["description"] for e in read["events"]] == [marker]
    finally:
        sandbox(platform, "/_control/reset", {})


async def _an_agents_two_orders(platform: Platform) -> tuple[str, dict[str, str], dict[str, str]]:
    """An agent assigned one customer; one order each for that customer and another agent's."""
    agent = random_ref("agent")
    buyers = {"mine": random_ref("cust"), "theirs": random_ref("cust")}
    ops, created = bearer(platform, "ops"), {}
    for who, buyer in buyers.items():
        body = order_json(random_ref("OWN"))
        body["buyerId"] = buyer
        status, _, answer = await call(platform, "POST", "/v1/orders", body, token=ops)
        assert status == 200, answer
        created[who] = answer["order"]["orderId"]
    status, _, _ = await call(
        platform,
        "POST",
        f"/v1/agents/{agent}/customers",
        {"buyerIds": [buyers["mine"]]},
        token=bearer(platform, "admin"),
    )
    assert status == 200
    return agent, created, buyers


async def test_an_agent_reads_their_customers_shipments_and_tracking_and_no_one_elses(
    platform: Platform,
) -> None:
    agent, orders, buyers = await _an_agents_two_orders(platform)
    service = await service_token(platform)
    shipment = {
        who: (await create_shipments(platform, service, order_id, ("WH-HZ", "YTO"), customer_id=buyers[who]))[
            0
        ]
        for who, order_id in orders.items()
    }
    token = bearer(platform, "cs_agent", sub=agent)

    status, _, mine = await call(
        platform, "GET", f"/v1/logistics/shipments?orderId={orders['mine']}", token=token
    )
    assert status == 200, mine
    assert shipment["mine"]["shipmentId"] in [s["shipmentId"] for s in mine["shipments"]]
    status, _, read = await call(
        platform,
        "GET",
        f"/v1/logistics/shipments/{shipment['mine']['shipmentId']}/tracking?orderId={orders['mine']}",
        token=token,
    )
    assert status == 200 and read["shipment"]["orderId"] == orders["mine"], read

    other = await call(platform, "GET", f"/v1/logistics/shipments?orderId={orders['theirs']}", token=token)
    unknown = await call(platform, "GET", f"/v1/logistics/shipments?orderId={UNKNOWN_ID}", token=token)
    # the same answer as an unknown order: nothing tells the agent it exists
    assert other[0] == unknown[0] == 404, (other, unknown)
    assert json.dumps(other[2]).replace(orders["theirs"], "<id>") == json.dumps(unknown[2]).replace(
        UNKNOWN_ID, "<id>"
    )
    theirs = shipment["theirs"]["shipmentId"]
    for path in (
        f"/v1/logistics/shipments/{theirs}/tracking?orderId={orders['theirs']}",
        # their shipment named through an order the agent may see
        f"/v1/logistics/shipments/{theirs}/tracking?orderId={orders['mine']}",
        # naming no order at all
        f"/v1/logistics/shipments/{theirs}/tracking",
        "/v1/logistics/shipments",
    ):
        status, _, answer = await call(platform, "GET", path, token=token)
        assert status == 404, (path, answer)
        # worded like an unknown id (naming only what was asked for), nothing of the shipment itself
        assert "not found" in answer["message"] and "李雷" not in json.dumps(answer, ensure_ascii=False)
    # a shipment by its id alone is for staff
    assert (await call(platform, "GET", f"/v1/logistics/shipments/{theirs}", token=token))[0] == 403

    # a customer reads their own order's shipments, and no one else's
    customer = bearer(platform, "customer", sub=random_ref("u"), customer_id=buyers["mine"])
    own = await call(platform, "GET", f"/v1/logistics/shipments?orderId={orders['mine']}", token=customer)
    assert own[0] == 200, own
    elsewhere = await call(
        platform, "GET", f"/v1/logistics/shipments?orderId={orders['theirs']}", token=customer
    )
    assert elsewhere[0] == 404, elsewhere
