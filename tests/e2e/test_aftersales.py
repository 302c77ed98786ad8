"""After-sales through Envoy and NATS, as issue 14 names it: an order with a promotion, a coupon, points and
shipping is paid through the payment sandbox (a signed, encrypted WeChat Pay notification to the gateway),
shipped and delivered; its customer returns one of its three lines; the return desk scans the order's QR
code; the refund lands at the provider once, to the fen of the voucher; the order reads
PARTIALLY_REFUNDED and inventory has the unit back, its ledger entry naming the ticket."""

from __future__ import annotations

from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_logistics_edge import sandbox, until
from tests.e2e.test_walking_skeleton import own_shop_order_json

WAREHOUSE = "WH-GZ"


def payments(platform: Platform, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payment sandbox's control API."""
    return sandbox(platform, path, body, name="payments")


async def stocked(platform: Platform, ops: str, count: int) -> list[str]:
    skus = [random_ref("SKU") for _ in range(count)]
    status, _, answer = await call(
        platform, "PUT", f"/v1/inventory/warehouses/{WAREHOUSE}", {"name": "GZ"}, token=ops
    )
    assert status == 200, answer
    for sku in skus:
        for method, path, body in (
            ("PUT", f"/v1/inventory/skus/{sku}", {"title": sku}),
            (
                "POST",
                "/v1/inventory/receipts",
                {"receiptId": random_ref("G"), "warehouseId": WAREHOUSE, "sku": sku, "quantity": "20"},
            ),
        ):
            status, _, answer = await call(platform, method, path, body, token=ops)
            assert status == 200, answer
    return skus


async def on_hand(platform: Platform, ops: str, sku: str) -> int:
    """On hand at the warehouse, as inventory's ledger explains it (every movement since the receipt)."""
    status, _, read = await call(
        platform, "GET", f"/v1/inventory/ledger?sku={sku}&warehouseId={WAREHOUSE}", token=ops
    )
    assert status == 200, read
    return sum(int(entry["onHandDelta"]) for entry in read["entries"])


async def ship_to_the_door(platform: Platform, order_id: str, ops: str) -> None:
    """Waybilled, picked, packed, scanned out, and delivered by the carrier sandbox's pushes."""
    warehouse = bearer(platform, "warehouse", sub="picker-wu")

    async def shipments() -> list[dict[str, Any]] | None:
        status, _, listed = await call(
            platform, "GET", f"/v1/logistics/shipments?orderId={order_id}", token=ops
        )
        assert status == 200, listed
        return listed.get("shipments") or None

    [shipment] = await until(shipments, within=30)
    body = {"shipmentIds": [shipment["shipmentId"]]}
    status, _, queued = await call(platform, "POST", "/v1/logistics/waybill-batches", body, token=ops)
    assert status == 200, queued

    async def waybill() -> str | None:
        _status, _, read = await call(
            platform, "GET", f"/v1/logistics/waybill-batches/{queued['batchId']}", token=ops
        )
        batch = read["batch"]
        return str(batch["items"][0]["waybillNo"]) if batch["finished"] else None

    waybill_no = await until(waybill, within=30)
    for step in ("picks", "packs"):
        status, _, scanned = await call(
            platform,
            "POST",
            f"/v1/logistics/warehouses/{WAREHOUSE}/{step}",
            {"shipmentId": shipment["shipmentId"]},
            token=warehouse,
        )
        assert status == 200, scanned
    status, _, out = await call(
        platform,
        "POST",
        f"/v1/logistics/warehouses/{WAREHOUSE}/scan-outs",
        {"code": waybill_no},
        token=warehouse,
    )
    assert status == 200, out

    async def delivered() -> bool:
        _status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        return bool(read["order"]["status"] == "ORDER_STATUS_DELIVERED")

    await until(delivered, within=90)


async def test_a_returned_line_of_a_discounted_order_is_restocked_and_refunded_once_to_the_fen(
    platform: Platform,
) -> None:
    sandbox(platform, "/_control/reset", {})
    ops = bearer(platform, "ops")
    skus = await stocked(platform, ops, 3)
    body = own_shop_order_json(random_ref("AS"))
    buyer = random_ref("buyer")
    body["buyerId"] = buyer
    body["lines"] = [
        {
            "sku": skus[0],
            "title": "Tea",
            "quantity": 2,
            "unitPrice": {"currencyCode": "CNY", "amountMinor": "4500"},
        },
        {
            "sku": skus[1],
            "title": "Cup",
            "quantity": 1,
            "unitPrice": {"currencyCode": "CNY", "amountMinor": "5990"},
        },
        {
            "sku": skus[2],
            "title": "Spoon",
            "quantity": 3,
            "unitPrice": {"currencyCode": "CNY", "amountMinor": "1990"},
        },
    ]
    body["discounts"] = [
        {"kind": "DISCOUNT_KIND_PROMOTION", "amount": {"currencyCode": "CNY", "amountMinor": "2000"}},
        {"kind": "DISCOUNT_KIND_COUPON", "amount": {"currencyCode": "CNY", "amountMinor": "1000"}},
        {"kind": "DISCOUNT_KIND_POINTS", "amount": {"currencyCode": "CNY", "amountMinor": "500"}},
    ]
    body["shippingFee"] = {"currencyCode": "CNY", "amountMinor": "800"}
    status, _, created = await call(platform, "POST", "/v1/orders", body, token=ops)
    assert status == 200, created
    order = created["order"]
    order_id, total = order["orderId"], int(order["total"]["amountMinor"])
    line = order["lines"][1]
    # the line's share of everything, as orders fixed it at acceptance
    amounts = {
        name: int(line["amounts"][name]["amountMinor"])
        for name in ("goods", "promotion", "coupon", "points", "shipping")
    }
    assert amounts["promotion"] and amounts["coupon"] and amounts["points"] and amounts["shipping"], amounts

    # paid the way WeChat Pay pays: the sandbox notifies the gateway, signed and encrypted
    trade_no = order_id.replace("-", "")
    payments(
        platform, "/_control/payments", {"provider": "wechat_pay", "out_trade_no": trade_no, "amount": total}
    )

    async def allocated() -> bool:
        _status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        return bool(read["order"]["status"] == "ORDER_STATUS_ALLOCATED")

    await until(allocated, within=30)
    await ship_to_the_door(platform, order_id, ops)
    before = await on_hand(platform, ops, skus[1])

    # the customer returns the cup (one of three lines) for its size, themselves
    customer = bearer(platform, "customer", sub=buyer, customer_id=buyer)
    ticket_body = {
        "orderId": order_id,
        "kind": "TICKET_KIND_RETURN_AND_REFUND",
        "reason": "size_fit",
        "lines": [{"lineIndex": 1, "quantity": 1}],
        "customerNote": "too small",
        "requestId": random_ref("req"),
    }
    status, _, opened = await call(platform, "POST", "/v1/aftersales/tickets", ticket_body, token=customer)
    assert status == 200, opened
    ticket = opened["ticket"]
    ticket_id = ticket["ticketId"]
    # signed for two seconds ago, not customised, undamaged, under 200.00: approved by the rules
    assert ticket["status"] == "TICKET_STATUS_APPROVED", ticket
    assert ticket["decision"]["ruleSetVersion"] == 1 and all(
        c["held"] for c in ticket["decision"]["conditions"]
    )
    voucher = ticket["voucher"]
    cash = int(voucher["cash"]["amountMinor"])
    # what the customer paid for the cup, shipping kept (the customer's choice)
    assert cash == amounts["goods"] - amounts["promotion"] - amounts["coupon"] - amounts["points"]
    assert int(voucher["points"]["amountMinor"]) == amounts["points"]
    assert int(voucher["shipping"]["amountMinor"]) == 0
    # the same request again answers the same ticket; another customer cannot see it
    status, _, again = await call(platform, "POST", "/v1/aftersales/tickets", ticket_body, token=customer)
    assert status == 200 and again["ticket"]["ticketId"] == ticket_id, again
    stranger = bearer(platform, "customer", sub="someone", customer_id="someone")
    status, _, hidden = await call(platform, "GET", f"/v1/aftersales/tickets/{ticket_id}", token=stranger)
    assert status == 404, hidden

    # the provider will take the refund and then drop the connection before answering, and its
    # notification comes late: after-sales sends the same refund again, and the provider refunds once
    payments(platform, "/_control/reset", {})
    payments(
        platform,
        "/_control/wechat_pay",
        {"timeout_next": 1, "timeout_mode": "drop", "notify_delay_ms": 15000},
    )

    # the return desk scans the order's QR code (its id) and counts the cup
    desk = bearer(platform, "warehouse", sub="returns-desk")
    scan = {"orderCode": order_id, "warehouseId": WAREHOUSE, "lines": [{"lineIndex": 1, "quantity": 1}]}
    status, _, received = await call(platform, "POST", "/v1/aftersales/returns", scan, token=desk)
    assert status == 200, received
    assert received["restocked"] == 1, received

    async def closed() -> dict[str, Any] | None:
        status, _, read = await call(platform, "GET", f"/v1/aftersales/tickets/{ticket_id}", token=customer)
        assert status == 200, read
        return read["ticket"] if read["ticket"]["status"] == "TICKET_STATUS_CLOSED" else None

    done = await until(closed, within=30)
    assert done["refund"]["status"] == "SUCCESS" and int(done["refund"]["amount"]["amountMinor"]) == cash
    # at the provider: one refund, asked twice (the first answer was lost), executed once, of exactly
    # the voucher's cash
    refunds = [r for r in payments(platform, "/_control/refunds")["refunds"] if r["out_trade_no"] == trade_no]
    assert [(r["amount"], r["executed"], r["attempts"]) for r in refunds] == [(cash, 1, 2)], refunds

    async def partially_refunded() -> dict[str, Any] | None:
        _status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        found = read["order"]
        return found if found["status"] == "ORDER_STATUS_PARTIALLY_REFUNDED" else None

    refunded = await until(partially_refunded, within=30)
    assert int(refunded["refunds"]["cash"]["amountMinor"]) == cash
    assert refunded["refunds"]["lines"] == [{"lineIndex": 1, "quantity": 1}]
    assert await on_hand(platform, ops, skus[1]) == before + 1
    status, _, ledger = await call(platform, "GET", f"/v1/inventory/ledger?sku={skus[1]}", token=ops)
    restock = [e for e in ledger["entries"] if e["kind"] == "restock"]
    assert [(e["reference"], int(e["onHandDelta"]), e["orderId"]) for e in restock] == [
        (f"RT{ticket_id}", 1, order_id)
    ], restock

    # agents see the ticket's steps on the order's timeline (from after-sales' events on NATS)
    status, _, timeline = await call(platform, "GET", f"/v1/orders/{order_id}/timeline", token=ops)
    kinds = [e["kind"] for e in timeline["entries"]]
    for kind in (
        "ticket_opened",
        "ticket_approved",
        "ticket_return_received",
        "ticket_refund_requested",
        "ticket_refunded",
    ):
        assert kinds.count(kind) == 1, (kind, kinds)

    # finance's ledger names the refund per bucket
    finance = bearer(platform, "finance", sub="fin-1")
    status, _, listed = await call(platform, "GET", "/v1/aftersales/refunds", token=finance)
    assert status == 200, listed
    [row] = [r for r in listed["refunds"] if r["ticketId"] == ticket_id]
    assert int(row["cash"]["amountMinor"]) == cash and int(row["points"]["amountMinor"]) == amounts["points"]
    assert row["providerRefundId"] and row["status"] == "SUCCESS"


async def test_bad_tickets_are_refused_naming_the_field_and_write_nothing(platform: Platform) -> None:
    ops = bearer(platform, "ops")
    skus = await stocked(platform, ops, 1)
    body = own_shop_order_json(random_ref("ASBAD"))
    body["lines"][0]["sku"] = skus[0]
    status, _, created = await call(platform, "POST", "/v1/orders", body, token=ops)
    assert status == 200, created
    order_id = created["order"]["orderId"]
    cases = [
        # not paid: nothing to refund (FAILED_PRECONDITION, 400 over HTTP)
        (
            {
                "kind": "TICKET_KIND_REFUND_ONLY",
                "reason": "changed_mind",
                "lines": [{"lineIndex": 0, "quantity": 1}],
            },
            "order_id",
        ),
        (
            {
                "kind": "TICKET_KIND_REFUND_ONLY",
                "reason": "sleepy",
                "lines": [{"lineIndex": 0, "quantity": 1}],
            },
            "reason",
        ),
        ({"kind": "TICKET_KIND_REFUND_ONLY", "reason": "changed_mind", "lines": []}, "lines"),
        (
            {
                "kind": "TICKET_KIND_UNSPECIFIED",
                "reason": "changed_mind",
                "lines": [{"lineIndex": 0, "quantity": 1}],
            },
            "kind",
        ),
    ]
    for ticket, field in cases:
        status, _, answer = await call(
            platform, "POST", "/v1/aftersales/tickets", {"orderId": order_id, **ticket}, token=ops
        )
        assert status == 400, answer
        assert field in answer["message"], answer
    bad = {
        "orderId": "nope",
        "kind": "TICKET_KIND_REFUND_ONLY",
        "reason": "damaged",
        "lines": [{"lineIndex": 0, "quantity": 1}],
    }
    status, _, answer = await call(platform, "POST", "/v1/aftersales/tickets", bad, token=ops)
    assert (
        status == 400 and answer["message"] == "order_id: must be an order id as returned by IngestOrder"
    ), answer
    status, _, listed = await call(platform, "GET", f"/v1/aftersales/tickets?orderId={order_id}", token=ops)
    assert status == 200 and listed["tickets"] == [], listed
    status, _, missing = await call(platform, "GET", f"/v1/aftersales/tickets/{random_ref('t')}", token=ops)
    assert status == 404, missing


async def test_an_exchange_ships_a_replacement_order_with_nothing_to_pay_to_the_same_customer(
    platform: Platform,
) -> None:
    payments(platform, "/_control/reset", {})
    ops = bearer(platform, "ops")
    [sku] = await stocked(platform, ops, 1)
    body = own_shop_order_json(random_ref("EXC"))
    buyer = random_ref("buyer")
    body["buyerId"] = buyer
    body["lines"][0]["sku"] = sku
    status, _, created = await call(platform, "POST", "/v1/orders", body, token=ops)
    assert status == 200, created
    order_id, total = created["order"]["orderId"], int(created["order"]["total"]["amountMinor"])
    trade_no = order_id.replace("-", "")
    payments(
        platform, "/_control/payments", {"provider": "wechat_pay", "out_trade_no": trade_no, "amount": total}
    )

    async def allocated() -> bool:
        _status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        return bool(read["order"]["status"] == "ORDER_STATUS_ALLOCATED")

    await until(allocated, within=30)
    await ship_to_the_door(platform, order_id, ops)
    customer = bearer(platform, "customer", sub=buyer, customer_id=buyer)
    ticket_body = {
        "orderId": order_id,
        "kind": "TICKET_KIND_EXCHANGE",
        "reason": "wrong_item",
        "lines": [{"lineIndex": 0, "quantity": 1}],
    }
    status, _, opened = await call(platform, "POST", "/v1/aftersales/tickets", ticket_body, token=customer)
    assert status == 200, opened
    ticket_id = opened["ticket"]["ticketId"]
    assert opened["ticket"]["status"] == "TICKET_STATUS_APPROVED", opened
    desk = bearer(platform, "warehouse", sub="returns-desk")
    scan = {"orderCode": order_id, "warehouseId": WAREHOUSE, "lines": [{"lineIndex": 0, "quantity": 1}]}
    status, _, received = await call(platform, "POST", "/v1/aftersales/returns", scan, token=desk)
    assert status == 200, received

    async def replaced() -> dict[str, Any] | None:
        _status, _, read = await call(platform, "GET", f"/v1/aftersales/tickets/{ticket_id}", token=customer)
        return read["ticket"] if read["ticket"]["status"] == "TICKET_STATUS_REPLACEMENT_SHIPPED" else None

    await until(replaced, within=30)

    async def replacement() -> dict[str, Any] | None:
        _status, _, read = await call(
            platform, "GET", f"/v1/channel-orders/CHANNEL_OWN_SHOP/EX{ticket_id}", token=ops
        )
        found = read.get("order")
        return (
            found if found and found["status"] in ("ORDER_STATUS_ALLOCATED", "ORDER_STATUS_PICKING") else None
        )

    placed = await until(replacement, within=30)
    assert placed["buyerId"] == buyer and int(placed["total"]["amountMinor"]) == 0
    assert [(line["sku"], line["quantity"]) for line in placed["lines"]] == [(sku, 1)]
    status, _, refunds = await call(
        platform, "GET", "/v1/aftersales/refunds", token=bearer(platform, "finance")
    )
    assert all(r["ticketId"] != ticket_id for r in refunds["refunds"]), "an exchange pays nothing back"

    # the replacement goes to the door like any order, and the exchange follows it there: closed
    await ship_to_the_door(platform, placed["orderId"], ops)

    async def closed() -> dict[str, Any] | None:
        _status, _, read = await call(platform, "GET", f"/v1/aftersales/tickets/{ticket_id}", token=customer)
        return read["ticket"] if read["ticket"]["status"] == "TICKET_STATUS_CLOSED" else None

    done = await until(closed, within=30)
    assert done["replacementOrderId"] == placed["orderId"], done
    assert [e["actor"] for e in done["history"] if e["kind"] == "replacement_delivered"] == ["orders"], done


async def test_the_customer_and_customer_service_write_on_a_tickets_log_through_the_edge(
    platform: Platform,
) -> None:
    ops = bearer(platform, "ops")
    [sku] = await stocked(platform, ops, 1)
    body = own_shop_order_json(random_ref("NOTE"))
    buyer = random_ref("buyer")
    body["buyerId"], body["lines"][0]["sku"] = buyer, sku
    status, _, created = await call(platform, "POST", "/v1/orders", body, token=ops)
    assert status == 200, created
    order_id, total = created["order"]["orderId"], int(created["order"]["total"]["amountMinor"])
    payments(
        platform,
        "/_control/payments",
        {"provider": "wechat_pay", "out_trade_no": order_id.replace("-", ""), "amount": total},
    )

    async def paid() -> bool:
        _status, _, read = await call(platform, "GET", f"/v1/orders/{order_id}", token=ops)
        return bool(read["order"]["status"] in ("ORDER_STATUS_PAID", "ORDER_STATUS_ALLOCATED"))

    await until(paid, within=30)
    customer = bearer(platform, "customer", sub=buyer, customer_id=buyer)
    ticket_body = {
        "orderId": order_id,
        "kind": "TICKET_KIND_REFUND_ONLY",
        "reason": "changed_mind",
        "lines": [{"lineIndex": 0, "quantity": 1}],
    }
    status, _, opened = await call(platform, "POST", "/v1/aftersales/tickets", ticket_body, token=customer)
    assert status == 200, opened
    ticket_id = opened["ticket"]["ticketId"]
    notes = f"/v1/aftersales/tickets/{ticket_id}/notes"
    status, _, noted = await call(platform, "POST", notes, {"text": "还没发货，请尽快退款"}, token=customer)
    assert status == 200, noted
    supervisor = bearer(platform, "supervisor", sub="sup-he")
    status, _, noted = await call(platform, "POST", notes, {"text": "refund on its way"}, token=supervisor)
    assert status == 200, noted
    assert [(n["by"], n["text"]) for n in noted["ticket"]["notes"]] == [
        (buyer, "还没发货，请尽快退款"),
        ("sup-he", "refund on its way"),
    ]
    # the customer reads both, also on the ticket's history
    status, _, read = await call(platform, "GET", f"/v1/aftersales/tickets/{ticket_id}", token=customer)
    assert status == 200 and [e["detail"] for e in read["ticket"]["history"] if e["kind"] == "note"] == [
        "还没发货，请尽快退款",
        "refund on its way",
    ]
    # an empty note names the field; the return desk and another customer cannot write
    status, _, refused = await call(platform, "POST", notes, {"text": " "}, token=customer)
    assert status == 400 and "text" in str(refused), refused
    desk = bearer(platform, "warehouse", sub="returns-desk")
    assert (await call(platform, "POST", notes, {"text": "hi"}, token=desk))[0] == 403
    stranger = bearer(platform, "customer", sub="someone-else", customer_id="someone-else")
    assert (await call(platform, "POST", notes, {"text": "hi"}, token=stranger))[0] == 404
