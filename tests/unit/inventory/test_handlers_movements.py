"""Stock movements on a unit of work in memory: receipts, adjustments, restocks once per id; WMS counts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.inventory import handlers
from services.inventory.domain import events
from services.inventory.domain.model import Line, Movement, ReplenishmentStatus
from services.inventory.handlers import Policy
from services.kit.errors import FailedPrecondition, InvalidArgument
from tests.unit.inventory.fakes import FakeInventory

CLERK = "gateway/user/clerk-1"
POLICY = Policy()


@pytest.fixture
def inventory() -> FakeInventory:
    built = FakeInventory()
    built.stock("SH", "TEA", 10)
    built.stock("SH", "CUP", 5)
    return built


async def test_a_receipt_adds_to_on_hand_once_per_id_and_announces_the_new_level(
    inventory: FakeInventory,
) -> None:
    first = await handlers.record_receipt(inventory.uow(), POLICY, "GRN-1", "SH", "TEA", 6, owner=CLERK)
    again = await handlers.record_receipt(inventory.uow(), POLICY, "GRN-1", "SH", "TEA", 6, owner=CLERK)
    assert first == again and first.on_hand == 16
    assert inventory.row("TEA", "SH") == (16, 0, True)
    assert inventory.published(events.StockAdjusted) == [
        events.StockAdjusted("TEA", "SH", Movement.RECEIPT, 6, 16, "GRN-1", "received")
    ]


async def test_an_id_used_again_for_another_request_is_refused(inventory: FakeInventory) -> None:
    await handlers.record_receipt(inventory.uow(), POLICY, "GRN-1", "SH", "TEA", 6, owner=CLERK)
    with pytest.raises(InvalidArgument) as refused:
        await handlers.record_receipt(inventory.uow(), POLICY, "GRN-1", "SH", "TEA", 7, owner=CLERK)
    assert refused.value.field == "idempotency_key"
    assert inventory.row("TEA", "SH") == (16, 0, True)


async def test_an_adjustment_keeps_its_reason_and_note_in_the_ledger(inventory: FakeInventory) -> None:
    row = await handlers.adjust_stock(
        inventory.uow(), POLICY, "ADJ-1", "SH", "TEA", -2, "damaged", "wet box", owner=CLERK
    )
    assert row.on_hand == 8
    entry = inventory.state.ledger[-1]
    assert (entry.kind, entry.on_hand_delta, entry.reference, entry.reason) == (
        Movement.ADJUST,
        -2,
        "ADJ-1",
        "damaged: wet box",
    )


async def test_on_hand_never_falls_below_what_open_orders_hold(inventory: FakeInventory) -> None:
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 8)])
    with pytest.raises(FailedPrecondition, match="below the 8 units reserved"):
        await handlers.adjust_stock(
            inventory.uow(), POLICY, "ADJ-2", "SH", "TEA", -3, "lost", "", owner=CLERK
        )
    assert inventory.row("TEA", "SH") == (10, 8, True)
    assert ("adjust", "ADJ-2") not in inventory.state.keys  # the refused call claimed nothing


async def test_a_restock_puts_each_line_back_once_with_the_order_and_the_return(
    inventory: FakeInventory,
) -> None:
    for _ in range(2):
        rows = await handlers.restock(
            inventory.uow(), POLICY, "RMA-9", "o-7", "SH", [("TEA", 1), ("CUP", 2)], owner=CLERK
        )
    assert [(row.sku, row.on_hand) for row in rows] == [("CUP", 7), ("TEA", 11)]
    restocks = [e for e in inventory.state.ledger if e.kind is Movement.RESTOCK]
    assert [(e.sku, e.on_hand_delta, e.order_id, e.reference) for e in restocks] == [
        ("CUP", 2, "o-7", "RMA-9"),
        ("TEA", 1, "o-7", "RMA-9"),
    ]


@pytest.mark.parametrize(
    ("sku", "warehouse", "field"), [("NOPE", "SH", "sku"), ("TEA", "MARS", "warehouse_id")]
)
async def test_stock_of_an_unknown_sku_or_warehouse_is_refused_naming_the_field(
    inventory: FakeInventory, sku: str, warehouse: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await handlers.record_receipt(inventory.uow(), POLICY, "G", warehouse, sku, 1, owner=CLERK)
    assert refused.value.field == field
    assert inventory.state.keys == {}


async def test_a_wms_count_sets_on_hand_keeps_reservations_and_an_older_version_changes_nothing(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 4)])
    applied, row = await handlers.record_stock_count(inventory.uow(), POLICY, "SH", "TEA", 25, version=200)
    assert applied and (row.on_hand, row.reserved) == (25, 4)
    applied, row = await handlers.record_stock_count(inventory.uow(), POLICY, "SH", "TEA", 7, version=150)
    assert not applied and row.on_hand == 25
    with pytest.raises(FailedPrecondition, match="below the 4 units reserved"):
        await handlers.record_stock_count(inventory.uow(), POLICY, "SH", "TEA", 3, version=300)
    counts = [e for e in inventory.state.ledger if e.kind is Movement.COUNT]
    assert [(e.on_hand_delta, e.reference) for e in counts] == [(15, "v200")]


async def test_stock_back_above_the_safety_level_sells_again_and_closes_the_work_order(
    inventory: FakeInventory,
) -> None:
    await handlers.set_stock_policy(inventory.uow(), POLICY, "SH", "TEA", normal_level=10, safety_level=0)
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 8)])
    [order] = inventory.state.replenishment.values()
    assert (order.status, order.suggested_quantity) == (ReplenishmentStatus.OPEN, 8)

    row = await handlers.record_receipt(inventory.uow(), POLICY, "GRN-2", "SH", "TEA", 10, owner=CLERK)
    assert row.sellable and inventory.row("TEA", "SH") == (20, 8, True)
    [closed] = inventory.state.replenishment.values()
    assert (closed.status, closed.note) == (ReplenishmentStatus.CLOSED, "stock recovered")
    assert [type(e) for e in inventory.state.published if not isinstance(e, events.StockReserved)] == [
        events.LowStock,
        events.AlertRaised,
        events.StockAdjusted,
        events.BackInStock,
    ]
    [alert] = inventory.published(events.AlertRaised)
    assert (alert.kind, alert.dedupe_key, alert.roles) == (
        "low_stock",
        "inventory:low_stock:TEA:SH",
        ("warehouse_supervisor",),
    )


async def test_a_closed_work_order_does_not_reopen(inventory: FakeInventory) -> None:
    await handlers.set_stock_policy(inventory.uow(), POLICY, "SH", "TEA", normal_level=10, safety_level=0)
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 8)])
    [order] = inventory.state.replenishment.values()
    ordered = await handlers.update_replenishment_order(
        inventory.uow(), order.replenishment_order_id, ReplenishmentStatus.ORDERED, "PO-77"
    )
    assert (ordered.status, ordered.note) == (ReplenishmentStatus.ORDERED, "PO-77")
    await handlers.update_replenishment_order(
        inventory.uow(), order.replenishment_order_id, ReplenishmentStatus.CLOSED, ""
    )
    with pytest.raises(FailedPrecondition):
        await handlers.update_replenishment_order(
            inventory.uow(), order.replenishment_order_id, ReplenishmentStatus.OPEN, ""
        )


async def test_the_invariant_check_names_a_row_the_ledger_does_not_explain_and_announces_it(
    inventory: FakeInventory,
) -> None:
    await handlers.reserve(inventory.uow, POLICY, "o-1", [Line("TEA", "SH", 2)])
    assert (await handlers.check_invariants(inventory.uow()))[1] == []
    inventory.state.stock[("CUP", "SH")] = replace(inventory.state.stock[("CUP", "SH")], on_hand=6)
    rows, breaches = await handlers.check_invariants(inventory.uow())
    assert rows == 2 and [(b.sku, b.on_hand - b.ledger_on_hand) for b in breaches] == [("CUP", 1)]
    assert inventory.published(events.InvariantBreached) == [events.InvariantBreached(tuple(breaches))]
    [alert] = inventory.published(events.AlertRaised)
    assert (alert.kind, alert.severity, alert.dedupe_key) == (
        "inventory_invariant_breached",
        4,
        "inventory:invariant_breached",
    )
    assert "CUP@SH" in alert.message


@pytest.mark.parametrize(
    ("on_hand", "average", "units", "cost", "after"),
    [
        (0, 0, 10, 700, 700),  # nothing on hand: the new units' cost
        (10, 700, 10, 900, 800),
        (3, 1000, 1, 1001, 1000),  # 4001 / 4 = 1000.25 → 1000
        (1, 1000, 1, 1001, 1001),  # 2001 / 2 = 1000.5 → rounded half up
        (10, 700, 0, 900, 700),  # nothing came in
        (-2, 500, 4, 800, 800),  # a row short of units takes the new cost
    ],
)
def test_the_moving_average_cost_is_the_value_on_hand_over_the_units(
    on_hand: int, average: int, units: int, cost: int, after: int
) -> None:
    from services.inventory.domain.model import average_cost

    assert average_cost(on_hand, average, units, cost) == after


async def test_a_return_comes_back_at_the_cost_it_went_out_at_whatever_the_average_is_now() -> None:
    inventory = FakeInventory()
    inventory.stock("SH", "TEA", 0)
    uow = inventory.uow
    await handlers.record_receipt(uow(), POLICY, "GRN-1", "SH", "TEA", 10, owner=CLERK, unit_cost=700)
    await handlers.record_receipt(uow(), POLICY, "GRN-2", "SH", "TEA", 10, owner=CLERK, unit_cost=900)
    assert inventory.state.unit_costs[("TEA", "SH")] == 800
    await handlers.reserve(uow, POLICY, "o-1", [Line("TEA", "SH", 4)])
    await handlers.commit_reservation(uow, POLICY, "o-1")
    [sold] = [e for e in inventory.state.ledger if e.kind is Movement.COMMIT]
    assert (sold.unit_cost_minor, sold.value_minor) == (800, -3200), "shipped at the average"
    # dearer goods arrive: the average moves, the sale's cost does not
    await handlers.record_receipt(uow(), POLICY, "GRN-3", "SH", "TEA", 16, owner=CLERK, unit_cost=1100)
    assert inventory.state.unit_costs[("TEA", "SH")] == (16 * 800 + 16 * 1100 + 16) // 32
    await handlers.restock(uow(), POLICY, "RT-t-1", "o-1", "SH", [("TEA", 1)], owner="aftersales")
    [back] = [e for e in inventory.state.ledger if e.kind is Movement.RESTOCK]
    assert (back.unit_cost_minor, back.value_minor, back.reference) == (800, 800, "RT-t-1")
    # the returned unit joins the row at its own cost
    assert inventory.state.unit_costs[("TEA", "SH")] == (32 * 950 + 800 + 16) // 33


async def test_a_receipt_cost_out_of_range_is_refused_naming_the_field(inventory: FakeInventory) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await handlers.record_receipt(
            inventory.uow(), POLICY, "GRN-9", "SH", "TEA", 1, owner=CLERK, unit_cost=-1
        )
    assert refused.value.field == "unit_cost_minor"
    assert inventory.row("TEA", "SH") == (10, 0, True)
