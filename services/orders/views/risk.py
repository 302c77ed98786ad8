"""The risk review queue for people: held evaluations not reviewed yet, oldest first, keyset pages."""

from __future__ import annotations

from services.orders.domain import risk
from services.orders.store import OrdersUnitOfWork
from services.orders.views import paging


async def risk_reviews(
    uow: OrdersUnitOfWork, size: int, token: str
) -> tuple[list[risk.EvaluationRecord], str]:
    """(one page of the queue, the next page's token)."""
    limit = paging.page_size(size)
    after = paging.decode_token(token, paging.RISK_REVIEWS)
    async with uow:
        rows = await uow.risk.to_review(limit + 1, after)
    if len(rows) <= limit:
        return rows, ""
    rows = rows[:limit]
    return rows, paging.encode_token(paging.RISK_REVIEWS, rows[-1].evaluated_at, rows[-1].order_id)
