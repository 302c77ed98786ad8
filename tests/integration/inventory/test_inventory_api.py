from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from oms.inventory.v1 import inventory_pb2 as pb
from oms.inventory.v1 import inventory_pb2_grpc
from services.inventory.grpc_api import SERVICE_NAME, InventoryServicer
from services.kit import grpc_client
from services.orders.peers import PeerRefused, Peers, Plan
from tests import identity
from tests.integration.inventory.conftest import Inventory


@pytest.fixture
async def stub(inventory: Inventory) -> AsyncIterator[inventory_pb2_grpc.InventoryServiceStub]:
    async with _served(inventory, grpc_client.DEFAULT_DEADLINE_SECONDS) as served:
        yield served


@pytest.fixture
async def patient_stub(inventory: Inventory) -> AsyncIterator[inventory_pb2_grpc.InventoryServiceStub]:
    """Calls allowed 30 s: the channel's deadline caps each call's own `timeout`."""
    async with _served(inventory, 30.0) as served:
        yield served


@contextlib.asynccontextmanager
async def _served(
    inventory: Inventory, deadline_seconds: float
) -> AsyncIterator[inventory_pb2_grpc.InventoryServiceStub]:
    servicer = InventoryServicer(inventory.uow, inventory.policy)
    async with (
        identity.served(
            SERVICE_NAME, lambda s: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, s)
        ) as address,
        identity.client_channel(address, deadline_seconds=deadline_seconds) as channel,
    ):
        yield inventory_pb2_grpc.InventoryServiceStub(channel)


