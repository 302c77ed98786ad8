"""Parked orders: stock arriving marks them due, and the retry job plans them again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.routing.domain.decision_log import command_from_request
from services.routing.domain.model import WAITS_FOR_STOCK, DueRetry
from services.routing.handlers.planning import plan_fulfilment
from services.routing.handlers.ports import StockSource, UnitOfWork
from services.routing.handlers.rule_cache import RuleSetCache

log = logging.getLogger(__name__)

# a parked order whose retry failed (inventory down, its request no longer valid) is tried again this
# much later, so it neither blocks the others nor is retried in a tight loop
RETRY_FAILED_DELAY = timedelta(seconds=30)


async def mark_parked_due(uow: UnitOfWork, sku: str) -> int:
    """Stock arrived: parked orders waiting for the SKU become due; the job retries them outside this
    transaction. Runs in the caller's transaction (the consumer's inbox): it does not commit."""
    return await uow.parked.mark_due_for_sku(sku, WAITS_FOR_STOCK, uow.clock.now())


async def retry_parked(
    new_uow: Callable[[], UnitOfWork], cache: RuleSetCache, stock_source: StockSource, limit: int = 50
) -> int:
    """Plan again every parked order marked due. The mark is cleared only if it is still the one this
    round saw: stock arriving during the retry marks it again and the next round runs it. One order
    failing does not stop the others."""
    uow = new_uow()
    async with uow:
        now = uow.clock.now()
        due = await uow.parked.due(now, limit)
    planned = 0
    for retry in due:
        try:
            command = command_from_request(retry.request)
            recorded = await plan_fulfilment(new_uow, cache, stock_source, command)
        except Exception:
            log.exception("retrying parked order %s failed", retry.order_id)
            await _set_retry(new_uow(), retry, now + RETRY_FAILED_DELAY)
            continue
        planned += not recorded.decision.parked
        await _set_retry(new_uow(), retry, None)
    return planned


async def _set_retry(uow: UnitOfWork, retry: DueRetry, retry_due: datetime | None) -> None:
    async with uow:
        await uow.parked.set_retry(retry.order_id, retry.seen, retry_due)
        await uow.commit()
