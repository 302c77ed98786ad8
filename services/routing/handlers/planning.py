"""Planning an order's fulfilment: decide on live stock with the active rule set (and the shadow one),
log the decision, park the order or count the load, and announce it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.kit import tracing
from services.kit.batching import Batcher, answer_each
from services.kit.errors import InvalidArgument
from services.kit.ids import new_id
from services.routing.domain.commands import PlanCommand
from services.routing.domain.decision_log import inputs_document
from services.routing.domain.events import FulfilmentPlanned, OrderParked, parked_alert
from services.routing.domain.explain import superseding
from services.routing.domain.model import (
    Decision,
    ParkedOrder,
    RecordedDecision,
    RouteRequest,
    Stock,
    route_request,
    with_catalogue,
)
from services.routing.domain.planner import plan
from services.routing.domain.rules import RuleSet
from services.routing.handlers.ports import StockSource, UnitOfWork
from services.routing.handlers.rule_cache import RuleSetCache

log = logging.getLogger(__name__)


def validate(command: PlanCommand) -> RouteRequest:
    return route_request(
        command.order_id, command.province, command.city, command.lines, command.priority, command.country
    )


async def plan_fulfilment(
    new_uow: Callable[[], UnitOfWork],
    cache: RuleSetCache,
    stock_source: StockSource,
    command: PlanCommand,
    writer: DecisionWriter | None = None,
) -> RecordedDecision:
    """Idempotent for a planned order (its decision is returned); a parked order is decided again, and
    so is a planned one whose plan the caller names as refused (`refused_decision_id`): the new
    decision supersedes it. A replan naming a plan that is no longer current (another replan replaced
    it first) is a plain repeat, so two concurrent replans write one decision.

    The repeat is detected by the unique index on planned decisions when the new one is written,
    not by a read first: the common case (a new order) pays one transaction, not two. With a `writer`,
    that transaction is shared with the plans being recorded at the same moment (a group commit).
    """
    request = validate(command)
    rules = await cache.active(new_uow())
    shadow_rules = await cache.shadow(new_uow())
    skus = [line.sku for line in request.lines]
    found = await _availability(stock_source, skus, _warehouses(rules, shadow_rules))
    request, stock = with_catalogue(request, found.catalogue), found.levels
    if writer is not None:
        deciding = _Deciding(request, stock, rules, shadow_rules, command.refused_decision_id)
        if (recorded := await writer.record(deciding)) is not None:
            return recorded
    return await _decide(new_uow, cache, request, stock, rules, shadow_rules, command.refused_decision_id)


async def plan_fulfilments(
    new_uow: Callable[[], UnitOfWork],
    cache: RuleSetCache,
    stock_source: StockSource,
    commands: Sequence[PlanCommand],
    traceparents: Mapping[str, str] | None = None,
    concurrency: int = 8,
    writer: DecisionWriter | None = None,
) -> list[RecordedDecision | Exception]:
    """Many orders, each as `plan_fulfilment` would plan it, on one read of live stock for them all.

    The orders are decided one after another, each on the stock the ones before it left: two orders of
    one batch never both plan the last unit. Each is recorded in its own transaction, and answered on
    its own: a refused order (bad address, unknown SKU) is that order's error, never the batch's. With
    a `writer`, the decisions are recorded together (a refusal there sends each to its own transaction).
    """
    validated: list[RouteRequest | Exception] = []
    for command in commands:
        try:
            validated.append(validate(command))
        except InvalidArgument as error:
            validated.append(error)
    rules = await cache.active(new_uow())
    shadow_rules = await cache.shadow(new_uow())
    valid = [request for request in validated if isinstance(request, RouteRequest)]
    skus = list(dict.fromkeys(line.sku for request in valid for line in request.lines))
    warehouses = _warehouses(rules, shadow_rules)
    traces = [(traceparents or {}).get(command.order_id, "") for command in commands]
    try:
        found = await _availability(stock_source, skus, warehouses) if skus else Stock({}, {})
    except InvalidArgument:
        # an order names a SKU inventory does not know: plan each order on its own, so that only the
        # orders naming it are refused (with the line at fault)
        return await answer_each(
            commands,
            lambda command: plan_fulfilment(new_uow, cache, stock_source, command, writer),
            concurrency,
            traces,
            "routing.plan",
        )
    levels = dict(found.levels)
    async with new_uow() as uow:
        load = await cache.load(uow)
    decided: list[_Decided | Exception] = []
    for command, checked in zip(commands, validated, strict=True):
        if isinstance(checked, Exception):
            decided.append(checked)
            continue
        request = with_catalogue(checked, found.catalogue)
        seen = {
            key: levels[key]
            for line in request.lines
            for warehouse in warehouses
            if (key := (line.sku, warehouse)) in levels
        }
        load_seen = dict(load)
        decision = plan(request, rules, seen, load_seen)
        shadow = None if shadow_rules is None else plan(request, shadow_rules, seen, load_seen)
        for shipment in decision.shipments:  # what this order takes, the next ones cannot
            load[shipment.warehouse_id] = load.get(shipment.warehouse_id, 0) + 1
            for sku, quantity in shipment.lines:
                key = (sku, shipment.warehouse_id)
                levels[key] = levels.get(key, 0) - quantity
        decided.append(_Decided(request, decision, shadow, seen, load_seen, command.refused_decision_id))

    async def write(item: _Decided | Exception) -> RecordedDecision:
        if isinstance(item, Exception):
            raise item
        if writer is not None and (recorded := await writer.record(item)) is not None:
            return recorded
        return await _write(
            new_uow, item.request, item.decision, item.shadow, item.stock, item.load, item.refused_decision_id
        )

    return await answer_each(decided, write, concurrency, traces, "routing.plan")


@dataclass(frozen=True)
class _Decided:
    """A batch's order decided outside any transaction, with what it was decided on, to be recorded."""

    request: RouteRequest
    decision: Decision
    shadow: Decision | None
    stock: dict[tuple[str, str], int]
    load: dict[str, int]
    refused_decision_id: str


