from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from services.inventory import handlers, views
from services.inventory.domain.model import Line, ReplenishmentStatus
from services.inventory.handlers import Policy
from services.kit.errors import FailedPrecondition, InvalidArgument
from tests.integration.inventory.conftest import CLERK, Inventory, inventory_factory


async def test_a_wms_count_sets_on_hand_keeps_reservations_and_an_older_version_changes_nothing(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 4)])
    applied, row = await handlers.record_stock_count(
        inventory.uow(), inventory.policy, "SH", "TEA", 25, version=200
    )
    assert applied and (row.on_hand, row.reserved) == (25, 4)
    applied, row = await handlers.record_stock_count(
        inventory.uow(), inventory.policy, "SH", "TEA", 7, version=150
    )
    assert not applied and row.on_hand == 25
    applied, _ = await handlers.record_stock_count(
        inventory.uow(), inventory.policy, "SH", "TEA", 7, version=200
    )
    assert not applied
    with pytest.raises(FailedPrecondition, match="below the 4 units reserved"):
        await handlers.record_stock_count(inventory.uow(), inventory.policy, "SH", "TEA", 3, version=300)
    assert await inventory.row("TEA", "SH") == (25, 4, True)
    assert await inventory.scalar("SELECT count(*) FROM ledger WHERE kind = 'count'") == 1


async def test_receipts_adjustments_and_restocks_apply_once_per_id(inventory: Inventory) -> None:
    await inventory.stock("SH", ("TEA", 10), ("CUP", 5))
    for _ in range(2):
        await handlers.record_receipt(inventory.uow(), inventory.policy, "GRN-1", "SH", "TEA", 6, owner=CLERK)
        await handlers.adjust_stock(
            inventory.uow(), inventory.policy, "ADJ-1", "SH", "TEA", -2, "damaged", "wet box", owner=CLERK
        )
        await handlers.restock(
            inventory.uow(), inventory.policy, "RMA-9", "o-7", "SH", [("TEA", 1), ("CUP", 2)], owner=CLERK
        )
    assert await inventory.row("TEA", "SH") == (15, 0, True)
    assert await inventory.row("CUP", "SH") == (7, 0, True)
    with pytest.raises(InvalidArgument, match="idempotency_key"):
        await handlers.record_receipt(inventory.uow(), inventory.policy, "GRN-1", "SH", "TEA", 7, owner=CLERK)
    async with inventory.engine.connect() as conn:
        restocks = (
            await conn.execute(
                text(
                    "SELECT sku, on_hand_delta, order_id, reference FROM ledger "
                    "WHERE kind = 'restock' ORDER BY sku"
                )
            )
        ).all()
    assert [tuple(r) for r in restocks] == [("CUP", 2, "o-7", "RMA-9"), ("TEA", 1, "o-7", "RMA-9")]


