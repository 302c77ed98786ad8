from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kit.errors import InvalidArgument
from services.orders.domain.model import (
    Address,
    Channel,
    IngestOrder,
    OrderCreated,
    OrderLine,
    OrderStatus,
    accept,
)

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
ADDRESS = Address("Li Lei", "13800000000", "CN", "Zhejiang", "Hangzhou", "Xihu", "1 Wensan Road")


def command(**changes: object) -> IngestOrder:
    values: dict[str, object] = {
        "channel": Channel.TAOBAO,
        "channel_order_id": "TB-1001",
        "buyer_id": "buyer-1",
        "currency": "CNY",
        "lines": (OrderLine("SKU-1", "Tea", 2, 4500), OrderLine("SKU-2", "Cup", 1, 1999)),
        "shipping_address": ADDRESS,
        "shipping_fee_minor": 800,
        "placed_at": None,
    }
    values.update(changes)
    return IngestOrder(**values)  # type: ignore[arg-type]


def test_an_accepted_order_awaits_payment_and_announces_itself() -> None:
    order = accept(command(), "order-1", NOW)
    assert order.status is OrderStatus.PENDING_PAYMENT
    assert order.total_minor == 2 * 4500 + 1999 + 800
    assert order.placed_at == NOW
    assert order.events == [OrderCreated(OrderStatus.PENDING_PAYMENT)]


def test_the_channels_placed_time_is_kept() -> None:
    placed = datetime(2026, 11, 20, 23, 59, tzinfo=UTC)
    assert accept(command(placed_at=placed), "order-1", NOW).placed_at == placed


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": None}, "channel"),
        ({"channel_order_id": ""}, "channel_order_id"),
        ({"channel_order_id": "x" * 65}, "channel_order_id"),
        ({"currency": "cny"}, "lines[0].unit_price.currency_code"),
        ({"lines": ()}, "lines"),
        ({"lines": (OrderLine("SKU-1", "Tea", 1, 100),) * 501}, "lines"),
        ({"lines": (OrderLine("SKU-1", "Tea", 1, 100), OrderLine("", "Cup", 1, 1))}, "lines[1].sku"),
        ({"lines": (OrderLine("SKU-1", "Tea", 0, 100),)}, "lines[0].quantity"),
        ({"lines": (OrderLine("SKU-1", "Tea", 100_001, 100),)}, "lines[0].quantity"),
        ({"lines": (OrderLine("SKU-1", "Tea", 1, -1),)}, "lines[0].unit_price.amount_minor"),
        ({"shipping_fee_minor": -1}, "shipping_fee.amount_minor"),
        ({"shipping_address": None}, "shipping_address"),
        (
            {"shipping_address": Address("", "1", "CN", "Zhejiang", "Hangzhou", "", "x")},
            "shipping_address.recipient_name",
        ),
        (
            {"shipping_address": Address("A", "1", "China", "Zhejiang", "Hangzhou", "", "x")},
            "shipping_address.country_code",
        ),
    ],
)
def test_bad_orders_are_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        accept(command(**changes), "order-1", NOW)
    assert refused.value.field == field


lines = st.lists(
    st.builds(
        OrderLine,
        sku=st.from_regex(r"[A-Z0-9\-]{1,20}", fullmatch=True),
        title=st.text(max_size=20),
        quantity=st.integers(1, 100_000),
        unit_price_minor=st.integers(0, 10**12),
    ),
    min_size=1,
    max_size=30,
)


@given(lines=lines, shipping=st.integers(0, 10**12))
def test_the_total_is_exactly_the_lines_plus_shipping(lines: list[OrderLine], shipping: int) -> None:
    order = accept(command(lines=tuple(lines), shipping_fee_minor=shipping), "order-1", NOW)
    assert order.total_minor == sum(line.quantity * line.unit_price_minor for line in lines) + shipping
    assert order.total_minor >= 0


def test_an_own_shop_order_with_nothing_to_pay_is_paid_when_accepted_and_one_with_something_is_not() -> None:
    free = accept(
        command(
            channel=Channel.OWN_SHOP,
            lines=(OrderLine("SKU-1", "Tea", 1, 0),),
            shipping_fee_minor=0,
        ),
        "order-free",
        NOW,
    )
    assert free.status is OrderStatus.PAID and free.payable_minor == 0
    priced = accept(command(channel=Channel.OWN_SHOP), "order-priced", NOW)
    assert priced.status is OrderStatus.PENDING_PAYMENT, "only a payment record pays what costs something"
