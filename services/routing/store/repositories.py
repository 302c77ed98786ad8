"""Routing's repositories on one connection: the decision log, parked orders, rule sets, expected
decisions and the daily load. Each maps its rows to domain objects and back, naming each column once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing.domain.decision_log import decision_from_document, result_document
from services.routing.domain.documents import case_from_document, case_to_document
from services.routing.domain.model import Decision, DueRetry, ParkedOrder, ParkReason, RecordedDecision
from services.routing.domain.regression import ExpectedDecision, PastDecision, same_outcome
from services.routing.domain.rules import RuleSetStatus, RuleSetVersion
from services.routing.store.tables import (
    decisions_table,
    expected_decisions_table,
    parked_orders_table,
    rule_sets_table,
    warehouse_load_table,
)

# Built once: constructing statements per call cost more CPU than running them.
_LOCK_ORDER = text("SELECT pg_advisory_xact_lock(hashtextextended('routing:' || :order_id, 0))")
# planned, and not superseded by a replan: at most one per order (a unique index)
_CURRENT_PLAN = (decisions_table.c.parked_reason == "") & (decisions_table.c.superseded_by == "")
_HAS_PLAN = (
    select(decisions_table.c.decision_id)
    .where(decisions_table.c.order_id == bindparam("order_id"), _CURRENT_PLAN)
    .limit(1)
)
_SUPERSEDE = (
    update(decisions_table)
    .where(decisions_table.c.decision_id == bindparam("refused"), decisions_table.c.superseded_by == "")
    .values(superseded_by=bindparam("by"))
)
_INSERT_DECISION = (
    insert(decisions_table)
    .on_conflict_do_nothing(
        index_elements=["order_id"], index_where=text("parked_reason = '' AND superseded_by = ''")
    )
    .returning(decisions_table.c.decision_id)
)
_CURRENT_DECISION = (
    select(decisions_table)
    .where(decisions_table.c.order_id == bindparam("order_id"))
    # a plan, once made, is the order's decision, even if a racing call parked it after;
    # a superseded plan is not (the replan's decision is, planned or parked)
    .order_by(_CURRENT_PLAN.desc(), decisions_table.c.decided_at.desc())
    .limit(1)
)
_park = insert(parked_orders_table)
_PARK = _park.on_conflict_do_update(
    index_elements=["order_id"],
    set_={
        "reason": _park.excluded.reason,
        "detail": _park.excluded.detail,
        "attempts": parked_orders_table.c.attempts + 1,
        # retry_due is left alone: stock may have arrived while this decision was being made, and
        # clearing the mark here would lose that wake-up (the retry job clears what it has seen)
    },
)
_UNPARK = (
    delete(parked_orders_table)
    .where(parked_orders_table.c.order_id == bindparam("order_id"))
    .returning(parked_orders_table.c.order_id)
)
_LOAD_ON = select(warehouse_load_table.c.warehouse_id, warehouse_load_table.c.orders).where(
    warehouse_load_table.c.day == bindparam("day")
)
_ADD_LOAD = insert(warehouse_load_table)
_COUNT_LOAD = _ADD_LOAD.on_conflict_do_update(
    index_elements=["day", "warehouse_id"],
    set_={"orders": warehouse_load_table.c.orders + _ADD_LOAD.excluded.orders},
)


def recorded_decision(row: Row[Any]) -> RecordedDecision:
    return RecordedDecision(row.decision_id, row.decided_at, decision_from_document(row.result))


class DecisionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock_order(self, order_id: str) -> None:
        await self.conn.execute(_LOCK_ORDER, {"order_id": order_id})

    async def current_plan_id(self, order_id: str) -> str | None:
        found: str | None = await self.conn.scalar(_HAS_PLAN, {"order_id": order_id})
        return found

    async def supersede(self, decision_id: str, by: str) -> None:
        await self.conn.execute(_SUPERSEDE, {"refused": decision_id, "by": by})

    async def add(self, recorded: RecordedDecision, inputs: dict[str, Any], shadow: Decision | None) -> bool:
        decision = recorded.decision
        written = await self.conn.execute(
            _INSERT_DECISION,
            {
                "decision_id": recorded.decision_id,
                "order_id": decision.order_id,
                "decided_at": recorded.decided_at,
                "rule_set_version": decision.ruleset_version,
                "parked_reason": decision.parked.value if decision.parked else "",
                "inputs": inputs,
                "result": result_document(decision),
                "shadow_version": None if shadow is None else shadow.ruleset_version,
                "shadow_result": None if shadow is None else result_document(shadow),
                "shadow_differs": shadow is not None and not same_outcome(shadow, decision),
            },
        )
        return written.first() is not None

    async def current(self, order_id: str) -> RecordedDecision | None:
        row = (await self.conn.execute(_CURRENT_DECISION, {"order_id": order_id})).first()
        return None if row is None else recorded_decision(row)

    async def recent(self, limit: int) -> list[PastDecision]:
        rows = await self.conn.execute(
            select(decisions_table.c.order_id, decisions_table.c.inputs, decisions_table.c.result)
            .order_by(decisions_table.c.decided_at.desc())
            .limit(limit)
        )
        return [PastDecision(row.order_id, row.inputs, decision_from_document(row.result)) for row in rows]


def parked_order(row: Row[Any]) -> ParkedOrder:
    return ParkedOrder(row.order_id, ParkReason(row.reason), row.detail, row.parked_at, row.attempts)


class ParkedOrderRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def park(self, order: ParkedOrder, request: dict[str, Any], skus: Sequence[str]) -> None:
        await self.conn.execute(
            _PARK,
            {
                "order_id": order.order_id,
                "request": request,
                "skus": list(skus),
                "reason": order.reason.value,
                "detail": order.detail,
                "parked_at": order.parked_at,
            },
        )

    async def unpark(self, order_id: str) -> bool:
        return (await self.conn.execute(_UNPARK, {"order_id": order_id})).first() is not None

    async def mark_due_for_sku(self, sku: str, reasons: Collection[ParkReason], at: datetime) -> int:
        result = await self.conn.execute(
            update(parked_orders_table)
            .where(
                parked_orders_table.c.skus.contains([sku]),
                parked_orders_table.c.reason.in_(sorted(reason.value for reason in reasons)),
            )
            .values(retry_due=at)
        )
        return int(result.rowcount or 0)

    async def mark_all_due(self, at: datetime) -> None:
        await self.conn.execute(update(parked_orders_table).values(retry_due=at))

    async def due(self, now: datetime, limit: int) -> list[DueRetry]:
        rows = await self.conn.execute(
            select(
                parked_orders_table.c.order_id, parked_orders_table.c.request, parked_orders_table.c.retry_due
            )
            .where(parked_orders_table.c.retry_due <= now)
            .order_by(parked_orders_table.c.retry_due)
            .limit(limit)
        )
        return [DueRetry(row.order_id, row.request, row.retry_due) for row in rows]

    async def set_retry(self, order_id: str, seen: datetime, retry_due: datetime | None) -> None:
        await self.conn.execute(
            update(parked_orders_table)
            .where(parked_orders_table.c.order_id == order_id, parked_orders_table.c.retry_due == seen)
            .values(retry_due=retry_due)
        )


def rule_set_version(row: Row[Any]) -> RuleSetVersion:
    return RuleSetVersion(
        row.version,
        RuleSetStatus(row.status),
        row.document,
        row.note,
        row.created_at,
        row.activated_at,
        row.shadow,
    )


def _rule_set_row(rule_set: RuleSetVersion) -> dict[str, Any]:
    return {
        "version": rule_set.version,
        "status": rule_set.status.value,
        "document": rule_set.document,
        "note": rule_set.note,
        "created_at": rule_set.created_at,
        "activated_at": rule_set.activated_at,
        "shadow": rule_set.shadow,
    }


class RuleSetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def next_version(self) -> int:
        latest = await self.conn.scalar(select(func.coalesce(func.max(rule_sets_table.c.version), 0)))
        return int(latest or 0) + 1

    async def add(self, rule_set: RuleSetVersion) -> None:
        await self.conn.execute(rule_sets_table.insert().values(_rule_set_row(rule_set)))

    async def add_if_missing(self, rule_set: RuleSetVersion) -> None:
        await self.conn.execute(
            insert(rule_sets_table).values(_rule_set_row(rule_set)).on_conflict_do_nothing()
        )

    async def get(self, version: int, *, lock: bool = False) -> RuleSetVersion | None:
        query = select(rule_sets_table).where(rule_sets_table.c.version == version)
        row = (await self.conn.execute(query.with_for_update() if lock else query)).first()
        return None if row is None else rule_set_version(row)

    async def active(self) -> RuleSetVersion | None:
        query = select(rule_sets_table).where(rule_sets_table.c.status == RuleSetStatus.ACTIVE.value)
        row = (await self.conn.execute(query)).first()
        return None if row is None else rule_set_version(row)

    async def active_and_shadow(self) -> tuple[RuleSetVersion | None, RuleSetVersion | None]:
        rows = await self.conn.execute(
            select(rule_sets_table).where(
                (rule_sets_table.c.status == RuleSetStatus.ACTIVE.value) | rule_sets_table.c.shadow
            )
        )
        found = [rule_set_version(row) for row in rows]
        active = next((r for r in found if r.status is RuleSetStatus.ACTIVE), None)
        return active, next((r for r in found if r.shadow), None)

    async def retire_active(self) -> int | None:
        retired: int | None = await self.conn.scalar(
            update(rule_sets_table)
            .where(rule_sets_table.c.status == RuleSetStatus.ACTIVE.value)
            .values(status=RuleSetStatus.RETIRED.value)
            .returning(rule_sets_table.c.version)
        )
        return retired

    async def activate(self, version: int, at: datetime) -> RuleSetVersion:
        row = (
            await self.conn.execute(
                update(rule_sets_table)
                .where(rule_sets_table.c.version == version)
                .values(status=RuleSetStatus.ACTIVE.value, activated_at=at)
                .returning(*rule_sets_table.c)
            )
        ).one()
        return rule_set_version(row)

    async def clear_shadow(self) -> None:
        await self.conn.execute(update(rule_sets_table).where(rule_sets_table.c.shadow).values(shadow=False))

    async def set_shadow(self, version: int) -> RuleSetStatus | None:
        status = await self.conn.scalar(
            update(rule_sets_table)
            .where(rule_sets_table.c.version == version)
            .values(shadow=True)
            .returning(rule_sets_table.c.status)
        )
        return None if status is None else RuleSetStatus(status)


class ExpectedDecisionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def replace(self, cases: Sequence[ExpectedDecision]) -> None:
        await self.conn.execute(delete(expected_decisions_table))
        if cases:
            await self.conn.execute(
                expected_decisions_table.insert(),
                [{"name": case.name, "document": case_to_document(case)} for case in cases],
            )

    async def all(self) -> list[ExpectedDecision]:
        rows = await self.conn.execute(select(expected_decisions_table.c.document))
        return [case_from_document(row.document) for row in rows]


class WarehouseLoadRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def on(self, day: date) -> dict[str, int]:
        return {row.warehouse_id: row.orders for row in await self.conn.execute(_LOAD_ON, {"day": day})}

    async def count(self, day: date, warehouse_ids: Sequence[str]) -> None:
        """One more order for each warehouse named (a warehouse named twice, two): the rows written in
        warehouse order, so two transactions counting the same warehouses never deadlock."""
        counts = Counter(warehouse_ids)
        if not counts:
            return
        await self.conn.execute(
            _COUNT_LOAD,
            [{"day": day, "warehouse_id": w, "orders": counts[w]} for w in sorted(counts)],
        )
