"""An order's decision with its explanation, as support and operations ask for it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.errors import InvalidArgument, NotFound
from services.routing.domain.model import RecordedDecision
from services.routing.store.repositories import DecisionRepository


async def explain_decision(engine: AsyncEngine, order_id: str) -> RecordedDecision:
    """The order's current decision (the one planning answers with)."""
    if not order_id:
        raise InvalidArgument("order_id", "is required")
    async with engine.connect() as conn:
        found = await DecisionRepository(conn).current(order_id)
    if found is None:
        raise NotFound(f"no routing decision for order {order_id}")
    return found