async def test_another_callers_receipt_under_the_same_id_is_a_receipt_of_its_own(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.record_receipt(inventory.uow(), inventory.policy, "GRN-7", "SH", "TEA", 6, owner=CLERK)
    other = "gateway/user/clerk-2"
    # another request under the id: not refused (which would tell the caller someone used the id)
    await handlers.record_receipt(inventory.uow(), inventory.policy, "GRN-7", "SH", "TEA", 3, owner=other)
    # the same request: acted on, not answered with the first caller's result
    await handlers.record_receipt(
        inventory.uow(), inventory.policy, "GRN-7", "SH", "TEA", 6, owner="orders/service/orders"
    )
    await handlers.record_receipt(inventory.uow(), inventory.policy, "GRN-7", "SH", "TEA", 3, owner=other)
    assert await inventory.row("TEA", "SH") == (25, 0, True)


async def test_an_adjustment_below_the_reserved_units_is_refused(inventory: Inventory) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 8)])
    with pytest.raises(FailedPrecondition):
        await handlers.adjust_stock(
            inventory.uow(), inventory.policy, "ADJ-2", "SH", "TEA", -3, "lost", "", owner=CLERK
        )
    assert await inventory.row("TEA", "SH") == (10, 8, True)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda i: handlers.record_receipt(i.uow(), i.policy, "G", "SH", "TEA", 0, owner=CLERK), "quantity"),
        (lambda i: handlers.record_receipt(i.uow(), i.policy, "G", "SH", "NOPE", 1, owner=CLERK), "sku"),
        (
            lambda i: handlers.record_receipt(i.uow(), i.policy, "G", "MARS", "TEA", 1, owner=CLERK),
            "warehouse_id",
        ),
        (
            lambda i: handlers.adjust_stock(i.uow(), i.policy, "A", "SH", "TEA", 0, "lost", "", owner=CLERK),
            "delta",
        ),
        (lambda i: handlers.record_stock_count(i.uow(), i.policy, "SH", "TEA", -1, 5), "on_hand"),
        (lambda i: handlers.record_stock_count(i.uow(), i.policy, "SH", "TEA", 1, 0), "version"),
        (
            lambda i: handlers.restock(
                i.uow(), i.policy, "R", "o", "SH", [("TEA", 1), ("TEA", 1)], owner=CLERK
            ),
            "lines[1].sku",
        ),
        (lambda i: views.availability(i.uow(), i.policy, ["TEA", "NOPE"], []), "skus[1]"),
    ],
)
async def test_bad_stock_updates_are_refused_naming_the_field_and_change_nothing(
    inventory: Inventory,
    call,
    field: str,  # type: ignore[no-untyped-def]
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    with pytest.raises(InvalidArgument) as refused:
        await call(inventory)
    assert refused.value.field == field
    assert await inventory.row("TEA", "SH") == (10, 0, True)
    assert await inventory.scalar("SELECT count(*) FROM ledger") == 1


async def test_low_stock_hides_the_row_opens_a_work_order_and_recovery_sells_again(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    row = await handlers.set_stock_policy(
        inventory.uow(), inventory.policy, "SH", "TEA", normal_level=10, safety_level=0
    )
    assert (row.safety_level, row.sellable) == (3, True)  # 30 % of the normal level
    await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 8)])
    assert await inventory.row("TEA", "SH") == (10, 8, False)
    refused = await handlers.reserve(inventory.uow, inventory.policy, "o-2", [Line("TEA", "SH", 1)])
    assert [s.reason for s in refused.shortages] == ["not_sellable"]
    [order], _ = await views.list_replenishment_orders(
        inventory.uow(), ReplenishmentStatus.OPEN, "TEA", 0, ""
    )
    assert (order.warehouse_id, order.suggested_quantity) == ("SH", 8)
    await handlers.update_replenishment_order(
        inventory.uow(), order.replenishment_order_id, ReplenishmentStatus.ORDERED, "PO-77"
    )

    await handlers.record_receipt(inventory.uow(), inventory.policy, "GRN-2", "SH", "TEA", 10, owner=CLERK)
    assert await inventory.row("TEA", "SH") == (20, 8, True)
    [closed], _ = await views.list_replenishment_orders(inventory.uow(), None, "TEA", 0, "")
    assert closed.status == "CLOSED"
    with pytest.raises(FailedPrecondition):
        await handlers.update_replenishment_order(
            inventory.uow(), order.replenishment_order_id, ReplenishmentStatus.OPEN, ""
        )
    subjects = await inventory.outbox_subjects()
    assert subjects.count("inventory.low_stock") == 1 and subjects.count("inventory.back_in_stock") == 1
    assert subjects.count("alerts.raised") == 1


