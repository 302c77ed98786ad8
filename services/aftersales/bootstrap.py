"""Wiring: settings → store, peers, payment providers, handlers, servicer, and the runners beside it
(refunds, restocks, the SLA sweep)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.aftersales.v1 import aftersales_pb2_grpc
from services.aftersales import consumers, handlers, mappers
from services.aftersales.config import Settings
from services.aftersales.grpc_api import AftersalesServicer
from services.aftersales.handlers.ports import ProviderAnswer, RefundJob
from services.aftersales.peers import InventoryPeer, OrdersPeer
from services.aftersales.providers.alipay import AlipayClient
from services.aftersales.providers.ports import (
    CallRefused,
    RefundProvider,
    RefundRequest,
    RefundResult,
    RetryableError,
)
from services.aftersales.providers.wechat import WechatPayClient
from services.aftersales.store import AftersalesUnitOfWork
from services.kit import grpc_client, identity
from services.kit.clock import Clock, SystemClock
from services.kit.consumer import EventConsumer
from services.kit.runtime import Runtime

log = logging.getLogger(__name__)


def unit_of_work(engine: AsyncEngine, clock: Clock | None = None) -> Callable[[], AftersalesUnitOfWork]:
    """New units of work on the engine, publishing the events the use cases emit."""

    def new_uow() -> AftersalesUnitOfWork:
        return AftersalesUnitOfWork(engine, clock, mappers.event_message)

    return new_uow


def _answer(result: RefundResult) -> ProviderAnswer:
    status = result.status
    if status.refused:
        return ProviderAnswer("REFUSED", result.provider_refund_id, f"{result.code} {result.message}".strip())
    return ProviderAnswer(status.value, result.provider_refund_id, result.message)


class PaymentProviders:
    """The handlers' `Providers`: each refund goes to the provider its order was paid through."""

    def __init__(self, clients: dict[str, RefundProvider]) -> None:
        self.clients = clients

    def _client(self, job: RefundJob) -> RefundProvider | None:
        return self.clients.get(job.provider)

    async def refund(self, job: RefundJob, reason: str) -> ProviderAnswer:
        client = self._client(job)
        if client is None:
            return ProviderAnswer("SENDING", detail=f"no client configured for {job.provider}", retry=True)
        request = RefundRequest(
            refund_no=job.refund_no,
            out_trade_no=job.merchant_order_no,
            amount=job.cash_minor,
            total=job.total_paid_minor,
            provider_trade_no=job.transaction_id,
            reason=reason[:80],
            currency=job.currency,
        )
        return await self._call(job, client.refund(request))

    async def query(self, job: RefundJob) -> ProviderAnswer:
        client = self._client(job)
        if client is None:
            return ProviderAnswer("SENDING", detail=f"no client configured for {job.provider}", retry=True)
        answer = await self._call(job, client.query(job.refund_no, job.merchant_order_no))
        if answer.status == "REFUSED" and "NOT_FOUND" in answer.detail.upper():
            # the provider never got it (the first call was lost before it arrived): send it again
            return ProviderAnswer("SENDING", detail=answer.detail, retry=True)
        return answer

    async def _call(self, job: RefundJob, call: Awaitable[RefundResult]) -> ProviderAnswer:
        try:
            return _answer(await call)
        except RetryableError as failure:
            return ProviderAnswer("SENDING", detail=failure.reason[:500], retry=True)
        except CallRefused as refused:
            log.error(
                "%s refused refund %s: %s (fix the configuration)", job.provider, job.refund_no, refused
            )
            return ProviderAnswer("SENDING", detail=str(refused)[:500], retry=True)


@dataclass
class Aftersales:
    servicer: AftersalesServicer
    refunds: handlers.RefundRunner
    restocks: handlers.RestockRunner
    close: Callable[[], Awaitable[None]]

    def register(self, server: grpc.aio.Server) -> None:
        aftersales_pb2_grpc.add_AftersalesServiceServicer_to_server(self.servicer, server)


async def assemble(settings: Settings, engine: AsyncEngine, clock: Clock | None = None) -> Aftersales:
    """Everything but the background loops: what the tests serve on their own database."""
    clock = clock or SystemClock()
    new_uow = unit_of_work(engine, clock)
    me = identity.own_identity(settings.common.identity)
    orders_channel = grpc_client.channel(settings.orders_address, identity=me)
    inventory_channel = grpc_client.channel(settings.inventory_address, identity=me)
    session = aiohttp.ClientSession()
    clients: dict[str, RefundProvider] = {}
    if settings.wechat is not None:
        clients["wechat_pay"] = WechatPayClient(session, settings.wechat)
    if settings.alipay is not None:
        clients["alipay"] = AlipayClient(session, settings.alipay)
    orders = OrdersPeer(orders_channel, inventory_channel)
    refunds = handlers.RefundRunner(new_uow, PaymentProviders(clients), settings.policy)
    restocks = handlers.RestockRunner(
        new_uow, InventoryPeer(inventory_channel), settings.policy, orders=orders
    )
    servicer = AftersalesServicer(new_uow, orders, settings.policy, clock, on_queued=refunds.wake.set)

    async def close() -> None:
        await session.close()
        await orders_channel.close()
        await inventory_channel.close()

    return Aftersales(servicer, refunds, restocks, close)


async def build(settings: Settings, runtime: Runtime, clock: Clock | None = None) -> Aftersales:
    """The service as it runs: the refund and restock runners (every replica; each claims its own work),
    the SLA sweep (one replica), and the consumer that has exchanges follow their replacement orders."""
    clock = clock or SystemClock()
    aftersales = await assemble(settings, runtime.engine, clock)
    new_uow = unit_of_work(runtime.engine, clock)
    runtime.spawn("refunds", lambda stop: aftersales.refunds.run(stop, settings.runner_seconds))
    runtime.every("restocks", settings.runner_seconds, aftersales.restocks.run_due)
    runtime.every(
        "ticket sla",
        settings.sla_seconds,
        lambda: handlers.sweep(new_uow(), settings.policy),
        one_replica=True,
    )
    name = "aftersales-orders-status"
    consumer = EventConsumer(
        runtime.js,
        runtime.engine,
        name=name,
        subject_prefix=settings.common.subject_prefix,
        subject="orders.status_changed",
        handler=consumers.on_order_status_changed(settings.policy, clock),
        streams=settings.common.streams,
        # every order's changes pass by: one inbox statement per fetched batch, not one per event
        together=True,
    )
    runtime.consume(consumer)
    return aftersales
