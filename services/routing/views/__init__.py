"""Routing's read side: an order's decision explained, the shadow report, the parked orders."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing.domain.model import ParkedOrder, RecordedDecision
from services.routing.views.explanations import explain_decision
from services.routing.views.parked import list_parked
from services.routing.views.shadow import ShadowReport, shadow_report


class RoutingViews:
    """The read-side queries on one engine, each on its own connection outside any write transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def explain(self, order_id: str) -> RecordedDecision:
        return await explain_decision(self.engine, order_id)

    async def shadow_report(self, limit: int) -> ShadowReport:
        return await shadow_report(self.engine, limit)

    async def parked(self, page_size: int, page_token: str) -> tuple[list[ParkedOrder], str]:
        return await list_parked(self.engine, page_size, page_token)
