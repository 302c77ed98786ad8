"""Routing timers: parked orders whose stock arrived are planned again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from services.kit.db import UnitOfWork
from services.routing import handlers
from services.routing.handlers import RuleSetCache, StockSource

log = logging.getLogger(__name__)


async def retry_parked(
    new_uow: Callable[[], UnitOfWork],
    cache: RuleSetCache,
    stock: StockSource,
    every: float,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            planned = await handlers.retry_parked(new_uow, cache, stock)
            if planned:
                log.info("planned %d parked orders", planned)
        except Exception:
            log.exception("retrying parked orders failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
