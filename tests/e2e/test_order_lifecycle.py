"""The whole life of an order through the edge and NATS, as issue 13 names it: created, paid,
allocated, its shipment opened by orders' process manager, waybilled, picked, packed, scanned out
(SHIPPED), tracked by the carrier sandbox's pushes and DELIVERED, every step on the order's timeline."""

from __future__ import annotations

from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call, signed_payment
from tests.e2e.test_logistics_edge import sandbox, until
from tests.e2e.test_walking_skeleton import own_shop_order_json


async def _stocked_sku(platform: Platform, ops: str) -> str:
    """A SKU in stock at the warehouse that ships to Guangdong (the order's province)."""
    sku = random_ref("SKU")
    for method, path, body in (
        ("PUT", "/v1/inventory/warehouses/WH-GZ", {"name": "Guangzhou"}),
        ("PUT", f"/v1/inventory/skus/{sku}", {"title": "Mug"}),
        (
            "POST",
            "/v1/inventory/receipts",
            {"receiptId": random_ref("G"), "warehouseId": "WH-GZ", "sku": sku, "quantity": "30"},
        ),
    ):
        status, _, answer = await call(platform, method, path, body, token=ops)
        assert status == 200, answer
    return sku


async def test_an_order_goes_from_payment_to_its_customers_door_with_every_step_on_its_timeline(
    platform: Platform,
) -> None:
    sandbox(platform, "/_control/reset", {})
    ops, warehouse = bearer(platform, "ops"), bearer(platform, "warehouse", sub="picker-li")
    body = own_shop_order_json(random_ref("LIFE"))
    body["lines"][0]["sku"] = await _stocked_sku(platform, ops)
    status, _, created = await call(platform, "POST", "/v1/orders", body, token=ops)
    assert status == 200, created
    order = created["order"]
    order_id = order["orderId"]

    async def status_of() -> str:
        status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        assert status == 200, read
        return str(read["order"]["status"])

    # paid through its provider's signed notification, then allocated by the process manager
    payment, headers = signed_payment(platform, order, random_ref("wx"))
    status, _, answer = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", payment, **headers)
    assert status == 200, answer
    await until(lambda: _is(status_of, "ORDER_STATUS_ALLOCATED"), within=30)

    # orders opened the shipment at logistics by itself: one, from the planned warehouse
    async def shipments() -> list[dict[str, Any]] | None:
        status, _, listed = await call(
            platform, "GET", f"/v1/logistics/shipments?orderId={order_id}", token=ops
        )
        assert status == 200, listed
        return listed.get("shipments") or None

    [shipment] = await until(shipments, within=30)
    assert shipment["warehouseId"] == "WH-GZ", shipment
    shipment_id = shipment["shipmentId"]
    # the warehouse picks by the order's SLA: its fulfilment deadline came with the shipment, and the
    # sender on the label is the Guangzhou dock
    status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
    assert status == 200 and read["order"]["sla"]["stage"] == "fulfilment", read
    assert shipment["deadline"] == read["order"]["sla"]["deadline"], (shipment, read["order"]["sla"])
    assert shipment["origin"]["city"] == "广州市", shipment

    status, _, queued = await call(
        platform, "POST", "/v1/logistics/waybill-batches", {"shipmentIds": [shipment_id]}, token=ops
    )
    assert status == 200, queued

    async def waybill() -> str | None:
        status, _, read = await call(
            platform, "GET", f"/v1/logistics/waybill-batches/{queued['batchId']}", token=ops
        )
        assert status == 200, read
        batch = read["batch"]
        return str(batch["items"][0]["waybillNo"]) if batch["finished"] else None

    waybill_no = await until(waybill, within=30)
    assert waybill_no

    for step, expected in (("picks", "ORDER_STATUS_PICKING"), ("packs", "ORDER_STATUS_PACKED")):
        status, _, scanned = await call(
            platform,
            "POST",
            f"/v1/logistics/warehouses/WH-GZ/{step}",
            {"shipmentId": shipment_id},
            token=warehouse,
        )
        assert status == 200, scanned
        await until(lambda expected=expected: _is(status_of, expected), within=30)
    status, _, out = await call(
        platform, "POST", "/v1/logistics/warehouses/WH-GZ/scan-outs", {"code": waybill_no}, token=warehouse
    )
    assert status == 200, out
    await until(lambda: _reached(status_of, "ORDER_STATUS_SHIPPED"), within=30)

    # the sandbox's parcel travels and its carrier pushes every scan back through the gateway
    await until(lambda: _is(status_of, "ORDER_STATUS_DELIVERED"), within=90)
    status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
    assert read["order"]["waybillNo"] == waybill_no

    status, _, timeline = await call(platform, "GET", f"/v1/orders/{order_id}/timeline", token=ops)
    assert status == 200, timeline
    entries = timeline["entries"]
    moves = [e["toStatus"] for e in entries if e["kind"] == "status_changed"]
    walked = [
        "ORDER_STATUS_PAID",
        "ORDER_STATUS_ALLOCATED",
        "ORDER_STATUS_PICKING",
        "ORDER_STATUS_PACKED",
        "ORDER_STATUS_SHIPPED",
        "ORDER_STATUS_DELIVERED",
    ]
    assert [status for status in moves if status in walked] == walked, moves
    details = " | ".join(e["detail"] for e in entries)
    for words in (
        "picked at WH-GZ",
        "packed at WH-GZ",
        "scanned out of WH-GZ",
        f"e-waybill {waybill_no}",
        "delivered",
    ):
        assert words in details, details
    # every tracking node the carrier pushed is on the order's timeline too
    assert "PICKED_UP" in details and "IN_TRANSIT" in details, details