@dataclass(frozen=True)
class _Deciding:
    """A single order to be decided on the stock it was sent, with the load read where it is recorded."""

    request: RouteRequest
    stock: dict[tuple[str, str], int]
    rules: RuleSet
    shadow_rules: RuleSet | None
    refused_decision_id: str

    def decided(self, load: dict[str, int]) -> _Decided:
        decision = plan(self.request, self.rules, self.stock, load)
        shadow = (
            None if self.shadow_rules is None else plan(self.request, self.shadow_rules, self.stock, load)
        )
        return _Decided(self.request, decision, shadow, self.stock, load, self.refused_decision_id)


# a decision waiting to be recorded, with the trace it was asked in
_Recording = tuple["_Decided | _Deciding", str]


class _Repeated(Exception):
    """An order of a group had a plan already: the group is recorded one by one (each answers it)."""


class DecisionWriter:
    """Decisions that come while others are being recorded are recorded together: one transaction for
    the lot (a group commit, at most `in_flight` at once; an idle service adds no delay). Each is
    recorded as alone, under its order's lock (taken in order-id order) and in its caller's trace; the
    day's load is counted once for the group (warehouses in one order). Should one of them fail or find
    its order planned already, the transaction is rolled back and each is answered None: its caller
    records it alone, outside the writer (as the other desks, `kit.batching`), so a group's trouble
    never holds the writer's transactions."""

    def __init__(
        self, new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, in_flight: int = 2, max_batch: int = 64
    ) -> None:
        self.new_uow = new_uow
        self.cache = cache
        self._batcher: Batcher[_Recording, RecordedDecision | None] = Batcher(
            self._together, linger=0, max_batch=max_batch, in_flight=in_flight
        )

    @property
    def batches(self) -> int:
        """How many transactions took decisions together (for the tests and the benchmarks)."""
        return self._batcher.batches

    async def record(self, item: _Decided | _Deciding) -> RecordedDecision | None:
        """The decision recorded with the others of its group; None: record it alone."""
        return await self._batcher.submit((item, tracing.current_traceparent()))

    async def _together(self, items: list[_Recording]) -> list[RecordedDecision | None]:
        orders = [item.request.order_id for item, _ in items]
        if len(items) > 1 and len(set(orders)) == len(orders):
            try:
                return list(await self._in_one(items))
            except Exception as error:
                log.info("%d decisions are recorded one by one: %r", len(items), error)
        return [None] * len(items)

    async def _in_one(self, items: list[_Recording]) -> list[RecordedDecision]:
        uow = self.new_uow()
        async with uow:
            load = await self.cache.load(uow) if any(isinstance(i, _Deciding) for i, _ in items) else {}
            counted: list[str] = []
            answers: dict[int, RecordedDecision] = {}
            for index in sorted(range(len(items)), key=lambda i: items[i][0].request.order_id):
                item, traceparent = items[index]
                with tracing.attached(traceparent):
                    decided = item if isinstance(item, _Decided) else item.decided(dict(load))
                    recorded = await _record(
                        uow,
                        decided.request,
                        decided.decision,
                        decided.stock,
                        decided.load,
                        decided.shadow,
                        decided.refused_decision_id,
                        counted,
                    )
                if recorded is None:
                    raise _Repeated(decided.request.order_id)
                answers[index] = recorded
            if counted:
                await uow.load.count(uow.clock.now().date(), counted)
            await uow.commit()
        return [answers[index] for index in range(len(items))]


def _warehouses(rules: RuleSet, shadow_rules: RuleSet | None) -> list[str]:
    warehouses = {w.warehouse_id for w in rules.warehouses}
    if shadow_rules is not None:
        warehouses |= {w.warehouse_id for w in shadow_rules.warehouses}
    return sorted(warehouses)


