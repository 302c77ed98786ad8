"""Batch e-waybills: an action of up to 1,000 shipments is queued at once and answered with its batch
id; the runner takes due requests from the database, calls each carrier concurrently (within its
limits, behind its breaker), and records every outcome in its own transaction: the waybill, a retry
with back-off, or a dead letter. After an attempt that got no answer, the carrier is asked whether the
order already has a waybill before it is asked for one again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id
from services.logistics.domain.carriers import ACCOUNTS, CAINIAO_COMPANIES, product_of
from services.logistics.domain.commands import CreateWaybills
from services.logistics.domain.docks import Docks
from services.logistics.domain.events import AlertRaised, Severity, WaybillFailed
from services.logistics.domain.model import Shipment, ShipmentStatus
from services.logistics.domain.waybills import (
    MAX_BATCH,
    Failed,
    Issued,
    Outcome,
    RetryPolicy,
    WaybillOrder,
    WaybillRequest,
    WaybillState,
    after_attempt,
    replayed,
)
from services.logistics.handlers.ports import BreakerState, Carriers, UnitOfWork
from services.logistics.handlers.shipments import emit_recorded

log = logging.getLogger(__name__)

NewUnitOfWork = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class Queued:
    batch_id: str
    queued: int
    skipped: int


def _ids(command: CreateWaybills) -> list[str]:
    ids = list(dict.fromkeys(i.strip() for i in command.shipment_ids if i.strip()))
    if not ids:
        raise InvalidArgument("shipment_ids", "is required: at least one shipment")
    if len(ids) > MAX_BATCH:
        raise InvalidArgument("shipment_ids", f"at most {MAX_BATCH} shipments in one batch, got {len(ids)}")
    if len(command.request_id) > 128:
        raise InvalidArgument("request_id", "at most 128 characters")
    return ids


async def create_waybills(uow: UnitOfWork, command: CreateWaybills) -> Queued:
    """Queue a waybill request per shipment; a shipment that has its waybill, or one under way in another
    batch, is skipped (and says why). A cancelled order's shipment refuses the whole action."""
    ids = _ids(command)
    async with uow:
        if command.request_id:
            existing = await uow.waybills.batch_of_request(command.request_id)
            if existing is not None:
                items = await uow.waybills.items(existing)
                skipped = sum(1 for item in items if item.state is WaybillState.SKIPPED)
                return Queued(existing, len(items) - skipped, skipped)
        found = {s.shipment_id: s for s in await uow.shipments.get_many(ids, lock=True)}
        missing = [i for i in ids if i not in found]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(f"shipment {missing[0][:64]} not found{more}")
        for shipment_id in ids:
            found[shipment_id].may_get_waybill()
        pending = await uow.waybills.pending_for(ids)
        now = uow.clock.now()
        batch_id = new_id()
        requests = []
        for shipment_id in ids:
            shipment = found[shipment_id]
            account = product_of(shipment.carrier).account
            request = WaybillRequest(
                batch_id,
                shipment_id,
                shipment.order_id,
                account,
                WaybillState.QUEUED,
                next_attempt_at=now,
                updated_at=now,
            )
            if shipment.waybill is not None:
                request = replace(
                    request,
                    state=WaybillState.SKIPPED,
                    next_attempt_at=None,
                    waybill_no=shipment.waybill.waybill_no,
                    last_error=f"already has waybill {shipment.waybill.waybill_no}",
                )
            elif shipment_id in pending:
                request = replace(
                    request,
                    state=WaybillState.SKIPPED,
                    next_attempt_at=None,
                    last_error=f"already being waybilled in batch {pending[shipment_id].batch_id}",
                )
            requests.append(request)
        await uow.waybills.add_batch(batch_id, command.request_id, now, requests)
        await uow.commit()
    skipped = sum(1 for r in requests if r.state is WaybillState.SKIPPED)
    return Queued(batch_id, len(requests) - skipped, skipped)


async def replay_dead_letter(uow: UnitOfWork, shipment_id: str) -> WaybillRequest:
    async with uow:
        dead = await uow.waybills.dead_letter(shipment_id, lock=True)
        if dead is None:
            raise NotFound(f"shipment {shipment_id[:64]} has no dead-lettered waybill request")
        shipment = await uow.shipments.get(shipment_id, lock=True)
        if shipment is None:
            raise NotFound(f"shipment {shipment_id[:64]} not found")
        shipment.may_get_waybill()
        again = replayed(dead, uow.clock.now())
        await uow.waybills.save(again)
        await uow.commit()
    return again


@dataclass(frozen=True)
class Work:
    """A claimed request and what its carrier is asked."""

    request: WaybillRequest
    order: WaybillOrder


