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

from omsctl.stack import Infra
from services.kit.db import plain_url, with_database
from services.kit.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


def random_ref(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    home = Path(tempfile.mkdtemp(prefix="oms-test-"))
    home.chmod(0o755)
    servers = Infra(home, durable=False)
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(home, ignore_errors=True)


async def _admin(infra: Infra) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(infra.database_url))


@pytest.fixture(scope="session")
async def orders_template(infra: Infra) -> AsyncIterator[str]:
    """Migrated once per session; each test copies it, which is much faster than migrating."""
    name = random_ref("tmpl_orders_")
    conn = await _admin(infra)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    await asyncio.to_thread(
        upgrade, ROOT / "services" / "orders" / "migrations", with_database(infra.database_url, name)
    )
    yield name
    conn = await _admin(infra)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture
async def orders_db(infra: Infra, orders_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated orders database; yields its URL."""
    name = random_ref("t_orders_")
    conn = await _admin(infra)
    await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{orders_template}"')
    await conn.close()
    yield with_database(infra.database_url, name)
    conn = await _admin(infra)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture
def subject_prefix() -> str:
    return random_ref("t")


@pytest.fixture
def env_without_urls() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NATS_URL")}
