from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient
from sqlalchemy.ext.asyncio import AsyncEngine

from omsctl.stack import Infra
from services.kit import bus
from services.kit.db import make_engine

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(infra: Infra) -> AsyncIterator[NatsClient]:
    client = await bus.connect(infra.nats_url, "tests")
    yield client
    await client.close()


@pytest.fixture
async def orders_engine(orders_db: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(orders_db, pool_size=5)
    yield engine
    await engine.dispose()
