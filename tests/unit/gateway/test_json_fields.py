"""Which JSON body keys a method's message does not have (the transcoder would drop them silently)."""

from __future__ import annotations

from google.protobuf import descriptor_pool

from services.gateway.json_fields import unknown_field
from services.gateway.routes import public_proto_modules

public_proto_modules()
POOL = descriptor_pool.Default()
INGEST = POOL.FindMethodByName("oms.orders.v1.OrdersService.IngestOrder")
PUT_SKU = POOL.FindMethodByName("oms.inventory.v1.InventoryService.PutSku")


def test_known_fields_pass_in_json_and_proto_names_at_any_depth() -> None:
    listed = "channel,lines,shipping_address,lines.sku,lines.unitPrice,lines.unit_price.currencyCode"
    assert unknown_field(INGEST, listed) is None


def test_the_first_unknown_field_is_named_as_the_caller_wrote_it() -> None:
    assert unknown_field(PUT_SKU, "title,goodsType") is None
    assert unknown_field(PUT_SKU, "title,goodsKind") == "goodsKind"
    assert (
        unknown_field(INGEST, "channel,lines,lines.unitPrice,lines.unitPrice.colour")
        == "lines.unitPrice.colour"
    )


def test_percent_encoded_and_json_escaped_keys_are_read_as_sent() -> None:
    assert unknown_field(PUT_SKU, "%5Cu0074itle") is None  # "\u0074itle" is "title"
    assert unknown_field(PUT_SKU, "ti%2Etle") == "ti.tle"


def test_keys_below_a_struct_or_an_http_body_are_data_not_fields() -> None:
    channel_order = POOL.FindMethodByName("oms.orders.v1.OrdersService.IngestChannelOrder")
    webhook = POOL.FindMethodByName("oms.gateway.v1.GatewayService.ReceivePaymentWebhook")
    assert unknown_field(channel_order, "channel,payload,payload.order_sn,payload.items.whatever") is None
    assert unknown_field(webhook, "transaction_id,anything") is None


def test_a_method_without_a_body_checks_nothing() -> None:
    get_order = POOL.FindMethodByName("oms.orders.v1.OrdersService.GetOrder")
    assert unknown_field(get_order, "anything") is None
