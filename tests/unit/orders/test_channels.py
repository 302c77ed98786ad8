from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.kit.errors import InvalidArgument
from services.orders.domain import channels
from services.orders.domain.channels.base import (
    CHINA,
    MalformedPayload,
    iso_time,
    local_time,
    to_minor,
    unix_time,
)
from services.orders.domain.model import Channel, DiscountKind, IngestOrder, Priority, accept, vouched
from tests.fixtures.channels.builders import FIXTURES, big_shopee_payload, load

NOW = datetime(2025, 1, 1, tzinfo=UTC)
ALL = [
    Channel.TAOBAO,
    Channel.JD,
    Channel.PINDUODUO,
    Channel.DOUYIN,
    Channel.SHOPEE,
    Channel.OWN_SHOP,
    Channel.POS,
]
P, C, PTS = DiscountKind.PROMOTION, DiscountKind.COUPON, DiscountKind.POINTS


def parsed(channel: Channel, name: str) -> IngestOrder:
    return channels.parse(channel, load(channel.value.lower(), name))


def lines(command: IngestOrder) -> list[tuple[str, int, int, int]]:
    return [(line.sku, line.quantity, line.unit_price_minor, line.discount_minor) for line in command.lines]


def discounts(command: IngestOrder) -> list[tuple[DiscountKind, int]]:
    return [(discount.kind, discount.amount_minor) for discount in command.discounts]


def payable(command: IngestOrder) -> int:
    goods = sum(line.amount_minor for line in command.lines)
    return goods - sum(discount.amount_minor for discount in command.discounts) + command.shipping_fee_minor


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# ---- the registry ---------------------------------------------------------------------------------


def test_the_registry_lists_the_seven_channels_that_have_an_adapter() -> None:
    assert channels.channels() == ALL


def test_a_channel_without_an_adapter_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument) as error:
        channels.parse(Channel.KUAISHOU, {"oid": "1"})
    assert error.value.field == "channel"


@pytest.mark.parametrize(
    "fixture", sorted(FIXTURES.glob("*/*.json")), ids=lambda path: f"{path.parent.name}/{path.stem}"
)
def test_every_fixture_becomes_an_order_the_model_accepts(fixture: Any) -> None:
    channel = Channel[fixture.parent.name.upper()]
    command = vouched(channels.parse(channel, json.loads(fixture.read_text(encoding="utf-8"))))
    assert command.channel is channel
    assert accept(command, "order-1", NOW).channel_order_id == command.channel_order_id


# ---- each channel's paid order, computed by hand --------------------------------------------------


def test_a_paid_taobao_trade_keeps_item_discounts_and_reads_order_level_promotions_coupons_and_points() -> (
    None
):
    command = parsed(Channel.TAOBAO, "paid")
    assert command.channel_order_id == "3865521709876543210"
    assert command.buyer_id == "AAH7mFq3ABcdEfGh1234XYZ0"
    assert command.currency == "CNY"
    assert lines(command) == [("TEA-LJ-250", 2, 19900, 2000), ("CUP-GL-300", 1, 4990, 0)]
    # the item-level "单品优惠" promotion detail is already the first item's discount_fee
    assert discounts(command) == [(P, 3000), (C, 500), (PTS, 200)]
    assert command.shipping_fee_minor == 1000
    assert payable(command) == 40090  # the trade's "payment": "400.90"
    assert command.placed_at == utc(2024, 11, 10, 16, 3, 12)  # 00:03:12 in Shanghai
    assert command.paid_at == utc(2024, 11, 10, 16, 3, 40)
    assert command.channel_modified_at == utc(2024, 11, 10, 16, 3, 41)
    assert (command.channel_status, command.cancelled) == ("WAIT_SELLER_SEND_GOODS", False)
    assert command.buyer_note == "请周一发货，谢谢"
    address = command.shipping_address
    assert address is not None
    assert (address.recipient_name, address.phone, address.country_code) == ("王小明", "13812345678", "CN")
    assert (address.province, address.city, address.district) == ("浙江省", "杭州市", "西湖区")
    assert (address.detail, address.postal_code) == ("文三路 478 号华星时代广场 A 座 1203 室", "310012")


