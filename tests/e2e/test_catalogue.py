"""The product catalogue through Envoy, as the console or an integration would call it."""

from __future__ import annotations

import asyncio
import json

from omsctl.stack import Platform
from tests.conftest import random_ref
from tests.e2e.test_walking_skeleton import http_call, json_call


async def test_a_sku_marked_cold_chain_over_json_is_stored_and_read_back(platform: Platform) -> None:
    sku = random_ref("FISH")
    body = {
        "title": "Chilled salmon",
        "goodsType": "GOODS_TYPE_COLD_CHAIN",
        "category": "seafood",
        "weightG": "1200",
    }
    stored = await json_call(platform, "PUT", f"/v1/inventory/skus/{sku}", body)
    assert (stored["sku"]["goodsType"], stored["sku"]["weightG"]) == ("GOODS_TYPE_COLD_CHAIN", "1200")
    read = await json_call(platform, "GET", f"/v1/inventory/skus/{sku}")
    assert read["sku"]["goodsType"] == "GOODS_TYPE_COLD_CHAIN" and read["sku"]["category"] == "seafood"

    status, _, raw = await asyncio.to_thread(
        http_call, platform, "PUT", f"/v1/inventory/skus/{sku}", json.dumps({"weightG": "-1"}).encode()
    )
    assert status == 400 and json.loads(raw)["message"].startswith("weight_g:"), raw


async def test_an_unknown_goods_type_is_refused_never_dropped(platform: Platform) -> None:
    sku = random_ref("SKU")
    for value, says in (("cold_chain", '"cold_chain"'), (9, "unknown GoodsType 9")):
        status, _, raw = await asyncio.to_thread(
            http_call, platform, "PUT", f"/v1/inventory/skus/{sku}", json.dumps({"goodsType": value}).encode()
        )
        message = json.loads(raw)["message"]
        assert status == 400 and message.startswith("goods_type:") and says in message, raw
    missing, _, _ = await asyncio.to_thread(http_call, platform, "GET", f"/v1/inventory/skus/{sku}")
    assert missing == 404