async def test_the_ledger_explains_every_number_after_a_random_workload_and_the_checker_names_a_corrupt_row(
    inventory: Inventory,
) -> None:
    rng = random.Random(2026)
    skus, warehouses = ["A", "B", "C"], ["SH", "BJ"]
    for warehouse in warehouses:
        await inventory.stock(warehouse, *((sku, 20) for sku in skus))
    open_orders: list[str] = []
    for step in range(150):
        action = rng.choice(
            ["reserve", "reserve", "commit", "release", "receipt", "adjust", "count", "expire", "move"]
        )
        sku, warehouse = rng.choice(skus), rng.choice(warehouses)
        try:
            if action == "reserve":
                keys = rng.sample([(s, w) for s in skus for w in warehouses], rng.randint(1, 3))
                outcome = await handlers.reserve(
                    inventory.uow,
                    inventory.policy,
                    f"w-{step}",
                    [Line(s, w, rng.randint(1, 5)) for s, w in keys],
                )
                if outcome.reserved:
                    open_orders.append(f"w-{step}")
            elif action in ("commit", "release") and open_orders:
                order = open_orders.pop(rng.randrange(len(open_orders)))
                if action == "commit":
                    await handlers.commit_reservation(inventory.uow, inventory.policy, order)
                else:
                    await handlers.release_reservation(inventory.uow, inventory.policy, order, "random")
            elif action == "receipt":
                await handlers.record_receipt(
                    inventory.uow(),
                    inventory.policy,
                    f"g-{step}",
                    warehouse,
                    sku,
                    rng.randint(1, 10),
                    owner=CLERK,
                )
            elif action == "adjust":
                await handlers.adjust_stock(
                    inventory.uow(),
                    inventory.policy,
                    f"a-{step}",
                    warehouse,
                    sku,
                    rng.choice([-3, -1, 2, 5]),
                    "correction",
                    "",
                    owner=CLERK,
                )
            elif action == "count":
                await handlers.record_stock_count(
                    inventory.uow(), inventory.policy, warehouse, sku, rng.randint(10, 40), version=step + 1
                )
            elif action == "expire":
                inventory.clock.advance(inventory.policy.reservation_ttl / 3)
                await handlers.expire_reservations(inventory.uow(), inventory.policy)
            elif action == "move" and open_orders:
                order = rng.choice(open_orders)
                _, lines = await handlers.get_reservation(inventory.uow(), order)
                line = rng.choice(lines)
                other = next(w for w in warehouses if w != line.warehouse_id)
                await handlers.move_reservation(
                    inventory.uow, inventory.policy, order, line.sku, line.warehouse_id, other
                )
        except FailedPrecondition:
            pass  # refusals are part of the walk: an expired order, a count below reservations, …

    rows, breaches = await handlers.check_invariants(inventory.uow())
    assert rows == 6 and breaches == []
    assert await inventory.scalar("SELECT count(*) FROM ledger") > 150

    async with inventory.engine.begin() as conn:
        await conn.execute(
            text("UPDATE stock SET on_hand = on_hand + 1 WHERE sku = 'B' AND warehouse_id = 'BJ'")
        )
    _, breaches = await handlers.check_invariants(inventory.uow())
    assert [(b.sku, b.warehouse_id, b.on_hand - b.ledger_on_hand) for b in breaches] == [("B", "BJ", 1)]
    # with the alert that reaches a person (the gateway records and routes it)
    assert (await inventory.outbox_subjects())[-2:] == ["inventory.invariant_breached", "alerts.raised"]


async def test_in_pool_scope_the_skus_sums_decide_and_all_its_warehouses_flip_together(
    inventory_db: str,
) -> None:
    async for inventory in inventory_factory(Policy(low_stock_scope="pool"))(inventory_db):
        await inventory.stock("SH", ("TEA", 10))
        await inventory.stock("BJ", ("TEA", 10))
        for warehouse in ("SH", "BJ"):
            await handlers.set_stock_policy(inventory.uow(), inventory.policy, warehouse, "TEA", 10, 0)
        await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 9)])
        assert await inventory.row("TEA", "SH") == (10, 9, True)  # 1 left here, but 11 in the pool ≥ 6
        await handlers.reserve(inventory.uow, inventory.policy, "o-2", [Line("TEA", "BJ", 6)])
        assert [await inventory.row("TEA", w) for w in ("SH", "BJ")] == [(10, 9, False), (10, 6, False)]
        [order], _ = await views.list_replenishment_orders(inventory.uow(), None, "TEA", 0, "")
        assert (order.warehouse_id, order.status) == ("", "OPEN")
        await handlers.release_reservation(inventory.uow, inventory.policy, "o-2", "cancelled")
        assert [(await inventory.row("TEA", w))[2] for w in ("SH", "BJ")] == [True, True]
        subjects = await inventory.outbox_subjects()
        assert subjects.count("inventory.low_stock") == 1 and subjects.count("inventory.back_in_stock") == 1
