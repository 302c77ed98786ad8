"""Session fixtures: real Postgres, Redis and NATS — embedded servers started once, or the servers at
DATABASE_URL / REDIS_URL / NATS_URL when given — with per-test isolation (throwaway databases,
unique subject prefixes, random ids)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from omsctl.stack import Infra, Platform, reset
from services.gateway.config import DEFAULT_LIMITS
from services.kit.db import plain_url, with_database
from services.kit.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent

# property tests judge what is generated, not how fast: on two loaded cores generation is slow
settings.register_profile("oms", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("oms")


def random_ref(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    # mkdtemp's folder is 0700: as root, Postgres runs from a folder of its own outside it
    home = Path(tempfile.mkdtemp(prefix="oms-test-"))
    servers = Infra(home, durable=False)
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()
        reset(home)
        shutil.rmtree(home, ignore_errors=True)


async def _admin(infra: Infra) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(infra.database_url))


async def _migrated_template(infra: Infra, service: str) -> str:
    """Migrated once per session; each test copies it, which is much faster than migrating."""
    name = random_ref(f"tmpl_{service}_")
    conn = await _admin(infra)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    migrations = ROOT / "services" / service / "migrations"
    await asyncio.to_thread(upgrade, migrations, with_database(infra.database_url, name))
    return name


async def _copy_of(infra: Infra, template: str, service: str) -> str:
    name = random_ref(f"t_{service}_")
    conn = await _admin(infra)
    await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    await conn.close()
    return name


async def _drop(infra: Infra, name: str) -> None:
    conn = await _admin(infra)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture(scope="session")
async def orders_template(infra: Infra) -> AsyncIterator[str]:
    name = await _migrated_template(infra, "orders")
    yield name
    await _drop(infra, name)


@pytest.fixture(scope="session")
async def inventory_template(infra: Infra) -> AsyncIterator[str]:
    name = await _migrated_template(infra, "inventory")
    yield name
    await _drop(infra, name)


@pytest.fixture(scope="session")
async def routing_template(infra: Infra) -> AsyncIterator[str]:
    name = await _migrated_template(infra, "routing")
    yield name
    await _drop(infra, name)


@pytest.fixture
async def routing_db(infra: Infra, routing_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated routing database; yields its URL."""
    name = await _copy_of(infra, routing_template, "routing")
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


@pytest.fixture
async def orders_db(infra: Infra, orders_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated orders database; yields its URL."""
    name = await _copy_of(infra, orders_template, "orders")
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


@pytest.fixture
async def inventory_db(infra: Infra, inventory_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated inventory database; yields its URL."""
    name = await _copy_of(infra, inventory_template, "inventory")
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


@pytest.fixture(scope="session")
async def logistics_template(infra: Infra) -> AsyncIterator[str]:
    name = await _migrated_template(infra, "logistics")
    yield name
    await _drop(infra, name)


@pytest.fixture
async def logistics_db(infra: Infra, logistics_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated logistics database; yields its URL."""
    name = await _copy_of(infra, logistics_template, "logistics")
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


@pytest.fixture
def subject_prefix() -> str:
    return random_ref("t")


@pytest.fixture
def env_without_urls() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NATS_URL")}


@pytest.fixture(scope="session")
async def gateway_template(infra: Infra) -> AsyncIterator[str]:
    name = await _migrated_template(infra, "gateway")
    yield name
    await _drop(infra, name)


@pytest.fixture
async def gateway_db(infra: Infra, gateway_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated gateway database; yields its URL."""
    name = await _copy_of(infra, gateway_template, "gateway")
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


@pytest.fixture(scope="session")
def platform(infra: Infra) -> Iterator[Platform]:
    """The whole platform as `make run` starts it (same code), on free ports, own database and subjects."""
    home = Path(tempfile.mkdtemp(prefix="oms-e2e-"))
    running = Platform(
        infra,
        home,
        subject_prefix=random_ref("e2e"),
        database_names={
            "orders": random_ref("e2e_orders_"),
            "gateway": random_ref("e2e_gateway_"),
            "logistics": random_ref("e2e_logistics_"),
            "aftersales": random_ref("e2e_aftersales_"),
        },
        fixed_ports=False,
    )
    # a deliberately tight read limit for one role no other end-to-end test reads with (a credential
    # may carry known roles only), so the limiter's 429 can be seen quickly
    settings = {
        "RATE_LIMITS": DEFAULT_LIMITS + ",role:carrier.read=1/s:3",
        # failed attempts are audited per window: a short one, so the records can be seen quickly
        "FAILED_ATTEMPT_WINDOW_SECONDS": "2",
        # exports of 2 orders a chunk, 1 s apart: a test's export of a few orders outlasts 5 s
        "EXPORT_CHUNK_ORDERS": "2",
        "EXPORT_CHUNK_PAUSE_SECONDS": "1",
        # the carrier sandbox's compressed timeline: a parcel's seven scans one second apart
        "CARRIER_SANDBOX_STEP_SECONDS": "1",
        # orders polls the channel sandbox every 2 s, so a push that never came is found quickly
        "CHANNEL_POLL_INTERVAL_S": "2",
        # the shipped SLA limits plus an `express` category of seconds (SKUs E2E-SLA-…), checked every
        # second, so a breach and its escalation are seen while a test waits
        "SLA_RULES_FILE": str(Path(__file__).parent / "fixtures" / "sla_rules_e2e.yaml"),
        "SLA_CHECK_SECONDS": "1",
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        running.start()
        yield running
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        running.stop()
        shutil.rmtree(home, ignore_errors=True)
