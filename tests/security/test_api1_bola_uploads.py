"""API1 Broken Object Level Authorization: client-chosen ids are the caller's own. Before the fix a
`statementId` was one key for everyone: whoever imported it first claimed it, and a later import under
that id by finance got the first importer's report back (their rows, naming their orders). Upload ids
were already kept per owner; the upload tests here verify that stays so."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.conftest import bearer
from tests.e2e.test_edge import begin_upload, call, put_chunk, shopee_order
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


async def test_another_principal_cannot_see_touch_complete_or_abort_an_upload(platform: Platform) -> None:
    owner = bearer(platform, "ops", sub=random_ref("owner-"))
    other = bearer(platform, "ops", sub=random_ref("other-"))
    payload = json.dumps({"channel": "CHANNEL_SHOPEE", "orders": [shopee_order(random_ref("SPO"))]}).encode()
    upload_id = await begin_upload(platform, owner, "UPLOAD_TARGET_ORDERS_BATCH", payload, len(payload))
    assert await put_chunk(platform, owner, upload_id, 0, payload) == 200

    attempts = [
        await call(platform, "GET", f"/v1/uploads/{upload_id}", token=other),
        (await put_chunk(platform, other, upload_id, 0, payload), {}, None),
        await call(platform, "POST", f"/v1/uploads/{upload_id}/complete", {}, token=other),
        await call(platform, "POST", f"/v1/uploads/{upload_id}:abort", {}, token=other),
    ]

    assert [status for status, _, _ in attempts] == [404, 404, 404, 404], attempts
    status, _, state = await call(platform, "GET", f"/v1/uploads/{upload_id}", token=owner)
    assert status == 200 and state["upload"]["status"] == "UPLOAD_STATUS_OPEN", state


async def test_two_principals_use_the_same_client_chosen_upload_id_independently(
    platform: Platform,
) -> None:
    first, second = (bearer(platform, "ops", sub=random_ref(f"{who}-")) for who in ("first", "second"))
    refs = {first: random_ref("SPA"), second: random_ref("SPB")}
    payloads = {
        token: json.dumps({"channel": "CHANNEL_SHOPEE", "orders": [shopee_order(ref)]}).encode()
        for token, ref in refs.items()
    }
    shared = random_ref("shared-")
    for token, payload in payloads.items():
        assert (
            await begin_upload(
                platform, token, "UPLOAD_TARGET_ORDERS_BATCH", payload, len(payload), upload_id=shared
            )
            == shared
        )

    for token, payload in payloads.items():
        status, _, state = await call(platform, "GET", f"/v1/uploads/{shared}", token=token)
        assert state["upload"]["sha256"] == hashlib.sha256(payload).hexdigest(), state
        assert await put_chunk(platform, token, shared, 0, payload) == 200
        status, _, done = await call(platform, "POST", f"/v1/uploads/{shared}/complete", {}, token=token)
        assert status == 200 and done["orders"]["created"] == 1, done
        assert done["orders"]["results"][0]["channelOrderId"] == refs[token], done
