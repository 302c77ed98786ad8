"""The console's 360° view (`make bench-console`): the whole platform as `make run` starts it, one order
driven to its customer's door with a timeline of at least 50 entries (holds and releases before it is
paid, then payment by the provider's notification, waybill, pick, pack, scan-out and the carrier
sandbox's tracking pushes), then:

- cs360_load_ms (p50, max): in Debian's Chromium (Playwright), a supervisor opens the order's 360° view
  (#/cs/<order>) and the screen is complete (order, lines, tracking, timeline, tickets, risk): from the
  navigation to the page's "complete" mark, 10 times after one warm-up;
- cs360_api_ms (p50, max): the same API calls made by a plain client as the page makes them (the order,
  then its timeline, tickets, risk evaluation and each shipment's tracking at once), 20 times;
- cs360_timeline_entries: how many entries the timeline had.

Prints `name: value unit` lines. Needs Playwright and Chromium (`make test-browser` installs both).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import percentile
from omsctl import tokens
from omsctl.catalogue import Edge
from omsctl.stack import Infra, Platform, edge_settings

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
API_RUNS = 20
WANTED_ENTRIES = 50
WAREHOUSE = "WH-GZ"


def _sandbox(platform: Platform, name: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"http://{platform.endpoints[name]}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


def _until(check: Any, within: float) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.3)
    raise TimeoutError(f"not reached within {within} s")


def _order_with_a_long_timeline(platform: Platform, edge: Edge, warehouse: Edge) -> tuple[str, int]:
    edge.call("PUT", f"/v1/inventory/warehouses/{WAREHOUSE}", {"name": "Guangzhou"})
    edge.call("PUT", "/v1/inventory/skus/BENCH-MUG", {"title": "Mug"})
    edge.call(
        "POST",
        "/v1/inventory/receipts",
        {
            "receiptId": f"bench-{time.time_ns()}",
            "warehouseId": WAREHOUSE,
            "sku": "BENCH-MUG",
            "quantity": "50",
        },
    )
    body = {
        "channel": "CHANNEL_OWN_SHOP",
        "channelOrderId": f"BENCH-CS-{time.time_ns()}",
        "buyerId": "bench-buyer",
        "lines": [
            {
                "sku": "BENCH-MUG",
                "title": "Mug",
                "quantity": 2,
                "unitPrice": {"currencyCode": "CNY", "amountMinor": "2550"},
            }
        ],
        "shippingAddress": {
            "recipientName": "Wang Fang",
            "phone": "13700000000",
            "countryCode": "CN",
            "province": "Guangdong",
            "city": "Shenzhen",
            "district": "Nanshan",
            "detail": "9 Keyuan Rd",
        },
        "shippingFee": {"currencyCode": "CNY", "amountMinor": "600"},
    }
    order = edge.call("POST", "/v1/orders", body)["order"]
    order_id = order["orderId"]

    def entries() -> int:
        return len(edge.call("GET", f"/v1/orders/{order_id}/timeline").get("entries", []))

    # a delivered order's life adds about 25 entries; holds and releases before payment make up the rest
    while entries() < WANTED_ENTRIES - 20:
        edge.call("POST", f"/v1/orders/{order_id}/hold", {"reason": "bench: customer asked to wait"})
        edge.call("POST", f"/v1/orders/{order_id}/release", {"reason": "bench: customer confirmed"})
    trade = order_id.replace("-", "")
    _sandbox(
        platform,
        "payments",
        "/_control/payments",
        {
            "provider": "wechat_pay",
            "out_trade_no": trade,
            "amount": int(order["total"]["amountMinor"]),
        },
    )
    shipment = _until(
        lambda: (edge.call("GET", f"/v1/logistics/shipments?orderId={order_id}").get("shipments") or [None])[
            0
        ],
        60,
    )
    batch = edge.call("POST", "/v1/logistics/waybill-batches", {"shipmentIds": [shipment["shipmentId"]]})
    waybill = _until(
        lambda: (lambda b: b["finished"] and b["items"][0]["waybillNo"])(
            edge.call("GET", f"/v1/logistics/waybill-batches/{batch['batchId']}")["batch"]
        ),
        60,
    )
    for step in ("picks", "packs"):
        warehouse.call(
            "POST", f"/v1/logistics/warehouses/{WAREHOUSE}/{step}", {"shipmentId": shipment["shipmentId"]}
        )
    warehouse.call("POST", f"/v1/logistics/warehouses/{WAREHOUSE}/scan-outs", {"code": waybill})
    _until(
        lambda: edge.call("GET", f"/v1/orders/{order_id}")["order"]["status"] == "ORDER_STATUS_DELIVERED", 120
    )
    time.sleep(2)  # the last tracking nodes reach orders' timeline through the bus
    return order_id, entries()


async def _api_rounds(platform: Platform, token: str, order_id: str) -> list[float]:
    base = f"http://{platform.endpoints['envoy']}"
    headers = {"authorization": f"Bearer {token}"}
    took = []
    async with aiohttp.ClientSession(headers=headers) as session:

        async def get(path: str) -> Any:
            async with session.get(base + path) as reply:
                assert reply.status == 200, (path, reply.status, await reply.text())
                return await reply.json()

        for _ in range(API_RUNS + 1):
            started = time.perf_counter()
            order = (await get(f"/v1/orders/{order_id}"))["order"]
            await asyncio.gather(
                get(f"/v1/orders/{order_id}/timeline"),
                get(f"/v1/aftersales/tickets?orderId={order_id}&pageSize=50"),
                get(f"/v1/orders/{order_id}/risk"),
                *(
                    get(f"/v1/logistics/shipments/{s['shipmentId']}/tracking?orderId={order_id}")
                    for s in order.get("shipments", [])
                ),
            )
            took.append(1000 * (time.perf_counter() - started))
    return took[1:]


async def _browser_rounds(platform: Platform, name: str, password: str, order_id: str) -> list[float]:
    from playwright.async_api import async_playwright

    from tests.browser.conftest import chromium_path

    url = f"http://{platform.endpoints['envoy']}/console"
    took = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(url)
        await page.fill("[data-test=username]", name)
        await page.fill("[data-test=password]", password)
        await page.click("[data-test=sign-in]")
        await page.wait_for_selector("main[data-page=dashboard]")
        for _ in range(RUNS + 1):
            await page.evaluate("location.hash = '#/queues'")
            await page.wait_for_selector("main[data-page=queues]")
            started = time.perf_counter()
            await page.evaluate(f"location.hash = '#/cs/{order_id}'")
            await page.wait_for_selector("[data-test=cs-complete]")
            took.append(1000 * (time.perf_counter() - started))
        await browser.close()
    return took[1:]


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-console-"))
    home.chmod(0o755)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["CARRIER_SANDBOX_STEP_SECONDS"] = "1"  # the parcel's scans a second apart
    infra = Infra(home, durable=False)
    platform = Platform(infra, home, subject_prefix="benchconsole", fixed_ports=False)
    try:
        infra.start()
        platform.start()
        settings = edge_settings(home)
        ops = Edge(platform.endpoints["envoy"], tokens.mint(settings, "bench-ops", ["ops"], 3600))
        floor = Edge(platform.endpoints["envoy"], tokens.mint(settings, "bench-floor", ["warehouse"], 3600))
        admin = Edge(platform.endpoints["envoy"], tokens.mint(settings, "bench-admin", ["admin"], 3600))
        order_id, entries = _order_with_a_long_timeline(platform, ops, floor)
        password = "bench-supervisor-pass"
        admin.call(
            "POST",
            "/v1/users",
            {"subject": "bench-supervisor", "password": password, "roles": ["supervisor"]},
        )
        supervisor = tokens.mint(settings, "bench-supervisor", ["supervisor"], 3600)
        api = asyncio.run(_api_rounds(platform, supervisor, order_id))
        page = asyncio.run(_browser_rounds(platform, "bench-supervisor", password, order_id))
        print(f"cs360_timeline_entries: {entries} entries")
        print(f"cs360_load_ms: {percentile(page, 0.5):.0f} ms")
        print(f"cs360_load_max_ms: {max(page):.0f} ms")
        print(f"cs360_api_ms: {percentile(api, 0.5):.0f} ms")
        print(f"cs360_api_max_ms: {max(api):.0f} ms")
    finally:
        platform.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
