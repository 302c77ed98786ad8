from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.common.v1 import common_pb2
from oms.orders.v1 import events_pb2, orders_pb2, orders_pb2_grpc
from services.kit import tracing
from services.kit.schema import outbox_table
from services.kit.status import DETAILS_KEY, field_violations
from services.orders import bootstrap
from services.orders.grpc_api import SERVICE_NAME, OrdersServicer
from services.orders.store import order_lines_table, orders_table
from tests import identity
from tests.conftest import random_ref
from tests.integration.orders.conftest import make_policy


def order_request(channel_order_id: str, **overrides: object) -> orders_pb2.IngestOrderRequest:
    request = orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_TAOBAO,
        channel_order_id=channel_order_id,
        buyer_id="buyer-1",
        lines=[
            orders_pb2.OrderLine(
                sku="SKU-1",
                title="Tea",
                quantity=2,
                unit_price=common_pb2.Money(currency_code="CNY", amount_minor=4500),
            ),
            orders_pb2.OrderLine(
                sku="SKU-2",
                title="Cup",
                quantity=1,
                unit_price=common_pb2.Money(currency_code="CNY", amount_minor=1999),
            ),
        ],
        shipping_address=common_pb2.Address(
            recipient_name="Han Meimei",
            phone="13900000000",
            country_code="CN",
            province="Zhejiang",
            city="Hangzhou",
            district="Xihu",
            detail="18 Longjing Road",
        ),
        shipping_fee=common_pb2.Money(currency_code="CNY", amount_minor=800),
    )
    for name, value in overrides.items():
        setattr(request, name, value)
    return request


@pytest.fixture
async def stub(orders_engine: AsyncEngine) -> AsyncIterator[orders_pb2_grpc.OrdersServiceStub]:
    policy = make_policy()
    servicer = OrdersServicer(lambda: bootstrap.unit_of_work(orders_engine, policy.keys), policy)
    async with (
        identity.served(
            SERVICE_NAME, lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s)
        ) as address,
        identity.client_channel(address) as channel,
    ):
        yield orders_pb2_grpc.OrdersServiceStub(channel)


async def _counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            [
                int(await conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in (orders_table, order_lines_table, outbox_table)
            ]
        )


async def test_an_ingested_order_is_stored_read_back_and_announced(
    stub: orders_pb2_grpc.OrdersServiceStub, orders_engine: AsyncEngine
) -> None:
    reply = await stub.IngestOrder(order_request(random_ref("TB")))
    assert reply.created
    assert reply.order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT
    assert reply.order.total == common_pb2.Money(currency_code="CNY", amount_minor=2 * 4500 + 1999 + 800)

    read = await stub.GetOrder(orders_pb2.GetOrderRequest(order_id=reply.order.order_id))
    assert read.order == reply.order

    async with orders_engine.connect() as conn:
        row = (await conn.execute(select(outbox_table))).one()
    assert row.subject == "orders.created"
    event = events_pb2.OrderCreated.FromString(row.payload)
    assert (event.order_id, event.event_id, event.line_count) == (reply.order.order_id, row.event_id, 2)


async def test_a_repeated_channel_order_returns_the_first_order_and_writes_nothing(
    stub: orders_pb2_grpc.OrdersServiceStub, orders_engine: AsyncEngine
) -> None:
    channel_order_id = random_ref("TB")
    first = await stub.IngestOrder(order_request(channel_order_id))
    again = await stub.IngestOrder(order_request(channel_order_id, buyer_id="someone-else"))
    assert not again.created
    assert again.order == first.order
    assert await _counts(orders_engine) == (1, 2, 1)


async def test_concurrent_deliveries_of_one_channel_order_make_one_order_and_one_event(
    stub: orders_pb2_grpc.OrdersServiceStub, orders_engine: AsyncEngine
) -> None:
    channel_order_id = random_ref("JD")
    replies = await asyncio.gather(*(stub.IngestOrder(order_request(channel_order_id)) for _ in range(20)))
    assert sum(r.created for r in replies) == 1
    assert len({r.order.order_id for r in replies}) == 1
    assert await _counts(orders_engine) == (1, 2, 1)


