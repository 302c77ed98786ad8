"""What every orders use case shares: the service's tunables, what a unit of work changed, finding an
order the caller may see, and saving a changed order with its next step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from services.kit import tracing
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import is_id
from services.kit.sealing import KeyRing
from services.orders.domain import anchor, orchestration
from services.orders.domain import payments as pay
from services.orders.domain.model import Order
from services.orders.domain.orchestration import StockState, Stored
from services.orders.domain.scope import Scope
from services.orders.domain.sla import SlaBook
from services.orders.domain.timeline import Actor, Entry, entries_for
from services.orders.handlers.ports import UnitOfWork
from services.orders.handlers.risk_cache import RiskRules


@dataclass(frozen=True)
class Policy:
    """The orders service's tunables (from settings)."""

    keys: KeyRing  # for the store and the read side, which seal and open personal data
    rules: anchor.RuleBook
    payment_tolerance: timedelta = pay.DEFAULT_TOLERANCE
    # the providers our own shop and tills are paid through
    self_run_providers: frozenset[str] = pay.DEFAULT_SELF_RUN_PROVIDERS
    retry_attempts: int = 3
    retry_delay: timedelta = timedelta(seconds=5)
    # a step whose peer is down sleeps (1 s, 2 s, 4 s … up to the cap) for as long as this, then dead-letters
    outage_patience: timedelta = timedelta(hours=6)
    outage_backoff_initial: timedelta = timedelta(seconds=1)
    outage_backoff_max: timedelta = timedelta(seconds=30)
    # an order in an automatic state that has not moved for this long is re-driven by the sweep
    stuck_after: timedelta = timedelta(minutes=2)
    # hold a new order of a customer with an after-sales ticket past its response limit (off by default)
    hold_for_overdue_tickets: bool = False
    # SLA limits per category and stage; None: orders accepted carry no SLA timer
    sla: SlaBook | None = None
    # the risk rules judging orders at acceptance; None: no order is judged
    risk: RiskRules | None = None


@dataclass
class Changes:
    """What one unit of work did to orders, for the caller to act on after commit."""

    due_steps: set[str] = field(default_factory=set)


def check_order_id(order_id: str) -> None:
    if not is_id(order_id):
        raise InvalidArgument("order_id", "must be an order id as returned by IngestOrder")


async def check_visible(uow: UnitOfWork, scope: Scope, order: Order) -> None:
    """NOT_FOUND (the same answer as an unknown id) for an order outside the caller's scope."""
    if scope.unrestricted:
        return
    if scope.hides(order) or (
        scope.agent_id and not await uow.assignments.is_assigned(scope.agent_id, order.buyer_id)
    ):
        raise NotFound(f"order {order.order_id} not found")


async def locked_order(uow: UnitOfWork, order_id: str) -> Stored:
    """The order, locked for a change; NOT_FOUND for an unknown id."""
    check_order_id(order_id)
    stored = await uow.orders.get(order_id, lock=True)
    if stored is None:
        raise NotFound(f"order {order_id} not found")
    return stored


async def save_order(
    uow: UnitOfWork,
    stored: Stored,
    actor: Actor,
    source: str,
    changes: Changes,
    extra: Sequence[Entry] = (),
    step_done: bool = False,
    linked_trace_id: str = "",
) -> None:
    """Write back a changed order with its events and timeline (its domain events' entries, then the
    `extra` ones), and schedule its next step: one statement. `step_done` says the process manager
    finished the order's current step. `linked_trace_id` names the trace that caused a
    process-manager step running in the order's own trace (`omsctl trace` follows it)."""
    order = stored.order
    now = uow.clock.now()
    entries = [*entries_for(order.events, actor, source), *extra]
    step = orchestration.next_step(order, StockState(stored.stock_state))
    wanted = step.value if step else None
    scheduled = step_done or wanted != stored.step
    if scheduled:
        stored.schedule(wanted, now)
    stored.sla.follow(order.status, order.paid_at, order.scanned_out_at)
    await uow.orders.save(stored, entries, now, scheduled=scheduled, linked_trace_id=linked_trace_id)
    if wanted:
        changes.due_steps.add(order.order_id)


Report = TypeVar("Report")


async def apply_per_order(
    uow: UnitOfWork,
    reports: Sequence[Report],
    traceparents: Sequence[str],
    order_of: Callable[[Report], str],
    apply: Callable[[Stored, Report], Awaitable[bool]],
    write: Callable[[Stored], Awaitable[None]],
) -> None:
    """Reports about orders (another service's events), in the order they were published: each order
    read and locked once (all of them in order-id order, so two such batches never wait in a circle);
    each run of its reports from one trace applied in turn and, if any changed it, written once in that
    trace (its timeline entries and events name the trace that caused them). Reports for ids that are
    not orders, and orders this service does not hold, are passed by. `traceparents[i]` (may be empty:
    the current trace) is the trace of `reports[i]`."""
    runs: dict[str, list[list[int]]] = {}
    for index, report in enumerate(reports):
        order_id = order_of(report)
        if not is_id(order_id):
            continue
        order_runs = runs.setdefault(order_id, [])
        if order_runs and traceparents[order_runs[-1][-1]] == traceparents[index]:
            order_runs[-1].append(index)
        else:
            order_runs.append([index])
    if not runs:
        return
    found = await uow.orders.get_many_locked(list(runs))
    for order_id in sorted(runs):
        stored = found.get(order_id)
        if stored is None:
            continue
        for run in runs[order_id]:
            with tracing.attached(traceparents[run[0]]):
                changed = False
                for index in run:
                    changed = await apply(stored, reports[index]) or changed
                if changed:
                    await write(stored)
