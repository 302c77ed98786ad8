"""Work that failed after its retries (payment notifications, order steps), run again on request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.kit.errors import InvalidArgument, NotFound
from services.orders.domain.orchestration import DeadSteps
from services.orders.handlers.ports import UnitOfWork

MAX_BULK_REPLAY = 10_000


@dataclass(frozen=True)
class BulkReplay:
    matched: int
    replayed: list[str]


async def replay_step(uow: UnitOfWork, order_id: str) -> None:
    """The order's dead-lettered step is due again now, with fresh attempts."""
    async with uow:
        if not await uow.orders.replay_step(order_id, uow.clock.now()):
            raise NotFound(f"no dead-lettered step for order {order_id}")
        await uow.commit()


async def replay_payment(uow: UnitOfWork, payment_id: str) -> None:
    """The dead-lettered notification is due again now, with fresh attempts."""
    async with uow:
        if not await uow.payments.replay(payment_id, uow.clock.now()):
            raise NotFound(f"no dead-lettered payment {payment_id}")
        await uow.commit()


async def replay_dead_steps(
    uow: UnitOfWork,
    reason_contains: str,
    failed_from: datetime | None,
    failed_to: datetime | None,
    max_steps: int,
    dry_run: bool,
) -> BulkReplay:
    """Every dead-lettered step matching the filters (error text, failure time) runs again, in one
    statement; a dry run only counts them."""
    if len(reason_contains) > 500:
        raise InvalidArgument("reason_contains", "must be at most 500 characters")
    if failed_from and failed_to and failed_from > failed_to:
        raise InvalidArgument("failed_to", "must not be before failed_from")
    if not 0 <= max_steps <= MAX_BULK_REPLAY:
        raise InvalidArgument("max_steps", f"must be between 1 and {MAX_BULK_REPLAY} (0: {MAX_BULK_REPLAY})")
    which = DeadSteps(reason_contains, failed_from, failed_to)
    async with uow:
        matched = await uow.orders.count_dead_steps(which)
        replayed: list[str] = []
        if not dry_run and matched:
            replayed = await uow.orders.replay_dead_steps(
                which, max_steps or MAX_BULK_REPLAY, uow.clock.now()
            )
        await uow.commit()
    return BulkReplay(matched, replayed)
