"""The demo's plan: one of each thing it shows, whatever the size of the run, Douyin's orders first."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from omsctl import catalogue, demo
from sandboxes.channels.shapes import DOUYIN_ITEMS, TAOBAO_ITEMS


@pytest.mark.parametrize("count", [demo.MIN_ORDERS, 16, 60, 200])
def test_a_run_plans_every_kind_once_and_the_asked_number_of_orders(count: int) -> None:
    planned = demo.plan(count, random.Random(count), "RUN")
    assert len(planned) == count
    assert len({order.number for order in planned}) == count
    roles = Counter(order.role for order in planned if order.role)
    assert roles == Counter(["unmapped", *demo.AFTERSALES_ROLES, *demo.SPECIAL_ROLES])
    channels = Counter(order.channel for order in planned)
    assert set(channels) == {"OWN_SHOP", "TAOBAO", "DOUYIN", "JD"} and channels["TAOBAO"] >= 2
    # Douyin falls silent: none of its orders comes after the first non-Douyin, non-after-sales one
    last_douyin = max(i for i, order in enumerate(planned) if order.channel == "DOUYIN")
    assert last_douyin < len(demo.AFTERSALES_ROLES) + channels["DOUYIN"]
    # the skewed payments are off by more than orders' ±10 min tolerance
    assert all(abs(o.skew_s) > 600 for o in planned if o.role.startswith("skewed"))
    assert all(o.provider for o in planned if o.channel == "OWN_SHOP")


def test_the_demo_sells_only_what_the_catalogue_stocks_except_its_one_unmapped_listing() -> None:
    stocked = {item["sku"] for item in catalogue.read()["skus"] if item.get("stock")}
    planned = demo.plan(200, random.Random(1), "RUN")
    sold = {sku for order in planned for sku, *_ in order.lines}
    assert sold - stocked == {demo.UNMAPPED[0]}
    assert stocked >= demo.SOLD and "SKU-TEA-250G" not in sold  # README's walk-through keeps its tea
    # the channel sandbox's shops sell what the catalogue stocks
    assert {sku for sku, _, _ in (*TAOBAO_ITEMS, *DOUYIN_ITEMS)} <= stocked


def test_fewer_orders_than_one_of_each_kind_are_refused() -> None:
    assert demo.run({}, {}, orders=demo.MIN_ORDERS - 1) == 2