def test_a_paid_jd_order_splits_its_coupon_details_into_item_and_order_discounts() -> None:
    command = parsed(Channel.JD, "paid")
    assert command.channel_order_id == "301234567890"
    assert lines(command) == [("SHOE-RUN-42", 1, 39900, 2000), ("SOCK-3P", 2, 6950, 0)]
    # 100-店铺优惠 → promotion, 41-京东券 → coupon, 39-京豆 → points; the 52 gift card is a tender
    assert discounts(command) == [(P, 2500), (C, 1000), (PTS, 300)]
    assert command.shipping_fee_minor == 600
    assert payable(command) == 43600 + 5000  # orderPayment plus the 50.00 paid by gift card
    assert command.placed_at == utc(2024, 6, 17, 16, 0, 12)
    assert command.paid_at == utc(2024, 6, 17, 16, 0, 30)
    assert command.buyer_id == "o_jd_Yk2x9Qb7TZcA"
    assert command.shipping_address is not None
    assert command.shipping_address.detail.startswith("北京朝阳区三环到四环之间建国路")


def test_a_jd_order_without_coupon_details_takes_the_seller_discount_as_a_promotion() -> None:
    assert discounts(parsed(Channel.JD, "cancelled")) == [(P, 1500)]


def test_a_paid_pinduoduo_order_reads_yuan_floats_exactly() -> None:
    command = parsed(Channel.PINDUODUO, "paid")
    assert command.channel_order_id == "241118-593820174630291"
    assert lines(command) == [("RICE-WC-5KG", 2, 8990, 0), ("OIL-PN-1.8L", 1, 7800, 0)]
    assert discounts(command) == [(P, 1000), (C, 550)]
    assert command.shipping_fee_minor == 800
    assert payable(command) == 25030  # pay_amount 250.3
    assert command.paid_at == utc(2024, 11, 18, 12, 14, 30)
    assert command.channel_status == "order_status=1,refund_status=1,confirm_status=1"
    assert command.shipping_address is not None
    assert command.shipping_address.district == "南山区"


def test_a_paid_douyin_order_reads_fen_and_unix_seconds() -> None:
    command = parsed(Channel.DOUYIN, "paid")
    assert command.channel_order_id == "6921834567890123456"
    assert lines(command) == [("CREAM-50", 1, 15900, 0), ("TONER-200", 2, 8900, 0)]
    assert discounts(command) == [(P, 2000), (P, 500), (C, 1500)]
    assert command.shipping_fee_minor == 600
    assert payable(command) == 30300
    assert command.placed_at == utc(2024, 11, 18, 1, 0, 0)
    assert command.paid_at == utc(2024, 11, 18, 1, 2, 10)
    assert command.channel_status == "2"
    assert command.shipping_address is not None
    assert (command.shipping_address.province, command.shipping_address.district) == ("上海市", "徐汇区")


def test_a_paid_shopee_order_reads_the_order_currency_and_the_street_level_address() -> None:
    command = parsed(Channel.SHOPEE, "paid")
    assert (command.channel_order_id, command.currency, command.buyer_id) == (
        "241118ABCD1234",
        "SGD",
        "123456789",
    )
    # model_discounted_price 24.90 against 29.90 is a 5.00 item discount per unit
    assert lines(command) == [("BOTTLE-750", 2, 2990, 1000), ("LUNCH-GRN", 1, 1850, 0)]
    assert discounts(command) == [(C, 500), (C, 250), (PTS, 80)]
    assert command.shipping_fee_minor == 349
    assert payable(command) == 6349  # total_amount 63.49
    assert command.paid_at == utc(2024, 11, 18, 2, 15, 30)
    address = command.shipping_address
    assert address is not None
    # Singapore has neither state nor city; the region code stands in
    assert (address.country_code, address.province, address.city) == ("SG", "SG", "SG")
    assert (address.detail, address.postal_code) == ("1 Orchard Road, #12-03, Singapore 238801", "238801")


