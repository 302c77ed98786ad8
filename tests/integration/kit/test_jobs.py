"""Scheduled jobs on one replica only, and the purge of processed outbox rows and inbox entries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from omsctl.stack import Infra
from services.kit.config import CommonSettings
from services.kit.runtime import Runtime
from services.kit.schema import inbox_table, outbox_table
from tests import identity
from tests.conftest import random_ref
from tests.waiting import eventually


def _settings(database_url: str, infra: Infra, prefix: str, service: str) -> CommonSettings:
    return CommonSettings(
        service_name=service,
        port=0,
        host="127.0.0.1",
        identity=identity.settings("orders"),
        database_url=database_url,
        nats_url=infra.nats_url,
        subject_prefix=prefix,
        grace_seconds=0.5,
        log_level="INFO",
        outbox_retention_seconds=3600,
        inbox_retention_seconds=3600,
    )


@pytest.fixture
async def replicas(orders_db: str, infra: Infra, subject_prefix: str) -> AsyncIterator[list[Runtime]]:
    """Three replicas of one service on one database; a test may stop one (leave its runtime)."""
    service = random_ref("svc")
    runtimes = [Runtime(_settings(orders_db, infra, subject_prefix, service)) for _ in range(3)]
    for runtime in runtimes:
        await runtime.__aenter__()
    yield runtimes
    for runtime in runtimes:
        if not runtime.stop_event.is_set():
            await runtime.__aexit__(None, None, None)


async def test_a_scheduled_job_runs_on_one_replica_per_round_and_moves_when_its_leader_stops(
    replicas: list[Runtime],
) -> None:
    rounds = [0, 0, 0]

    def counter(index: int):  # type: ignore[no-untyped-def]
        async def work() -> None:
            rounds[index] += 1

        return work

    for index, runtime in enumerate(replicas):
        runtime.every("report", 0.1, counter(index), one_replica=True)
    await eventually(lambda: sum(rounds) >= 10)
    assert sorted(rounds)[:2] == [0, 0]
    leader = rounds.index(max(rounds))

    await replicas[leader].__aexit__(None, None, None)
    before = list(rounds)
    await eventually(lambda: sum(rounds) - sum(before) >= 10)
    grown = [now - then for now, then in zip(rounds, before, strict=True)]
    assert grown[leader] == 0
    assert sorted(grown)[:2] == [0, 0]


async def test_a_job_that_every_replica_starts_at_the_same_moment_runs_once(replicas: list[Runtime]) -> None:
    reports: list[int] = []

    def report(index: int):  # type: ignore[no-untyped-def]
        async def work() -> int:
            reports.append(index)
            return index

        return work

    daily = [runtime.leader_only("drift report", report(i)) for i, runtime in enumerate(replicas)]
    for _ in range(3):  # three days
        await asyncio.gather(*(run() for run in daily))
    assert len(reports) == 3 and len(set(reports)) == 1


async def _count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_processed_outbox_rows_and_inbox_entries_are_purged_after_the_retention_in_batches(
    orders_db: str, orders_engine: AsyncEngine, infra: Infra, subject_prefix: str
) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(hours=2), now - timedelta(minutes=10)

    def outbox_row(n: int, published_at: datetime | None) -> dict[str, object]:
        return {
            "event_id": random_ref("e"),
            "subject": "orders.created",
            "event_type": "oms.orders.v1.OrderCreated",
            "payload": b"",
            "occurred_at": old,
            "created_at": old,
            "published_at": published_at,
        }

    async with orders_engine.begin() as conn:
        await conn.execute(
            insert(outbox_table),
            [outbox_row(n, old) for n in range(2500)]
            + [outbox_row(n, recent) for n in range(3)]
            + [outbox_row(n, None) for n in range(4)],  # never published: kept whatever its age
        )
        await conn.execute(
            insert(inbox_table),
            [
                {"consumer": "c", "event_id": random_ref("e"), "subject": "s", "processed_at": old}
                for _ in range(1200)
            ]
            + [
                {"consumer": "c", "event_id": random_ref("e"), "subject": "s", "processed_at": recent}
                for _ in range(5)
            ],
        )
    settings = _settings(orders_db, infra, subject_prefix, random_ref("svc"))
    async with Runtime(settings) as runtime:
        # the runtime's own purge ran at start; once more finds nothing left
        await eventually(lambda: _purged(orders_engine))
        assert await runtime.purge() == (0, 0)
    assert await _count(orders_engine, outbox_table) == 7
    assert await _count(orders_engine, inbox_table) == 5


async def _purged(engine: AsyncEngine) -> bool:
    return await _count(engine, outbox_table) == 7 and await _count(engine, inbox_table) == 5