def waybill_order(shipment: Shipment, known_docks: Docks | None = None) -> WaybillOrder:
    product = product_of(shipment.carrier)
    sender_name, sender_phone = (known_docks or Docks()).sender(shipment.warehouse_id)
    return WaybillOrder(
        carrier_order_id=shipment.shipment_id,
        order_id=shipment.order_id,
        carrier=product.account,
        product=product.product,
        sender=shipment.origin,
        sender_name=sender_name,
        sender_phone=sender_phone,
        destination=shipment.destination,
        recipient=shipment.recipient,
        lines=shipment.lines,
    )


async def claim(
    uow: UnitOfWork, lease: timedelta, limit: int, known_docks: Docks | None = None
) -> list[Work]:
    """Take due requests; a request whose shipment was cancelled or got its waybill meanwhile is settled
    here without calling anyone."""
    async with uow:
        now = uow.clock.now()
        requests = await uow.waybills.claim_due(now, now - lease, limit)
        shipments = {
            s.shipment_id: s for s in await uow.shipments.get_many([r.shipment_id for r in requests])
        }
        work = []
        for request in requests:
            shipment = shipments.get(request.shipment_id)
            if shipment is None or shipment.status is ShipmentStatus.CANCELLED:
                await uow.waybills.save(
                    replace(
                        request,
                        state=WaybillState.SKIPPED,
                        next_attempt_at=None,
                        last_error="order cancelled",
                    )
                )
            elif shipment.waybill is not None:
                await uow.waybills.save(
                    replace(
                        request,
                        state=WaybillState.CREATED,
                        next_attempt_at=None,
                        waybill_no=shipment.waybill.waybill_no,
                    )
                )
            else:
                work.append(Work(request, waybill_order(shipment, known_docks)))
        await uow.commit()
    return work


async def attempt(carriers: Carriers, account: str, work: Sequence[Work]) -> list[Outcome]:
    """One attempt for each request: those left uncertain are looked up at the carrier first, and only
    those the carrier says it has no waybill for are asked for one."""
    outcomes: list[Outcome | None] = [None] * len(work)
    uncertain = [n for n, item in enumerate(work) if item.request.uncertain]
    if uncertain:
        looked_up = await carriers.lookup(account, [work[n].order for n in uncertain])
        for n, lookup in zip(uncertain, looked_up, strict=True):
            if lookup.found is not None:
                outcomes[n] = lookup.found
    to_create = [n for n, outcome in enumerate(outcomes) if outcome is None]
    if to_create:
        created = await carriers.create(account, [work[n].order for n in to_create])
        for n, outcome in zip(to_create, created, strict=True):
            outcomes[n] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


async def record(
    uow: UnitOfWork, work: Work, outcome: Outcome, policy: RetryPolicy, draw: float
) -> WaybillRequest:
    """The outcome in one transaction: the shipment's waybill and its event, or the retry, or the dead
    letter with its event and alert."""
    async with uow:
        now = uow.clock.now()
        request = after_attempt(work.request, outcome, now, policy, draw)
        shipment = await uow.shipments.get(request.shipment_id, lock=True)
        if shipment is not None and isinstance(outcome, Issued):
            waybill = replace(outcome.waybill, created_at=outcome.waybill.created_at or now)
            if shipment.attach_waybill(waybill, request.batch_id):
                await uow.shipments.save(shipment)
                emit_recorded(uow, shipment)
            elif shipment.waybill is not None and shipment.waybill.waybill_no != waybill.waybill_no:
                log.error(
                    "carrier %s answered waybill %s for shipment %s, which has %s: kept the first",
                    request.carrier,
                    waybill.waybill_no,
                    request.shipment_id,
                    shipment.waybill.waybill_no,
                )
                request = replace(request, waybill_no=shipment.waybill.waybill_no)
        if request.state is WaybillState.DEAD:
            uow.emit(
                WaybillFailed(
                    request.shipment_id,
                    request.order_id,
                    request.carrier,
                    request.batch_id,
                    request.attempts,
                    request.last_error,
                )
            )
            uow.emit(
                AlertRaised(
                    kind="waybill_dead_letter",
                    severity=Severity.HIGH,
                    message=(
                        f"no waybill for shipment {request.shipment_id} of order {request.order_id} from "
                        f"{request.carrier} after {request.attempts} attempts: {request.last_error}; "
                        "in the dead-letter list (ReplayWaybillDeadLetter)"
                    ),
                    dedupe_key=f"waybill_dead_letter:{request.shipment_id}",
                    roles=("warehouse_supervisor",),
                    order_id=request.order_id,
                    customer_id=shipment.customer_id if shipment else "",
                    channel=shipment.channel if shipment else "",
                )
            )
        await uow.waybills.save(request)
        await uow.commit()
    return request


