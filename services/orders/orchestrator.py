"""The process manager: drives each order through routing, inventory and logistics, one leased step
at a time (reserve, commit, ship; release when cancelled).

A step is claimed by moving its due time one lease ahead (committed at once), then the peers are
called with no transaction open, then the result is applied under the order's row lock. A worker
that dies anywhere in between simply lets its lease run out; any worker then runs the step again,
and because plans and reservations are keyed by the order id, running it twice does no harm.

What a peer says decides what happens to a failed step: a permanent refusal (unknown SKU, unknown
province) holds the order at once with the reason; an outage (UNAVAILABLE, DEADLINE_EXCEEDED, …)
pauses the step with growing back-off for as long as the outage lasts, without spending its
attempts, and the first step that gets through to that peer again wakes every step paused on it;
anything unexpected spends one of the step's few attempts, and the last one dead-letters it.

Each step runs in the trace of the request that created the order (linked to the trace that made
the step due, e.g. the payment), so one trace id follows the order through routing, inventory and
logistics. From then on logistics' events move the order (consumers.py, handlers.shipment_reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from opentelemetry import trace

from services.kit import tracing
from services.kit.batching import Batcher
from services.kit.errors import DomainError, Unavailable
from services.orders import handlers
from services.orders.domain.lifecycle import OrderStatus
from services.orders.domain.model import AlertRaised, HoldCause, Order
from services.orders.domain.orchestration import SHIPPABLE, Step, StockState, Stored, next_step
from services.orders.domain.shipping import Shipment, ShippingPlan
from services.orders.domain.timeline import Actor, Entry, entries_for
from services.orders.handlers.ports import UnitOfWork
from services.orders.peers import PeerRefused, Peers, PeerUnavailable, Plan, StockGone

log = logging.getLogger(__name__)
ACTOR = Actor.service("orders")
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """What the peers said, to be applied to the order."""

    stock: StockState
    warehouses: tuple[str, ...] = ()
    parked: str = ""  # routing could not plan it
    short: bool = False  # inventory refused the planned reservation
    out_of_stock: bool = False  # routing parked it for want of stock (stock arriving plans it again)
    decision_id: str = ""  # routing's decision this step acted on
    answered: tuple[str, ...] = ("routing", "inventory")  # the peers that answered this step
    shipping_plan: ShippingPlan | None = None  # routing's parcels, kept with a reservation (if shipping)
    shipments: tuple[Shipment, ...] | None = None  # logistics' answer: opened, or (`cancelled`) cancelled
    cancelled: bool = False
    stock_touched: bool = True  # False: inventory was not asked, the stock is as it was


# a step's result waiting to be applied: (order id, the result, the trace it was caused by, its own trace)
Applying = tuple[str, "Result | None", str, str]


class Orchestrator:
    def __init__(
        self,
        new_uow: Callable[[], UnitOfWork],
        policy: handlers.Policy,
        peers: Peers,
        lease: timedelta = timedelta(seconds=30),
        batch: int = 32,
        concurrency: int = 16,
        linger: float = 0.002,
    ) -> None:
        self.new_uow = new_uow
        self.policy = policy
        self.peers = peers
        self.lease = lease
        self.batch = batch
        self.wake = asyncio.Event()
        # peers this worker paused steps on: the next step that gets through to one wakes its sleepers
        self.sleeping: set[str] = set()
        self.semaphore = asyncio.Semaphore(concurrency)
        # a test hook: raise here to simulate a crash after the peers answered, before applying
        self.before_apply: Callable[[str, Result], None] | None = None
        # steps whose peers answered within `linger` seconds are applied in one transaction
        self._applies: Batcher[Applying, None] = Batcher(
            self._apply_together, linger, max(1, min(batch, 500))
        )

    def poke(self, changes: handlers.Changes | None = None) -> None:
        if changes is None or changes.due_steps:
            self.wake.set()

    async def run(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                worked = await self.run_due()
            except Exception:
                log.exception("orchestration round failed")
                worked = 0
            if worked:
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self.wake), timeout=idle_seconds)

    async def run_due(self) -> int:
        """Claim due steps and run them concurrently; returns how many were run."""
        uow = self.new_uow()
        async with uow:
            now = uow.clock.now()
            claimed = await uow.orders.claim_due_steps(now, now + self.lease, self.batch)
            await uow.commit()
        if claimed:
            await asyncio.gather(*(self._guarded(stored) for stored in claimed))
        return len(claimed)

    async def _guarded(self, stored: Stored) -> None:
        async with self.semaphore:
            order_id = stored.order.order_id
            origin = tracing.context_from_headers(
                {"traceparent": stored.traceparent} if stored.traceparent else {}
            )
            cause = _span_context(stored.step_traceparent)
            with tracing.tracer().start_as_current_span(
                f"orders.step {stored.step or ''}".strip(),
                context=origin,
                links=[trace.Link(cause)] if cause is not None else None,
                attributes={"oms.order_id": order_id},
            ):
                linked = tracing.trace_id_of(stored.step_traceparent)
                try:
                    answered = set(await self.run_step(order_id, stored, linked))
                except PeerRefused as error:
                    await self._refused(order_id, error)
                except Unavailable as error:
                    await self._paused(order_id, error)
                except Exception as error:
                    await self._failed(order_id, error)
                else:
                    back = answered if stored.step_pauses else answered & self.sleeping
                    if back:
                        self.sleeping -= back
                        await self._wake_paused(sorted(back))

    async def run_step(
        self, order_id: str, stored: Stored | None = None, linked: str = ""
    ) -> tuple[str, ...]:
        """Run the order's step; returns the peers that answered it."""
        if stored is None:
            uow = self.new_uow()
            async with uow:
                stored = await uow.orders.get(order_id)
            if stored is None:
                return ()
        step = next_step(stored.order, StockState(stored.stock_state))
        if step is None:
            await self._apply(order_id, None, linked)
            return ()
        result = await self._call_peers(step, stored)
        if self.before_apply is not None:
            self.before_apply(order_id, result)
        await self._apply(order_id, result, linked)
        return result.answered

    async def _call_peers(self, step: Step, stored: Stored) -> Result:
        order = stored.order
        if step is Step.RELEASE:
            return await self._release(stored)
        if step is Step.SHIP:
            shipments = await self.peers.create_shipments(order, stored.sla)
            stock = StockState(stored.stock_state)
            return Result(stock, shipments=shipments, stock_touched=False, answered=("logistics",))
        if step is Step.COMMIT:
            try:
                return Result(
                    StockState.COMMITTED, await self.peers.commit(order.order_id), answered=("inventory",)
                )
            except StockGone:
                pass  # the reservation expired before the payment: reserve again, below
        # the last attempt's plan could not be reserved: routing must decide again, not repeat it
        plan = await self.peers.plan(order, stored.refused_decision_id)
        if plan.parked_reason:
            parked = f"{plan.parked_reason}: {plan.parked_detail}".strip(": ")
            return Result(
                StockState.NONE,
                parked=parked,
                out_of_stock=plan.out_of_stock,
                answered=("routing",),
                decision_id=plan.decision_id,
            )
        return await self._reserve(order, plan)

    async def _release(self, stored: Stored) -> Result:
        """A cancelled order: logistics cancels its shipments still in the warehouse first (those the
        order knows of, or any an allocated order may have had opened by a ship step whose answer was
        lost), then inventory gives the stock back."""
        order = stored.order
        stock = StockState(stored.stock_state)
        held = stock in (StockState.RESERVED, StockState.COMMITTED)
        answered: list[str] = []
        shipments = None
        allocated = order.shipping_plan is not None and stock is StockState.COMMITTED
        if order.shipments_in_warehouse or (self.peers.ships and allocated):
            shipments = await self.peers.cancel_shipments(order)
            answered.append("logistics")
        if held:
            await self.peers.release(order, order.status_reason or "order cancelled")
            answered.append("inventory")
        return Result(
            StockState.RELEASED if held else stock,
            shipments=shipments,
            cancelled=True,
            stock_touched=held,
            answered=tuple(answered),
        )

    async def _reserve(self, order: Order, plan: Plan) -> Result:
        decision = plan.decision_id
        if not await self.peers.reserve(order.order_id, plan):
            return Result(StockState.NONE, plan.warehouses, short=True, decision_id=decision)
        # routing's carriers for the shipments logistics opens once the order is allocated
        shipping = plan.shipping if self.peers.ships else None
        if order.is_paid:
            try:
                return Result(
                    StockState.COMMITTED,
                    await self.peers.commit(order.order_id),
                    decision_id=decision,
                    shipping_plan=shipping,
                )
            except StockGone:
                return Result(StockState.NONE, plan.warehouses, short=True, decision_id=decision)
        return Result(StockState.RESERVED, plan.warehouses, decision_id=decision, shipping_plan=shipping)

    async def _with_locked(
        self, order_id: str, change: Callable[[UnitOfWork, Stored, datetime], Awaitable[T]]
    ) -> T | None:
        """Run `change` on the order under its row lock in a unit of work of its own, then commit;
        None (and nothing done) when the order is gone."""
        uow = self.new_uow()
        async with uow:
            stored = await uow.orders.get(order_id, lock=True)
            if stored is None:
                return None
            done = await change(uow, stored, uow.clock.now())
            await uow.commit()
        return done

    async def _apply(self, order_id: str, result: Result | None, linked: str = "") -> None:
        """Steps that end within a few milliseconds of each other are applied in one transaction."""
        await self._applies.submit((order_id, result, linked, tracing.current_traceparent()))

    async def _apply_together(self, items: list[Applying]) -> list[BaseException | None]:
        """One transaction for the batch: the orders locked in id order, each step's result applied
        and saved in its own order's trace. Should any of them fail (an order changed meanwhile in a
        way its result cannot be applied to), the transaction is rolled back and each is applied
        alone, so only that order's step meets the error."""
        order_ids = [order_id for order_id, _, _, _ in items]
        if len(items) > 1 and len(set(order_ids)) == len(order_ids):
            changes = handlers.Changes()
            try:
                uow = self.new_uow()
                async with uow:
                    found = await uow.orders.get_many_locked(order_ids)
                    now = uow.clock.now()
                    for order_id, result, linked, traceparent in items:
                        stored = found.get(order_id)
                        if stored is None:
                            continue
                        with tracing.attached(traceparent):
                            extra = _apply_result(stored, result, now) if result is not None else []
                            await handlers.save_order(
                                uow,
                                stored,
                                ACTOR,
                                "orders",
                                changes,
                                extra,
                                step_done=True,
                                linked_trace_id=linked,
                            )
                    await uow.commit()
            except Exception as error:
                log.warning(
                    "applying %d steps together failed (%s): each is applied alone", len(items), error
                )
            else:
                self.poke(changes)
                return [None] * len(items)
        answers: list[BaseException | None] = []
        for order_id, result, linked, traceparent in items:
            try:
                with tracing.attached(traceparent):
                    await self._apply_alone(order_id, result, linked)
                answers.append(None)
            except Exception as error:
                answers.append(error)
        return answers

    async def _apply_alone(self, order_id: str, result: Result | None, linked: str = "") -> None:
        changes = handlers.Changes()

        async def apply(uow: UnitOfWork, stored: Stored, now: datetime) -> None:
            extra = _apply_result(stored, result, now) if result is not None else []
            await handlers.save_order(
                uow, stored, ACTOR, "orders", changes, extra, step_done=True, linked_trace_id=linked
            )

        await self._with_locked(order_id, apply)
        self.poke(changes)

    async def _wake_paused(self, peers: list[str]) -> None:
        """A step got through to these peers after an outage: every step sleeping on them runs now
        rather than at the end of its back-off (a step waiting for another peer sleeps on)."""
        uow = self.new_uow()
        async with uow:
            woken = await uow.orders.wake_paused(peers, uow.clock.now())
            await uow.commit()
        if woken:
            log.info("%s answer again: %d paused order steps resume now", " and ".join(peers), woken)
            self.wake.set()

    async def _paused(self, order_id: str, error: Unavailable) -> None:
        """A peer is down: sleep with growing back-off, keep the attempts; past the patience, dead-letter."""
        peer = error.peer if isinstance(error, PeerUnavailable) else "unknown"

        async def pause(uow: UnitOfWork, stored: Stored, now: datetime) -> tuple[datetime, timedelta | None]:
            since = stored.step_paused_since or now
            if now - since >= self.policy.outage_patience:
                return since, None
            return since, await self._pause(uow, stored, peer, error, now)

        paused = await self._with_locked(order_id, pause)
        if paused is None:
            return
        since, pause_for = paused
        if pause_for is None:
            await self._failed(
                order_id, error, dead=True, why=f"{peer} unavailable since {since.isoformat()}: "
            )
        else:
            self.sleeping.add(peer)
            log.warning("step for order %s paused %.1fs: %s", order_id, pause_for.total_seconds(), error)

    async def _pause(
        self, uow: UnitOfWork, stored: Stored, peer: str, error: Unavailable, now: datetime
    ) -> timedelta:
        policy = self.policy
        pause = min(
            policy.outage_backoff_initial * (2 ** min(stored.step_pauses, 20)), policy.outage_backoff_max
        )
        await uow.orders.step_paused(stored.order.order_id, peer, str(error), now + pause, now)
        if stored.step_pauses == 0:  # once per outage on the timeline, not once per pause
            entry = Entry("step_paused", ACTOR, "orders", f"waiting for {peer}: {error}")
            await uow.orders.add_timeline(stored.order.order_id, [entry], now)
        return pause

    async def _refused(self, order_id: str, error: PeerRefused) -> None:
        """A peer refused for good: the order stops at once with the reason in words; no retries."""
        changes = handlers.Changes()
        why = error.message

        async def stop(uow: UnitOfWork, stored: Stored, now: datetime) -> bool:
            order = stored.order
            if order.status is OrderStatus.CANCELLED:
                return True  # its stock could not be given back: dead-lettered below
            if order.status is OrderStatus.PAID:
                order.freeze(f"paid, cannot be fulfilled: {why}", now)  # raises its own alert
            elif order.status is OrderStatus.PENDING_PAYMENT:
                order.hold(why, now)
                order.events.append(AlertRaised("order_step_refused", "medium", f"order held: {why}"))
            elif order.status in SHIPPABLE:  # logistics will not open its shipments
                order.freeze(f"{order.status.value.lower()}, cannot be shipped: {why}", now)  # alerted
            # (held by a person meanwhile: the step is simply no longer wanted)
            extra = [Entry("step_refused", ACTOR, error.peer, why)]
            await handlers.save_order(uow, stored, ACTOR, "orders", changes, extra, step_done=True)
            return False

        releasing = await self._with_locked(order_id, stop)
        if releasing is None:
            return
        if releasing:  # a cancelled order's stock could not be given back: a person must look, now
            await self._failed(order_id, error, dead=True)
            return
        log.warning("step for order %s refused: %s", order_id, why)
        self.poke(changes)

    async def _failed(self, order_id: str, error: Exception, dead: bool = False, why: str = "") -> None:
        """Retry after a pause; after the last attempt (or at once when `dead`) the step is
        dead-lettered and alerted."""
        message = f"{why}{type(error).__name__}: {error}"

        async def fail(uow: UnitOfWork, stored: Stored, now: datetime) -> None:
            to_dead = dead or stored.step_attempts >= self.policy.retry_attempts
            due_at = None if to_dead else now + self.policy.retry_delay
            await uow.orders.step_failed(order_id, message, due_at, to_dead, now)
            entries = [Entry("step_failed", ACTOR, "orders", f"attempt {stored.step_attempts}: {message}")]
            if to_dead:
                stored.order.events.append(
                    AlertRaised("order_step_dead", "high", f"{stored.step or 'step'} failed: {message}")
                )
                entries.append(Entry("dead_letter", ACTOR, "orders", "step moved to the dead-letter list"))
            await uow.orders.add_timeline(
                order_id, [*entries_for(stored.order.events, ACTOR, "orders"), *entries], now
            )
            uow.collect(stored.order)

        await self._with_locked(order_id, fail)
        level = logging.ERROR if not isinstance(error, DomainError) else logging.WARNING
        log.log(level, "step for order %s failed: %s", order_id, message)


