"""Run the orders service.

`python -m services.orders` serves gRPC and runs the process manager, the payment retries, the
daily drift report and the key-rotation re-sealing; `python -m services.orders migrate` migrates.
"""

from __future__ import annotations

from pathlib import Path

from oms.orders.v1 import orders_pb2_grpc
from services.kit import app, grpc_client, identity
from services.kit.consumer import EventConsumer
from services.kit.db import UnitOfWork
from services.kit.runtime import Runtime
from services.orders import consumers, handlers, jobs
from services.orders.config import Settings
from services.orders.grpc_api import SERVICE_NAME, OrdersServicer
from services.orders.orchestrator import Orchestrator
from services.orders.peers import Peers


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
    )


async def serve(settings: Settings) -> None:
    async with Runtime(settings.common) as runtime:

        def new_uow() -> UnitOfWork:
            return UnitOfWork(runtime.engine)

        policy = policy_of(settings)
        me = identity.own_identity(settings.common.identity)
        routing = grpc_client.channel(settings.routing_address, identity=me)
        inventory = grpc_client.channel(settings.inventory_address, identity=me)
        peers = Peers(routing, inventory, settings.reservation_ttl_seconds, settings.step_deadline_seconds)
        concurrency = settings.process_manager_concurrency
        orchestrator = Orchestrator(
            new_uow, policy, peers, lease=settings.step_lease, concurrency=max(concurrency, 1)
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
            runtime.spawn(name, consumer.run)
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
        servicer = OrdersServicer(
            new_uow,
            policy,
            orchestrator,
            export_chunk=settings.export_chunk_orders,
            export_pause_seconds=settings.export_chunk_pause_seconds,
        )
        await app.serve_until_signalled(
            settings.common,
            [SERVICE_NAME],
            lambda server: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, server),
            readiness=runtime.ready,
        )
        await routing.close()
        await inventory.close()


def main() -> None:
    app.run("orders", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
