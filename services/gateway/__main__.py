"""Run the gateway: `python -m services.gateway` serves; `python -m services.gateway migrate` migrates.

Every public RPC passes the gate (authentication, policy, rate limits, audit) and is then forwarded
to its owning service or served here (tokens, uploads, webhooks, reveal, audit log, alert feed).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from google.protobuf.message import Message
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncConnection

from oms.alerts.v1 import events_pb2 as alert_events
from services.gateway import alerts, jobs
from services.gateway.attempts import FailedAttempts
from services.gateway.config import Settings
from services.gateway.credentials import FailureThrottle, SecretChecker
from services.gateway.gate import Gate
from services.gateway.grpc_api import SERVICE_NAME, GatewayApi
from services.gateway.limits import LocalTokenBucket, RateLimiter, RedisTokenBucket, connect_redis
from services.gateway.proxy import Dispatcher
from services.gateway.routes import public_proto_modules
from services.gateway.uploads import UploadStore
from services.gateway.visibility import OrderVisibility
from services.kit import app, grpc_client, identity
from services.kit.consumer import Envelope, EventConsumer
from services.kit.db import UnitOfWork
from services.kit.grpc_server import GrpcServer, wait_for_shutdown_signal
from services.kit.runtime import Runtime

log = logging.getLogger(__name__)
ORDERS = "oms.orders.v1.OrdersService"


async def serve(settings: Settings) -> None:
    public_proto_modules()
    async with Runtime(settings.common) as runtime:

        def new_uow() -> UnitOfWork:
            return UnitOfWork(runtime.engine)

        redis = connect_redis(
            settings.redis_url, settings.redis_max_connections, settings.redis_socket_timeout_seconds
        )
        limiter = RateLimiter(RedisTokenBucket(redis), LocalTokenBucket(), settings.limiter)
        gate = Gate(
            settings.jwt,
            settings.api_keys,
            settings.signature_window_seconds,
            redis,
            limiter,
            settings.limits,
            new_uow,
            identity.Signer(settings.common.identity),
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
        checker = SecretChecker(settings.credential_checks)
        api = GatewayApi(
            gate,
            settings.jwt,
            settings.service_accounts,
            uploads,
            channels[ORDERS],
            new_uow,
            hub,
            settings.webhook_secrets,
            settings.signature_window_seconds,
            checker=checker,
            throttle=FailureThrottle(redis, settings.credential_throttle),
            watch_streams_per_principal=settings.watch_streams_per_principal,
            visibility=visibility,
        )
        # every replica feeds its own watchers; deliveries happen once, from a shared durable consumer
        prefix = settings.common.subject_prefix

        async def to_hub(msg: Msg) -> None:
            with contextlib.suppress(Exception):  # a malformed alert must not stop the feed
                hub.publish(alert_events.AlertRaised.FromString(msg.data))

        await runtime.nc.subscribe(f"{prefix}.alerts.>", cb=to_hub)
        deliveries = alerts.Dispatcher(
            alerts.sinks_from_settings(settings.alert_env), alerts.Deduper(redis), alerts.AlertHub()
        )

        async def deliver(conn: AsyncConnection, event: Message, envelope: Envelope) -> None:
            await deliveries.handle(event)  # type: ignore[arg-type]

        consumer = EventConsumer(
            runtime.js,
            runtime.engine,
            name="gateway-alerts",
            subject_prefix=prefix,
            subject="alerts.raised",
            handler=deliver,
            streams=settings.common.streams,
        )
        runtime.spawn("alert-deliveries", consumer.run)
        runtime.every(
            "audit purge",
            3600,
            lambda: jobs.purge_old_audit(new_uow, settings.audit_retention),
            one_replica=True,
        )
        runtime.every("upload sweep", 60, lambda: jobs.sweep_uploads(uploads), one_replica=True)
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
        )
        await server.start()
        try:
            await wait_for_shutdown_signal()
        finally:
            hub.close()
            await server.stop()
            checker.close()
            try:
                await gate.flush_failed_attempts(everything=True)
            except Exception:
                log.warning("the last failed attempts could not be audited", exc_info=True)
            for channel in channels.values():
                await channel.close()
            await redis.aclose()


def main() -> None:
    app.run("gateway", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
