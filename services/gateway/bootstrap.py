"""Wiring: settings → stores, the gate, orders, the use cases, the servicer, the consumers and timers."""

from __future__ import annotations

import asyncio
import logging
import time

from services.gateway import alerts, jobs, mappers
from services.gateway.bus_state import BusState
from services.gateway.config import Settings
from services.gateway.consumers import record, to_hub
from services.gateway.credentials import FailureThrottle, SecretChecker
from services.gateway.domain.attempts import FailedAttempts
from services.gateway.edge_authz import EdgeAuthoriser
from services.gateway.gate import Gate
from services.gateway.grpc_api import SERVICE_NAME, GatewayApi
from services.gateway.handlers.alert_desk import AlertDesk
from services.gateway.handlers.alerts import Watchers
from services.gateway.handlers.audit import AuditLogReader
from services.gateway.handlers.console import ConsoleAssets
from services.gateway.handlers.provider_notifications import ProviderNotifications
from services.gateway.handlers.reveal import Reveal
from services.gateway.handlers.tokens import Tokens
from services.gateway.handlers.tracking_pushes import TrackingPushes
from services.gateway.handlers.uploads import Uploads
from services.gateway.handlers.users import ConsoleUsers
from services.gateway.handlers.webhooks import Webhooks
from services.gateway.limits import LocalTokenBucket, RateLimiter, RedisTokenBucket, connect_redis
from services.gateway.peers import AftersalesPeer, LogisticsPeer, OrdersPeer, OrderVisibility
from services.gateway.proxy import Dispatcher
from services.gateway.routes import public_proto_modules
from services.gateway.store.uow import GatewayUnitOfWork
from services.gateway.store.uploads import UploadStore
from services.kit import bus, grpc_client, identity
from services.kit.consumer import EventConsumer
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal
from services.kit.outbox import OUTBOX_REPORT_SUBJECT
from services.kit.runtime import Runtime

log = logging.getLogger(__name__)
# first notices of new alert records delivered at once, off the consumer's path (AlertDesk)
ALERT_DELIVERIES_IN_FLIGHT = 32
ORDERS = "oms.orders.v1.OrdersService"
LOGISTICS = "oms.logistics.v1.LogisticsService"
AFTERSALES = "oms.aftersales.v1.AftersalesService"


