"""Orders timers: payment retries, the stuck-order sweep, the daily drift report, re-sealing personal
data after a key rotation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta

from sqlalchemy import or_, select, update

from services.kit.db import UnitOfWork
from services.orders import handlers, queries
from services.orders.messages import alert
from services.orders.store import dumps, orders_table

log = logging.getLogger(__name__)


async def retry_payments(
    new_uow: Callable[[], UnitOfWork], policy: handlers.Policy, poke: Callable[[handlers.Changes], None]
) -> int:
    """Notifications whose handling failed are handled again when due; the last failure dead-letters."""
    due = await handlers.due_payments(new_uow())
    for payment_id in due:
        _, changes = await handlers.handle_payment(new_uow, policy, payment_id)
        poke(changes)
    return len(due)


async def sweep_stuck(
    new_uow: Callable[[], UnitOfWork], policy: handlers.Policy, poke: Callable[[handlers.Changes], None]
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


def next_run(now: datetime, at: time) -> datetime:
    """The next moment the wall clock in `at`'s zone reads `at`."""
    assert at.tzinfo is not None
    local = now.astimezone(at.tzinfo)  # type: ignore[arg-type]
    candidate = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


async def drift_report(new_uow: Callable[[], UnitOfWork]) -> str:
    """Store today's drift report; raise one alert when anything drifts."""
    report = await queries.drift_report(new_uow(), "", 10_000)
    report_id = await queries.save_drift_report(new_uow(), report)
    total = sum(report.per_source.values())
    log.info("drift report %s: %d orders drift %s", report_id, total, json.dumps(dict(report.per_source)))
    if total:
        uow = new_uow()
        async with uow:
            uow.publish(
                "alerts.raised",
                alert(
                    "status_drift",
                    "medium",
                    "",
                    f"{total} order statuses disagree with a source system: {dict(report.per_source)}",
                ),
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


async def reseal(new_uow: Callable[[], UnitOfWork], policy: handlers.Policy, batch: int = 500) -> int:
    """After a key rotation, move personal data to the active key (and seal rows from before sealing)."""
    keys = policy.keys
    active_prefix = f"v1.{keys.active_key_id}.%"
    uow = new_uow()
    async with uow:
        rows = (
            await uow.conn.execute(
                select(orders_table.c.order_id, orders_table.c.pii_sealed, orders_table.c.shipping_address)
                .where(
                    or_(
                        orders_table.c.pii_sealed.is_(None), orders_table.c.pii_sealed.not_like(active_prefix)
                    )
                )
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            address = dict(row.shipping_address)
            if row.pii_sealed is None:
                private = {
                    name: address.pop(name, "")
                    for name in ("recipient_name", "phone", "detail", "postal_code")
                }
                values = {
                    "pii_sealed": keys.seal(dumps(private).encode(), row.order_id),
                    "shipping_address": address,
                }
            else:
                values = {"pii_sealed": keys.reseal(row.pii_sealed, row.order_id) or row.pii_sealed}
            await uow.conn.execute(
                update(orders_table).where(orders_table.c.order_id == row.order_id).values(**values)
            )
        await uow.commit()
    if rows:
        log.info("re-sealed personal data of %d orders under key %s", len(rows), keys.active_key_id)
    return len(rows)