async def record_breaker(uow: UnitOfWork, carrier: str, state: BreakerState) -> bool:
    """A carrier's breaker changed: recorded for ListCarriers, and its opening alerted."""
    async with uow:
        now = uow.clock.now()
        if not await uow.breakers.save(carrier, state.value, now):
            return False
        if state is BreakerState.OPEN:
            name = ACCOUNTS[carrier].name if carrier in ACCOUNTS else carrier
            uow.emit(
                AlertRaised(
                    kind="carrier_circuit_open",
                    severity=Severity.HIGH,
                    message=(
                        f"the circuit breaker of {name} ({carrier}) opened: its API is failing, calls to it "
                        "stop until a probe succeeds; waybill requests wait in the retry queue"
                    ),
                    dedupe_key=f"carrier_circuit_open:{carrier}",
                )
            )
        await uow.commit()
    return True


class WaybillRunner:
    """Takes due waybill requests and works them concurrently. It claims only what it can start soon
    (`capacity` in flight at most), so a claimed request's lease does not run out while it waits."""

    def __init__(
        self,
        new_uow: NewUnitOfWork,
        carriers: Carriers,
        policy: RetryPolicy,
        *,
        lease: timedelta = timedelta(seconds=120),
        capacity: int = 400,
        batch_sizes: dict[str, int] | None = None,
        draw: Callable[[], float] | None = None,
        docks: Docks | None = None,
    ) -> None:
        self.docks = docks or Docks()
        self.new_uow = new_uow
        self.carriers = carriers
        self.policy = policy
        self.lease = lease
        self.capacity = capacity
        self.batch_sizes = batch_sizes or {"cainiao": 10}
        self.draw = draw or random.Random().random
        self.wake = asyncio.Event()
        self._in_flight = 0
        self._full = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def tick(self) -> int:
        """Claim what is due and start it; how many requests were started."""
        room = self.capacity - self._in_flight
        if room <= 0:
            self._full = True
            return 0
        work = await claim(self.new_uow(), self.lease, room, self.docks)
        self._full = len(work) == room
        by_account: dict[str, list[Work]] = defaultdict(list)
        for item in work:
            by_account[item.request.carrier].append(item)
        for account, items in by_account.items():
            size = self.batch_sizes.get(account, 1)
            for start in range(0, len(items), size):
                self._start(account, items[start : start + size])
        return len(work)

    def _start(self, account: str, items: list[Work]) -> None:
        self._in_flight += len(items)
        task = asyncio.get_running_loop().create_task(self._work(account, items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, account: str, items: list[Work]) -> None:
        try:
            try:
                outcomes = await attempt(self.carriers, account, items)
            except Exception as error:  # a bug in a client must not lose the requests: they are retried
                log.exception("waybill attempt at %s failed", account)
                outcomes = [Failed(f"internal error: {error!r}"[:500], uncertain=True) for _ in items]
            for item, outcome in zip(items, outcomes, strict=True):
                try:
                    done = await record(self.new_uow(), item, outcome, self.policy, self.draw())
                    if done.state is WaybillState.CREATED and item.order.carrier == "cainiao":
                        await self._subscribe(item.order, done.waybill_no)
                except Exception:
                    # left in flight: its lease runs out and it is taken again, asked first
                    log.exception(
                        "could not record the waybill outcome of shipment %s", item.request.shipment_id
                    )
        finally:
            self._in_flight -= len(items)
            # more may be due than there was room for: claim again once half the room is free
            if self._full and self._in_flight <= self.capacity // 2:
                self.wake.set()

    async def _subscribe(self, order: WaybillOrder, waybill_no: str) -> None:
        """Cainiao's waybills are followed through Kuaidi100's pushes (best effort: the poll follows
        them anyway)."""
        problem = await self.carriers.subscribe(CAINIAO_COMPANIES.get(order.product, ""), waybill_no)
        if problem:
            log.info("waybill %s not subscribed to pushes: %s", waybill_no, problem)

    async def settle(self) -> None:
        """Wait for the attempts under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(
        self, stop: asyncio.Event, every_seconds: float, lead: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Claim and start due requests until `stop`, waking on new work or every `every_seconds`; with
        `lead`, only while this replica leads (one replica calls the carriers, within their limits)."""
        try:
            while not stop.is_set():
                self.wake.clear()
                try:
                    if lead is None or await lead():
                        await self.tick()
                except Exception as error:
                    log.warning("waybill runner round failed: %r", error)
                waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait(waiters, timeout=every_seconds, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            await self.settle()