async def _is(status_of: Any, expected: str) -> bool:
    return bool(await status_of() == expected)


ORDER = [
    "ORDER_STATUS_ALLOCATED",
    "ORDER_STATUS_PICKING",
    "ORDER_STATUS_PACKED",
    "ORDER_STATUS_SHIPPED",
    "ORDER_STATUS_DELIVERED",
]


async def _reached(status_of: Any, expected: str) -> bool:
    current = await status_of()
    return current in ORDER and ORDER.index(current) >= ORDER.index(expected)


async def test_a_held_order_stops_the_warehouse_and_its_release_lets_it_pick(platform: Platform) -> None:
    ops, warehouse = bearer(platform, "ops"), bearer(platform, "warehouse", sub="picker-hu")
    body = own_shop_order_json(random_ref("HOLD"))
    body["lines"][0]["sku"] = await _stocked_sku(platform, ops)
    status, _, created = await call(platform, "POST", "/v1/orders", body, token=ops)
    assert status == 200, created
    order = created["order"]
    order_id = order["orderId"]
    payment, headers = signed_payment(platform, order, random_ref("wx"))
    status, _, answer = await call(platform, "POST", "/v1/webhooks/payments/wechat_pay", payment, **headers)
    assert status == 200, answer

    async def shipment() -> dict[str, Any] | None:
        _status, _, listed = await call(
            platform, "GET", f"/v1/logistics/shipments?orderId={order_id}", token=ops
        )
        found = listed.get("shipments") or []
        return found[0] if found else None

    opened = await until(shipment, within=30)
    status, _, held = await call(
        platform, "POST", f"/v1/orders/{order_id}/hold", {"reason": "address check"}, token=ops
    )
    assert status == 200, held

    async def held_at_logistics() -> dict[str, Any] | None:
        found = await shipment()
        return found if found and found["held"] else None

    seen = await until(held_at_logistics, within=30)
    assert "address check" in seen["held"]
    pick = {"shipmentId": opened["shipmentId"]}
    status, _, refused = await call(
        platform, "POST", "/v1/logistics/warehouses/WH-GZ/picks", pick, token=warehouse
    )
    assert status == 400 and "on hold" in refused["message"], refused
    status, _, tasks = await call(
        platform, "GET", "/v1/logistics/warehouses/WH-GZ/pick-tasks", token=warehouse
    )
    assert status == 200 and all(t["shipmentId"] != opened["shipmentId"] for t in tasks.get("tasks", [])), (
        tasks
    )

    status, _, released = await call(
        platform, "POST", f"/v1/orders/{order_id}/release", {"reason": "checked"}, token=ops
    )
    assert status == 200, released

    async def free() -> bool:
        found = await shipment()
        return bool(found and not found["held"])

    await until(free, within=30)
    status, _, picked = await call(
        platform, "POST", "/v1/logistics/warehouses/WH-GZ/picks", pick, token=warehouse
    )
    assert status == 200, picked
