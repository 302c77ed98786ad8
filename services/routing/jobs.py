"""Routing timers: parked orders whose stock arrived are planned again (one round; the runtime runs it
on one replica, on schedule)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.routing.handlers import parked
from services.routing.handlers.ports import StockSource, UnitOfWork
from services.routing.handlers.rule_cache import RuleSetCache

log = logging.getLogger(__name__)


async def retry_parked(new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, stock: StockSource) -> int:
    planned = await parked.retry_parked(new_uow, cache, stock)
    if planned:
        log.info("planned %d parked orders", planned)
    return planned
