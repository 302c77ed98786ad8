"""The audit log in the gateway's own Postgres database: append-only, kept at least 180 days."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway import auth
from services.gateway.domain.attempts import FailedAttempts
from services.gateway.domain.audit import AuditRecord
from services.gateway.domain.principal import Caller
from services.gateway.gate import Gate
from services.gateway.store.audit import add_audit, list_audit, purge_audit
from services.gateway.store.uow import GatewayUnitOfWork
from services.kit.db import make_engine
from services.kit.ids import new_id


@pytest.fixture
async def engine(gateway_db: str) -> AsyncIterator[AsyncEngine]:
    created = make_engine(gateway_db)
    yield created
    await created.dispose()


def record(at: datetime, principal: str = "agent-1", trace_id: str = "a" * 32) -> AuditRecord:
    return AuditRecord(
        new_id(), at, principal, "user", ("cs_agent",), "10.0.0.1", "m/Reveal", ("o-1",), "OK", trace_id, ""
    )


class CountingUnitOfWork(GatewayUnitOfWork):
    transactions = 0

    async def commit(self) -> None:
        type(self).transactions += 1
        await super().commit()


def writing_gate(engine: AsyncEngine, **options: Any) -> Gate:
    """A gate that only writes audit records (no tokens, keys or limits are looked at)."""
    return Gate(
        jwt=cast(auth.JwtSettings, None),
        api_keys={},
        signature_window_seconds=300,
        redis=cast(Any, None),
        limiter=cast(Any, None),
        limits={},
        new_uow=lambda: CountingUnitOfWork(engine),
        signer=cast(Any, None),
        **options,
    )


async def test_records_cannot_be_changed_or_deleted_while_young(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await add_audit(conn, record(datetime.now(UTC)))
    for sql in ("UPDATE audit_log SET principal = 'someone-else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError):
            async with engine.begin() as conn:
                await conn.execute(text(sql))
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM audit_log")) == 1


async def test_the_purge_removes_only_records_past_the_retention_and_never_younger_than_180_days(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for age in (10, 179, 200, 400):
            await add_audit(conn, record(now - timedelta(days=age), principal=f"aged-{age}"))
    async with engine.begin() as conn:
        # a retention below the floor is raised to 180 days
        assert await purge_audit(conn, now, timedelta(days=30)) == 2
    async with engine.connect() as conn:
        left = set((await conn.execute(text("SELECT principal FROM audit_log"))).scalars())
    assert left == {"aged-10", "aged-179"}


async def test_the_log_pages_newest_first_and_filters_by_trace(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for n in range(5):
            await add_audit(conn, record(now - timedelta(minutes=n), trace_id=("b" if n == 2 else "c") * 32))
    async with engine.connect() as conn:
        first, token = await list_audit(conn, "", "", "", "", 3, "")
        second, end = await list_audit(conn, "", "", "", "", 3, token)
        traced, _ = await list_audit(conn, "", "", "", "b" * 32, 0, "")
    assert [r.at for r in first + second] == sorted((r.at for r in first + second), reverse=True)
    assert len(first) + len(second) == 5 and end == ""
    assert len(traced) == 1


async def test_failed_attempts_are_written_as_one_counted_record_per_closed_window(
    engine: AsyncEngine,
) -> None:
    clock = [datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC).timestamp()]
    gate = writing_gate(engine, wall=lambda: clock[0], failed_attempts=FailedAttempts(window_seconds=60))
    nobody = auth.Principal(subject="", kind="anonymous", roles=frozenset())
    for _ in range(40):
        gate.failed_attempt_of(nobody, "192.0.2.1", "/s/M", "UNAUTHENTICATED", "bearer_token")

    assert await gate.flush_failed_attempts() == 0
    clock[0] += 60
    assert await gate.flush_failed_attempts() == 1

    async with engine.connect() as conn:
        records, _ = await list_audit(conn, "", "s/M", "", "", 10, "")
    (written,) = records
    assert (written.source_ip, written.result, written.attempts) == ("192.0.2.1", "UNAUTHENTICATED", 40)
    assert written.principal == "anonymous" and written.detail.startswith("40 failed attempts (bearer_token)")


async def test_concurrent_calls_share_audit_transactions_and_each_waits_for_its_own_record(
    engine: AsyncEngine,
) -> None:
    gate = writing_gate(engine)
    caller = Caller(auth.Principal(subject="ops-1", kind="user", roles=frozenset({"ops"})), "10.0.0.9", "r")
    CountingUnitOfWork.transactions = 0

    async def call(number: int) -> int:
        await gate.audit(caller, "/s/Write", "OK", [f"group-commit-{number}"])
        async with engine.connect() as conn:  # answered only once its record is there to read
            found, _ = await list_audit(conn, "", "", f"group-commit-{number}", "", 10, "")
        return len(found)

    assert await asyncio.gather(*(call(n) for n in range(120))) == [1] * 120
    # 120 records; at most AUDIT_WRITERS transactions run at once, the rest wait and go together
    assert CountingUnitOfWork.transactions < 60


async def test_an_audit_that_cannot_be_written_fails_its_call_and_the_next_is_written(
    engine: AsyncEngine,
) -> None:
    unreachable = make_engine("postgresql+asyncpg://oms:oms@127.0.0.1:9/gateway")
    using = [unreachable]
    gate = writing_gate(engine)
    gate.new_uow = lambda: GatewayUnitOfWork(using[0])
    caller = Caller(auth.Principal(subject="ops-1", kind="user", roles=frozenset({"ops"})), "10.0.0.9", "r")
    with pytest.raises(OSError):
        await gate.audit(caller, "/s/Write", "OK", ["refused-audit"], "")
    using[0] = engine
    await gate.audit(caller, "/s/Write", "OK", ["written-audit"], "")
    async with engine.connect() as conn:
        assert len((await list_audit(conn, "", "", "written-audit", "", 10, ""))[0]) == 1
        assert (await list_audit(conn, "", "", "refused-audit", "", 10, ""))[0] == []
    await unreachable.dispose()
