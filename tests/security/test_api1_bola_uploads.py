"""API1 Broken Object Level Authorization: client-chosen ids are the caller's own. Before the fix a
`statementId` was one key for everyone: whoever imported it first claimed it, and a later import under
that id by finance got the first importer's report back (their rows, naming their orders)."""

from __future__ import annotations

import json
import time
from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import call
from tests.e2e.test_walking_skeleton import order_json


async def _own_shop_order(platform: Platform) -> dict[str, Any]:
    _, _, created = await call(
        platform, "POST", "/v1/orders", order_json(random_ref("OWN")), token=bearer(platform, "ops")
    )
    order: dict[str, Any] = created["order"]
    return order


def _statement(statement_id: str, transaction_id: str, order: dict[str, Any]) -> dict[str, str]:
    paid_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    amount = int(order["total"]["amountMinor"]) / 100
    return {
        "provider": "wechat_pay",
        "statementId": statement_id,
        "csv": "transaction_id,merchant_order_no,amount,paid_at\n"
        f"{transaction_id},{order['orderId']},{amount:.2f},{paid_at}\n",
    }


async def test_a_statement_id_claimed_by_one_importer_never_answers_another(platform: Platform) -> None:
    first, second = await _own_shop_order(platform), await _own_shop_order(platform)
    finance_a = bearer(platform, "finance", sub=random_ref("finance-a-"))
    finance_b = bearer(platform, "finance", sub=random_ref("finance-b-"))
    statement_id, a_row, b_row = random_ref("st-"), random_ref("wx"), random_ref("wx")

    status, _, claimed = await call(
        platform, "POST", "/v1/payment-statements", _statement(statement_id, a_row, first), token=finance_a
    )
    assert status == 200, claimed
    status, _, own = await call(
        platform, "POST", "/v1/payment-statements", _statement(statement_id, b_row, second), token=finance_b
    )

    assert status == 200, own
    assert own["statementId"] == statement_id
    assert [item["row"]["transactionId"] for item in own["paidNotRecorded"]] == [b_row], own
    assert first["orderId"] not in json.dumps(own)
    status, _, repair = await call(
        platform,
        "POST",
        f"/v1/payment-statements/{statement_id}/repairs",
        {"transactionId": a_row},
        token=finance_b,
    )
    assert status == 404, repair
    status, _, again = await call(
        platform, "POST", "/v1/payment-statements", _statement(statement_id, b_row, second), token=finance_a
    )
    assert status == 200 and again == claimed