async def test_a_reservation_through_grpc_from_reference_data_to_commit(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH", name="Shanghai"))
    await stub.PutSku(pb.PutSkuRequest(sku="SKU-1", title="Tea"))
    receipt = await stub.RecordReceipt(
        pb.RecordReceiptRequest(receipt_id="G1", warehouse_id="WH-SH", sku="SKU-1", quantity=40)
    )
    assert (receipt.stock.on_hand, receipt.stock.available) == (40, 38)

    line = pb.ReservationLine(sku="SKU-1", warehouse_id="WH-SH", quantity=5)
    reply = await stub.Reserve(pb.ReserveRequest(order_id="o-1", lines=[line]))
    assert reply.reserved and reply.reservation.status == pb.RESERVATION_STATUS_ACTIVE
    committed = await stub.CommitReservation(pb.CommitReservationRequest(order_id="o-1"))
    assert committed.reservation.status == pb.RESERVATION_STATUS_COMMITTED

    availability = await stub.GetAvailability(pb.GetAvailabilityRequest(skus=["SKU-1"]))
    [sku] = availability.skus
    assert (sku.pool_on_hand, sku.pool_available, sku.warehouses[0].reserved) == (35, 33, 0)
    ledger = await stub.ListLedger(pb.ListLedgerRequest(sku="SKU-1", page=dict(page_size=2)))
    assert [e.kind for e in ledger.entries] == ["commit", "reserve"] and ledger.page.next_page_token
    rest = await stub.ListLedger(
        pb.ListLedgerRequest(sku="SKU-1", page=dict(page_size=2, page_token=ledger.page.next_page_token))
    )
    assert [e.kind for e in rest.entries] == ["receipt"] and not rest.page.next_page_token
    checked = await stub.CheckInvariants(pb.CheckInvariantsRequest())
    assert (checked.rows_checked, list(checked.breaches)) == (1, [])


async def test_grpc_errors_name_the_field_and_shortages_come_back_as_data(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH"))
    await stub.PutSku(pb.PutSkuRequest(sku="SKU-1"))
    line = pb.ReservationLine(sku="SKU-1", warehouse_id="WH-SH", quantity=1)
    with pytest.raises(grpc.aio.AioRpcError) as duplicate:
        await stub.Reserve(pb.ReserveRequest(order_id="o-2", lines=[line, line]))
    assert duplicate.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert duplicate.value.details().startswith("lines[1]:")
    with pytest.raises(grpc.aio.AioRpcError) as no_reason:
        await stub.AdjustStock(
            pb.AdjustStockRequest(adjustment_id="a", warehouse_id="WH-SH", sku="SKU-1", delta=1)
        )
    assert no_reason.value.details().startswith("reason:")
    reply = await stub.Reserve(pb.ReserveRequest(order_id="o-3", lines=[line]))
    assert not reply.reserved
    assert [(s.sku, s.available, s.reason) for s in reply.shortages] == [("SKU-1", 0, "no_stock_record")]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetReservation(pb.GetReservationRequest(order_id="o-3"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_sku_keeps_its_catalogue_attributes_and_a_repeat_changes_nothing(
    stub: inventory_pb2_grpc.InventoryServiceStub, inventory: Inventory
) -> None:
    request = pb.PutSkuRequest(
        sku="FISH-1",
        title="Chilled salmon",
        goods_type=pb.GOODS_TYPE_COLD_CHAIN,
        category="seafood/chilled",
        weight_g=1200,
        customised=False,
    )
    stored = (await stub.PutSku(request)).sku
    assert (stored.goods_type, stored.category, stored.weight_g) == (
        pb.GOODS_TYPE_COLD_CHAIN,
        "seafood/chilled",
        1200,
    )
    again = (await stub.PutSku(request)).sku
    assert again == stored
    assert await inventory.outbox_subjects() == ["inventory.sku_updated"]  # the repeat announced nothing
    read = (await stub.GetSku(pb.GetSkuRequest(sku="FISH-1"))).sku
    assert read == stored

    await stub.PutSku(pb.PutSkuRequest(sku="MUG-1", title="Name mug", customised=True))
    mug = (await stub.GetSku(pb.GetSkuRequest(sku="MUG-1"))).sku
    await stub.PutSku(pb.PutSkuRequest(sku="MUG-1", title="Name mug", customised=True, weight_g=350))
    assert await inventory.outbox_subjects() == ["inventory.sku_updated"] * 3
    assert (mug.goods_type, mug.customised, mug.weight_g) == (pb.GOODS_TYPE_NORMAL, True, 0)
    cold = await stub.ListSkus(pb.ListSkusRequest(goods_type=pb.GOODS_TYPE_COLD_CHAIN))
    assert [s.sku for s in cold.skus] == ["FISH-1"]
    page = await stub.ListSkus(pb.ListSkusRequest(page=dict(page_size=1)))
    assert [s.sku for s in page.skus] == ["FISH-1"] and page.page.next_page_token == "FISH-1"

    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH"))
    await stub.RecordReceipt(
        pb.RecordReceiptRequest(receipt_id="G", warehouse_id="WH-SH", sku="FISH-1", quantity=3)
    )
    [entry] = (await stub.GetAvailability(pb.GetAvailabilityRequest(skus=["FISH-1"]))).skus
    assert entry.catalogue == stored


async def test_unknown_catalogue_values_are_refused_naming_the_field_and_nothing_is_stored(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    for request, field in (
        (pb.PutSkuRequest(sku="X-1", goods_type=7), "goods_type"),  # type: ignore[arg-type]
        (pb.PutSkuRequest(sku="X-1", weight_g=-5), "weight_g"),
        (pb.PutSkuRequest(sku="X-1", weight_g=2_000_000), "weight_g"),
        (pb.PutSkuRequest(sku="X-1", category="<script>"), "category"),
        (pb.PutSkuRequest(sku="bad sku"), "sku"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PutSku(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith(f"{field}:")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetSku(pb.GetSkuRequest(sku="X-1"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "X-1" in (missing.value.details() or "")


# ---- the batch calls of orders' process manager ------------------------------------------------------


async def test_a_batch_reserve_answers_each_order_on_its_own_and_a_repeat_reserves_nothing_twice(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH", name="Shanghai"))
    await stub.PutSku(pb.PutSkuRequest(sku="SKU-1", title="Tea"))
    await stub.RecordReceipt(
        pb.RecordReceiptRequest(receipt_id="G1", warehouse_id="WH-SH", sku="SKU-1", quantity=10)
    )

    def ask(order_id: str, quantity: int, sku: str = "SKU-1") -> pb.ReserveRequest:
        return pb.ReserveRequest(
            order_id=order_id, lines=[pb.ReservationLine(sku=sku, warehouse_id="WH-SH", quantity=quantity)]
        )

    batch = pb.ReserveBatchRequest(
        # 9 of the 10 units are reservable (the 95 % cap): b-1 and b-2 fit together, b-3 never fits
        requests=[ask("b-1", 4), ask("b-2", 5), ask("b-3", 10), ask("b-4", 1, sku="NOPE"), ask("", 1)]
    )
    reply = await stub.ReserveBatch(batch)
    outcomes = {o.order_id: o for o in reply.outcomes}
    assert [o.order_id for o in reply.outcomes] == ["b-1", "b-2", "b-3", "b-4", ""]
    assert outcomes["b-1"].reserved.reserved and outcomes["b-2"].reserved.reserved
    assert not outcomes["b-3"].reserved.reserved and outcomes["b-3"].reserved.shortages
    assert outcomes["b-4"].WhichOneof("outcome") == "error"
    assert outcomes["b-4"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in outcomes["b-4"].error.violations] == ["lines[0].sku"]
    assert outcomes[""].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    again = await stub.ReserveBatch(pb.ReserveBatchRequest(requests=[ask("b-1", 4), ask("b-2", 5)]))
    assert [o.reserved.reservation.reservation_id for o in again.outcomes] == [
        outcomes["b-1"].reserved.reservation.reservation_id,
        outcomes["b-2"].reserved.reservation.reservation_id,
    ]
    availability = await stub.GetAvailability(pb.GetAvailabilityRequest(skus=["SKU-1"]))
    assert availability.skus[0].warehouses[0].reserved == 9  # reserved once, not twice

    committed = await stub.CommitReservations(pb.CommitReservationsRequest(order_ids=["b-1", "b-3", "b-9"]))
    codes = [o.error.code if o.WhichOneof("outcome") == "error" else 0 for o in committed.outcomes]
    assert committed.outcomes[0].reservation.status == pb.RESERVATION_STATUS_COMMITTED
    # b-3 was refused (short): nothing to commit; b-9 never reserved
    assert codes[1:] == [grpc.StatusCode.NOT_FOUND.value[0]] * 2
    repeat = await stub.CommitReservations(pb.CommitReservationsRequest(order_ids=["b-1"]))
    assert repeat.outcomes[0].reservation.status == pb.RESERVATION_STATUS_COMMITTED
    checked = await stub.CheckInvariants(pb.CheckInvariantsRequest())
    assert list(checked.breaches) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ReserveBatchRequest(), "requests"),
        (pb.ReserveBatchRequest(requests=[pb.ReserveRequest(order_id="x")] * 2), "requests[1]"),
        (
            pb.ReserveBatchRequest(requests=[pb.ReserveRequest(order_id=f"o{n}") for n in range(501)]),
            "requests",
        ),
    ],
)
async def test_a_batch_that_names_an_order_twice_or_too_many_is_refused_whole(
    stub: inventory_pb2_grpc.InventoryServiceStub, request_: pb.ReserveBatchRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ReserveBatch(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(f"{field}:")


async def test_a_repeated_reserve_that_took_the_last_units_is_answered_with_its_reservation(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    """A step run again after a crash repeats its reserve; the stock it took is gone from the row, and
    the repeat must not read as a shortage (the order would be held while holding its units)."""
    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH", name="Shanghai"))
    await stub.PutSku(pb.PutSkuRequest(sku="SKU-1", title="Tea"))
    await stub.RecordReceipt(
        pb.RecordReceiptRequest(receipt_id="G1", warehouse_id="WH-SH", sku="SKU-1", quantity=10)
    )
    line = pb.ReservationLine(sku="SKU-1", warehouse_id="WH-SH", quantity=8)
    first = await stub.Reserve(pb.ReserveRequest(order_id="o-1", lines=[line]))
    again = await stub.Reserve(pb.ReserveRequest(order_id="o-1", lines=[line]))
    assert first.reserved and again.reserved
    assert again.reservation.reservation_id == first.reservation.reservation_id
    other = pb.ReservationLine(sku="SKU-1", warehouse_id="WH-SH", quantity=7)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Reserve(pb.ReserveRequest(order_id="o-1", lines=[other]))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not (await stub.Reserve(pb.ReserveRequest(order_id="o-2", lines=[line]))).reserved


class _OlderInventory(inventory_pb2_grpc.InventoryServiceServicer):
    """An inventory from before the batch calls (a rolling upgrade): only the single calls answer."""

    def __init__(self, real: InventoryServicer) -> None:
        self.real = real

    async def Reserve(self, request: pb.ReserveRequest, context: object) -> pb.ReserveResponse:
        return await self.real.Reserve(request, context)


@pytest.mark.parametrize("older", [False, True], ids=["batch-calls", "older-inventory"])
async def test_orders_peers_reserve_in_batches_and_ask_an_older_inventory_order_by_order(
    inventory: Inventory, older: bool
) -> None:
    real = InventoryServicer(inventory.uow, inventory.policy)
    servicer = _OlderInventory(real) if older else real
    await inventory.stock("WH-SH", ("SKU-1", 100))
    async with identity.served(
        SERVICE_NAME, lambda s: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, s)
    ) as address:
        channel = grpc_client.channel(address, identity=identity.service_identity("orders"))
        peers = Peers(channel, channel, 0, deadline_seconds=5, linger=0.02)
        plans = [Plan((("WH-SH", "SKU-1", 1),)) for _ in range(5)] + [Plan((("WH-SH", "NOPE", 1),))]
        try:
            answers = await asyncio.gather(
                *(peers.reserve(f"pb-{n}", plan) for n, plan in enumerate(plans)), return_exceptions=True
            )
        finally:
            await channel.close()
    assert answers[:5] == [True] * 5
    assert isinstance(answers[5], PeerRefused) and answers[5].message.endswith("(lines[0].sku)")
    assert peers.batched["inventory"] is not older
    assert peers._reserves.batches == 1  # one call was made of the six, whatever the peer then did
    assert await inventory.scalar("SELECT count(*) FROM reservations WHERE order_id LIKE 'pb-%'") == 5


async def test_the_ledger_values_a_sale_at_the_moving_average_and_its_return_at_the_same_cost(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH", name="Shanghai"))
    await stub.PutSku(pb.PutSkuRequest(sku="SKU-C", title="Tea"))
    for receipt_id, units, cost in (("GC1", 10, 700), ("GC2", 10, 900)):
        await stub.RecordReceipt(
            pb.RecordReceiptRequest(
                receipt_id=receipt_id, warehouse_id="WH-SH", sku="SKU-C", quantity=units, unit_cost_minor=cost
            )
        )
    line = pb.ReservationLine(sku="SKU-C", warehouse_id="WH-SH", quantity=4)
    assert (await stub.Reserve(pb.ReserveRequest(order_id="o-c", lines=[line]))).reserved
    await stub.CommitReservation(pb.CommitReservationRequest(order_id="o-c"))
    await stub.RecordReceipt(
        pb.RecordReceiptRequest(
            receipt_id="GC3", warehouse_id="WH-SH", sku="SKU-C", quantity=16, unit_cost_minor=1100
        )
    )
    await stub.Restock(
        pb.RestockRequest(
            return_id="RT-t-9",
            order_id="o-c",
            warehouse_id="WH-SH",
            lines=[pb.RestockLine(sku="SKU-C", quantity=1)],
        )
    )
    ledger = await stub.ListLedger(pb.ListLedgerRequest(sku="SKU-C"))
    valued = [(e.kind, e.on_hand_delta, e.unit_cost_minor, e.value_minor) for e in reversed(ledger.entries)]
    assert valued == [
        ("receipt", 10, 700, 7000),
        ("receipt", 10, 900, 9000),
        ("reserve", 0, 0, 0),  # reserved units move nothing at cost
        ("commit", -4, 800, -3200),
        ("receipt", 16, 1100, 17600),
        ("restock", 1, 800, 800),  # the cost of the sale reversed, not today's average of 950
    ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.RecordReceipt(
            pb.RecordReceiptRequest(
                receipt_id="GC4", warehouse_id="WH-SH", sku="SKU-C", quantity=1, unit_cost_minor=-5
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("unit_cost_minor:")


async def test_a_hot_sku_split_into_buckets_through_grpc_sells_exactly_its_stock_and_refuses_bad_counts(
    patient_stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    stub = patient_stub
    await stub.PutWarehouse(pb.PutWarehouseRequest(warehouse_id="WH-SH"))
    await stub.PutSku(pb.PutSkuRequest(sku="HOT"))
    await stub.RecordReceipt(
        pb.RecordReceiptRequest(receipt_id="G1", warehouse_id="WH-SH", sku="HOT", quantity=60)
    )
    split = await stub.SetStockBuckets(pb.SetStockBucketsRequest(warehouse_id="WH-SH", sku="HOT", buckets=8))
    assert (split.buckets, sum(p.allotted for p in split.parts), split.stock.available) == (8, 57, 57)
    for count, field in ((65, "buckets"), (-1, "buckets")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SetStockBuckets(
                pb.SetStockBucketsRequest(warehouse_id="WH-SH", sku="HOT", buckets=count)
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details().startswith(f"{field}:")
    line = pb.ReservationLine(sku="HOT", warehouse_id="WH-SH", quantity=1)
    replies = await asyncio.gather(
        # a split row answers its sold-out buyers one by one: on a busy machine the last of 120 may
        # wait longer than the default 5 s deadline (seen in two clean-clone runs), hence the patient
        # channel
        *(stub.Reserve(pb.ReserveRequest(order_id=f"h-{n}", lines=[line]), timeout=30) for n in range(120))
    )
    assert sum(reply.reserved for reply in replies) == 57
    [sku] = (await stub.GetAvailability(pb.GetAvailabilityRequest(skus=["HOT"]))).skus
    assert (sku.warehouses[0].reserved, sku.pool_available) == (57, 0)
    checked = await stub.CheckInvariants(pb.CheckInvariantsRequest())
    assert list(checked.breaches) == []
