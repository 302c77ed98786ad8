"""After-sales' Alembic migrations: up creates every table of store/tables.py and the kit's, down
removes them all again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from alembic import command

from omsctl.stack import Infra
from services.aftersales.store.tables import metadata
from services.kit.db import plain_url, with_database
from services.kit.migrate import alembic_config, upgrade
from tests.conftest import _drop, random_ref

pytestmark = pytest.mark.timeout(60)
MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "aftersales" / "migrations"
KIT_TABLES = {"outbox", "inbox", "dead_letters", "idempotency_keys"}


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows} - {"alembic_version"}


async def test_the_migrations_go_up_to_every_table_and_back_down_to_none(infra: Infra) -> None:
    name = random_ref("t_aftersales_migrations_")
    admin = await asyncpg.connect(plain_url(infra.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(infra.database_url, name)
    try:
        await asyncio.to_thread(upgrade, MIGRATIONS, url)
        assert await tables(url) == set(metadata.tables) | KIT_TABLES
        await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, url), "base")
        assert await tables(url) == set()
    finally:
        await _drop(infra, name)
