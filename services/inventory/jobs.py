"""Inventory timers: the reservation expiry sweeper and the invariant checker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from services.inventory import handlers
from services.inventory.handlers import Policy
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)


async def sweep_expired(
    new_uow: Callable[[], UnitOfWork], policy: Policy, every: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            while await handlers.expire_reservations(new_uow(), policy) >= policy.sweep_batch:
                pass
        except Exception:
            log.exception("expiry sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def check_invariants(new_uow: Callable[[], UnitOfWork], every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            return
        try:
            rows, breaches = await handlers.check_invariants(new_uow())
        except Exception:
            log.exception("invariant check failed")
            continue
        if breaches:
            log.error("inventory invariant breached on %d of %d rows", len(breaches), rows)
        else:
            log.info("inventory invariants hold on %d rows", rows)
