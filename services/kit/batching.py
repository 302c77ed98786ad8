"""Micro-batching of internal hops: one call per peer per batch, answered per item.

The caller's side (`Batcher`): whoever needs a peer's answer submits an item and awaits it; the
batcher gathers what is submitted within a short linger (a few milliseconds) or until the batch is
full, makes one call for the lot, and hands every submitter its own answer or its own error. A call
that fails as a whole (the peer is down) fails every item of it, each with that error.

The serving side (`answer_each`): a batch RPC handles every item as its single RPC would, a few at a
time, and returns per item either the answer or the exception it raised, so one item's refusal never
changes what the others get. Each item runs in its own trace (the traceparent the caller sent for it).

A batcher with `in_flight` set is a group commit: at most that many calls run at once, and what is
submitted while they do waits and goes together in the next call. With no linger, an item that finds
a free slot goes at once (an idle service adds no delay); under load, batches grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

from services.kit import tracing
from services.kit.errors import InvalidArgument

In = TypeVar("In")
Out = TypeVar("Out")
# the largest batch a batch RPC accepts (its request says so); a caller's batches stay below it
MAX_ITEMS = 500


class Batcher(Generic[In, Out]):
    """Gathers submitted items for `linger` seconds (or until `max_batch` are waiting) and sends them
    to `flush` in one go; `flush` answers per item, in order, with a result or an exception. With
    `in_flight`, no more than that many calls run at once (a group commit, see above)."""

    def __init__(
        self,
        flush: Callable[[list[In]], Awaitable[Sequence[Out | BaseException]]],
        linger: float = 0.003,
        max_batch: int = 64,
        in_flight: int | None = None,
    ) -> None:
        if not 0 < max_batch <= MAX_ITEMS:
            raise ValueError(f"max_batch must be between 1 and {MAX_ITEMS}")
        if in_flight is not None and in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.flush = flush
        self.linger = linger
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many calls were made (for the benchmarks and tests)

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._waiting.append((item, future))
        if len(self._waiting) >= self.max_batch:
            self._send()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger, self._send)
        return await future

    def _full(self) -> bool:
        return self.in_flight is not None and len(self._running) >= self.in_flight

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # a group commit sends when a call ends (`_finished`); a batch waiting meanwhile keeps growing
        while self._waiting and not self._full():
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._waiting and self._timer is None:
            self._send()

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        live = [(item, future) for item, future in batch if not future.done()]  # a submitter gave up
        if not live:
            return
        self.batches += 1
        try:
            answers = await self.flush([item for item, _ in live])
            if len(answers) != len(live):
                raise RuntimeError(f"a batch of {len(live)} was answered with {len(answers)} items")
        except BaseException as error:  # the whole call failed: so did every item of it
            for _, future in live:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), answer in zip(live, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)


def distinct(keys: Sequence[str], field: str, limit: int = MAX_ITEMS) -> None:
    """A batch names each item once, and holds at most `limit` items."""
    if not keys:
        raise InvalidArgument(field, "must name at least one item")
    if len(keys) > limit:
        raise InvalidArgument(field, f"at most {limit} items per call")
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise InvalidArgument(f"{field}[{index}]", f"{key!r} appears twice in the batch")
        seen.add(key)


async def answer_each(
    items: Sequence[In],
    handle: Callable[[In], Awaitable[Out]],
    concurrency: int = 16,
    traceparents: Sequence[str] = (),
    span_name: str = "batch.item",
) -> list[Out | Exception]:
    """Run `handle` on every item, `concurrency` at a time, each in its own trace when a traceparent
    is given for it; per item its answer or the exception it raised, in the items' order."""
    gate = asyncio.Semaphore(max(1, concurrency))
    parents = list(traceparents) + [""] * (len(items) - len(traceparents))

    async def one(item: In, traceparent: str) -> Out | Exception:
        async with gate:
            with tracing.span_in(traceparent, span_name):
                try:
                    return await handle(item)
                except Exception as error:  # answered for this item; the batch goes on
                    return error

    return list(
        await asyncio.gather(*(one(item, parent) for item, parent in zip(items, parents, strict=True)))
    )


def traceparents_for(keys: Sequence[str], by_key: Mapping[str, str]) -> list[str]:
    return [by_key.get(key, "") for key in keys]
