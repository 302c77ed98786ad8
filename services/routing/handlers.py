"""Routing use cases: plan, explain, rule sets (draft, dry run, activate), parked orders."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from oms.routing.v1 import events_pb2, routing_pb2
from services.kit.db import UnitOfWork
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.ids import new_id
from services.routing import messages
from services.routing.domain.defaults import default_rules
from services.routing.domain.documents import case_from_document, case_to_document, from_document, to_document
from services.routing.domain.geography import normalise
from services.routing.domain.model import (
    CaseResult,
    Decision,
    ExpectedDecision,
    RouteLine,
    RouteRequest,
    RuleSet,
    SkuFacts,
    check_expected,
    plan,
    route_request,
    with_catalogue,
)
from services.routing.store import (
    decisions_table,
    expected_decisions_table,
    parked_orders_table,
    rule_sets_table,
    warehouse_load_table,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stock:
    """Units a reservation may take per (sku, warehouse), and each SKU's catalogue entry."""

    levels: dict[tuple[str, str], int]
    catalogue: dict[str, SkuFacts]


class StockSource(Protocol):
    """Live availability and the catalogue; raises InvalidArgument naming `skus[i]` for unknown SKUs."""

    async def availability(self, skus: Sequence[str], warehouses: Sequence[str]) -> Stock: ...


class RuleSetCache:
    """The active rule set, kept in memory: dropped on activation here and on `rules_activated` elsewhere."""

    def __init__(self, max_age_seconds: float = 60.0) -> None:
        self.max_age = max_age_seconds
        self._rules: RuleSet | None = None
        self._shadow: RuleSet | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._load: dict[str, int] = {}
        self._load_day: date | None = None
        self._load_at = 0.0

    def invalidate(self) -> None:
        self._rules = None

    async def load(self, uow: UnitOfWork) -> dict[str, int]:
        """Orders planned today per warehouse, re-read at most once a second (capacity is a soft limit)."""
        today = uow.clock.now().date()
        if self._load_day != today or time.monotonic() - self._load_at > 1.0:
            rows = await uow.conn.execute(
                select(warehouse_load_table.c.warehouse_id, warehouse_load_table.c.orders).where(
                    warehouse_load_table.c.day == today
                )
            )
            self._load = {row.warehouse_id: row.orders for row in rows}
            self._load_day, self._load_at = today, time.monotonic()
        return dict(self._load)

    async def active(self, uow: UnitOfWork) -> RuleSet:
        rules = self._rules
        if rules is not None and time.monotonic() - self._loaded_at < self.max_age:
            return rules
        async with self._lock:
            if self._rules is None or time.monotonic() - self._loaded_at >= self.max_age:
                async with uow:
                    rows = (
                        await uow.conn.execute(
                            select(rule_sets_table).where(
                                (rule_sets_table.c.status == "active") | rule_sets_table.c.shadow
                            )
                        )
                    ).all()
                active = next((row for row in rows if row.status == "active"), None)
                if active is None:
                    raise FailedPrecondition("no rule set is active")
                shadow = next((row for row in rows if row.shadow), None)
                self._rules = from_document(active.version, active.document)
                self._shadow = None if shadow is None else from_document(shadow.version, shadow.document)
                self._loaded_at = time.monotonic()
            assert self._rules is not None
            return self._rules

    async def shadow(self, uow: UnitOfWork) -> RuleSet | None:
        await self.active(uow)
        return self._shadow


@dataclass(frozen=True)
class PlanCommand:
    order_id: str
    province: str
    city: str
    lines: tuple[RouteLine, ...]
    priority: str = "standard"
    country: str = "CN"
    # the caller could not reserve this planned decision's stock: decide again, superseding it
    refused_decision_id: str = ""


@dataclass(frozen=True)
class StoredDecision:
    decision_id: str
    decided_at: datetime
    order_id: str
    rule_set_version: int
    result: dict[str, Any]


def validate(command: PlanCommand) -> RouteRequest:
    return route_request(
        command.order_id, command.province, command.city, command.lines, command.priority, command.country
    )


