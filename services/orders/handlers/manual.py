"""What people do to orders by hand: cancel, hold for review, release; and who looks after whom."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.kit.errors import FailedPrecondition, InvalidArgument
from services.orders.domain import lifecycle
from services.orders.domain.model import Order
from services.orders.domain.scope import EVERYTHING, Scope
from services.orders.domain.timeline import Actor
from services.orders.handlers.common import Changes, check_visible, locked_order, save_order
from services.orders.handlers.ports import UnitOfWork

MAX_REASON = 500
MAX_ASSIGNED = 10_000


async def cancel_order(
    uow: UnitOfWork, order_id: str, reason: str, actor: Actor, scope: Scope = EVERYTHING
) -> tuple[Order, Changes]:
    text = _reason(reason, "cancelled by " + actor.id)
    return await _change(uow, order_id, actor, lambda order, now: order.cancel(text, now), scope)


async def hold_order(
    uow: UnitOfWork, order_id: str, reason: str, actor: Actor, scope: Scope = EVERYTHING
) -> tuple[Order, Changes]:
    if not reason.strip():
        raise InvalidArgument("reason", "is required: say what the review is for")
    text = _reason(reason, "")
    return await _change(uow, order_id, actor, lambda order, now: order.hold(text, now), scope)


async def release_order(
    uow: UnitOfWork, order_id: str, reason: str, actor: Actor, scope: Scope = EVERYTHING
) -> tuple[Order, Changes]:
    text = _reason(reason, "released by " + actor.id)
    return await _change(uow, order_id, actor, lambda order, now: order.release(text, now), scope)


async def _change(
    uow: UnitOfWork,
    order_id: str,
    actor: Actor,
    change: Callable[[Order, datetime], object],
    scope: Scope,
) -> tuple[Order, Changes]:
    changes = Changes()
    async with uow:
        stored = await locked_order(uow, order_id)
        await check_visible(uow, scope, stored.order)
        try:
            change(stored.order, uow.clock.now())
        except lifecycle.IllegalTransition as error:
            raise FailedPrecondition(str(error)) from None
        source = "console" if actor.type == "user" else actor.id
        await save_order(uow, stored, actor, source, changes)
        await uow.commit()
    return stored.order, changes


def _reason(reason: str, default: str) -> str:
    reason = reason.strip() or default
    if len(reason) > MAX_REASON:
        raise InvalidArgument("reason", f"must be at most {MAX_REASON} characters")
    return reason


async def agent_customers(uow: UnitOfWork, agent_id: str) -> list[str]:
    """The customers a customer-service agent looks after."""
    agent = agent_id.strip()
    if not agent or len(agent) > 128:
        raise InvalidArgument("agent_id", "is required (at most 128 characters)")
    async with uow:
        return await uow.assignments.customers_of(agent)


async def assign_customers(uow: UnitOfWork, agent_id: str, buyer_ids: list[str], replace: bool) -> list[str]:
    """Give a customer-service agent these customers (replacing their present ones on `replace`)."""
    agent = agent_id.strip()
    if not agent or len(agent) > 128:
        raise InvalidArgument("agent_id", "is required (at most 128 characters)")
    if len(buyer_ids) > MAX_ASSIGNED:
        raise InvalidArgument("buyer_ids", f"at most {MAX_ASSIGNED} per call")
    for index, buyer in enumerate(buyer_ids):
        if not buyer.strip() or len(buyer) > 128:
            raise InvalidArgument(f"buyer_ids[{index}]", "must be 1-128 characters")
    async with uow:
        assigned = await uow.assignments.assign(agent, buyer_ids, replace, uow.clock.now())
        await uow.commit()
    return assigned
