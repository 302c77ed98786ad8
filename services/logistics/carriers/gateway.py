"""The carriers behind the handlers' `Carriers` port: each account's client, its concurrency, its
rate limits (aiolimiter's leaky bucket, for waybills and for queries apart) and its circuit breaker.
A carrier's failure is never raised: it is answered as each order's outcome."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import aiohttp
from aiolimiter import AsyncLimiter

from services.logistics.carriers.breaker import Breakers, CircuitOpen
from services.logistics.carriers.cainiao import MAX_BATCH, CainiaoClient
from services.logistics.carriers.config import CarrierConfig
from services.logistics.carriers.http import CarrierDown, RateLimited
from services.logistics.carriers.kuaidi100 import Kuaidi100Client
from services.logistics.carriers.sf import SfClient
from services.logistics.domain.carriers import ACCOUNTS, BreakerState, Protocol
from services.logistics.domain.model import Place
from services.logistics.domain.tracking import TrackingAnswer
from services.logistics.domain.waybills import Failed, Lookup, Outcome, WaybillOrder

T = TypeVar("T")


class CarrierGateway:
    def __init__(
        self, config: CarrierConfig, on_breaker_change: Callable[[str, BreakerState], None] | None = None
    ) -> None:
        self.config = config
        self.breakers = Breakers(config.breaker, on_breaker_change or (lambda _name, _state: None))
        limits = config.limits
        self.slots = {account: asyncio.Semaphore(limits.concurrency) for account in ACCOUNTS}
        self.create_limits = {a: AsyncLimiter(limits.create_per_s.get(a, 100.0), 1.0) for a in ACCOUNTS}
        self.query_limits = {a: AsyncLimiter(limits.query_per_s.get(a, 10.0), 1.0) for a in ACCOUNTS}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.limits.concurrency * len(ACCOUNTS))
        self.session = aiohttp.ClientSession(connector=connector)
        self.sf = SfClient(self.session, self.config)
        self.kuaidi100 = Kuaidi100Client(self.session, self.config)
        self.cainiao = CainiaoClient(self.session, self.config)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def breaker(self, account: str) -> tuple[BreakerState, datetime | None]:
        return self.breakers.state(account)

    async def _call(self, account: str, limiter: AsyncLimiter, work: Callable[[], Awaitable[T]]) -> T:
        """One call within the account's limits, through its breaker; raises CircuitOpen, CarrierDown or
        RateLimited."""
        async with self.slots[account]:
            await limiter.acquire()
            return await self.breakers.call(account, work)

    async def create(self, account: str, orders: Sequence[WaybillOrder]) -> list[Outcome]:
        if ACCOUNTS[account].protocol is Protocol.CAINIAO:
            return await self._cainiao_create(orders)
        client = self.sf if ACCOUNTS[account].protocol is Protocol.SF else self.kuaidi100

        async def one(order: WaybillOrder) -> Outcome:
            try:
                return await self._call(account, self.create_limits[account], lambda: client.create(order))
            except (CarrierDown, RateLimited, CircuitOpen) as failure:
                return _failed(failure)

        return list(await asyncio.gather(*(one(order) for order in orders)))

    async def _cainiao_create(self, orders: Sequence[WaybillOrder]) -> list[Outcome]:
        outcomes: dict[str, Outcome] = {}
        # one call names one sender: a batch holds parcels of one product from one dock
        by_cp: dict[tuple[str, str, str, Place], list[WaybillOrder]] = defaultdict(list)
        for order in orders:
            by_cp[(order.product, order.sender_name, order.sender_phone, order.sender)].append(order)
        for (cp_code, *_), same in by_cp.items():
            for start in range(0, len(same), MAX_BATCH):
                chunk = same[start : start + MAX_BATCH]
                try:
                    answered = await self._call(
                        "cainiao",
                        self.create_limits["cainiao"],
                        lambda c=chunk, cp=cp_code: self.cainiao.create(cp, c),  # type: ignore[misc]
                    )
                except (CarrierDown, RateLimited, CircuitOpen) as failure:
                    answered = [_failed(failure) for _ in chunk]
                outcomes.update(zip((o.carrier_order_id for o in chunk), answered, strict=True))
        return [outcomes[order.carrier_order_id] for order in orders]

    async def lookup(self, account: str, orders: Sequence[WaybillOrder]) -> list[Lookup]:
        protocol = ACCOUNTS[account].protocol
        if protocol is Protocol.CAINIAO:
            try:
                found = await self._call(
                    account, self.query_limits[account], lambda: self.cainiao.lookup(orders)
                )
            except (CarrierDown, RateLimited, CircuitOpen) as failure:
                return [Lookup(_failed(failure, uncertain=True)) for _ in orders]
            return [Lookup(outcome) for outcome in found]
        client = self.sf if protocol is Protocol.SF else self.kuaidi100
        # Kuaidi100's lookup is its idempotent create: it counts against the waybill rate
        limits = self.query_limits if protocol is Protocol.SF else self.create_limits

        async def one(order: WaybillOrder) -> Lookup:
            try:
                return Lookup(await self._call(account, limits[account], lambda: client.lookup(order)))
            except (CarrierDown, RateLimited, CircuitOpen) as failure:
                return Lookup(_failed(failure, uncertain=True))

        return list(await asyncio.gather(*(one(order) for order in orders)))

    async def track(self, account: str, company: str, waybill_nos: Sequence[str]) -> list[TrackingAnswer]:
        numbers = list(waybill_nos)
        if ACCOUNTS[account].protocol is Protocol.SF:
            try:
                found = await self._call(account, self.query_limits[account], lambda: self.sf.track(numbers))
            except (CarrierDown, RateLimited, CircuitOpen) as failure:
                return [TrackingAnswer(n, error=_reason(failure)) for n in numbers]
            return [TrackingAnswer(n, tuple(found.get(n, ()))) for n in numbers]

        async def one(number: str) -> TrackingAnswer:
            try:
                scans = await self._call(
                    account, self.query_limits[account], lambda: self.kuaidi100.track(company, number)
                )
            except (CarrierDown, RateLimited, CircuitOpen) as failure:
                return TrackingAnswer(number, error=_reason(failure))
            return TrackingAnswer(number, tuple(scans))

        return list(await asyncio.gather(*(one(number) for number in numbers)))

    async def subscribe(self, company: str, waybill_no: str) -> str:
        try:
            return await self.kuaidi100.subscribe(company, waybill_no)
        except (CarrierDown, RateLimited) as failure:
            return _reason(failure)


def _reason(failure: Exception) -> str:
    return failure.reason if isinstance(failure, CarrierDown) else str(failure)


def _failed(failure: Exception, uncertain: bool = False) -> Failed:
    return Failed(
        _reason(failure), uncertain=uncertain or (isinstance(failure, CarrierDown) and failure.uncertain)
    )