def _inputs(request: RouteRequest, stock: dict[tuple[str, str], int], load: dict[str, int]) -> dict[str, Any]:
    return {
        "request": {
            "order_id": request.order_id,
            "country": request.destination.country,
            "province": request.destination.province,
            "city": request.destination.city,
            "lines": [asdict(line) for line in request.lines],
            "priority": request.priority,
        },
        "stock": sorted([sku, warehouse, units] for (sku, warehouse), units in stock.items()),
        "load": load,
    }


def replay(inputs: dict[str, Any], rules: RuleSet) -> Decision:
    """Decide again from a logged decision's inputs: with its own rule set this reproduces the decision."""
    raw = inputs["request"]
    request = RouteRequest(
        raw["order_id"],
        normalise(raw["province"], raw["city"], country=raw.get("country", "CN")),
        tuple(RouteLine(**line) for line in raw["lines"]),
        raw["priority"],
    )
    stock = {(sku, warehouse): units for sku, warehouse, units in inputs["stock"]}
    return plan(request, rules, stock, inputs["load"])


def result_document(decision: Decision) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(asdict(decision), ensure_ascii=False))
    return document


async def plan_fulfilment(
    new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, stock_source: StockSource, command: PlanCommand
) -> StoredDecision:
    """Idempotent for a planned order (its decision is returned); a parked order is decided again, and
    so is a planned one whose plan the caller names as refused (`refused_decision_id`): the new
    decision supersedes it. A replan naming a plan that is no longer current (another replan replaced
    it first) is a plain repeat, so two concurrent replans write one decision.

    The repeat is detected by the unique index on planned decisions when the new one is written,
    not by a read first: the common case (a new order) pays one transaction, not two.
    """
    request = validate(command)
    rules = await cache.active(new_uow())
    shadow_rules = await cache.shadow(new_uow())
    warehouses = {w.warehouse_id for w in rules.warehouses}
    if shadow_rules is not None:
        warehouses |= {w.warehouse_id for w in shadow_rules.warehouses}
    skus = [line.sku for line in request.lines]
    found = await _availability(stock_source, skus, sorted(warehouses))
    request, stock = with_catalogue(request, found.catalogue), found.levels
    uow = new_uow()
    async with uow:
        load = await cache.load(uow)
        decision = plan(request, rules, stock, load)
        shadow = None if shadow_rules is None else plan(request, shadow_rules, stock, load)
        stored = await _record(
            uow, request, decision, _inputs(request, stock, load), shadow, command.refused_decision_id
        )
        if stored is not None:
            await uow.commit()
    if stored is None:  # already planned: answer with that plan, after this transaction rolled back
        existing = await _latest(new_uow(), request.order_id)
        assert existing is not None, "a planned decision conflicted and cannot vanish"
        await _drop_stale_park(new_uow(), existing)
        return existing
    return stored


async def _drop_stale_park(uow: UnitOfWork, planned: StoredDecision) -> None:
    """Two plans for one order raced: one was planned, the other saw no stock and parked the order
    after it. The parked entry is wrong, and whoever got the parked answer may be waiting for the
    order to be routed: drop the entry and announce the plan again (consumers deduplicate)."""
    async with uow:
        dropped = (
            await uow.conn.execute(
                _UNPARK.returning(parked_orders_table.c.order_id), {"order_id": planned.order_id}
            )
        ).first()
        if dropped is None:
            return
        uow.publish(
            "routing.planned",
            events_pb2.FulfilmentPlanned(
                order_id=planned.order_id,
                decision_id=planned.decision_id,
                rule_set_version=planned.rule_set_version,
                shipments=[messages.shipment(s) for s in planned.result["shipments"]],
            ),
        )
        await uow.commit()


async def _availability(source: StockSource, skus: list[str], warehouses: list[str]) -> Stock:
    try:
        return await source.availability(skus, warehouses)
    except InvalidArgument as error:
        if error.field.startswith("skus["):
            index = int(error.field[5:].split("]")[0])
            raise InvalidArgument(f"lines[{index}].sku", error.problem) from None
        raise