async def _decide(
    new_uow: Callable[[], UnitOfWork],
    cache: RuleSetCache,
    request: RouteRequest,
    stock: dict[tuple[str, str], int],
    rules: RuleSet,
    shadow_rules: RuleSet | None,
    refused_decision_id: str,
) -> RecordedDecision:
    uow = new_uow()
    async with uow:
        load = await cache.load(uow)
        decision = plan(request, rules, stock, load)
        shadow = None if shadow_rules is None else plan(request, shadow_rules, stock, load)
        recorded = await _record(uow, request, decision, stock, load, shadow, refused_decision_id)
        if recorded is not None:
            await uow.commit()
    return recorded if recorded is not None else await _repeat(new_uow, request.order_id)


async def _write(
    new_uow: Callable[[], UnitOfWork],
    request: RouteRequest,
    decision: Decision,
    shadow: Decision | None,
    stock: dict[tuple[str, str], int],
    load: dict[str, int],
    refused_decision_id: str,
) -> RecordedDecision:
    """Record a decision made outside the transaction (a batch's), or answer the order's plan."""
    uow = new_uow()
    async with uow:
        recorded = await _record(uow, request, decision, stock, load, shadow, refused_decision_id)
        if recorded is not None:
            await uow.commit()
    return recorded if recorded is not None else await _repeat(new_uow, request.order_id)


async def _repeat(new_uow: Callable[[], UnitOfWork], order_id: str) -> RecordedDecision:
    """Already planned: answer with that plan, after the writing transaction rolled back."""
    existing = await _current(new_uow(), order_id)
    assert existing is not None, "a planned decision conflicted and cannot vanish"
    await _drop_stale_park(new_uow(), existing)
    return existing


_SKUS_INDEX = re.compile(r"^skus\[(\d+)\]")


async def _availability(source: StockSource, skus: list[str], warehouses: list[str]) -> Stock:
    """Inventory names an unknown SKU by its place in the request it was sent: `skus[i]` is `lines[i]`
    (lines name distinct SKUs)."""
    try:
        return await source.availability(skus, warehouses)
    except InvalidArgument as error:
        raise InvalidArgument.of(
            [
                (_SKUS_INDEX.sub(r"lines[\1].sku", field, count=1), problem)
                for field, problem in error.violations
            ]
        ) from None


async def _record(
    uow: UnitOfWork,
    request: RouteRequest,
    decision: Decision,
    stock: dict[tuple[str, str], int],
    load: dict[str, int],
    shadow: Decision | None,
    refused_decision_id: str = "",
    counted: list[str] | None = None,
) -> RecordedDecision | None:
    """Write the decision and its consequences; None when the order already has a planned decision
    (other than the refused one, which the new decision supersedes). With `counted`, the warehouses
    whose load the plan adds to are added there (the caller counts them) instead of counted here."""
    # decisions of one order are written one at a time: a call that read the stock before a racing
    # call planned the order must not park it afterwards (a parked entry beside a plan is never cleared),
    # and of two replans of one refused plan only the first supersedes it
    await uow.decisions.lock_order(request.order_id)
    decision_id = new_id()
    current = await uow.decisions.current_plan_id(request.order_id)
    if current and refused_decision_id and current == refused_decision_id:
        await uow.decisions.supersede(refused_decision_id, by=decision_id)
        decision = superseding(decision, refused_decision_id)
        current = None
    if decision.parked and current:
        return None
    now = uow.clock.now()
    recorded = RecordedDecision(decision_id, now, decision)
    inputs = inputs_document(request, stock, load)
    if not await uow.decisions.add(recorded, inputs, shadow):
        return None
    if decision.parked:
        await uow.parked.park(
            ParkedOrder(request.order_id, decision.parked, decision.park_detail, now),
            inputs["request"],
            [line.sku for line in request.lines],
        )
        parked = OrderParked(request.order_id, decision_id, decision.parked, decision.park_detail)
        uow.emit(parked)
        uow.emit(parked_alert(parked))
    else:
        await uow.parked.unpark(request.order_id)
        warehouses = [s.warehouse_id for s in decision.shipments]
        if counted is not None:
            counted.extend(warehouses)
        else:
            await uow.load.count(now.date(), warehouses)
        uow.emit(_planned(recorded))
    return recorded


def _planned(recorded: RecordedDecision) -> FulfilmentPlanned:
    decision = recorded.decision
    return FulfilmentPlanned(
        decision.order_id, recorded.decision_id, decision.ruleset_version, decision.shipments
    )


async def _current(uow: UnitOfWork, order_id: str) -> RecordedDecision | None:
    async with uow:
        return await uow.decisions.current(order_id)


async def _drop_stale_park(uow: UnitOfWork, planned: RecordedDecision) -> None:
    """Two plans for one order raced: one was planned, the other saw no stock and parked the order
    after it. The parked entry is wrong, and whoever got the parked answer may be waiting for the
    order to be routed: drop the entry and announce the plan again (consumers deduplicate)."""
    async with uow:
        if not await uow.parked.unpark(planned.order_id):
            return
        uow.emit(_planned(planned))
        await uow.commit()
