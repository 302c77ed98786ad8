"""Manual actions and event reactions on a fake unit of work."""

from __future__ import annotations

import pytest

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import new_id
from services.orders import handlers
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import HoldCause, OrderCancelled
from services.orders.domain.scope import Scope
from services.orders.domain.timeline import Actor, ActorType
from tests.unit.orders.fakes import NOW, POLICY, FakeOrders
from tests.unit.orders.test_model import command

CLERK = Actor(ActorType.USER, "clerk-1")


async def new_order(db: FakeOrders, **changes: object) -> str:
    [result], _ = await handlers.ingest(db.uow(), POLICY, [command(**changes)], Actor.service("test"))
    assert result.order is not None
    return result.order.order_id


async def test_a_person_cancels_an_order_with_a_reason_from_the_console() -> None:
    db = FakeOrders()
    order_id = await new_order(db)
    order, changes = await handlers.cancel_order(db.uow(), order_id, "  customer asked  ", CLERK)
    assert (order.status, order.status_reason) == (OrderStatus.CANCELLED, "customer asked")
    assert db.order(order_id).order.status is OrderStatus.CANCELLED
    assert db.published(OrderCancelled) == [(order_id, OrderCancelled("customer asked", False))]
    assert [(e.kind, e.source, e.actor) for o, e in db.state.timeline if o == order_id][-2:] == [
        ("status_changed", "console", CLERK),
        ("cancelled", "console", CLERK),
    ]
    assert changes.due_steps == set()  # nothing reserved yet: nothing to release


async def test_a_cancel_without_a_reason_names_who_cancelled() -> None:
    db = FakeOrders()
    order, _ = await handlers.cancel_order(db.uow(), await new_order(db), "", CLERK)
    assert order.status_reason == "cancelled by clerk-1"


async def test_a_hold_needs_a_reason_and_a_release_resumes_where_the_order_was() -> None:
    db = FakeOrders()
    order_id = await new_order(db)
    with pytest.raises(InvalidArgument) as missing:
        await handlers.hold_order(db.uow(), order_id, " ", CLERK)
    assert missing.value.field == "reason"
    held, _ = await handlers.hold_order(db.uow(), order_id, "fraud review", CLERK)
    assert (held.status, held.resume_status, held.hold_cause) == (
        OrderStatus.ON_HOLD,
        OrderStatus.PENDING_PAYMENT,
        HoldCause.NONE,
    )
    released, changes = await handlers.release_order(db.uow(), order_id, "", CLERK)
    assert (released.status, released.status_reason) == (OrderStatus.PENDING_PAYMENT, "released by clerk-1")
    assert changes.due_steps == {order_id}  # planned again
    assert [type(event).__name__ for _, event in db.state.published] == [
        "OrderCreated",
        "StatusChanged",
        "OrderHeld",
        "StatusChanged",
        "OrderReleased",
    ]


async def test_an_illegal_action_is_refused_and_changes_nothing() -> None:
    db = FakeOrders()
    order_id = await new_order(db)
    with pytest.raises(FailedPrecondition):
        await handlers.release_order(db.uow(), order_id, "", CLERK)
    assert db.order(order_id).order.version == 1


async def test_a_reason_over_500_characters_is_refused() -> None:
    db = FakeOrders()
    with pytest.raises(InvalidArgument) as long:
        await handlers.hold_order(db.uow(), await new_order(db), "x" * 501, CLERK)
    assert long.value.field == "reason"


async def test_an_unknown_or_malformed_order_id_is_not_found_or_invalid() -> None:
    db = FakeOrders()
    with pytest.raises(NotFound):
        await handlers.cancel_order(db.uow(), new_id(), "", CLERK)
    with pytest.raises(InvalidArgument):
        await handlers.cancel_order(db.uow(), "order-1", "", CLERK)


async def test_an_agent_acts_only_on_their_customers_orders() -> None:
    db = FakeOrders()
    order_id = await new_order(db, buyer_id="buyer-7")
    agent = Scope(agent_id="agent-1")
    with pytest.raises(NotFound):
        await handlers.hold_order(db.uow(), order_id, "check address", CLERK, agent)
    assert await handlers.assign_customers(db.uow(), "agent-1", ["buyer-7", "buyer-7"], replace=False) == [
        "buyer-7"
    ]
    held, _ = await handlers.hold_order(db.uow(), order_id, "check address", CLERK, agent)
    assert held.status is OrderStatus.ON_HOLD


async def test_a_customer_sees_only_their_own_order() -> None:
    db = FakeOrders()
    order_id = await new_order(db, buyer_id="buyer-7")
    with pytest.raises(NotFound):
        await handlers.get_order(db.uow(), order_id, Scope(customer_id="buyer-8"))
    assert (
        await handlers.get_order(db.uow(), order_id, Scope(customer_id="buyer-7"))
    ).order.buyer_id == "buyer-7"


async def hold_for(db: FakeOrders, order_id: str, cause: HoldCause, reason: str) -> None:
    uow = db.uow()
    async with uow:
        stored = await uow.orders.get(order_id, lock=True)
        assert stored is not None
        stored.order.hold(reason, NOW, cause)
        await handlers.save_order(uow, stored, Actor.service("orders"), "orders", handlers.Changes())
        await uow.commit()


@pytest.mark.parametrize("cause", [HoldCause.UNROUTABLE, HoldCause.OUT_OF_STOCK])
async def test_routing_planning_a_parked_order_resumes_its_unroutable_hold(cause: HoldCause) -> None:
    db = FakeOrders()
    order_id = await new_order(db)
    await hold_for(db, order_id, cause, "unroutable: no_coverage")
    uow = db.uow()  # as the consumer does: inside its inbox transaction
    changes = await handlers.route_found(uow, POLICY, order_id)
    await uow.commit()
    order = db.order(order_id).order
    assert (order.status, order.hold_cause) == (OrderStatus.PENDING_PAYMENT, HoldCause.NONE)
    assert changes.due_steps == {order_id}


async def test_routing_planning_leaves_a_persons_hold_alone_whatever_its_words() -> None:
    db = FakeOrders()
    order_id = await new_order(db)
    await handlers.hold_order(db.uow(), order_id, "unroutable: looks odd", CLERK)
    uow = db.uow()
    changes = await handlers.route_found(uow, POLICY, order_id)
    await uow.commit()
    assert db.order(order_id).order.status is OrderStatus.ON_HOLD
    assert changes.due_steps == set()


async def test_stock_arriving_releases_only_the_orders_held_for_it_that_want_the_sku() -> None:
    db = FakeOrders()
    wanting = await new_order(db, channel_order_id="TB-1")
    unroutable = await new_order(db, channel_order_id="TB-2")
    await hold_for(db, wanting, HoldCause.OUT_OF_STOCK, "unroutable: out of stock at the planned warehouses")
    await hold_for(db, unroutable, HoldCause.UNROUTABLE, "unroutable: no_coverage")
    uow = db.uow()
    changes = await handlers.stock_arrived(uow, POLICY, "SKU-1")
    await uow.commit()
    assert db.order(wanting).order.status is OrderStatus.PENDING_PAYMENT
    assert db.order(unroutable).order.status is OrderStatus.ON_HOLD
    assert changes.due_steps == {wanting}
    uow = db.uow()
    assert await handlers.stock_arrived(uow, POLICY, "SKU-9") == handlers.Changes()