def test_an_unpaid_shopee_order_in_rupiah_has_no_minor_unit() -> None:
    command = parsed(Channel.SHOPEE, "unpaid")
    assert command.currency == "IDR"
    assert lines(command) == [("BATIK-LP-L", 1, 89000, 10000), ("KOPI-GAYO-250", 2, 89000, 0)]
    assert payable(command) == 259000
    assert command.shipping_address is not None
    assert (command.shipping_address.province, command.shipping_address.city) == (
        "DKI JAKARTA",
        "KOTA JAKARTA SELATAN",
    )


def test_a_paid_own_shop_order_keeps_its_explicit_discount_list() -> None:
    command = parsed(Channel.OWN_SHOP, "paid")
    assert lines(command) == [("MUG-CER-350", 2, 5900, 500), ("BEAN-ETH-250", 1, 8800, 0)]
    assert discounts(command) == [(P, 1000), (C, 1500), (PTS, 300)]
    assert [discount.reference for discount in command.discounts] == [
        "SPEND150-10",
        "WELCOME15",
        "points:300",
    ]
    assert payable(command) == 18100  # total_cents
    assert command.paid_at == utc(2024, 11, 18, 2, 15, 42)


def test_a_ship_to_home_pos_sale_is_paid_at_the_counter_and_goes_to_the_delivery_address() -> None:
    command = parsed(Channel.POS, "paid")
    assert command.channel_order_id == "SH021:0042-000187"
    # the first item has no sku, so its barcode names it
    assert lines(command) == [("6901234567892", 1, 69900, 5000), ("KNIFE-SET-5", 2, 25900, 0)]
    assert discounts(command) == [(P, 6000), (C, 2000), (PTS, 880)]
    assert command.shipping_fee_minor == 1500
    assert payable(command) == 109320  # tenders 1000.00 + 100.00 - 6.80 change
    assert command.paid_at == utc(2024, 11, 18, 6, 32, 5)
    assert command.buyer_id == "M000123456"
    assert command.shipping_address is not None
    assert (command.shipping_address.recipient_name, command.shipping_address.city) == ("周杰", "宁波市")


def test_a_carry_out_pos_sale_uses_the_stores_address_and_the_stores_offset() -> None:
    command = parsed(Channel.POS, "carry_out")
    assert command.currency == "JPY"
    assert lines(command) == [("MATCHA-100", 3, 1980, 0), ("CHAWAN-RAKU", 1, 12800, 1280)]
    assert payable(command) == 17460
    assert command.paid_at == utc(2024, 11, 18, 11, 0, 2)  # 20:00:02 in Tokyo (+09:00)
    assert command.shipping_address is not None
    assert (command.shipping_address.recipient_name, command.shipping_address.country_code) == (
        "Shibuya Store",
        "JP",
    )


# ---- the same expectations for every channel ------------------------------------------------------


@pytest.mark.parametrize("channel", ALL)
def test_an_unpaid_order_has_no_paid_time_and_is_not_cancelled(channel: Channel) -> None:
    command = parsed(channel, "unpaid")
    assert (command.paid_at, command.cancelled) == (None, False)
    assert accept(command, "order-1", NOW).status.value == "PENDING_PAYMENT"


@pytest.mark.parametrize("channel", ALL)
def test_a_cancelled_order_is_marked_cancelled(channel: Channel) -> None:
    command = parsed(channel, "cancelled")
    assert command.cancelled is True
    assert command.paid_at is None


@pytest.mark.parametrize("channel", ALL)
def test_a_later_version_is_the_same_channel_order_with_a_later_modified_time(channel: Channel) -> None:
    first, later = vouched(parsed(channel, "paid")), vouched(parsed(channel, "paid_later"))
    assert later.channel_order_id == first.channel_order_id
    assert first.channel_modified_at is not None and later.channel_modified_at is not None
    assert later.channel_modified_at > first.channel_modified_at
    assert later.placed_at == first.placed_at
    order = accept(first, "order-1", NOW)
    assert order.revise(later, NOW) is True


@pytest.mark.parametrize("channel", ALL)
def test_all_times_are_utc(channel: Channel) -> None:
    command = parsed(channel, "paid")
    for moment in (command.placed_at, command.paid_at, command.channel_modified_at):
        assert moment is not None and moment.utcoffset() == timedelta(0)