def _apply_result(stored: Stored, result: Result, now: datetime) -> list[Entry]:
    order = stored.order
    notes: list[Entry] = []
    if result.shipments is not None:
        # what logistics holds is a fact whatever happened to the order meanwhile: an order cancelled
        # while its shipments were being opened has them cancelled by its next step
        order.shipments_answered(result.shipments, now, cancelled=result.cancelled)
    if not result.stock_touched:
        return notes
    # what inventory now holds is a fact whatever happened to the order meanwhile; a cancelled
    # order that got a reservation in between is released by its next step
    stored.stock_state = result.stock.value
    if result.shipping_plan is not None:
        order.shipping_plan = result.shipping_plan
    if result.decision_id or result.stock is not StockState.NONE:
        # remembered only while the order waits for stock after a refused reservation (see _call_peers)
        stored.refused_decision_id = result.decision_id if result.short else ""
    if result.stock is StockState.RESERVED:
        order.warehouses = result.warehouses
        notes.append(
            Entry("reserved", ACTOR, "inventory", "stock reserved at " + ", ".join(result.warehouses))
        )
    elif result.stock is StockState.RELEASED:
        notes.append(Entry("stock_released", ACTOR, "inventory", "stock given back"))
    elif result.stock is StockState.COMMITTED:
        if order.status is OrderStatus.PAID:
            order.allocate(result.warehouses, now)
        else:
            order.warehouses = result.warehouses
    elif result.parked or result.short:
        why = result.parked or "out of stock at the planned warehouses"
        if order.is_paid and order.status is OrderStatus.PAID:
            order.freeze(f"paid, out of stock ({why})", now, cause=HoldCause.PAID_OUT_OF_STOCK)
            order.events.append(AlertRaised("paid_out_of_stock", "critical", f"paid, out of stock: {why}"))
        elif order.status in (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID):
            cause = HoldCause.OUT_OF_STOCK if result.short or result.out_of_stock else HoldCause.UNROUTABLE
            order.hold(f"unroutable: {why}", now, cause=cause)
    return notes


def _span_context(traceparent: str) -> trace.SpanContext | None:
    if not traceparent:
        return None
    span = trace.get_current_span(tracing.context_from_headers({"traceparent": traceparent}))
    context = span.get_span_context()
    return context if context.is_valid else None


async def _first(stop: asyncio.Event, wake: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