# Built once: constructing statements per call cost more CPU than running them.
_INSERT_DECISION = (
    insert(decisions_table)
    .on_conflict_do_nothing(
        index_elements=["order_id"], index_where=text("parked_reason = '' AND superseded_by = ''")
    )
    .returning(decisions_table.c.decision_id)
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
_LOCK_ORDER = text("SELECT pg_advisory_xact_lock(hashtextextended('routing:' || :order_id, 0))")
_HAS_PLAN = (
    select(decisions_table.c.decision_id)
    .where(
        decisions_table.c.order_id == bindparam("order_id"),
        decisions_table.c.parked_reason == "",
        decisions_table.c.superseded_by == "",
    )
    .limit(1)
)
_SUPERSEDE = (
    update(decisions_table)
    .where(decisions_table.c.decision_id == bindparam("refused"), decisions_table.c.superseded_by == "")
    .values(superseded_by=bindparam("by"))
)
_UNPARK = delete(parked_orders_table).where(parked_orders_table.c.order_id == bindparam("order_id"))
_COUNT_LOAD = insert(warehouse_load_table).on_conflict_do_update(
    index_elements=["day", "warehouse_id"], set_={"orders": warehouse_load_table.c.orders + 1}
)


def _outcome(decision: Decision) -> tuple[Any, ...]:
    return (decision.parked, tuple((s.warehouse_id, s.carrier, s.lines) for s in decision.shipments))


async def _record(
    uow: UnitOfWork,
    request: RouteRequest,
    decision: Decision,
    inputs: dict[str, Any],
    shadow: Decision | None,
    refused_decision_id: str = "",
) -> StoredDecision | None:
    """Write the decision and its consequences; None when the order already has a planned decision
    (other than the refused one, which the new decision supersedes)."""
    # decisions of one order are written one at a time: a call that read the stock before a racing
    # call planned the order must not park it afterwards (a parked entry beside a plan is never cleared),
    # and of two replans of one refused plan only the first supersedes it
    await uow.conn.execute(_LOCK_ORDER, {"order_id": request.order_id})
    decision_id = new_id()
    result = result_document(decision)
    current = await uow.conn.scalar(_HAS_PLAN, {"order_id": request.order_id})
    if current and refused_decision_id and current == refused_decision_id:
        await uow.conn.execute(_SUPERSEDE, {"refused": refused_decision_id, "by": decision_id})
        result["explanation"] = [
            *result["explanation"],
            f"replanned: decision {refused_decision_id} could not be reserved (its stock went to another "
            "order) and is superseded",
        ]
        current = None
    if decision.parked and current:
        return None
    now = uow.clock.now()
    written = await uow.conn.execute(
        _INSERT_DECISION,
        {
            "decision_id": decision_id,
            "order_id": request.order_id,
            "decided_at": now,
            "rule_set_version": decision.ruleset_version,
            "parked_reason": decision.parked.value if decision.parked else "",
            "inputs": inputs,
            "result": result,
            "shadow_version": None if shadow is None else shadow.ruleset_version,
            "shadow_result": None if shadow is None else result_document(shadow),
            "shadow_differs": shadow is not None and _outcome(shadow) != _outcome(decision),
        },
    )
    if written.first() is None:
        return None
    if decision.parked:
        await uow.conn.execute(
            _PARK,
            {
                "order_id": request.order_id,
                "request": inputs["request"],
                "skus": [line.sku for line in request.lines],
                "reason": decision.parked.value,
                "detail": decision.park_detail,
                "parked_at": now,
            },
        )
        uow.publish(
            "routing.parked",
            events_pb2.OrderParked(
                order_id=request.order_id,
                decision_id=decision_id,
                reason=decision.parked.value,
                detail=decision.park_detail,
            ),
        )
    else:
        await uow.conn.execute(_UNPARK, {"order_id": request.order_id})
        await uow.conn.execute(
            _COUNT_LOAD,
            [{"day": now.date(), "warehouse_id": s.warehouse_id, "orders": 1} for s in decision.shipments],
        )
        uow.publish(
            "routing.planned",
            events_pb2.FulfilmentPlanned(
                order_id=request.order_id,
                decision_id=decision_id,
                rule_set_version=decision.ruleset_version,
                shipments=[messages.shipment(s) for s in result["shipments"]],
            ),
        )
    return StoredDecision(decision_id, now, request.order_id, decision.ruleset_version, result)


async def _latest(uow: UnitOfWork, order_id: str) -> StoredDecision | None:
    async with uow:
        row = (
            await uow.conn.execute(
                select(decisions_table)
                .where(decisions_table.c.order_id == order_id)
                # a plan, once made, is the order's decision, even if a racing call parked it after;
                # a superseded plan is not (the replan's decision is, planned or parked)
                .order_by(
                    (
                        (decisions_table.c.parked_reason == "") & (decisions_table.c.superseded_by == "")
                    ).desc(),
                    decisions_table.c.decided_at.desc(),
                )
                .limit(1)
            )
        ).first()
    if row is None:
        return None
    return StoredDecision(row.decision_id, row.decided_at, row.order_id, row.rule_set_version, row.result)


async def explain_decision(uow: UnitOfWork, order_id: str) -> StoredDecision:
    if not order_id:
        raise InvalidArgument("order_id", "is required")
    stored = await _latest(uow, order_id)
    if stored is None:
        raise NotFound(f"no routing decision for order {order_id}")
    return stored


# --- rule sets -------------------------------------------------------------------------------------


async def ensure_default_rules(uow: UnitOfWork) -> None:
    """A new installation starts with the default rule set active."""
    async with uow:
        await uow.conn.execute(
            insert(rule_sets_table)
            .values(
                version=1,
                status="active",
                document=to_document(default_rules()),
                note="default rule set",
                created_at=uow.clock.now(),
                activated_at=uow.clock.now(),
            )
            .on_conflict_do_nothing()
        )
        await uow.commit()


async def get_rule_set(uow: UnitOfWork, version: int) -> Any:
    query = select(rule_sets_table)
    query = (
        query.where(rule_sets_table.c.status == "active")
        if version == 0
        else query.where(rule_sets_table.c.version == version)
    )
    async with uow:
        row = (await uow.conn.execute(query)).first()
    if row is None:
        raise NotFound(f"rule set {version or 'active'} not found")
    return row


async def save_draft(uow: UnitOfWork, document_json: str, note: str) -> Any:
    try:
        document = json.loads(document_json)
    except json.JSONDecodeError as error:
        raise InvalidArgument("document_json", f"is not JSON: {error.msg} at {error.pos}") from None
    from_document(0, document)
    async with uow:
        version = (
            int(await uow.conn.scalar(select(func.coalesce(func.max(rule_sets_table.c.version), 0))) or 0) + 1
        )
        row = (
            await uow.conn.execute(
                rule_sets_table.insert()
                .values(
                    version=version,
                    status="draft",
                    document=document,
                    note=note[:500],
                    created_at=uow.clock.now(),
                )
                .returning(*rule_sets_table.c)
            )
        ).one()
        await uow.commit()
    return row


async def put_expected_decisions(uow: UnitOfWork, cases: list[ExpectedDecision]) -> int:
    names = [case.name for case in cases]
    if len(set(names)) != len(names) or not all(names):
        raise InvalidArgument("cases", "every case needs a unique, non-empty name")
    async with uow:
        await uow.conn.execute(delete(expected_decisions_table))
        if cases:
            await uow.conn.execute(
                expected_decisions_table.insert(),
                [{"name": case.name, "document": case_to_document(case)} for case in cases],
            )
        await uow.commit()
    return len(cases)


@dataclass(frozen=True)
class DryRun:
    cases: list[CaseResult]
    replayed: int
    changed: list[routing_pb2.ChangedDecision]

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)


