"""Orders timers: payment retries, the stuck-order sweep, the daily drift report, re-sealing personal
data after a key rotation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta

from services.orders import handlers, views
from services.orders.domain.model import ServiceAlert
from services.orders.store import OrdersUnitOfWork

log = logging.getLogger(__name__)


async def retry_payments(
    new_uow: Callable[[], OrdersUnitOfWork], policy: handlers.Policy, poke: Callable[[handlers.Changes], None]
) -> int:
    """Notifications whose handling failed are handled again when due; the last failure dead-letters."""
    due = await handlers.due_payments(new_uow())
    for payment_id in due:
        _, changes = await handlers.handle_payment(new_uow, policy, payment_id)
        poke(changes)
    return len(due)


async def sweep_stuck(
    new_uow: Callable[[], OrdersUnitOfWork], policy: handlers.Policy, poke: Callable[[handlers.Changes], None]
) -> handlers.Sweep:
    """No order stays where nothing will move it: see `handlers.sweep_stuck`."""
    swept, changes = await handlers.sweep_stuck(new_uow(), policy)
    if swept.redriven or swept.replanned:
        log.warning(
            "stuck-order sweep: %d orders had no step and were driven again, %d held for stock planned again",
            len(swept.redriven),
            len(swept.replanned),
        )
    if swept.not_taken:
        log.error("stuck-order sweep: %d due order steps taken by no worker", swept.not_taken)
    poke(changes)
    return swept


async def check_sla(
    new_uow: Callable[[], OrdersUnitOfWork], poke: Callable[[handlers.Changes], None], batch: int = 500
) -> int:
    """Act on every SLA timer due (see `handlers.check_sla`), a batch at a time until none is left."""
    total = 0
    while True:
        run, changes = await handlers.check_sla(new_uow(), batch)
        poke(changes)
        total += len(run.reached)
        red = sum(1 for item in run.reached if item.level >= 2)
        if run.reached:
            log.warning("sla timers: %d orders turned amber, %d red (escalated)", len(run.reached) - red, red)
        if run.due < batch:
            return total


def next_run(now: datetime, at: time) -> datetime:
    """The next moment the wall clock in `at`'s zone reads `at`."""
    assert at.tzinfo is not None
    local = now.astimezone(at.tzinfo)  # type: ignore[arg-type]
    candidate = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


async def drift_report(new_uow: Callable[[], OrdersUnitOfWork]) -> str:
    """Store today's drift report; raise one alert when anything drifts."""
    report = await views.drift_report(new_uow(), "", views.MAX_DRIFT_LIMIT)
    report_id = await views.save_drift_report(new_uow(), report)
    total = sum(report.per_source.values())
    log.info("drift report %s: %d orders drift %s", report_id, total, json.dumps(dict(report.per_source)))
    if total:
        uow = new_uow()
        async with uow:
            uow.emit(
                ServiceAlert(
                    "status_drift",
                    "medium",
                    f"{total} order statuses disagree with a source system: {dict(report.per_source)}",
                )
            )
            await uow.commit()
    return report_id


async def daily(
    at: time, stop: asyncio.Event, work: Callable[[], Awaitable[object]], clock: Callable[[], datetime]
) -> None:
    while not stop.is_set():
        wait = (next_run(clock(), at) - clock()).total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(wait, 1.0))
        if stop.is_set():
            return
        try:
            await work()
        except Exception:
            log.exception("daily job failed")


async def reseal(new_uow: Callable[[], OrdersUnitOfWork], policy: handlers.Policy, batch: int = 500) -> int:
    """After a key rotation, move personal data to the active key (and seal rows from before sealing)."""
    uow = new_uow()
    async with uow:
        moved = await uow.orders.reseal(batch)
        await uow.commit()
    if moved:
        log.info("re-sealed personal data of %d orders under key %s", moved, policy.keys.active_key_id)
    return moved
