"""Wiring: settings → store, peers, handlers' policy, process manager, consumers, jobs, servicer."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oms.orders.v1 import orders_pb2_grpc
from services.kit import app, grpc_client, identity
from services.kit.clock import Clock
from services.kit.consumer import EventConsumer
from services.kit.runtime import Runtime
from services.kit.sealing import KeyRing
from services.orders import channel_jobs, consumers, handlers, jobs, mappers
from services.orders.config import Settings
from services.orders.grpc_api import SERVICE_NAME, OrdersServicer
from services.orders.orchestrator import Orchestrator
from services.orders.peers import Peers
from services.orders.store import OrdersUnitOfWork

log = logging.getLogger(__name__)


def policy_of(settings: Settings) -> handlers.Policy:
    return handlers.Policy(
        keys=settings.keys,
        rules=settings.rules,
        payment_tolerance=settings.payment_tolerance,
        self_run_providers=settings.self_run_payment_providers,
        retry_attempts=settings.retry_attempts,
        retry_delay=settings.retry_delay,
        outage_patience=settings.outage_patience,
        outage_backoff_initial=settings.outage_backoff_initial,
        outage_backoff_max=settings.outage_backoff_max,
        stuck_after=settings.stuck_after,
        hold_for_overdue_tickets=settings.hold_for_overdue_tickets,
        sla=settings.sla,
        risk=handlers.RiskRules(),
    )


def unit_of_work(engine: AsyncEngine, keys: KeyRing, clock: Clock | None = None) -> OrdersUnitOfWork:
    """A unit of work whose domain events become the service's integration events (mappers)."""
    return OrdersUnitOfWork(engine, keys, mappers.integration_event, clock)


def joined_unit_of_work(conn: AsyncConnection, keys: KeyRing, clock: Clock | None = None) -> OrdersUnitOfWork:
    """The same inside a transaction someone else owns (a consumer's inbox transaction)."""
    return OrdersUnitOfWork.joined(conn, keys, mappers.integration_event, clock)


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:
        policy = policy_of(settings)

        def new_uow() -> OrdersUnitOfWork:
            return unit_of_work(runtime.engine, policy.keys)

        await handlers.risk.ensure_default_risk_rules(new_uow())
        me = identity.own_identity(settings.common.identity)
        routing = grpc_client.channel(settings.routing_address, identity=me)
        inventory = grpc_client.channel(settings.inventory_address, identity=me)
        logistics = None
        if settings.logistics_address:
            logistics = grpc_client.channel(settings.logistics_address, identity=me)
        if logistics is None:
            log.warning("LOGISTICS_SERVICE_ADDR is not set: orders stop at ALLOCATED, nothing ships them")
        peers = Peers(
            routing,
            inventory,
            settings.reservation_ttl_seconds,
            settings.step_deadline_seconds,
            logistics=logistics,
            linger=settings.peer_linger_seconds,
            max_batch=settings.peer_max_batch,
        )
        concurrency = settings.process_manager_concurrency
        orchestrator = Orchestrator(
            new_uow,
            policy,
            peers,
            lease=settings.step_lease,
            batch=max(concurrency, 1),
            concurrency=max(concurrency, 1),
        )
        if concurrency > 0:  # 0: this replica only takes requests; worker replicas drive the orders
            runtime.spawn("orchestrator", orchestrator.run)
        for subject, use_case in consumers.SUBSCRIPTIONS.items():
            name = "orders-" + subject.replace(".", "-")
            consumer = EventConsumer(
                runtime.js,
                runtime.engine,
                name=name,
                subject_prefix=settings.common.subject_prefix,
                subject=subject,
                handler=consumers.handler(
                    use_case, policy, orchestrator.poke, consumers.KEYS.get(subject, "order_id")
                ),
                streams=settings.common.streams,
            )
            runtime.consume(consumer)
        if logistics is not None:
            handle, handle_all = consumers.shipment_handlers(policy, orchestrator.poke)
            consumer = EventConsumer(
                runtime.js,
                runtime.engine,
                name="orders-logistics",
                subject_prefix=settings.common.subject_prefix,
                subject=consumers.LOGISTICS_EVENTS,
                handler=handle,
                streams=settings.common.streams,
                together=True,  # tracking arrives in bursts: a fetched batch is one transaction
                batch_handler=handle_all,  # in which each order is read and written once
            )
            runtime.consume(consumer)
        # after-sales' tickets and refunds, whenever an after-sales service publishes them
        handle, handle_all = consumers.ticket_handlers(policy, orchestrator.poke)
        consumer = EventConsumer(
            runtime.js,
            runtime.engine,
            name="orders-aftersales",
            subject_prefix=settings.common.subject_prefix,
            subject=consumers.AFTERSALES_EVENTS,
            handler=handle,
            streams=settings.common.streams,
            together=True,
            batch_handler=handle_all,
        )
        runtime.consume(consumer)
        runtime.every(
            "payment retries",
            1.0,
            lambda: jobs.retry_payments(new_uow, policy, orchestrator.poke),
            one_replica=True,
        )
        drift_report = runtime.leader_only("drift report", lambda: jobs.drift_report(new_uow))
        runtime.spawn(
            "drift-report",
            lambda stop: jobs.daily(
                settings.drift_report_at, stop, drift_report, lambda: new_uow().clock.now()
            ),
        )
        runtime.every("reseal", 60.0, lambda: jobs.reseal(new_uow, policy), one_replica=True)
        runtime.every(
            "stuck-order sweep",
            settings.sweep_seconds,
            lambda: jobs.sweep_stuck(new_uow, policy, orchestrator.poke),
            one_replica=True,
        )
        runtime.every(
            "sla timers",
            settings.sla_check_seconds,
            lambda: jobs.check_sla(new_uow, orchestrator.poke),
            one_replica=True,
        )
        channel_apis = channel_jobs.start(runtime, new_uow, policy, settings.channels, orchestrator.poke)
        servicer = OrdersServicer(
            new_uow,
            policy,
            orchestrator,
            export_chunk=settings.export_chunk_orders,
            export_pause_seconds=settings.export_chunk_pause_seconds,
            ingest_linger=settings.ingest_linger_seconds,
            ingest_max_batch=settings.peer_max_batch,
            channel_health_window=settings.channels.window,
        )
        await app.serve_until_signalled(
            settings.common,
            [SERVICE_NAME],
            lambda server: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, server),
            readiness=runtime.ready,
        )
        await routing.close()
        await inventory.close()
        if logistics is not None:
            await logistics.close()
        if channel_apis is not None:
            await channel_apis.close()
