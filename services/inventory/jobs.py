"""Inventory timers: the reservation expiry sweep and the invariant check, one round each (the runtime
runs them on one replica, on schedule)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.inventory import handlers
from services.inventory.domain.policy import Policy
from services.inventory.handlers.ports import UnitOfWork

log = logging.getLogger(__name__)


async def sweep_expired(new_uow: Callable[[], UnitOfWork], policy: Policy) -> int:
    """Release every reservation past its expiry, a batch at a time."""
    released = 0
    while True:
        expired = await handlers.expire_reservations(new_uow(), policy)
        released += expired
        if expired < policy.sweep_batch:
            return released


async def check_invariants(new_uow: Callable[[], UnitOfWork]) -> int:
    rows, breaches = await handlers.check_invariants(new_uow())
    if breaches:
        log.error("inventory invariant breached on %d of %d rows", len(breaches), rows)
    else:
        log.info("inventory invariants hold on %d rows", rows)
    return len(breaches)