def test_a_pinduoduo_order_whose_group_deal_has_not_formed_waits_although_paid() -> None:
    payload = load("pinduoduo", "unpaid")
    assert payload["pay_time"]
    assert channels.parse(Channel.PINDUODUO, payload).paid_at is None
    payload.update(confirm_status=1, updated_at="2024-11-19 12:05:00")
    assert channels.parse(Channel.PINDUODUO, payload).paid_at == utc(2024, 11, 19, 4, 0, 10)


def test_a_jd_cash_on_delivery_order_awaiting_stock_out_is_not_yet_paid() -> None:
    command = parsed(Channel.JD, "unpaid")
    assert command.channel_status == "WAIT_SELLER_STOCK_OUT"
    assert command.paid_at is None


# ---- large payloads --------------------------------------------------------------------------------


def test_a_2_mb_shopee_push_parses_whole_and_keeps_only_the_street_level_address() -> None:
    payload = big_shopee_payload()
    assert len(json.dumps(payload, ensure_ascii=False).encode()) >= 2_200_000
    command = channels.parse(Channel.SHOPEE, payload)
    assert command == parsed(Channel.SHOPEE, "paid")
    assert command.shipping_address is not None
    assert len(command.shipping_address.detail) <= 2000


# ---- malformed payloads name the path in the channel's own JSON -----------------------------------

Mutation = Callable[[dict[str, Any]], object]


def _drop(key: str) -> Mutation:
    return lambda payload: payload.pop(key)


MALFORMED: list[tuple[Channel, str, Mutation, str]] = [
    (Channel.TAOBAO, "paid", _drop("tid"), "tid"),
    (
        Channel.TAOBAO,
        "paid",
        lambda p: p["orders"]["order"][1].update(price="12.345"),
        "orders.order[1].price",
    ),
    (
        Channel.TAOBAO,
        "paid",
        lambda p: p["orders"]["order"][0].update(price="-1.00"),
        "orders.order[0].price",
    ),
    (Channel.TAOBAO, "paid", lambda p: p["orders"]["order"][0].update(num=0), "orders.order[0].num"),
    (Channel.TAOBAO, "paid", lambda p: p["orders"]["order"][0].update(num=-2), "orders.order[0].num"),
    (Channel.TAOBAO, "paid", lambda p: p.update(status="WAIT_SOMETHING"), "status"),
    (Channel.TAOBAO, "paid", _drop("pay_time"), "pay_time"),
    (Channel.TAOBAO, "paid", lambda p: p.update(created="2024/11/11 00:03"), "created"),
    (Channel.TAOBAO, "paid", lambda p: p.update(tid="3865 5217"), "tid"),
    (Channel.TAOBAO, "paid", lambda p: p["orders"].update(order={"oid": 1}), "orders.order"),
    (
        Channel.TAOBAO,
        "paid",
        lambda p: p["orders"]["order"][1].update(discount_fee="50.00"),
        "orders.order[1].discount_fee",
    ),
    (Channel.JD, "paid", lambda p: p.update(orderId=["301234567890"]), "orderId"),
    (Channel.JD, "paid", lambda p: p["itemInfoList"][1].update(itemTotal="two"), "itemInfoList[1].itemTotal"),
    (Channel.JD, "paid", lambda p: p["couponDetailList"][0].update(skuId="999"), "couponDetailList[0].skuId"),
    (Channel.JD, "paid", lambda p: p["consigneeInfo"].update(fullname=""), "consigneeInfo.fullname"),
    (Channel.PINDUODUO, "paid", lambda p: p["item_list"].__setitem__(1, "RICE"), "item_list[1]"),
    (Channel.PINDUODUO, "paid", lambda p: p.update(order_status=9), "order_status"),
    (Channel.PINDUODUO, "paid", lambda p: p.update(postage=True), "postage"),
    (Channel.DOUYIN, "paid", lambda p: p.update(order_status=99), "order_status"),
    (
        Channel.DOUYIN,
        "paid",
        lambda p: p["sku_order_list"][0].update(origin_amount="159.00"),
        "sku_order_list[0].origin_amount",
    ),
    (Channel.DOUYIN, "paid", lambda p: p.update(create_time=1731891600000), "create_time"),
    (Channel.DOUYIN, "paid", lambda p: p["post_addr"].update(city="上海市"), "post_addr.city"),
    (Channel.SHOPEE, "paid", lambda p: p["recipient_address"].pop("name"), "recipient_address.name"),
    (
        Channel.SHOPEE,
        "paid",
        lambda p: p["item_list"][0].update(model_original_price=math.nan),
        "item_list[0].model_original_price",
    ),
    (Channel.SHOPEE, "paid", lambda p: p.update(currency="sgd"), "currency"),
    (Channel.SHOPEE, "paid", lambda p: p.update(item_list=[]), "item_list"),
    (Channel.SHOPEE, "paid", lambda p: p.update(cod="no"), "cod"),
    (Channel.OWN_SHOP, "paid", lambda p: p["discounts"][0].update(kind="cashback"), "discounts[0].kind"),
    (Channel.OWN_SHOP, "paid", lambda p: p.update(created_at="2024-11-18T10:15:00"), "created_at"),
    (Channel.OWN_SHOP, "paid", lambda p: p["items"][0].update(quantity=1.5), "items[0].quantity"),
    (Channel.POS, "paid", _drop("utc_offset"), "utc_offset"),
    (Channel.POS, "carry_out", lambda p: p["items"][0].update(unit_price="1980.5"), "items[0].unit_price"),
    (Channel.POS, "paid", lambda p: p["fulfilment"].update(type="DRONE"), "fulfilment.type"),
]