async def dry_run(uow: UnitOfWork, version: int, last_decisions: int) -> DryRun:
    """The expected decisions, and the last N real decisions replayed: which would change, and how."""
    row = await get_rule_set(uow, version)
    rules = from_document(row.version, row.document)
    async with uow:
        cases = [
            case_from_document(r.document) for r in await uow.conn.execute(select(expected_decisions_table))
        ]
        recent = (
            await uow.conn.execute(
                select(decisions_table.c.order_id, decisions_table.c.inputs, decisions_table.c.result)
                .order_by(decisions_table.c.decided_at.desc())
                .limit(last_decisions or 100)
            )
        ).all()
    changed = []
    for past in recent:
        again = result_document(replay(past.inputs, rules))
        before = [s["warehouse_id"] for s in past.result["shipments"]]
        after = [s["warehouse_id"] for s in again["shipments"]]
        if before != after or past.result["parked"] != again["parked"]:
            changed.append(
                routing_pb2.ChangedDecision(
                    order_id=past.order_id,
                    before_warehouse_ids=before,
                    after_warehouse_ids=after,
                    before_parked_reason=past.result["parked"] or "",
                    after_parked_reason=again["parked"] or "",
                )
            )
    return DryRun([check_expected(rules, case) for case in cases], len(recent), changed)


