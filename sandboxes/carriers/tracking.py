"""Parcels move along their routes on a compressed timeline, and each node is pushed the carrier's way.

SF pushes every new route (RoutePushService, JSON) to the account's push address and pushes it again
while the answer is not ``{"return_code":"0000"}``, backing off (1, 2, 4, 8, 16 units). Kuaidi100
pushes the whole track (``lastResult``) of each subscribed number to the subscription's callbackurl,
signed with its salt, and retries a refused push three times at a fixed interval, then gives up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from sandboxes.carriers.config import Settings
from sandboxes.carriers.control import Control
from sandboxes.carriers.protocols import kuaidi100, sf
from sandboxes.carriers.routes import Node
from sandboxes.carriers.state import Reached, Store, Waybill

logger = logging.getLogger(__name__)

CHINA = timezone(timedelta(hours=8))
SF_BACKOFF = (1, 2, 4, 8, 16)
KUAIDI100_BACKOFF = (1, 1, 1)


def china_time() -> str:
    return datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Push:
    carrier: str
    protocol: str
    url: str
    waybill_no: str
    form: dict[str, str] | None = None
    body: dict[str, Any] | None = None


class Tracker:
    def __init__(self, store: Store, control: Control, settings: Settings) -> None:
        self._store = store
        self._control = control
        self._settings = settings
        self._held: dict[str, Push] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.stats: Counter[str] = Counter()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._settings.push_timeout_seconds)
        )
        self._spawn(self._run())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = min(self._settings.step_seconds / 4, 0.05)
        while True:
            self.advance(loop.time())
            await asyncio.sleep(tick)

    def advance(self, now: float) -> None:
        step = self._settings.step_seconds
        for waybill in self._store.waybills():
            due = min(len(waybill.route), int((now - waybill.created_at) / step))
            while waybill.moving and len(waybill.reached) < due:
                self._reach(waybill)

    def _reach(self, waybill: Waybill) -> None:
        behaviour = self._control.of(waybill.carrier)
        if not waybill.reached and self._control.roll(waybill.carrier, behaviour.no_first_scan):
            waybill.stalled = True
            return
        reached = Reached(waybill.route[len(waybill.reached)], china_time(), self._store.next_route_id())
        waybill.reached.append(reached)
        if waybill.carrier == "sf":
            self._dispatch(waybill, self._sf_pushes(waybill, reached))
        else:
            self._dispatch(waybill, self._kuaidi100_pushes(waybill))

    def subscribed(self, number: str) -> None:
        """Kuaidi100 pushes what it already knows as soon as a number is subscribed."""
        waybill = self._store.find_number(number)
        if waybill is not None and waybill.reached:
            self._dispatch(waybill, self._kuaidi100_pushes(waybill))

    def cancelled(self, waybill: Waybill) -> None:
        waybill.cancelled = True
        self._dispatch(waybill, [])

    def _sf_pushes(self, waybill: Waybill, reached: Reached) -> list[Push]:
        behaviour = self._control.of("sf")
        url = behaviour.push_url or self._settings.push_url
        if not behaviour.push_enabled or url is None:
            return []
        element = sf.waybill_route(
            reached.route_id, waybill.waybill_no, waybill.order_id or "", reached.step, reached.at
        )
        return [Push("sf", "sf", url, waybill.waybill_no, body=sf.route_push([element]))]

    def _kuaidi100_pushes(self, waybill: Waybill) -> list[Push]:
        subscription = self._store.subscriptions.get(waybill.waybill_no)
        behaviour = self._control.of(waybill.carrier)
        if subscription is None or subscription.aborted or not behaviour.push_enabled or not waybill.reached:
            return []
        url = subscription.callbackurl or behaviour.push_url or self._settings.push_url
        if not url:
            return []

        def push(param: str) -> Push:
            form = kuaidi100.push_form(param, subscription.salt)
            return Push(waybill.carrier, "kuaidi100", url, waybill.waybill_no, form=form)

        number = waybill.waybill_no
        nothing_found = kuaidi100.track_result(subscription.company, number, [], "0")
        pushes: list[Push] = []
        correction = ("0", "", "")
        if subscription.company != waybill.company:
            if not behaviour.code_correction:
                # the wrong company never finds the number: after three days Kuaidi100 stops watching
                subscription.aborted = True
                message = kuaidi100.NO_RECORD_MESSAGE
                return [push(kuaidi100.push_param(kuaidi100.ABORT, nothing_found, message))]
            if not subscription.correction_told:
                # first the abort of the wrong code naming the right one, then the corrected track
                subscription.correction_told = True
                pushes.append(
                    push(
                        kuaidi100.push_param(
                            kuaidi100.ABORT,
                            nothing_found,
                            kuaidi100.NO_RECORD_MESSAGE,
                            com_new=waybill.company,
                        )
                    )
                )
            correction = ("1", subscription.company, waybill.company)
        items = [
            kuaidi100.track_item(r.step, r.at, subscription.resultv2 not in ("", "0"))
            for r in waybill.reached
        ]
        last = waybill.last_node
        assert last is not None
        state = kuaidi100.NODE_STATE[last]
        status = kuaidi100.SHUTDOWN if last is Node.DELIVERED else kuaidi100.POLLING
        track = kuaidi100.track_result(waybill.company, number, items, state)
        auto_check, com_old, com_new = correction
        pushes.append(push(kuaidi100.push_param(status, track, "", auto_check, com_old, com_new)))
        return pushes

    def _dispatch(self, waybill: Waybill, pushes: list[Push]) -> None:
        """Send in order, unless reordering holds a push back until the next one overtakes it."""
        if not pushes and waybill.waybill_no not in self._held:
            return
        behaviour = self._control.of(waybill.carrier)
        queue = list(pushes)
        held = self._held.pop(waybill.waybill_no, None)
        if held is not None:
            if behaviour.reorder_pushes:
                queue.append(held)
            else:
                queue.insert(0, held)
        elif behaviour.reorder_pushes and queue and waybill.moving:
            self._held[waybill.waybill_no] = queue.pop()
        sends: list[Push] = []
        for push in queue:
            sends.append(push)
            if self._control.roll(waybill.carrier, behaviour.duplicate_push_rate):
                sends.append(push)
        if sends:
            self._spawn(self._send_in_order(sends))

    async def _send_in_order(self, pushes: list[Push]) -> None:
        for push in pushes:
            await self._attempt(push, 0)

    async def _attempt(self, push: Push, attempt: int) -> None:
        self.stats[f"{push.carrier}.sent"] += 1
        if await self._post(push):
            self.stats[f"{push.carrier}.accepted"] += 1
            return
        backoff = SF_BACKOFF if push.protocol == "sf" else KUAIDI100_BACKOFF
        if attempt >= len(backoff):
            self.stats[f"{push.carrier}.abandoned"] += 1
            logger.warning(
                "gave up pushing %s to %s after %d attempts", push.waybill_no, _shown(push.url), attempt + 1
            )
            return
        self._spawn(self._retry(push, attempt + 1, backoff[attempt] * self._settings.push_retry_seconds))

    async def _retry(self, push: Push, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        self.stats[f"{push.carrier}.retried"] += 1
        await self._attempt(push, attempt)

    async def _post(self, push: Push) -> bool:
        assert self._session is not None
        try:
            if push.protocol == "sf":
                payload = json.dumps(push.body, ensure_ascii=False).encode("utf-8")
                headers = {"Content-Type": "application/json;charset=UTF-8"}
                async with self._session.post(push.url, data=payload, headers=headers) as response:
                    return sf.push_accepted(response.status, await response.read())
            async with self._session.post(push.url, data=push.form) as response:
                return kuaidi100.push_accepted(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.info("push of %s to %s failed: %r", push.waybill_no, _shown(push.url), error)
            return False


def _shown(url: str) -> str:
    """A push address as logged: without its query, which may hold the receiver's secret (SF's token)."""
    return url.split("?", 1)[0]
