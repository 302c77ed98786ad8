"""A real Postgres stopped and started again under a running service: calls answer UNAVAILABLE and not
INTERNAL meanwhile, readiness follows the database, and the outbox relay leads and listens again.

The Postgres here is this module's own, so stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client as NatsClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl.embedded import EmbeddedPostgres
from omsctl.stack import Infra, reset
from services.kit import db
from services.kit.config import CommonSettings
from services.kit.db import UnitOfWork, make_engine, plain_url, with_database
from services.kit.grpc_server import GrpcServer
from services.kit.leader import lock_key
from services.kit.outbox import OutboxRelay, relay_lock_name
from services.kit.runtime import Runtime
from services.kit.schema import create_kit_tables
from tests import identity
from tests.conftest import random_ref
from tests.integration.kit.helpers import sample_event, stream_count
from tests.waiting import eventually

SERVICE = "oms.orders.v1.OrdersService"


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    home = Path(tempfile.mkdtemp(prefix="oms-pg-restart-"))
    home.chmod(0o755)
    pg = EmbeddedPostgres(home / "postgres", home / "logs", durable=False)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        reset(home)  # the copy of the binaries a private checkout needs lives outside `home`
        shutil.rmtree(home, ignore_errors=True)


async def _stop(pg: EmbeddedPostgres) -> None:
    await asyncio.to_thread(pg.stop)


async def _start(pg: EmbeddedPostgres) -> None:
    try:
        await asyncio.to_thread(pg.start)  # the same port and data folder as before
    except RuntimeError as error:
        log_tail = (pg.log_dir / "postgres.log").read_text()[-3000:]
        raise RuntimeError(f"postgres did not start again:\n{log_tail}") from error


class _Op:
    """The two things `create_kit_tables` asks of an Alembic op."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def get_bind(self) -> Any:
        return self.conn

    def execute(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)


@pytest.fixture
async def db_url(own_postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    """A database with the kit's tables (outbox with its NOTIFY trigger, inbox) on the own Postgres."""
    name = random_ref("restart_")
    admin = await asyncpg.connect(plain_url(own_postgres.url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(own_postgres.url, name)
    engine = make_engine(url, pool_size=1)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: create_kit_tables(_Op(sync)))
    await engine.dispose()
    yield url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url, pool_size=5)
    yield engine
    await engine.dispose()


async def _commit_event(engine: AsyncEngine, n: int) -> str:
    async with UnitOfWork(engine) as uow:
        event_id = uow.publish("orders.created", sample_event(n))
        await uow.commit()
    return event_id


class _Reads(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return orders_pb2.GetOrderResponse()


async def test_a_database_outage_answers_unavailable_with_retry_after_and_the_next_call_works(
    own_postgres: EmbeddedPostgres, engine: AsyncEngine
) -> None:
    server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=[SERVICE],
        register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(_Reads(engine), s),
        host="127.0.0.1",
    )
    await server.start()
    try:
        async with identity.client_channel(f"127.0.0.1:{server.port}") as channel:
            stub = orders_pb2_grpc.OrdersServiceStub(channel)
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="x"))  # the pool holds a connection
            await _stop(own_postgres)
            try:
                for _ in range(3):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="x"))
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert refused.value.details() == "database unavailable; retry"
                    assert dict(refused.value.trailing_metadata())["retry-after"] == "1"
            finally:
                await _start(own_postgres)
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="x"))
            # a restart nobody called through: the pooled connection is dead, and the first call
            # after it must not be the one that finds out
            await _stop(own_postgres)
            await _start(own_postgres)
            await stub.GetOrder(orders_pb2.GetOrderRequest(order_id="x"))
    finally:
        await server.stop()


