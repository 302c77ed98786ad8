"""Hot-SKU stock buckets on the real Postgres: split rows sell exactly what they have, and every other
path (commit, release, expiry, counts, adjustments, availability, un-splitting) sees the same stock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from services.inventory import handlers, views
from services.inventory.domain.model import Line
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.integration.inventory.conftest import CLERK, Inventory


async def buckets(inventory: Inventory, sku: str, warehouse_id: str = "SH") -> list[tuple[int, int, int]]:
    async with inventory.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT bucket, allotted, used FROM stock_buckets"
                " WHERE sku = :s AND warehouse_id = :w ORDER BY bucket"
            ),
            {"s": sku, "w": warehouse_id},
        )
        return [(row.bucket, row.allotted, row.used) for row in rows]


async def held(inventory: Inventory, sku: str, warehouse_id: str = "SH") -> tuple[int, int, bool]:
    """On hand, the units orders hold (the row's reserved less its buckets' free units), sellable."""
    async with inventory.uow() as uow:
        row = await uow.stock.get(sku, warehouse_id)
    assert row is not None
    return row.on_hand, row.reserved, row.sellable


async def split(inventory: Inventory, sku: str, count: int, warehouse_id: str = "SH") -> None:
    await handlers.set_stock_buckets(inventory.uow(), inventory.policy, warehouse_id, sku, count)


async def no_breaches(inventory: Inventory) -> None:
    _, breaches = await handlers.check_invariants(inventory.uow())
    assert breaches == []


async def test_racing_buyers_on_a_split_row_sell_exactly_what_it_has_refilling_dry_buckets_from_the_row(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("HOT", 20))
    await split(inventory, "HOT", 8)  # the 19 reservable units shared among 8 buckets
    assert sum(allotted for _, allotted, _ in await buckets(inventory, "HOT")) == 19
    await handlers.record_receipt(inventory.uow(), inventory.policy, "r-more", "SH", "HOT", 180, owner=CLERK)
    desk = handlers.ReserveDesk(inventory.uow, inventory.policy)

    async def buy(n: int) -> bool:
        return (await desk.reserve(f"o-{n}", [Line("HOT", "SH", 1)])).reserved

    results = await asyncio.gather(*(buy(n) for n in range(260)))
    assert sum(results) == 190  # 95 % of 200
    assert await inventory.row("HOT", "SH") == (200, 190, True)
    parts = await buckets(inventory, "HOT")
    assert (
        sum(used for _, _, used in parts)
        + await inventory.scalar(
            "SELECT COALESCE(sum(quantity), 0) FROM reservation_lines WHERE bucket IS NULL"
        )
        == 190
    )
    assert sum(1 for _, _, used in parts if used) > 1  # the orders spread over the buckets
    assert await inventory.scalar("SELECT count(*) FROM reservations") == 190
    await no_breaches(inventory)


async def test_commit_and_release_of_lines_taken_from_buckets_keep_row_and_buckets_consistent(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 40))
    await split(inventory, "TEA", 4)  # 38 reservable: 10, 10, 9, 9
    assert await buckets(inventory, "TEA") == [(0, 10, 0), (1, 10, 0), (2, 9, 0), (3, 9, 0)]
    for n in range(3):
        outcome = await handlers.reserve(inventory.uow, inventory.policy, f"o-{n}", [Line("TEA", "SH", 2)])
        assert outcome.reserved
    assert await inventory.scalar("SELECT count(*) FROM reservation_lines WHERE bucket IS NOT NULL") == 3
    await handlers.commit_reservation(inventory.uow, inventory.policy, "o-0")
    await handlers.release_reservation(inventory.uow, inventory.policy, "o-1", "cancelled")
    parts = await buckets(inventory, "TEA")
    assert (sum(a for _, a, _ in parts), sum(u for _, _, u in parts)) == (36, 2)
    assert await held(inventory, "TEA") == (38, 2, True)
    assert await inventory.row("TEA", "SH") == (38, 36, True)  # the row counts every allotted unit
    await no_breaches(inventory)


async def test_a_line_larger_than_any_bucket_and_an_order_of_several_lines_take_the_free_units_back(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 40), ("CUP", 10))
    await split(inventory, "TEA", 4)  # 10, 10, 9, 9: no bucket has 15
    big = await handlers.reserve(inventory.uow, inventory.policy, "o-big", [Line("TEA", "SH", 15)])
    assert big.reserved
    several = await handlers.reserve(
        inventory.uow, inventory.policy, "o-two", [Line("CUP", "SH", 1), Line("TEA", "SH", 20)]
    )
    assert several.reserved
    assert await held(inventory, "TEA") == (40, 35, True)
    short = await handlers.reserve(inventory.uow, inventory.policy, "o-late", [Line("TEA", "SH", 4)])
    assert not short.reserved and short.shortages[0].available == 3
    await no_breaches(inventory)


async def test_a_count_or_an_adjustment_below_the_allotted_units_takes_the_free_bucket_units_back_first(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 40))
    await split(inventory, "TEA", 4)
    assert (await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 5)])).reserved
    row = await handlers.adjust_stock(
        inventory.uow(), inventory.policy, "a-1", "SH", "TEA", -30, "damaged", "", owner=CLERK
    )
    assert (row.on_hand, row.reserved) == (10, 5)
    assert all(allotted == used for _, allotted, used in await buckets(inventory, "TEA"))
    assert await inventory.row("TEA", "SH") == (10, 5, True)  # nothing free is left in the buckets
    applied, counted = await handlers.record_stock_count(inventory.uow(), inventory.policy, "SH", "TEA", 5, 1)
    assert applied and (counted.on_hand, counted.reserved) == (5, 5)
    with pytest.raises(FailedPrecondition, match="below the 5 units reserved"):
        await handlers.record_stock_count(inventory.uow(), inventory.policy, "SH", "TEA", 4, 2)
    await no_breaches(inventory)


async def test_availability_is_the_same_with_and_without_buckets(inventory: Inventory) -> None:
    await inventory.stock("SH", ("PLAIN", 50), ("SPLIT", 50))
    await split(inventory, "SPLIT", 6)
    for sku in ("PLAIN", "SPLIT"):
        for n, quantity in enumerate((3, 1, 4)):
            outcome = await handlers.reserve(
                inventory.uow,
                inventory.policy,
                f"{sku}-{n}",
                [Line(sku, "SH", quantity)],
                timedelta(minutes=1),
            )
            assert outcome.reserved
        await handlers.commit_reservation(inventory.uow, inventory.policy, f"{sku}-0")
    inventory.clock.advance(timedelta(seconds=30))
    for sku in ("PLAIN", "SPLIT"):  # a later hold outlives the others
        await handlers.reserve(inventory.uow, inventory.policy, f"{sku}-late", [Line(sku, "SH", 2)])
    inventory.clock.advance(timedelta(seconds=40))  # the first holds expired, not yet swept

    def seen(sku: str, found: list) -> tuple:
        [entry] = [entry for entry in found if entry.sku == sku]
        [level] = entry.warehouses
        return (entry.pool_available, entry.pool_on_hand, level.on_hand, level.reserved, level.available)

    found = await views.availability(inventory.uow(), inventory.policy, ["PLAIN", "SPLIT"], [])
    assert seen("SPLIT", found) == seen("PLAIN", found) == (42, 47, 47, 2, 42)
    await handlers.expire_reservations(inventory.uow(), inventory.policy)
    found = await views.availability(inventory.uow(), inventory.policy, ["PLAIN", "SPLIT"], [])
    assert seen("SPLIT", found) == seen("PLAIN", found)
    await no_breaches(inventory)


async def test_turning_buckets_off_returns_every_free_unit_and_later_releases_go_to_the_row(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 100))
    await split(inventory, "TEA", 8)
    for n in range(5):
        assert (
            await handlers.reserve(inventory.uow, inventory.policy, f"o-{n}", [Line("TEA", "SH", 3)])
        ).reserved
    split_off = await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "TEA", 1)
    assert split_off.buckets == 0
    assert all(part.free == 0 for part in split_off.parts)
    assert sum(part.used for part in split_off.parts) == 15
    assert await inventory.row("TEA", "SH") == (100, 15, True)
    await handlers.release_reservation(inventory.uow, inventory.policy, "o-0", "cancelled")
    assert (
        sum(
            part.free
            for part in (
                await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "TEA", 0)
            ).parts
        )
        == 0
    )
    assert await inventory.row("TEA", "SH") == (100, 12, True)
    after = await handlers.reserve(inventory.uow, inventory.policy, "o-after", [Line("TEA", "SH", 83)])
    assert after.reserved  # 95 - 12: everything reservable, through the row
    assert await inventory.scalar("SELECT count(*) FROM reservation_lines WHERE bucket IS NULL") == 1
    await no_breaches(inventory)


async def test_a_repeat_changes_nothing_and_bad_input_is_refused_naming_the_field(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 40))
    await handlers.put_sku(inventory.uow(), "NEVER-STOCKED", "x")
    first = await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "TEA", 4)
    again = await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "TEA", 4)
    assert again == first and first.buckets == 4
    for count in (-1, 65):
        with pytest.raises(InvalidArgument, match="buckets"):
            await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "TEA", count)
    with pytest.raises(InvalidArgument, match="sku"):
        await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "NOPE", 4)
    with pytest.raises(InvalidArgument, match="warehouse_id"):
        await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "MARS", "TEA", 4)
    with pytest.raises(NotFound):
        await handlers.set_stock_buckets(inventory.uow(), inventory.policy, "SH", "NEVER-STOCKED", 4)
    assert await inventory.scalar("SELECT count(*) FROM stock WHERE sku = 'NEVER-STOCKED'") == 0
    assert await inventory.scalar("SELECT count(*) FROM stock_buckets") == 4
    assert await inventory.scalar("SELECT sum(allotted) FROM stock_buckets") == 38


async def test_a_sold_out_split_row_answers_short_until_its_holds_lapse_then_frees_them_for_the_next_buyer(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("HOT", 10))
    await split(inventory, "HOT", 4)
    sold = 0
    for n in range(20):
        outcome = await handlers.reserve(
            inventory.uow, inventory.policy, f"early-{n}", [Line("HOT", "SH", 1)], timedelta(minutes=1)
        )
        sold += outcome.reserved
    assert 0 < sold < 20
    late = await handlers.reserve(inventory.uow, inventory.policy, "late-0", [Line("HOT", "SH", 1)])
    assert not late.reserved and [s.sku for s in late.shortages] == ["HOT"]
    inventory.clock.advance(timedelta(minutes=2))  # every early hold lapsed; no sweeper has run
    late = await handlers.reserve(inventory.uow, inventory.policy, "late-1", [Line("HOT", "SH", 1)])
    assert late.reserved, "the lapsed holds on the split row were freed for this buyer"
    async with inventory.engine.connect() as conn:
        expired = await conn.scalar(
            text("SELECT count(*) FROM reservations WHERE status = 'EXPIRED' AND order_id LIKE 'early-%'")
        )
    assert expired == sold
    await no_breaches(inventory)