@pytest.mark.parametrize(
    ("channel", "fixture", "mutate", "field"),
    MALFORMED,
    ids=[f"{channel.value.lower()}:{field}" for channel, _, _, field in MALFORMED],
)
def test_a_malformed_payload_is_refused_naming_the_path(
    channel: Channel, fixture: str, mutate: Mutation, field: str
) -> None:
    payload = load(channel.value.lower(), fixture)
    mutate(payload)
    with pytest.raises(MalformedPayload) as error:
        channels.parse(channel, payload)
    assert error.value.field == field


@pytest.mark.parametrize("channel", ALL)
@pytest.mark.parametrize("payload", [None, [], "order", 42])
def test_a_payload_that_is_not_an_object_is_malformed(channel: Channel, payload: Any) -> None:
    with pytest.raises(MalformedPayload) as error:
        channels.parse(channel, payload)
    assert error.value.field == "payload"


# ---- money and time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("199.00", "CNY", 19900),
        ("0.1", "CNY", 10),
        (19.9, "CNY", 1990),
        (0.29, "SGD", 29),
        (15000.0, "IDR", 15000),
        (1980, "JPY", 1980),
        (5, "MYR", 500),
        ("12.340", "CNY", 1234),
        ("1.234", "KWD", 1234),
    ],
)
def test_amounts_become_integer_minor_units_of_their_currency(
    value: object, currency: str, minor: int
) -> None:
    assert to_minor(value, currency, "price") == minor


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("12.345", "CNY"),
        ("0.5", "JPY"),
        ("1.00000000000000000000000000001", "JPY"),
        (15000.5, "VND"),
        ("-1.00", "CNY"),
        (-0.01, "CNY"),
        (True, "CNY"),
        ("1e3", "CNY"),
        ("", "CNY"),
        (None, "CNY"),
        ({"amount": 1}, "CNY"),
        (math.inf, "CNY"),
        ("10", "yuan"),
    ],
)
def test_amounts_that_are_not_whole_minor_units_are_refused(value: object, currency: str) -> None:
    with pytest.raises(MalformedPayload):
        to_minor(value, currency, "price")


def test_channel_wall_clock_times_are_read_in_their_fixed_offset() -> None:
    assert local_time(CHINA)("2024-11-11 00:03:12", "created") == utc(2024, 11, 10, 16, 3, 12)
    assert local_time(timezone(timedelta(hours=-5)))("2024-03-10 02:30:00", "t") == utc(2024, 3, 10, 7, 30)
    assert unix_time(1731891600, "t") == utc(2024, 11, 18, 1, 0)
    assert iso_time("2024-11-18T10:15:00+08:00", "t") == utc(2024, 11, 18, 2, 15)
    assert iso_time("2024-11-18T02:15:00Z", "t") == utc(2024, 11, 18, 2, 15)


