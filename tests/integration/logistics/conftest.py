"""Logistics on real Postgres with the carrier sandbox as a real process over HTTP: a throwaway migrated
database per test, the servicer on a free port (callers vouched for as the gateway would), and a
webhook receiver standing in for the gateway's carrier webhooks (it checks Kuaidi100's sign, then
hands the raw push to ReportTracking and answers the carrier what logistics says)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import grpc
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.common.v1 import common_pb2
from oms.logistics.v1 import logistics_pb2 as pb
from oms.logistics.v1 import logistics_pb2_grpc
from omsctl.stack import Infra
from sandboxes.carriers.protocols import kuaidi100 as k100_protocol
from services.kit.db import make_engine
from services.kit.grpc_server import GrpcServer
from services.kit.sealing import KeyRing
from services.logistics import bootstrap
from services.logistics.config import Settings
from tests import identity

ROOT = Path(__file__).resolve().parents[3]
STEP = 0.25
SALT = "test-k100-salt"
SANDBOX_FLAGS = {
    "--sf-partner-id": "TEST_PARTNER",
    "--sf-checkword": "test-sf-checkword",
    "--kuaidi100-key": "test-k100-key",
    "--kuaidi100-secret": "test-k100-secret",
    "--kuaidi100-customer": "TESTCUSTOMER",
    "--cainiao-app-key": "23456789",
    "--cainiao-app-secret": "test-cainiao-secret",
}


class ShiftedClock:
    """The wall clock plus an offset the test moves: timers are tested without sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Receiver:
    """The gateway's carrier webhooks, as far as logistics needs them: the raw push is forwarded."""

    url: str = ""
    stub: Any = None
    answers: list[tuple[str, int]] = field(default_factory=list)
    refused_signs: int = 0

    async def forward(self, carrier: str, request: web.Request) -> web.Response:
        body = await request.read()
        if carrier == "kuaidi100":
            form = parse_qs(body.decode())
            param, sign = form.get("param", [""])[0], form.get("sign", [""])[0]
            if sign != k100_protocol.push_sign(param, SALT):
                self.refused_signs += 1
                return web.Response(status=401)
        try:
            reply = await self.stub.ReportTracking(
                pb.ReportTrackingRequest(carrier=carrier, content_type=request.content_type, body=body)
            )
        except Exception:
            # a push arriving after its test's service is gone: the carrier pushes it again later
            return web.Response(status=503)
        self.answers.append((carrier, reply.nodes_recorded))
        return web.Response(body=reply.reply.data, content_type="application/json")


@dataclass
class Sandbox:
    base: str
    session: aiohttp.ClientSession

    async def control(self, carrier: str, **switches: Any) -> None:
        async with self.session.post(f"{self.base}/_control/{carrier}", json=switches) as response:
            assert response.status == 200, await response.text()

    async def reset(self) -> None:
        async with self.session.post(f"{self.base}/_control/reset") as response:
            assert response.status == 200

    async def waybills(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/_control/waybills") as response:
            return list((await response.json())["waybills"])


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    app = web.Application()

    async def sf(request: web.Request) -> web.Response:
        return await hooks.forward("sf", request)

    async def kuaidi100(request: web.Request) -> web.Response:
        return await hooks.forward("kuaidi100", request)

    app.router.add_post("/webhooks/carriers/sf", sf)
    app.router.add_post("/webhooks/carriers/kuaidi100", kuaidi100)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hooks.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/carriers"
    yield hooks
    await runner.cleanup()


@pytest.fixture(scope="session")
async def running_sandbox(receiver: Receiver) -> AsyncIterator[Sandbox]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "gen"), str(ROOT)])}
    flags = [f"{name}={value}" for name, value in SANDBOX_FLAGS.items()]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandboxes.carriers",
        "--host=127.0.0.1",
        "--port=0",
        f"--push-url={receiver.url}/kuaidi100",
        "--seed=13",
        f"--step-seconds={STEP}",
        "--push-retry-seconds=0.05",
        "--push-timeout-seconds=3",
        f"--set=sf.push_url={receiver.url}/sf",
        *flags,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert line.startswith("listening on "), line
        async with aiohttp.ClientSession() as session:
            yield Sandbox(line.removeprefix("listening on ").strip(), session)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


@pytest.fixture
async def sandbox(running_sandbox: Sandbox) -> Sandbox:
    await running_sandbox.reset()
    return running_sandbox


KEYS = f"k1:{KeyRing.generate_key()}"
HASH_KEY = KeyRing.generate_key()


