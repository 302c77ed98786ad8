"""Alert records: each raised alert folds into its open record or opens one (and its assignee is told),
the due ones escalate down their chain, and people list, acknowledge and resolve them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from services.gateway.domain.alert_records import (
    AlertFilter,
    AlertRecord,
    Raised,
    Route,
    acknowledged,
    escalated,
    opened,
    resolved,
    route_for,
)
from services.gateway.domain.principal import Caller
from services.gateway.handlers.ports import AlertNotifier, AlertUnitOfWork
from services.kit.errors import InvalidArgument, NotFound
from services.kit.ids import new_id

log = logging.getLogger(__name__)

MAX_ALERT_ID = 36
# a record's first notice not delivered this long after the record opened is owed again
FIRST_NOTICE_GRACE = timedelta(minutes=1)


class AlertDesk:
    def __init__(
        self,
        new_uow: Callable[[], AlertUnitOfWork],
        routes: Sequence[Route],
        notifier: AlertNotifier,
        wall: Callable[[], float],
        escalation_batch: int = 100,
        deliveries_in_flight: int = 0,
    ) -> None:
        """`deliveries_in_flight` > 0: a new record's first notice is delivered in the background (up to
        that many at once; beyond, the next waits), so a slow or failing sink never holds up the
        recording of the alerts behind it. A notice lost with the process is owed on the record and
        delivered by the bus's redelivery or the escalation job's next round. 0: delivered before
        `raised` returns."""
        self.new_uow = new_uow
        self.routes = tuple(routes)
        self.notifier = notifier
        self.wall = wall
        self.escalation_batch = escalation_batch
        self._room = asyncio.Semaphore(deliveries_in_flight) if deliveries_in_flight > 0 else None
        self._delivering: set[asyncio.Task[None]] = set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    async def raised(self, raised: Raised) -> tuple[AlertRecord, bool] | None:
        """Fold the occurrence in (None: this event was counted before); a new record's assignee is told
        after the commit, so no delivery waits while the record is locked. A redelivered event whose
        record's assignee was never told (the gateway died between the commit and the delivery) is
        delivered now."""
        new = opened(new_id(), raised, route_for(self.routes, raised.kind, raised.severity))
        uow = self.new_uow()
        async with uow:
            folded = await uow.alerts.fold(raised, new)
            owed = await uow.alerts.owed_for_event(raised.event_id) if folded is None else None
            await uow.commit()
        if folded is not None and folded[1]:
            await self._tell_soon(folded[0])
        elif owed is not None:
            log.info("alert %s: delivering what a redelivered event found owed", owed.alert_id)
            await self._tell_soon(owed)
        return folded

    async def _tell_soon(self, record: AlertRecord) -> None:
        if self._room is None:
            await self._tell(record)
            return
        await self._room.acquire()  # at most so many deliveries at once: a flood waits here
        task = asyncio.create_task(self._tell(record))
        self._delivering.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._delivering.discard(task)
        if self._room is not None:
            self._room.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("alert delivery failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the deliveries in flight (shutdown, tests)."""
        if self._delivering:
            await asyncio.gather(*self._delivering, return_exceptions=True)

    async def escalate_due(self) -> int:
        """Every open alert whose escalation is due moves to the next of its chain, who is then told;
        an escalation an earlier round committed but did not deliver is delivered first."""
        now = self._now()
        uow = self.new_uow()
        async with uow:
            # a first notice still owed a minute after its record opened was lost (its delivery failed,
            # or the process died with it in flight): it is owed like an escalation
            owed = await uow.alerts.owed_escalations(self.escalation_batch, now - FIRST_NOTICE_GRACE)
            moved = [escalated(record, now) for record in await uow.alerts.due(now, self.escalation_batch)]
            for record in moved:
                await uow.alerts.save(record)
            await uow.commit()
        moving = {record.alert_id for record in moved}
        for record in owed:
            if record.alert_id not in moving:  # the next level supersedes the one owed
                await self._tell(record)
        for record in moved:
            log.info("alert %s escalated to %s", record.alert_id, record.assigned_to)
            await self._tell(record)
        return len(moved)

    async def _tell(self, record: AlertRecord) -> None:
        if not await self.notifier.notify(record, escalated=record.level > 0):
            return  # still owed: the escalation job's next round tries again
        uow = self.new_uow()
        async with uow:
            await uow.alerts.notified(record.alert_id, record.level)
            await uow.commit()

    async def acknowledge(self, caller: Caller, alert_id: str, note: str) -> AlertRecord:
        return await self._transition(alert_id, lambda r: acknowledged(r, _who(caller), note, self._now()))

    async def resolve(self, caller: Caller, alert_id: str, resolution: str) -> AlertRecord:
        return await self._transition(alert_id, lambda r: resolved(r, _who(caller), resolution, self._now()))

    async def page(
        self, filters: AlertFilter, page_size: int, page_token: str
    ) -> tuple[list[AlertRecord], str]:
        uow = self.new_uow()
        async with uow:
            return await uow.alerts.page(filters, page_size, page_token)

    async def _transition(self, alert_id: str, change: Callable[[AlertRecord], AlertRecord]) -> AlertRecord:
        if not alert_id:
            raise InvalidArgument("alert_id", "is required")
        if len(alert_id) > MAX_ALERT_ID:
            raise InvalidArgument("alert_id", f"at most {MAX_ALERT_ID} characters")
        uow = self.new_uow()
        async with uow:
            record = await uow.alerts.locked(alert_id)
            if record is None:
                raise NotFound(f"alert {alert_id} not found")
            changed = change(record)
            await uow.alerts.save(changed)
            await uow.commit()
        return changed


def _who(caller: Caller) -> str:
    return caller.principal.subject