@pytest.mark.parametrize(
    ("parse", "value"),
    [
        (local_time(CHINA), "2024-02-30 10:00:00"),
        (local_time(CHINA), 1731891600),
        (iso_time, "2024-11-18T10:15:00"),
        (iso_time, "yesterday"),
        (unix_time, 1731891600000),
        (unix_time, "soon"),
        (unix_time, False),
    ],
)
def test_times_that_cannot_be_placed_in_utc_are_refused(
    parse: Callable[[object, str], datetime], value: object
) -> None:
    with pytest.raises(MalformedPayload) as error:
        parse(value, "when")
    assert error.value.field == "when"


# ---- quarantine references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "reference"),
    [
        (Channel.TAOBAO, "3865521709876543210"),
        (Channel.JD, "301234567890"),
        (Channel.PINDUODUO, "241118-593820174630291"),
        (Channel.DOUYIN, "6921834567890123456"),
        (Channel.SHOPEE, "241118ABCD1234"),
        (Channel.OWN_SHOP, "WX20241118000123"),
        (Channel.POS, "SH021:0042-000187"),
    ],
)
def test_the_channel_order_ref_is_found_in_a_payload(channel: Channel, reference: str) -> None:
    assert channels.channel_order_ref(channel, load(channel.value.lower(), "paid")) == reference


class _Hostile(dict[str, Any]):
    def get(self, *args: Any) -> Any:
        raise RuntimeError("boom")


GARBAGE: list[Any] = [
    None,
    [],
    "tid",
    b"\xff",
    42,
    {"tid": {"nested": 1}, "orderId": True, "order_sn": ["x"], "order_id": None, "order_no": 1.5},
    {"store_id": "S1"},
    _Hostile(),
]


@pytest.mark.parametrize("channel", [*list(Channel), "NOT_A_CHANNEL", None, ["unhashable"]])
@pytest.mark.parametrize("payload", GARBAGE, ids=range(len(GARBAGE)))
def test_the_channel_order_ref_never_raises_on_garbage(channel: Any, payload: Any) -> None:
    assert channels.channel_order_ref(channel, payload) == ""


# ---- the order's priority, where the channel's payload says it ------------------------------------


def test_an_own_shop_buyer_with_a_member_level_places_a_members_order() -> None:
    assert parsed(Channel.OWN_SHOP, "paid").priority is Priority.MEMBER  # buyer.member_level "gold"


def test_an_own_shop_order_flagged_expedited_is_expedited_even_for_a_member() -> None:
    payload = load("own_shop", "paid")
    payload["expedited"] = True
    assert channels.parse(Channel.OWN_SHOP, payload).priority is Priority.EXPEDITED


def test_an_own_shop_order_from_a_buyer_without_a_member_level_is_standard() -> None:
    payload = load("own_shop", "paid")
    del payload["buyer"]["member_level"]
    assert channels.parse(Channel.OWN_SHOP, payload).priority is Priority.STANDARD


def test_an_own_shop_expedited_flag_that_is_not_a_boolean_is_refused_by_its_path() -> None:
    payload = load("own_shop", "paid")
    payload["expedited"] = "yes"
    with pytest.raises(MalformedPayload) as refused:
        channels.parse(Channel.OWN_SHOP, payload)
    assert "expedited" in str(refused.value)


def test_a_pos_sale_to_a_member_is_a_members_order_and_a_walk_in_sale_is_standard() -> None:
    assert parsed(Channel.POS, "paid").priority is Priority.MEMBER
    assert parsed(Channel.POS, "carry_out").priority is Priority.STANDARD  # "member": null


@pytest.mark.parametrize(
    "channel", [Channel.TAOBAO, Channel.JD, Channel.PINDUODUO, Channel.DOUYIN, Channel.SHOPEE]
)
def test_a_marketplace_order_whose_payload_has_no_priority_field_is_standard(channel: Channel) -> None:
    command = parsed(channel, "paid")
    assert accept(command, "id-1", NOW).priority is Priority.STANDARD
