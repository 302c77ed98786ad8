"""The orders service with live inventory and routing servers on port 0, and real Postgres; `shipping`
adds a live logistics server (its own database, the carrier sandbox as a real process) that orders
ships through.

Every server verifies identity assertions as in the platform (tests/identity.py holds the keys)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from oms.inventory.v1 import inventory_pb2_grpc
from oms.logistics.v1 import logistics_pb2, logistics_pb2_grpc
from oms.orders.v1 import orders_pb2_grpc
from oms.routing.v1 import routing_pb2_grpc
from omsctl.stack import Infra
from services.inventory import handlers as stock
from services.inventory.bootstrap import unit_of_work as inventory_uow
from services.inventory.grpc_api import InventoryServicer
from services.inventory.handlers import Policy as StockPolicy
from services.inventory.store import InventoryUnitOfWork
from services.kit import grpc_client
from services.kit.clock import FixedClock
from services.kit.db import make_engine
from services.kit.grpc_server import GrpcServer
from services.kit.sealing import KeyRing
from services.logistics import bootstrap as logistics_bootstrap
from services.logistics.config import Settings as LogisticsSettings
from services.orders import bootstrap, handlers, sla_rules, status_rules
from services.orders.grpc_api import SERVICE_NAME, OrdersServicer
from services.orders.orchestrator import Orchestrator
from services.orders.peers import Peers
from services.orders.store import OrdersUnitOfWork
from services.routing import bootstrap as routing_bootstrap
from services.routing.domain.defaults import WAREHOUSES
from services.routing.handlers.rule_cache import RuleSetCache
from services.routing.handlers.rule_sets import ensure_default_rules
from services.routing.peers import InventoryStock
from tests import identity
from tests.integration.logistics import conftest as logistics_fixtures
from tests.integration.logistics.conftest import Receiver, Sandbox, ShiftedClock, settings_env

# the carrier sandbox (a real process) and the gateway's carrier webhooks, as logistics' tests run them
receiver = logistics_fixtures.receiver
running_sandbox = logistics_fixtures.running_sandbox
sandbox = logistics_fixtures.sandbox


def make_keys() -> KeyRing:
    return KeyRing(keys={"k1": os.urandom(32)}, active_key_id="k1", hash_key=os.urandom(32))


def make_policy(keys: KeyRing | None = None) -> handlers.Policy:
    from datetime import timedelta

    return handlers.Policy(
        keys=keys or make_keys(),
        rules=status_rules.shipped_rules(),
        retry_delay=timedelta(seconds=5),
        sla=sla_rules.shipped_sla(),
        risk=handlers.RiskRules(),
    )


@dataclass
class Stack:
    orders: orders_pb2_grpc.OrdersServiceStub
    engine: AsyncEngine
    inventory_engine: AsyncEngine
    clock: FixedClock
    policy: handlers.Policy
    orchestrator: Orchestrator
    # the orders server's own address, for calls that must not get the test client's assertion
    address: str = ""
    routing_engine: AsyncEngine | None = None

    async def decisions(self, order_id: str) -> list[tuple[str, list[str], str, str]]:
        """Routing's decision log for the order, oldest first:
        (decision id, warehouses, carrier/service, superseded_by)."""
        assert self.routing_engine is not None
        async with self.routing_engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT decision_id, result, superseded_by FROM decisions WHERE order_id = :o "
                    "ORDER BY decided_at, decision_id"
                ),
                {"o": order_id},
            )
            return [
                (
                    row.decision_id,
                    [s["warehouse_id"] for s in row.result["shipments"]],
                    ",".join(f"{s['carrier']}/{s['service']}" for s in row.result["shipments"]),
                    row.superseded_by,
                )
                for row in rows
            ]

    def uow(self) -> OrdersUnitOfWork:
        return bootstrap.unit_of_work(self.engine, self.policy.keys, self.clock)

    def inventory_uow(self) -> InventoryUnitOfWork:
        return inventory_uow(self.inventory_engine, self.clock)

    async def receive(self, warehouse: str, sku: str, units: int) -> None:
        await stock.record_receipt(
            self.inventory_uow(),
            StockPolicy(),
            f"g-{warehouse}-{sku}-{units}",
            warehouse,
            sku,
            units,
            owner="gateway/user/clerk-1",
        )

    async def drive(self) -> None:
        """Run every due orchestration step until none is left."""
        while await self.orchestrator.run_due():
            pass

    async def scalar(self, sql: str, **params: object) -> object:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def column(self, sql: str, **params: object) -> list[object]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).scalars())

    async def stock_of(self, warehouse: str, sku: str) -> tuple[int, int]:
        async with self.inventory_engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT on_hand, reserved FROM stock WHERE warehouse_id = :w AND sku = :s"),
                    {"w": warehouse, "s": sku},
                )
            ).first()
        return (row.on_hand, row.reserved) if row else (0, 0)


@pytest.fixture
async def stack(orders_db: str, inventory_db: str, routing_db: str) -> AsyncIterator[Stack]:
    async with running_stack(orders_db, inventory_db, routing_db) as running:
        yield running


@contextlib.asynccontextmanager
async def running_stack(
    orders_db: str,
    inventory_db: str,
    routing_db: str,
    logistics: grpc.aio.Channel | None = None,
    deadline_seconds: float = 5.0,
) -> AsyncIterator[Stack]:
    """Orders with routing and inventory; shipping through logistics at `logistics` when given."""
    # starts at the real time: the peers and Postgres also read the wall clock in places
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    orders_engine, inventory_engine, routing_engine = (
        make_engine(orders_db),
        make_engine(inventory_db),
        make_engine(routing_db),
    )
    inventory_server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=["inv"],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=lambda s: inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
            InventoryServicer(lambda: inventory_uow(inventory_engine, clock), StockPolicy()), s
        ),
    )
    await inventory_server.start()
    # each caller of inventory with its own identity, as in the platform
    inventory_channel = grpc_client.channel(
        f"127.0.0.1:{inventory_server.port}", identity=identity.service_identity("orders")
    )
    routing_inventory_channel = grpc_client.channel(
        f"127.0.0.1:{inventory_server.port}", identity=identity.service_identity("routing")
    )
    for warehouse in WAREHOUSES:
        await stock.put_warehouse(inventory_uow(inventory_engine), warehouse.warehouse_id, warehouse.name)
    for sku in ("TEA", "CUP"):
        await stock.put_sku(inventory_uow(inventory_engine), sku, sku)
    await ensure_default_rules(routing_bootstrap.unit_of_work(routing_engine)())
    cache = RuleSetCache()
    routing_server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=["routing"],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=lambda s: routing_pb2_grpc.add_RoutingServiceServicer_to_server(
            routing_bootstrap.servicer(
                routing_engine, cache, InventoryStock(routing_inventory_channel), clock
            ),
            s,
        ),
    )
    await routing_server.start()
    routing_channel = grpc_client.channel(
        f"127.0.0.1:{routing_server.port}", identity=identity.service_identity("orders")
    )
    policy = make_policy()

    def new_uow() -> OrdersUnitOfWork:
        return bootstrap.unit_of_work(orders_engine, policy.keys, clock)

    peers = Peers(routing_channel, inventory_channel, 0, deadline_seconds, logistics=logistics)
    orchestrator = Orchestrator(new_uow, policy, peers)
    servicer = OrdersServicer(new_uow, policy, orchestrator)
    orders_server = GrpcServer(
        port=0,
        verifier=identity.verifier(),
        service_names=[SERVICE_NAME],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=lambda s: orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, s),
    )
    await orders_server.start()
    # calls that bring no assertion of their own carry the gateway's for an unscoped, roleless service
    async with identity.client_channel(f"127.0.0.1:{orders_server.port}") as channel:
        yield Stack(
            orders_pb2_grpc.OrdersServiceStub(channel),
            orders_engine,
            inventory_engine,
            clock,
            policy,
            orchestrator,
            f"127.0.0.1:{orders_server.port}",
            routing_engine,
        )
    for server in (orders_server, routing_server, inventory_server):
        await server.stop()
    for peer in (routing_channel, inventory_channel, routing_inventory_channel):
        await peer.close()
    for engine in (orders_engine, inventory_engine, routing_engine):
        await engine.dispose()


# ---- shipping through a live logistics ---------------------------------------------------------------


class FlakyLogistics:
    """Logistics' servicer with a real peer's habits, switched on by a test: the answer to opening
    shipments lost after they were opened (the caller's deadline passes first)."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer
        self.hang_after_create = 0.0
        self.creates = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._servicer, name)

    async def CreateShipments(self, request: Any, context: Any) -> Any:
        self.creates += 1
        reply = await self._servicer.CreateShipments(request, context)
        if self.hang_after_create:
            hang, self.hang_after_create = self.hang_after_create, 0.0
            await asyncio.sleep(hang)
        return reply


