"""After-sales' store on real Postgres: a throwaway database per test, copied from one migrated once
per session (its Alembic migrations, as the service runs them), and units of work on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import StringValue
from sqlalchemy.ext.asyncio import AsyncEngine

from omsctl.stack import Infra
from services.aftersales.domain.events import Event
from services.aftersales.store.uow import AftersalesUnitOfWork
from services.kit.clock import Clock, FixedClock
from services.kit.db import make_engine, with_database
from tests.conftest import _copy_of, _drop, _migrated_template
from tests.unit.aftersales.builders import T0


def encode_event(event: Event) -> tuple[str, Message]:
    """A trivial encoder standing in for the mappers': the subject names the event's class, the
    message carries its ticket id."""
    return f"test.aftersales.{type(event).__name__}", StringValue(value=getattr(event, "ticket_id", ""))


@pytest.fixture(scope="session")
async def aftersales_template(infra: Infra) -> AsyncIterator[str]:
    name = await _migrated_template(infra, "aftersales")
    yield name
    await _drop(infra, name)


@pytest.fixture
async def aftersales_db(infra: Infra, aftersales_template: str) -> AsyncIterator[str]:
    """A throwaway, migrated after-sales database; yields its URL."""
    name = await _copy_of(infra, aftersales_template, "aftersales")
    yield with_database(infra.database_url, name)
    await _drop(infra, name)


@pytest.fixture
async def engine(aftersales_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(aftersales_db, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def new_uow(engine: AsyncEngine, clock: Clock) -> Callable[[], AftersalesUnitOfWork]:
    return lambda: AftersalesUnitOfWork(engine, clock, encode_event)