async def serve(settings: Settings) -> None:
    public_proto_modules()
    # the gateway's clocks: epoch seconds for records, tokens and expiries; monotonic for waits
    wall, monotonic = time.time, time.monotonic
    async with Runtime(settings.common) as runtime:

        def new_uow() -> GatewayUnitOfWork:
            return GatewayUnitOfWork(runtime.engine)

        redis = connect_redis(
            settings.redis_url, settings.redis_max_connections, settings.redis_socket_timeout_seconds
        )
        limiter = RateLimiter(RedisTokenBucket(redis), LocalTokenBucket(), settings.limiter, monotonic)
        gate = Gate(
            settings.jwt,
            settings.api_keys,
            settings.signature_window_seconds,
            redis,
            limiter,
            settings.limits,
            new_uow,
            identity.Signer(settings.common.identity),
            wall=wall,
            failed_attempts=FailedAttempts(settings.failed_attempt_window_seconds),
        )
        uploads = UploadStore(
            redis,
            ttl_seconds=settings.upload_ttl_seconds,
            max_total_bytes=settings.upload_max_bytes,
            max_open_per_owner=settings.uploads_per_principal,
            quota_bytes_per_owner=settings.upload_quota_bytes,
        )
        channels = {
            service: grpc_client.channel(
                address,
                settings.upstream_deadline_seconds,
                trace_interceptor=False,
                identity=None,
                streams=grpc_client.server_streams(service),
            )
            for service, address in settings.upstreams.items()
        }
        hub = alerts.AlertHub()
        visibility = OrderVisibility(gate, channels[ORDERS])
        orders = OrdersPeer(gate, channels[ORDERS], visibility)
        checker = SecretChecker(settings.credential_checks)
        deliveries = alerts.Dispatcher(
            alerts.sinks_from_settings(settings.alert_env), alerts.Deduper(redis), alerts.AlertHub()
        )
        alert_desk = AlertDesk(
            new_uow,
            settings.alert_routes,
            alerts.RecordNotifier(deliveries),
            wall,
            deliveries_in_flight=ALERT_DELIVERIES_IN_FLIGHT,
        )
        bus_state = BusState(runtime.js, settings.common.subject_prefix)
        api = GatewayApi(
            tokens=Tokens(
                settings.jwt,
                settings.service_accounts,
                checker,
                FailureThrottle(redis, settings.credential_throttle, monotonic),
                gate,
                wall,
            ),
            uploads=Uploads(uploads, orders, gate, wall),
            webhooks=Webhooks(
                settings.webhook_secrets,
                settings.signature_window_seconds,
                new_uow,
                orders,
                gate,
                mappers.webhook_result_bytes,
                mappers.webhook_result_of,
                wall,
                monotonic,
            ),
            reveal=Reveal(orders, gate),
            audit_log=AuditLogReader(new_uow),
            watchers=Watchers(hub, orders, settings.watch_streams_per_principal, monotonic),
            tracking_pushes=TrackingPushes(
                settings.push_secrets, LogisticsPeer(gate, channels[LOGISTICS]), gate
            ),
            provider_notifications=ProviderNotifications(
                settings.provider_keys, orders, AftersalesPeer(gate, channels[AFTERSALES]), gate, wall
            ),
            alert_desk=alert_desk,
            users=ConsoleUsers(
                settings.jwt,
                new_uow,
                checker,
                FailureThrottle(redis, settings.credential_throttle, monotonic),
                gate,
                wall,
            ),
            console=ConsoleAssets(),
            bus_state=bus_state,
        )
        prefix = settings.common.subject_prefix
        await runtime.nc.subscribe(f"{prefix}.alerts.>", cb=to_hub(hub))
        await runtime.nc.subscribe(bus.full_subject(prefix, OUTBOX_REPORT_SUBJECT), cb=bus_state.take_report)
        consumer = EventConsumer(
            runtime.js,
            runtime.engine,
            name="gateway-alerts",
            subject_prefix=prefix,
            subject="alerts.raised",
            handler=record(alert_desk, wall),
            streams=settings.common.streams,
        )
        runtime.consume(consumer)
        runtime.every(
            "audit purge",
            3600,
            lambda: jobs.purge_old_audit(new_uow, settings.audit_retention, wall),
            one_replica=True,
        )
        runtime.every(
            "alert escalation",
            settings.alert_escalation_check_seconds,
            alert_desk.escalate_due,
            one_replica=True,
        )
        runtime.every("upload sweep", 60, lambda: jobs.sweep_uploads(uploads, wall), one_replica=True)
        # every replica writes the failed attempts it counted, once their window has closed
        runtime.every("failed attempts", 1, gate.flush_failed_attempts)
        dispatcher = Dispatcher(
            gate,
            channels,
            SERVICE_NAME,
            api.methods(),
            settings.upstream_deadline_seconds,
            settings.stream_deadline_seconds,
            visibility,
        )
        server = GrpcServer(
            port=settings.common.port,
            host=settings.common.host,
            # the edge: callers bring credentials, which the gate checks, not assertions
            verifier=None,
            service_names=[*settings.upstreams, SERVICE_NAME],
            register=lambda _server: None,
            generic_handlers=[dispatcher],
            grace_seconds=settings.common.grace_seconds,
            readiness=runtime.ready,
            readiness_seconds=settings.common.readiness_check_seconds,
            service=settings.common.service_name,
        )
        await server.start()
        authoriser = (
            await EdgeAuthoriser(gate).serve(settings.common.host, settings.authz_port)
            if settings.authz_port
            else None
        )
        try:
            await wait_for_shutdown_signal()
        finally:
            hub.close()
            if authoriser is not None:
                await authoriser.cleanup()
            await server.stop()
            try:  # first notices in flight get a moment; one not delivered stays owed on its record
                await asyncio.wait_for(alert_desk.drain(), timeout=5)
            except TimeoutError:
                log.warning("alert deliveries still in flight at shutdown are left owed")
            checker.close()
            try:
                await gate.flush_failed_attempts(everything=True)
            except Exception:
                log.warning("the last failed attempts could not be audited", exc_info=True)
            for channel in channels.values():
                await channel.close()
            await redis.aclose()
