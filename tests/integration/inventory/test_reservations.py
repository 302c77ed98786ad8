from __future__ import annotations

import asyncio
import os
import random
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from services.inventory import handlers, views
from services.inventory.domain.model import Line
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.integration.inventory.conftest import Inventory

ROOT = Path(__file__).resolve().parents[3]


async def test_racing_buyers_for_the_last_units_never_reserve_more_than_the_cap_allows(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("HOT", 20))  # 95 % cap: 19 units may be reserved

    async def buy(n: int) -> bool:
        outcome = await handlers.reserve(inventory.uow, inventory.policy, f"o-{n}", [Line("HOT", "SH", 1)])
        return outcome.reserved

    results = await asyncio.gather(*(buy(n) for n in range(50)))
    assert sum(results) == 19
    assert await inventory.row("HOT", "SH") == (20, 19, True)
    assert await inventory.scalar("SELECT count(*) FROM reservations") == 19
    _, breaches = await handlers.check_invariants(inventory.uow())
    assert breaches == []


async def test_buyers_in_separate_processes_racing_for_the_last_units_never_oversell(
    inventory: Inventory, inventory_db: str
) -> None:
    await inventory.stock("SH", ("LAST", 40))  # 95 % cap: 38 units may be reserved
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}"}
    buyers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("buyers.py")),
            inventory_db,
            f"p{n}",
            "20",
            "LAST",
            "SH",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        for n in range(4)
    ]
    outputs = [await buyer.communicate() for buyer in buyers]
    assert [buyer.returncode for buyer in buyers] == [0, 0, 0, 0]
    assert sum(int(out.decode()) for out, _ in outputs) == 38
    assert await inventory.row("LAST", "SH") == (40, 38, True)
    assert (await handlers.check_invariants(inventory.uow()))[1] == []


async def test_multi_line_orders_racing_on_overlapping_skus_neither_deadlock_nor_oversell(
    inventory: Inventory,
) -> None:
    skus = ["A", "B", "C", "D"]
    await inventory.stock("SH", *((sku, 30) for sku in skus))
    await inventory.stock("BJ", *((sku, 30) for sku in skus))
    rng = random.Random(7)
    orders = []
    for n in range(80):
        keys = rng.sample([(s, w) for s in skus for w in ("SH", "BJ")], rng.randint(2, 5))
        orders.append((f"m-{n}", [Line(s, w, rng.randint(1, 4)) for s, w in keys]))

    outcomes = await asyncio.gather(
        *(handlers.reserve(inventory.uow, inventory.policy, order_id, lines) for order_id, lines in orders)
    )
    reserved: dict[tuple[str, str], int] = {}
    for (_, lines), outcome in zip(orders, outcomes, strict=True):
        if outcome.reserved:
            for line in lines:
                reserved[line.key] = reserved.get(line.key, 0) + line.quantity
        else:
            assert outcome.shortages
    assert any(o.reserved for o in outcomes) and not all(o.reserved for o in outcomes)
    for sku in skus:
        for warehouse in ("SH", "BJ"):
            on_hand, held, _ = await inventory.row(sku, warehouse)
            assert held == reserved.get((sku, warehouse), 0) <= on_hand * 95 // 100
    assert (await handlers.check_invariants(inventory.uow()))[1] == []


async def test_a_repeated_reserve_returns_the_first_reservation_and_reserves_once(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    first = await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 3)])
    again = await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 3)])
    assert again.reservation.reservation_id == first.reservation.reservation_id
    assert await inventory.row("TEA", "SH") == (10, 3, True)
    with pytest.raises(FailedPrecondition):
        await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 4)])
    assert await inventory.outbox_subjects() == [
        "inventory.sku_updated",
        "inventory.adjusted",
        "inventory.reserved",
    ]


async def test_shortages_name_each_line_and_what_is_available_and_nothing_is_written(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10), ("CUP", 100))
    outcome = await handlers.reserve(
        inventory.uow, inventory.policy, "o-1", [Line("CUP", "SH", 5), Line("TEA", "SH", 10)]
    )
    assert not outcome.reserved
    assert [(s.sku, s.requested, s.available, s.reason) for s in outcome.shortages] == [
        ("TEA", 10, 9, "insufficient")
    ]
    assert await inventory.row("CUP", "SH") == (100, 0, True)
    assert await inventory.scalar("SELECT count(*) FROM reservations") == 0
    assert await inventory.scalar("SELECT count(*) FROM ledger WHERE kind = 'reserve'") == 0