def _logistics_server(servicer: FlakyLogistics, port: int) -> GrpcServer:
    return GrpcServer(
        port=port,
        verifier=identity.verifier(),
        service_names=["logistics"],
        host="127.0.0.1",
        grace_seconds=0.1,
        register=lambda s: logistics_pb2_grpc.add_LogisticsServiceServicer_to_server(servicer, s),  # type: ignore[arg-type]
    )


@dataclass
class Shipping:
    """Orders (with routing and inventory) shipping through a live logistics server on its own database."""

    stack: Stack
    logistics: logistics_pb2_grpc.LogisticsServiceStub
    engine: AsyncEngine
    service: logistics_bootstrap.Logistics
    servicer: FlakyLogistics
    settings: LogisticsSettings
    clock: ShiftedClock
    sandbox: Sandbox
    port: int
    server: GrpcServer
    # orders' own channel to logistics
    channel: grpc.aio.Channel

    async def down(self) -> None:
        await self.server.stop()

    async def up(self) -> None:
        """Logistics answers again, and orders' channel has reconnected to it: gRPC's reconnect backoff
        would otherwise fail the next call at once, as it does after any outage, and the test would be
        about that backoff instead of the pause."""
        self.server = _logistics_server(self.servicer, self.port)
        await self.server.start()
        await asyncio.wait_for(self.channel.channel_ready(), timeout=15)

    async def shipments(self, order_id: str) -> list[logistics_pb2.Shipment]:
        reply = await self.logistics.ListShipments(logistics_pb2.ListShipmentsRequest(order_id=order_id))
        return sorted(reply.shipments, key=lambda shipment: shipment.warehouse_id)

    async def run_batch(self, batch_id: str, within: float = 30.0) -> logistics_pb2.WaybillBatch:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            await self.service.runner.tick()
            request = logistics_pb2.GetWaybillBatchRequest(batch_id=batch_id)
            batch = (await self.logistics.GetWaybillBatch(request)).batch
            if batch.finished:
                await self.service.runner.settle()
                return batch
            assert asyncio.get_running_loop().time() < deadline, (
                f"batch not finished: {batch.pending} pending"
            )
            await asyncio.sleep(0.02)


