"""The demo catalogue's data file holds what the README and the routing rules need."""

from __future__ import annotations

from omsctl import catalogue


def test_the_demo_catalogue_has_the_readme_sku_cold_chain_goods_and_cross_border_stock() -> None:
    document = catalogue.read()
    skus = {item["sku"]: item for item in document["skus"]}
    warehouses = {item["id"] for item in document["warehouses"]}
    assert skus["SKU-TEA-250G"]["stock"]
    assert {item["goodsType"] for item in skus.values()} == {
        "GOODS_TYPE_NORMAL",
        "GOODS_TYPE_FRESH",
        "GOODS_TYPE_COLD_CHAIN",
    }
    cross_border = {item["id"] for item in document["warehouses"] if item.get("cross_border")}
    assert any(set(item["stock"]) & cross_border for item in skus.values())
    for item in skus.values():
        assert set(catalogue.SKU_ATTRIBUTES) <= set(item), item["sku"]
        assert set(item["stock"]) <= warehouses, item["sku"]
    assert any(user.get("customers") for user in document["users"])


def test_sku_attributes_are_sent_only_when_inventory_put_sku_has_the_fields() -> None:
    cold = next(item for item in catalogue.read()["skus"] if item["sku"] == "SKU-ICECREAM-COLD")
    assert catalogue.sku_body(cold, {"sku", "title"}) == {"title": cold["title"]}
    with_attributes = {"sku", "title", "goods_type", "category", "weight_g", "customised"}
    assert catalogue.sku_body(cold, with_attributes) == {
        "title": cold["title"],
        "goodsType": "GOODS_TYPE_COLD_CHAIN",
        "category": "frozen_food",
        "weightG": 900,
        "customised": False,
    }
    # what the generated descriptors of this checkout say
    assert {"sku", "title"} <= catalogue.put_sku_fields()
