"""API1 Broken Object Level Authorization: client-chosen idempotency keys (a stock movement's receipt,
adjustment or return id) belong to the principal that sent them. Before the fix they were global: a
second warehouse clerk reusing a clerk's receipt id got the first clerk's answer (and no stock), or,
for another request, "was already used for a different request", which told them the id was taken."""

from __future__ import annotations

from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call


async def _stocked_place(platform: Platform) -> tuple[str, str]:
    ops = bearer(platform, "ops")
    warehouse, sku = random_ref("WH"), random_ref("SKU")
    status, _, answer = await call(
        platform, "PUT", f"/v1/inventory/warehouses/{warehouse}", {"name": "Hangzhou DC"}, token=ops
    )
    assert status == 200, answer
    status, _, answer = await call(platform, "PUT", f"/v1/inventory/skus/{sku}", {"title": "Tea"}, token=ops)
    assert status == 200, answer
    return warehouse, sku


async def _receive(
    platform: Platform, clerk: str, receipt_id: str, warehouse: str, sku: str, quantity: int
) -> tuple[int, Any]:
    body = {"receiptId": receipt_id, "warehouseId": warehouse, "sku": sku, "quantity": str(quantity)}
    token = bearer(platform, "warehouse", sub=clerk)
    status, _, answer = await call(platform, "POST", "/v1/inventory/receipts", body, token=token)
    return status, answer


async def test_a_key_another_principal_used_for_another_request_is_theirs_to_use(platform: Platform) -> None:
    warehouse, sku = await _stocked_place(platform)
    receipt_id = random_ref("GRN")
    first_clerk, second_clerk = random_ref("clerk-a"), random_ref("clerk-b")
    status, first = await _receive(platform, first_clerk, receipt_id, warehouse, sku, 5)
    assert status == 200, first

    status, second = await _receive(platform, second_clerk, receipt_id, warehouse, sku, 7)

    # not "was already used for a different request": nothing tells the second clerk the id is taken
    assert status == 200, second
    assert second["stock"]["onHand"] == "12"
    # the first clerk's own retry is still answered once, with their first answer
    status, again = await _receive(platform, first_clerk, receipt_id, warehouse, sku, 5)
    assert (status, again["stock"]["onHand"]) == (200, "5")
    status, refused = await _receive(platform, first_clerk, receipt_id, warehouse, sku, 6)
    assert status == 400 and refused["message"].startswith("idempotency_key:"), refused


async def test_a_key_another_principal_used_for_the_same_request_never_returns_their_answer(
    platform: Platform,
) -> None:
    warehouse, sku = await _stocked_place(platform)
    receipt_id = random_ref("GRN")
    status, first = await _receive(platform, random_ref("clerk-a"), receipt_id, warehouse, sku, 5)
    assert (status, first["stock"]["onHand"]) == (200, "5")

    status, second = await _receive(platform, random_ref("clerk-b"), receipt_id, warehouse, sku, 5)

    # acted on for the second clerk: their receipt, not a replay of the first clerk's answer
    assert (status, second["stock"]["onHand"]) == (200, "10"), second
