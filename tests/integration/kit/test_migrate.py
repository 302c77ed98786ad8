"""Migrations run by several pods at once (Kubernetes starts every replica's init container together on a
first install): each `python -m services.<name> migrate` waits for the others under a Postgres advisory
lock, so all of them succeed and the schema is migrated once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from omsctl.stack import Infra
from services.kit.db import plain_url, with_database
from tests.conftest import _admin, _drop, random_ref

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[3]
# the key services/kit/migrate.py locks: one per database (Postgres keys advisory locks by database too)
LOCK = "SELECT pg_advisory_xact_lock(hashtext('oms-alembic'))"


@pytest.fixture
async def empty_database(infra: Infra) -> AsyncIterator[str]:
    name = random_ref("t_migrate_")
    admin = await _admin(infra)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


def migrate(url: str) -> subprocess.Popen[str]:
    """What each pod's init container runs."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.inventory", "migrate"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    return process.returncode, output


async def revisions(url: str) -> list[str]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
            return []
        return [row["version_num"] for row in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()


async def test_a_migration_waits_while_another_holds_the_lock(empty_database: str) -> None:
    holder = await asyncpg.connect(plain_url(empty_database))
    transaction = holder.transaction()
    await transaction.start()
    await holder.execute(LOCK)
    process = migrate(empty_database)
    try:
        await asyncio.sleep(3)
        assert process.poll() is None, "the migration ran while another held the lock"
        assert await revisions(empty_database) == []
    finally:
        await transaction.rollback()
        await holder.close()
    code, output = await finished(process)
    assert code == 0, output
    assert len(await revisions(empty_database)) == 1


async def test_three_pods_migrating_one_fresh_database_at_once_all_succeed(empty_database: str) -> None:
    processes = [migrate(empty_database) for _ in range(3)]
    results = await asyncio.gather(*(finished(p) for p in processes))
    assert [code for code, _ in results] == [0, 0, 0], "\n".join(output for _, output in results)
    assert len(await revisions(empty_database)) == 1