def settings_env(
    database_url: str, nats_url: str, sandbox: str, receiver: str, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "PII_KEYS": KEYS,
        "PII_ACTIVE_KEY": "k1",
        "PII_HASH_KEY": HASH_KEY,
        "CARRIER_API_URL": sandbox,
        "SF_PARTNER_ID": SANDBOX_FLAGS["--sf-partner-id"],
        "SF_CHECKWORD": SANDBOX_FLAGS["--sf-checkword"],
        "SF_MONTHLY_CARD": "7551234567",
        "KUAIDI100_KEY": SANDBOX_FLAGS["--kuaidi100-key"],
        "KUAIDI100_SECRET": SANDBOX_FLAGS["--kuaidi100-secret"],
        "KUAIDI100_CUSTOMER": SANDBOX_FLAGS["--kuaidi100-customer"],
        "CAINIAO_APP_KEY": SANDBOX_FLAGS["--cainiao-app-key"],
        "CAINIAO_APP_SECRET": SANDBOX_FLAGS["--cainiao-app-secret"],
        "KUAIDI100_CALLBACK_URL": f"{receiver}/kuaidi100",
        "KUAIDI100_PUSH_SALT": SALT,
        "CARRIER_TIMEOUT_SECONDS": "0.6",
        "CARRIER_CREATE_LIMITS": "sf=400,zto=400,yto=400,ems=400,jd=400,cainiao=400",
        "CARRIER_QUERY_LIMITS": "sf=400,zto=400,yto=400,ems=400,jd=400,cainiao=400",
        **identity.env("routing"),
        "WAYBILL_MAX_ATTEMPTS": "5",
        "WAYBILL_RETRY_BASE_SECONDS": "0.05",
        "WAYBILL_RETRY_MAX_SECONDS": "0.4",
        "WAYBILL_LEASE_SECONDS": "30",
        "BREAKER_WINDOW": "50",
        "BREAKER_MIN_CALLS": "20",
        "BREAKER_OPEN_SECONDS": "1",
        **extra,
    }


@dataclass
class Service:
    stub: logistics_pb2_grpc.LogisticsServiceStub
    engine: AsyncEngine
    logistics: bootstrap.Logistics
    clock: ShiftedClock
    sandbox: Sandbox
    settings: Settings

    async def run_batch(self, batch_id: str, within: float = 40.0) -> pb.WaybillBatch:
        """Run the waybill runner until the batch is finished (no sleeps: it claims what is due)."""
        deadline = time.monotonic() + within
        while True:
            await self.logistics.runner.tick()
            try:
                batch = (await self.stub.GetWaybillBatch(pb.GetWaybillBatchRequest(batch_id=batch_id))).batch
            except grpc.aio.AioRpcError as error:
                # a 1,000-item batch read while its runner works is slow on a busy machine: the poll
                # looks again (until `within`), as a person refreshing the page would
                if error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
                assert time.monotonic() < deadline, "batch never read within the time allowed"
                continue
            if batch.finished:
                await self.logistics.runner.settle()
                return batch
            assert time.monotonic() < deadline, f"batch not finished: {batch.pending} pending"
            await asyncio.sleep(0.02)

    async def outbox(self, subject: str | None = None) -> list[tuple[str, bytes]]:
        query = "SELECT subject, payload FROM outbox ORDER BY id"
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(query))).all()
        return [(row.subject, row.payload) for row in rows if subject is None or row.subject == subject]


@pytest.fixture
async def service(
    logistics_db: str, infra: Infra, sandbox: Sandbox, receiver: Receiver, request: pytest.FixtureRequest
) -> AsyncIterator[Service]:
    extra = getattr(request, "param", {})
    settings = Settings.from_env(
        settings_env(logistics_db, infra.nats_url, sandbox.base, receiver.url, **extra)
    )
    clock = ShiftedClock()
    engine = make_engine(logistics_db, pool_size=10)
    logistics = await bootstrap.assemble(settings, engine, clock)
    server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=["logistics"],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=logistics.register,
    )
    await server.start()
    async with identity.client_channel(f"127.0.0.1:{server.port}") as channel:
        stub = logistics_pb2_grpc.LogisticsServiceStub(channel)
        receiver.stub = stub
        yield Service(stub, engine, logistics, clock, sandbox, settings)
        await logistics.runner.settle()
    await server.stop()
    await logistics.close()
    await engine.dispose()


def address(
    city: str = "上海市", province: str = "上海市", detail: str = "浦东新区世纪大道 1 号"
) -> common_pb2.Address:
    return common_pb2.Address(
        recipient_name="张三",
        phone="13900000000",
        country_code="CN",
        province=province,
        city=city,
        district="浦东新区",
        detail=detail,
    )


ORIGIN = common_pb2.Address(province="上海市", city="上海市", district="青浦区", detail="华新镇 1 号")


def order_request(
    order_id: str, *planned: tuple[str, str], city: str = "上海市", goods: str = "normal", **fields: Any
) -> pb.CreateShipmentsRequest:
    return pb.CreateShipmentsRequest(
        order_id=order_id,
        customer_id=fields.pop("customer_id", "c-1"),
        channel="TAOBAO",
        address=address(city),
        shipments=[
            pb.PlannedShipment(
                warehouse_id=warehouse,
                carrier=carrier,
                service="standard",
                lines=[pb.ShipmentLine(sku="TEA", title="龙井茶", quantity=1, goods_type=goods)],
                origin=ORIGIN,
            )
            for warehouse, carrier in (planned or (("WH-SH", "SF"),))
        ],
        **fields,
    )


def json_of(label: str) -> dict[str, Any]:
    return dict(json.loads(label))
