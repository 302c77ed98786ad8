"""Approval rule set versions: drafts, the one active (a partial unique index), the retired."""

from __future__ import annotations

import sqlalchemy.exc
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aftersales.domain.approval import RuleSetStatus, RuleSetVersion
from services.aftersales.store.constraints import violated
from services.aftersales.store.rows import rule_set_row, rule_set_version
from services.aftersales.store.tables import rule_sets_table
from services.kit.errors import FailedPrecondition

_v = rule_sets_table.c
# drafting waits for any other drafting: two drafts never get the same number
_LOCK_VERSIONS = text("SELECT pg_advisory_xact_lock(hashtextextended('aftersales:rule_sets', 0))")


class RuleSetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def active(self) -> RuleSetVersion | None:
        query = select(rule_sets_table).where(_v.status == RuleSetStatus.ACTIVE.value)
        row = (await self.conn.execute(query)).first()
        return rule_set_version(row._mapping) if row is not None else None

    async def get(self, version: int, *, lock: bool = False) -> RuleSetVersion | None:
        query = select(rule_sets_table).where(_v.version == version)
        row = (await self.conn.execute(query.with_for_update() if lock else query)).first()
        return rule_set_version(row._mapping) if row is not None else None

    async def all(self) -> list[RuleSetVersion]:
        """Every version, newest first."""
        rows = await self.conn.execute(select(rule_sets_table).order_by(_v.version.desc()))
        return [rule_set_version(row._mapping) for row in rows]

    async def next_version(self) -> int:
        """One more than the highest version; the transaction holds the drafting lock until it ends,
        so a concurrent draft gets the number after."""
        await self.conn.execute(_LOCK_VERSIONS)
        highest = await self.conn.scalar(select(func.max(_v.version)))
        return int(highest or 0) + 1

    async def save(self, version: RuleSetVersion, created_by: str = "") -> None:
        """Insert a version, or write its status, note and activation over the stored one (who created
        it and when stay). Activating: save the retired one first. FailedPrecondition when another
        version is active still (activated concurrently)."""
        row = rule_set_row(version, created_by)
        statement = insert(rule_sets_table).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["version"],
            set_={
                "status": statement.excluded.status,
                "document": statement.excluded.document,
                "note": statement.excluded.note,
                "activated_at": statement.excluded.activated_at,
            },
        )
        try:
            await self.conn.execute(statement)
        except sqlalchemy.exc.IntegrityError as error:
            if violated(error) == "approval_rule_sets_one_active":
                raise FailedPrecondition(
                    f"rule set {version.version} cannot be active: another one is (retire it first)"
                ) from None
            raise
