"""Notifications POSTed to the merchant, each provider's way, and sent again on its schedule until taken.

WeChat Pay takes HTTP 200/204 as received and otherwise sends again after 15 s, 15 s, 30 s, 3 m, 10 m,
20 m, 30 m, 30 m, 30 m, 60 m, 3 h, 3 h, 3 h, 6 h and 6 h; Alipay takes the text ``success`` and sends
again after 4 m, 10 m, 10 m, 1 h, 2 h, 6 h and 15 h. ``--notify-schedule-factor`` scales both. Every
delivery is signed afresh (a receiver refuses a signature older than five minutes); the body of one
notification is the same bytes each time, and a duplicate is the same notification again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sandboxes.payments.control import Control
from sandboxes.payments.protocols import alipay, wechat

logger = logging.getLogger(__name__)

# a delivery renders its body and headers (signed now)
Render = Callable[[], tuple[bytes, dict[str, str]]]


@dataclass
class Notice:
    provider: str
    notice_id: str
    event: str
    url: str
    out_trade_no: str
    subject: str
    render: Render = field(repr=False)
    sent: int = 0
    accepted: int = 0
    answers: list[int] = field(default_factory=list)
    abandoned: bool = False

    def summary(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "id": self.notice_id,
            "event": self.event,
            "out_trade_no": self.out_trade_no,
            "subject": self.subject,
            "url": self.url.split("?", 1)[0],
            "sent": self.sent,
            "accepted": self.accepted,
            "answers": list(self.answers),
            "abandoned": self.abandoned,
        }


class Notifier:
    def __init__(self, control: Control, schedule_factor: float, timeout_seconds: float) -> None:
        self._control = control
        self._factor = schedule_factor
        self._timeout = timeout_seconds
        self._held: dict[tuple[str, str], list[Notice]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.notices: list[Notice] = []
        self.stats: Counter[str] = Counter()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def dispatch(self, notice: Notice) -> None:
        """Send, late, twice or out of order as the provider's switches say; nothing without an address."""
        behaviour = self._control.of(notice.provider)
        if not notice.url or not behaviour.notify_enabled:
            self.stats[f"{notice.provider}.skipped"] += 1
            return
        self.notices.append(notice)
        copies = [notice]
        if self._control.roll(notice.provider, behaviour.duplicate_notify_rate):
            copies.append(notice)
            self.stats[f"{notice.provider}.duplicated"] += 1
        delay = behaviour.notify_delay_ms / 1000
        key = (notice.provider, notice.out_trade_no)
        held = self._held.pop(key, None)
        if behaviour.reorder_notifications and held is None:
            # held back until the trade's next notification overtakes it (or the window ends)
            self._held[key] = copies
            self.spawn(self._release(key, copies, behaviour.reorder_window_ms / 1000, delay))
            return
        if held is None:
            queue = copies
        else:
            # overtaken while reordering; sent first again once reordering is switched off
            queue = [*copies, *held] if behaviour.reorder_notifications else [*held, *copies]
        self.spawn(self._send_in_order(queue, delay))

    async def _release(self, key: tuple[str, str], copies: list[Notice], window: float, delay: float) -> None:
        await asyncio.sleep(window)
        if self._held.get(key) is copies:
            del self._held[key]
            await self._send_in_order(copies, delay)

    async def _send_in_order(self, queue: list[Notice], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        for notice in queue:
            await self._attempt(notice, 0)

    def _schedule(self, provider: str) -> tuple[int, ...]:
        return wechat.NOTIFY_SCHEDULE if provider == "wechat_pay" else alipay.NOTIFY_SCHEDULE

    async def _attempt(self, notice: Notice, attempt: int) -> None:
        notice.sent += 1
        self.stats[f"{notice.provider}.sent"] += 1
        if await self._post(notice):
            notice.accepted += 1
            self.stats[f"{notice.provider}.accepted"] += 1
            return
        schedule = self._schedule(notice.provider)
        if attempt >= len(schedule):
            notice.abandoned = True
            self.stats[f"{notice.provider}.abandoned"] += 1
            logger.warning(
                "gave up notifying %s %s after %d attempts", notice.event, notice.subject, attempt + 1
            )
            return
        self.spawn(self._retry(notice, attempt + 1, schedule[attempt] * self._factor))

    async def _retry(self, notice: Notice, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        self.stats[f"{notice.provider}.retried"] += 1
        await self._attempt(notice, attempt)

    async def _post(self, notice: Notice) -> bool:
        assert self._session is not None
        body, headers = notice.render()
        try:
            async with self._session.post(notice.url, data=body, headers=headers) as response:
                answer = await response.read()
                notice.answers.append(response.status)
                if notice.provider == "wechat_pay":
                    return wechat.notify_accepted(response.status)
                return alipay.notify_accepted(response.status, answer)
        except (aiohttp.ClientError, TimeoutError) as error:
            notice.answers.append(0)
            logger.info("notifying %s %s failed: %r", notice.event, notice.subject, error)
            return False