async def test_commit_deducts_once_and_a_released_reservation_never_commits(inventory: Inventory) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.reserve(inventory.uow, inventory.policy, "paid", [Line("TEA", "SH", 2)])
    await handlers.reserve(inventory.uow, inventory.policy, "cancelled", [Line("TEA", "SH", 3)])
    await handlers.commit_reservation(inventory.uow, inventory.policy, "paid")
    await handlers.commit_reservation(inventory.uow, inventory.policy, "paid")
    await handlers.release_reservation(inventory.uow, inventory.policy, "cancelled", "buyer cancelled")
    await handlers.release_reservation(inventory.uow, inventory.policy, "cancelled", "buyer cancelled")
    assert await inventory.row("TEA", "SH") == (8, 0, True)
    with pytest.raises(FailedPrecondition):
        await handlers.commit_reservation(inventory.uow, inventory.policy, "cancelled")
    with pytest.raises(FailedPrecondition):
        await handlers.release_reservation(inventory.uow, inventory.policy, "paid", "too late")
    with pytest.raises(NotFound):
        await handlers.commit_reservation(inventory.uow, inventory.policy, "never-reserved")
    assert (await handlers.check_invariants(inventory.uow()))[1] == []


async def test_expired_reservations_stop_counting_at_once_and_the_sweeper_releases_and_announces_them(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.reserve(
        inventory.uow, inventory.policy, "unpaid", [Line("TEA", "SH", 9)], timedelta(minutes=1)
    )
    [before] = await views.availability(inventory.uow(), inventory.policy, ["TEA"], [])
    assert before.pool_available == 0
    inventory.clock.advance(timedelta(minutes=2))
    [after] = await views.availability(inventory.uow(), inventory.policy, ["TEA"], [])
    assert (after.warehouses[0].reserved, after.pool_available) == (0, 9)

    assert await handlers.expire_reservations(inventory.uow(), inventory.policy) == 1
    assert await inventory.row("TEA", "SH") == (10, 0, True)
    assert (await inventory.outbox_subjects())[-1] == "inventory.reservation_expired"
    with pytest.raises(FailedPrecondition):
        await handlers.commit_reservation(inventory.uow, inventory.policy, "unpaid")
    again = await handlers.reserve(inventory.uow, inventory.policy, "unpaid", [Line("TEA", "SH", 9)])
    assert again.reserved


async def test_a_reserve_finds_room_left_by_expired_reservations_before_the_sweeper_runs(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.reserve(
        inventory.uow, inventory.policy, "old", [Line("TEA", "SH", 9)], timedelta(minutes=1)
    )
    inventory.clock.advance(timedelta(minutes=5))
    outcome = await handlers.reserve(inventory.uow, inventory.policy, "new", [Line("TEA", "SH", 9)])
    assert outcome.reserved
    assert (await handlers.get_reservation(inventory.uow(), "old"))[0].status == "EXPIRED"


async def test_committing_an_expired_reservation_is_refused_and_releases_it(inventory: Inventory) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await handlers.reserve(
        inventory.uow, inventory.policy, "late", [Line("TEA", "SH", 2)], timedelta(minutes=1)
    )
    inventory.clock.advance(timedelta(minutes=2))
    with pytest.raises(FailedPrecondition, match="expired"):
        await handlers.commit_reservation(inventory.uow, inventory.policy, "late")
    assert await inventory.row("TEA", "SH") == (10, 0, True)


async def test_a_reservation_moves_to_another_warehouse_atomically_or_not_at_all(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    await inventory.stock("BJ", ("TEA", 3))
    await handlers.reserve(inventory.uow, inventory.policy, "o-1", [Line("TEA", "SH", 2)])
    _, lines, shortage = await handlers.move_reservation(
        inventory.uow, inventory.policy, "o-1", "TEA", "SH", "BJ"
    )
    assert shortage is None and lines == (Line("TEA", "BJ", 2),)
    assert (await inventory.row("TEA", "SH"), await inventory.row("TEA", "BJ")) == (
        (10, 0, True),
        (3, 2, True),
    )
    _, _, shortage = await handlers.move_reservation(
        inventory.uow, inventory.policy, "o-1", "TEA", "BJ", "SH"
    )
    assert shortage is None
    await handlers.reserve(inventory.uow, inventory.policy, "o-2", [Line("TEA", "SH", 7)])
    _, lines, shortage = await handlers.move_reservation(
        inventory.uow, inventory.policy, "o-2", "TEA", "SH", "BJ"
    )
    assert shortage is not None and shortage.available == 2
    assert (await inventory.row("TEA", "SH"), await inventory.row("TEA", "BJ")) == (
        (10, 9, True),
        (3, 0, True),
    )
    assert (await handlers.check_invariants(inventory.uow()))[1] == []


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        ([Line("NOPE", "SH", 1)], "lines[0].sku"),
        ([Line("TEA", "SH", 1), Line("TEA", "MARS", 1)], "lines[1].warehouse_id"),
        ([Line("TEA", "SH", 0)], "lines[0].quantity"),
        ([Line("TEA", "SH", -2)], "lines[0].quantity"),
        ([Line("TEA", "SH", 10**9)], "lines[0].quantity"),
        ([Line("TEA", "SH", 1), Line("TEA", "SH", 2)], "lines[1]"),
        ([Line("", "SH", 1)], "lines[0].sku"),
    ],
)
async def test_bad_reservations_are_refused_naming_the_field_and_write_nothing(
    inventory: Inventory, lines: list[Line], field: str
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    with pytest.raises(InvalidArgument) as refused:
        await handlers.reserve(inventory.uow, inventory.policy, "o-1", lines)
    assert refused.value.field == field
    assert await inventory.scalar("SELECT count(*) FROM reservations") == 0
    assert await inventory.scalar("SELECT count(*) FROM ledger WHERE kind <> 'receipt'") == 0


async def test_the_desk_places_racing_one_line_buyers_in_groups_and_never_oversells(
    inventory: Inventory,
) -> None:
    """The desk's group commit: buyers of a hot row go together, the rest of the sold-out buyers are
    answered short from one read, each order reserves once, and everything adds up."""
    await inventory.stock("SH", ("HOT", 40), ("TEA", 100))  # 95 % cap: 38 HOT may be reserved
    desk = handlers.ReserveDesk(inventory.uow, inventory.policy)

    async def buy(n: int) -> tuple[bool, int]:
        sku = "HOT" if n % 4 else "TEA"
        outcome = await desk.reserve(f"o-{n}", [Line(sku, "SH", 1)])
        available = outcome.shortages[0].available if outcome.shortages else -1
        return outcome.reserved, available

    results = await asyncio.gather(*(buy(n) for n in range(200)))
    hot = [results[n] for n in range(200) if n % 4]
    assert sum(reserved for reserved, _ in hot) == 38
    assert all(available == 0 for reserved, available in hot if not reserved)  # short, and says so
    assert all(reserved for n, (reserved, _) in enumerate(results) if n % 4 == 0)  # TEA had room
    assert desk.batches < 200, "no buyer went together with another"
    assert await inventory.row("HOT", "SH") == (40, 38, True)
    assert await inventory.row("TEA", "SH") == (100, 50, True)
    assert await inventory.scalar("SELECT count(*) FROM reservations") == 88
    announced = "SELECT count(*) FROM outbox WHERE subject LIKE '%inventory.reserved'"
    assert await inventory.scalar(announced) == 88
    assert (await handlers.check_invariants(inventory.uow()))[1] == []
    # a buyer that asks again gets its first reservation, reserving nothing more
    again = await asyncio.gather(*(desk.reserve(f"o-{n}", [Line("TEA", "SH", 1)]) for n in range(0, 40, 4)))
    assert all(a.reserved for a in again) and await inventory.row("TEA", "SH") == (100, 50, True)


async def test_the_desk_refuses_what_reserve_refuses_and_finds_room_left_by_expired_holds(
    inventory: Inventory,
) -> None:
    await inventory.stock("SH", ("TEA", 10))
    desk = handlers.ReserveDesk(inventory.uow, inventory.policy)
    await desk.reserve("old", [Line("TEA", "SH", 9)], timedelta(minutes=1))
    inventory.clock.advance(timedelta(minutes=5))
    unknown, *placed = await asyncio.gather(
        desk.reserve("bad", [Line("NOPE", "SH", 1)]),
        *(desk.reserve(f"new-{n}", [Line("TEA", "SH", 3)]) for n in range(4)),
        return_exceptions=True,
    )
    assert isinstance(unknown, InvalidArgument) and "NOPE" in str(unknown)
    assert sum(1 for p in placed if not isinstance(p, BaseException) and p.reserved) == 3  # 9 of 9.5
    assert (await handlers.get_reservation(inventory.uow(), "old"))[0].status == "EXPIRED"
    assert await inventory.row("TEA", "SH") == (10, 9, True)


async def test_a_row_held_elsewhere_stalls_only_the_buyers_of_that_row(inventory: Inventory) -> None:
    await inventory.stock("SH", ("HELD", 10), ("TEA", 10))
    desk = handlers.ReserveDesk(inventory.uow, inventory.policy)
    async with inventory.engine.begin() as conn:  # a long stock count holds HELD's row
        await conn.execute(text("SELECT 1 FROM stock WHERE sku = 'HELD' FOR UPDATE"))
        # two groups of its buyers, one in each of the desk's two places
        held = [asyncio.ensure_future(desk.reserve(f"h-{n}", [Line("HELD", "SH", 1)])) for n in range(3)]
        await asyncio.sleep(0.01)
        held += [asyncio.ensure_future(desk.reserve(f"h2-{n}", [Line("HELD", "SH", 1)])) for n in range(3)]
        await asyncio.sleep(0.05)
        tea = await asyncio.wait_for(
            asyncio.gather(*(desk.reserve(f"t-{n}", [Line("TEA", "SH", 1)]) for n in range(6))), timeout=5
        )
        assert all(outcome.reserved for outcome in tea)  # not stuck behind the held row
        assert not any(waiting.done() for waiting in held)
    assert all(outcome.reserved for outcome in await asyncio.wait_for(asyncio.gather(*held), timeout=10))
    assert await inventory.row("HELD", "SH") == (10, 6, True)
    assert await inventory.row("TEA", "SH") == (10, 6, True)
