"""Only payment makes an order paid: a paid fact at ingest counts only where a marketplace vouches for it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.kit.errors import InvalidArgument
from services.orders.domain.model import Channel, OrderStatus, accept, vouched
from tests.unit.orders.test_model import NOW, command

PAID_AT = datetime(2026, 11, 21, 7, 59, tzinfo=UTC)


@pytest.mark.parametrize("channel", [Channel.OWN_SHOP, Channel.POS])
def test_a_canonical_own_shop_or_pos_order_claiming_paid_is_refused_naming_paid_at(channel: Channel) -> None:
    with pytest.raises(InvalidArgument) as refused:
        accept(command(channel=channel, paid_at=PAID_AT), "order-1", NOW)
    assert refused.value.field == "paid_at"


@pytest.mark.parametrize("channel", [Channel.TAOBAO, Channel.JD, Channel.PINDUODUO, Channel.SHOPEE])
def test_a_marketplace_order_paid_on_the_marketplace_is_paid(channel: Channel) -> None:
    order = accept(command(channel=channel, paid_at=PAID_AT), "order-1", NOW)
    assert order.is_paid and order.status is OrderStatus.PAID


@pytest.mark.parametrize("channel", [Channel.OWN_SHOP, Channel.POS])
def test_a_self_run_channels_paid_status_leaves_the_order_awaiting_its_payment(channel: Channel) -> None:
    order = accept(vouched(command(channel=channel, paid_at=PAID_AT, channel_status="PAID")), "order-1", NOW)
    assert (order.status, order.is_paid, order.channel_status) == (OrderStatus.PENDING_PAYMENT, False, "PAID")


def test_a_marketplace_payload_keeps_its_paid_fact() -> None:
    assert vouched(command(channel=Channel.TAOBAO, paid_at=PAID_AT)).paid_at == PAID_AT