async def test_readiness_follows_the_database_while_liveness_stays_serving(
    own_postgres: EmbeddedPostgres, db_url: str, infra: Infra, subject_prefix: str
) -> None:
    settings = CommonSettings(
        service_name=random_ref("svc"),
        port=0,
        host="127.0.0.1",
        identity=identity.settings("orders"),
        database_url=db_url,
        nats_url=infra.nats_url,
        subject_prefix=subject_prefix,
        grace_seconds=0.5,
        log_level="INFO",
    )
    async with Runtime(settings) as runtime:
        server = GrpcServer(
            port=0,
            verifier=identity.verifier(),
            service_names=[SERVICE],
            register=lambda _: None,
            host="127.0.0.1",
            readiness=runtime.ready,
            readiness_seconds=0.1,
        )
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def status(name: str) -> int:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
                return int(reply.status)

            async def readiness_is(wanted: int) -> bool:
                return await status("readiness") == wanted and await status(SERVICE) == wanted

            serving = health_pb2.HealthCheckResponse.SERVING
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            assert await readiness_is(serving)
            await _stop(own_postgres)
            try:
                await eventually(lambda: readiness_is(not_serving))
                assert await status("") == serving
            finally:
                await _start(own_postgres)
            await eventually(lambda: readiness_is(serving))
            assert await status("") == serving
        await server.stop()


async def test_the_relay_leads_and_listens_again_after_postgres_restarts(
    own_postgres: EmbeddedPostgres, engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    # a poll of a minute: only the NOTIFY on a fresh LISTEN can wake it within the test
    relay = OutboxRelay(
        engine, js, service="orders", subject_prefix=subject_prefix, poll_seconds=60, retry_seconds=0.2
    )
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: relay.is_leader)
        await _commit_event(engine, 1)
        await eventually(lambda: relay.published_total == 1)

        await _stop(own_postgres)
        await eventually(lambda: not relay.is_leader)
        await _start(own_postgres)
        await eventually(lambda: relay.is_leader, within=15)
        await asyncio.sleep(0.3)  # it is idle again, waiting on its LISTEN

        await _commit_event(engine, 2)
        await eventually(lambda: relay.published_total == 2, within=5)
        assert await stream_count(js, subject_prefix, "orders") == 2
    finally:
        stop.set()
        await task


async def _lock_holder(db_url: str, name: str) -> int | None:
    conn = await asyncpg.connect(plain_url(db_url))
    try:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1::bigint::oid",
            lock_key(name),
        )
        return int(pid) if pid is not None else None
    finally:
        await conn.close()


async def test_when_the_leaders_connection_dies_the_old_relay_stops_and_the_standby_takes_over(
    db_url: str, engine: AsyncEngine, nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    relays = [
        OutboxRelay(
            engine, js, service="orders", subject_prefix=subject_prefix, poll_seconds=0.1, retry_seconds=0.2
        )
        for _ in range(2)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)) for relay in relays]
    try:
        await eventually(lambda: any(relay.is_leader for relay in relays))
        await asyncio.sleep(0.5)
        assert sum(relay.is_leader for relay in relays) == 1
        old = next(relay for relay in relays if relay.is_leader)
        standby = next(relay for relay in relays if relay is not old)
        await _commit_event(engine, 1)
        await eventually(lambda: old.published_total == 1)

        holder = await _lock_holder(db_url, relay_lock_name("orders"))
        assert holder is not None
        admin = await asyncpg.connect(plain_url(db_url))
        await admin.execute("SELECT pg_terminate_backend($1)", holder)
        await admin.close()

        await eventually(lambda: standby.is_leader)
        assert not old.is_leader
        for n in range(2, 12):
            await _commit_event(engine, n)
        await eventually(lambda: standby.published_total == 10)
        await asyncio.sleep(0.5)
        assert old.published_total == 1
        assert not old.is_leader
        assert await stream_count(js, subject_prefix, "orders") == 11
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_pooled_connection_that_died_while_idle_is_replaced_before_anyone_uses_it(
    engine: AsyncEngine, own_postgres: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only idle connections are pinged (not one ping per transaction): one that sat idle past
    PING_IDLE_SECONDS and whose server side is gone is replaced on checkout, so the caller's call works."""
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.2)
    async with engine.connect() as conn:
        first = await conn.scalar(text("SELECT pg_backend_pid()"))
    admin = await asyncpg.connect(plain_url(own_postgres.url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    await asyncio.sleep(0.3)
    async with engine.connect() as conn:  # the dead connection is found by its ping, not by this call
        second = await conn.scalar(text("SELECT pg_backend_pid()"))
    assert second != first