async def test_the_same_order_number_on_two_channels_is_two_orders(
    stub: orders_pb2_grpc.OrdersServiceStub, orders_engine: AsyncEngine
) -> None:
    number = random_ref("X")
    await stub.IngestOrder(order_request(number))
    other = await stub.IngestOrder(order_request(number, channel=orders_pb2.CHANNEL_JD))
    assert other.created
    assert (await _counts(orders_engine))[0] == 2


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.ClearField("channel"), "channel"),
        (lambda r: setattr(r, "channel", 99), "channel"),
        (lambda r: setattr(r, "channel_order_id", ""), "channel_order_id"),
        (lambda r: setattr(r, "channel_order_id", "bad id with spaces"), "channel_order_id"),
        (lambda r: r.ClearField("lines"), "lines"),
        (lambda r: setattr(r.lines[1], "quantity", 0), "lines[1].quantity"),
        (lambda r: setattr(r.lines[0], "quantity", -3), "lines[0].quantity"),
        (lambda r: setattr(r.lines[0], "sku", ""), "lines[0].sku"),
        (lambda r: setattr(r.lines[1].unit_price, "amount_minor", -1), "lines[1].unit_price.amount_minor"),
        (
            lambda r: setattr(r.lines[1].unit_price, "currency_code", "USD"),
            "lines[1].unit_price.currency_code",
        ),
        (
            lambda r: setattr(r.lines[0].unit_price, "currency_code", "yuan"),
            "lines[0].unit_price.currency_code",
        ),
        (lambda r: r.ClearField("shipping_address"), "shipping_address"),
        (lambda r: setattr(r.shipping_address, "city", " "), "shipping_address.city"),
        (lambda r: setattr(r.shipping_fee, "amount_minor", -5), "shipping_fee.amount_minor"),
    ],
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    stub: orders_pb2_grpc.OrdersServiceStub,
    orders_engine: AsyncEngine,
    mutate,
    field: str,  # type: ignore[no-untyped-def]
) -> None:
    request = order_request(random_ref("BAD"))
    mutate(request)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.IngestOrder(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(f"{field}:")
    assert await _counts(orders_engine) == (0, 0, 0)


def _violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    details = dict(error.trailing_metadata() or ())[DETAILS_KEY]
    assert isinstance(details, bytes)
    return field_violations(details)


async def test_an_empty_order_names_its_channel_first_then_its_lines_and_no_line_that_does_not_exist(
    stub: orders_pb2_grpc.OrdersServiceStub, orders_engine: AsyncEngine
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.IngestOrder(orders_pb2.IngestOrderRequest())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "channel: is required"
    fields = [field for field, _ in _violations(refused.value)]
    assert fields == ["channel", "channel_order_id", "lines", "shipping_address"]
    assert await _counts(orders_engine) == (0, 0, 0)


async def test_an_unknown_enum_number_is_named_unknown_and_reported_in_field_order(
    stub: orders_pb2_grpc.OrdersServiceStub,
) -> None:
    request = order_request(random_ref("BAD"))
    request.channel = 42  # type: ignore[assignment]
    request.lines[1].unit_price.currency_code = "USD"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.IngestOrder(request)
    assert refused.value.details() == "channel: unknown value 42"
    assert _violations(refused.value) == [
        ("channel", "unknown value 42"),
        ("lines[1].unit_price.currency_code", "must be CNY, the currency of the order's first line"),
    ]


async def test_unknown_and_malformed_order_ids(stub: orders_pb2_grpc.OrdersServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="01900000-0000-7000-8000-000000000000"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="'; DROP TABLE orders; --"))
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert malformed.value.details().startswith("order_id:")


async def test_an_unknown_channel_number_is_refused_as_unknown_not_read_as_unset(
    stub: orders_pb2_grpc.OrdersServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.IngestChannelOrder(
            orders_pb2.IngestChannelOrderRequest(channel=77, payload_json="{}")  # type: ignore[arg-type]
        )
    assert refused.value.details() == "channel: unknown value 77"
    with pytest.raises(grpc.aio.AioRpcError) as listed:
        await stub.ListQuarantine(orders_pb2.ListQuarantineRequest(channel=77))  # type: ignore[arg-type]
    assert (listed.value.code(), listed.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "channel: unknown value 77",
    )


async def test_single_orders_sent_at_once_are_stored_together_each_in_its_own_trace_and_answered_alone(
    orders_engine: AsyncEngine,
) -> None:
    tracing.setup_tracing("tests")
    policy = make_policy()
    servicer = OrdersServicer(
        lambda: bootstrap.unit_of_work(orders_engine, policy.keys), policy, ingest_linger=0.05
    )
    assert servicer._singles is not None
    refs = [random_ref("TB") for _ in range(8)]

    def send(stub: orders_pb2_grpc.OrdersServiceStub, ref: str, lineless: bool = False) -> object:
        request = order_request(ref)
        if lineless:
            del request.lines[:]
        return stub.IngestOrder(request)

    async with (
        identity.served(
            SERVICE_NAME, lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s)
        ) as address,
        identity.client_channel(address) as channel,
    ):
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        # 6 new orders, the first sent twice at once, and one without lines (refused alone)
        calls = [send(stub, ref) for ref in refs[:6]] + [
            send(stub, refs[0]),
            send(stub, refs[6], lineless=True),
        ]
        answers = await asyncio.gather(*calls, return_exceptions=True)
    assert servicer._singles.batches < len(calls), "the calls should have been stored together"
    replies = [a for a in answers if isinstance(a, orders_pb2.IngestOrderResponse)]
    assert sorted(reply.created for reply in replies) == [False] + [True] * 6
    assert len({reply.order.order_id for reply in replies}) == 6  # the repeat names the same order
    refused = answers[-1]
    assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with orders_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(orders_table.c.channel_order_id, orders_table.c.traceparent).where(
                    orders_table.c.channel_order_id.in_(refs)
                )
            )
        ).all()
        events = (
            await conn.execute(
                select(outbox_table.c.traceparent).where(outbox_table.c.subject.like("%orders.created"))
            )
        ).scalars()
        event_traces = {traceparent.split("-")[1] for traceparent in events if traceparent}
    # each order runs in its own call's trace (the batch imposes none of its own), and so do its events
    order_traces = {traceparent.split("-")[1] for _, traceparent in rows if traceparent}
    assert len(rows) == 6 and len(order_traces) == 6
    assert order_traces <= event_traces
