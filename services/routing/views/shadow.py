"""The shadow report: how many decisions the shadow rule set also made, and where it differed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.kit.errors import InvalidArgument
from services.routing.domain.decision_log import decision_from_document
from services.routing.domain.regression import ChangedDecision, compare
from services.routing.store.tables import decisions_table, rule_sets_table

DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class ShadowReport:
    version: int
    compared: int
    differences: list[ChangedDecision]


async def shadow_report(engine: AsyncEngine, limit: int) -> ShadowReport:
    """The latest `limit` (0: 100) decisions the shadow rule set would have made differently."""
    if limit < 0:
        raise InvalidArgument("limit", "must not be negative")
    async with engine.connect() as conn:
        version = int(
            await conn.scalar(select(rule_sets_table.c.version).where(rule_sets_table.c.shadow)) or 0
        )
        compared = int(
            await conn.scalar(
                select(func.count())
                .select_from(decisions_table)
                .where(decisions_table.c.shadow_version == version)
            )
            or 0
        )
        rows = (
            await conn.execute(
                select(decisions_table.c.order_id, decisions_table.c.result, decisions_table.c.shadow_result)
                .where(decisions_table.c.shadow_version == version, decisions_table.c.shadow_differs)
                .order_by(decisions_table.c.decided_at.desc())
                .limit(limit or DEFAULT_LIMIT)
            )
        ).all()
    differences = [
        compare(row.order_id, decision_from_document(row.result), decision_from_document(row.shadow_result))
        for row in rows
    ]
    return ShadowReport(version, compared, differences)