@pytest.fixture
async def shipping(
    orders_db: str,
    inventory_db: str,
    routing_db: str,
    logistics_db: str,
    infra: Infra,
    sandbox: Sandbox,
    receiver: Receiver,
) -> AsyncIterator[Shipping]:
    settings = LogisticsSettings.from_env(
        settings_env(logistics_db, infra.nats_url, sandbox.base, receiver.url)
    )
    clock = ShiftedClock()
    engine = make_engine(logistics_db, pool_size=5)
    assembled = await logistics_bootstrap.assemble(settings, engine, clock)
    servicer = FlakyLogistics(assembled.servicer)
    server = _logistics_server(servicer, 0)
    port = await server.start()
    channel = grpc_client.channel(f"127.0.0.1:{port}", identity=identity.service_identity("orders"))
    # a short deadline, so a lost answer is waited for briefly
    async with running_stack(orders_db, inventory_db, routing_db, channel, deadline_seconds=2.0) as stack:
        async with identity.client_channel(f"127.0.0.1:{port}") as client:
            stub = logistics_pb2_grpc.LogisticsServiceStub(client)
            receiver.stub = stub
            found = Shipping(
                stack, stub, engine, assembled, servicer, settings, clock, sandbox, port, server, channel
            )
            yield found
            await assembled.runner.settle()
        await found.server.stop()
    await channel.close()
    await assembled.close()
    await engine.dispose()