async def activate(
    new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, version: int
) -> tuple[Any, DryRun]:
    """Refused when the rule set breaks an expected decision; otherwise it replaces the active one."""
    result = await dry_run(new_uow(), version, 100)
    if not result.passed:
        failed = [case for case in result.cases if not case.passed]
        raise FailedPrecondition(
            f"rule set {version} breaks {len(failed)} expected decision(s): "
            + "; ".join(f"{case.case.name}: {case.detail}" for case in failed)
        )
    uow = new_uow()
    async with uow:
        row = (
            await uow.conn.execute(
                select(rule_sets_table).where(rule_sets_table.c.version == version).with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"rule set {version} not found")
        if row.status != "draft":
            raise FailedPrecondition(f"rule set {version} is {row.status}; only a draft can be activated")
        previous = await uow.conn.scalar(
            update(rule_sets_table)
            .where(rule_sets_table.c.status == "active")
            .values(status="retired")
            .returning(rule_sets_table.c.version)
        )
        activated = (
            await uow.conn.execute(
                update(rule_sets_table)
                .where(rule_sets_table.c.version == version)
                .values(status="active", activated_at=uow.clock.now())
                .returning(*rule_sets_table.c)
            )
        ).one()
        # a new rule set may route what the old one could not (coverage, cold chain): try the parked again
        await uow.conn.execute(update(parked_orders_table).values(retry_due=uow.clock.now()))
        uow.publish(
            "routing.rules_activated",
            events_pb2.RuleSetActivated(version=version, previous_version=previous or 0),
        )
        await uow.commit()
    cache.invalidate()
    return activated, result


async def set_shadow(uow: UnitOfWork, cache: RuleSetCache, version: int) -> int:
    """Decide every order with this rule set too (0: stop); the active rule set still acts."""
    async with uow:
        await uow.conn.execute(update(rule_sets_table).where(rule_sets_table.c.shadow).values(shadow=False))
        if version:
            status = await uow.conn.scalar(
                update(rule_sets_table)
                .where(rule_sets_table.c.version == version)
                .values(shadow=True)
                .returning(rule_sets_table.c.status)
            )
            if status is None:
                raise NotFound(f"rule set {version} not found")
            if status == "active":
                raise FailedPrecondition(f"rule set {version} is already active; shadow a draft")
        await uow.commit()
    cache.invalidate()
    return version


async def shadow_report(uow: UnitOfWork, limit: int) -> tuple[int, int, list[routing_pb2.ChangedDecision]]:
    async with uow:
        version = int(
            await uow.conn.scalar(select(rule_sets_table.c.version).where(rule_sets_table.c.shadow)) or 0
        )
        compared = int(
            await uow.conn.scalar(
                select(func.count())
                .select_from(decisions_table)
                .where(decisions_table.c.shadow_version == version)
            )
            or 0
        )
        rows = (
            await uow.conn.execute(
                select(decisions_table.c.order_id, decisions_table.c.result, decisions_table.c.shadow_result)
                .where(decisions_table.c.shadow_version == version, decisions_table.c.shadow_differs)
                .order_by(decisions_table.c.decided_at.desc())
                .limit(limit or 100)
            )
        ).all()
    differences = [
        routing_pb2.ChangedDecision(
            order_id=row.order_id,
            before_warehouse_ids=[s["warehouse_id"] for s in row.result["shipments"]],
            after_warehouse_ids=[s["warehouse_id"] for s in row.shadow_result["shipments"]],
            before_parked_reason=row.result["parked"] or "",
            after_parked_reason=row.shadow_result["parked"] or "",
        )
        for row in rows
    ]
    return version, compared, differences


# --- parked orders ---------------------------------------------------------------------------------


async def list_parked(uow: UnitOfWork, page_size: int, page_token: str) -> tuple[list[Any], str]:
    size = min(page_size or 100, 1000)
    query = select(parked_orders_table).order_by(parked_orders_table.c.order_id).limit(size + 1)
    if page_token:
        query = query.where(parked_orders_table.c.order_id > page_token)
    async with uow:
        rows = list((await uow.conn.execute(query)).all())
    return rows[:size], rows[size - 1].order_id if len(rows) > size else ""


async def mark_parked_due(conn: Any, sku: str, now: datetime) -> int:
    """Stock arrived: parked orders waiting for the SKU become due; the job retries them outside this txn."""
    result = await conn.execute(
        update(parked_orders_table)
        .where(
            parked_orders_table.c.skus.contains([sku]),
            # a cold-chain SKU parked because only warm warehouses hold it waits for cold stock too
            parked_orders_table.c.reason.in_(("out_of_stock", "cold_chain_impossible")),
        )
        .values(retry_due=now)
    )
    return int(result.rowcount or 0)


# a parked order whose retry failed (inventory down, its request no longer valid) is tried again this
# much later, so it neither blocks the others nor is retried in a tight loop
RETRY_FAILED_DELAY = timedelta(seconds=30)


async def retry_parked(
    new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, stock_source: StockSource, limit: int = 50
) -> int:
    """Plan again every parked order marked due. The mark is cleared only if it is still the one this
    round saw: stock arriving during the retry marks it again and the next round runs it. One order
    failing does not stop the others."""
    uow = new_uow()
    async with uow:
        now = uow.clock.now()
        due = (
            await uow.conn.execute(
                select(parked_orders_table.c.request, parked_orders_table.c.retry_due)
                .where(parked_orders_table.c.retry_due <= now)
                .order_by(parked_orders_table.c.retry_due)
                .limit(limit)
            )
        ).all()
    planned = 0
    for row in due:
        raw = row.request
        seen = row.retry_due
        try:
            stored = await plan_fulfilment(
                new_uow,
                cache,
                stock_source,
                PlanCommand(
                    raw["order_id"],
                    raw["province"],
                    raw["city"],
                    tuple(RouteLine(**line) for line in raw["lines"]),
                    raw["priority"],
                ),
            )
        except Exception:
            log.exception("retrying parked order %s failed", raw["order_id"])
            await _set_retry(new_uow(), raw["order_id"], seen, now + RETRY_FAILED_DELAY)
            continue
        planned += not stored.result["parked"]
        await _set_retry(new_uow(), raw["order_id"], seen, None)
    return planned


async def _set_retry(uow: UnitOfWork, order_id: str, seen: datetime, retry_due: datetime | None) -> None:
    async with uow:
        await uow.conn.execute(
            update(parked_orders_table)
            .where(parked_orders_table.c.order_id == order_id, parked_orders_table.c.retry_due == seen)
            .values(retry_due=retry_due)
        )
        await uow.commit()
