from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy

from services.kit import bus
from services.kit.bus import StreamLimits
from services.kit.config import CommonSettings
from tests import identity


async def test_a_stream_is_created_with_the_configured_limits(nc: NatsClient, subject_prefix: str) -> None:
    settings = CommonSettings.from_env(
        "orders",
        50051,
        {
            "DATABASE_URL": "postgresql://u@h/orders",
            "NATS_URL": "nats://h:4222",
            "STREAM_MAX_AGE_SECONDS": "3600",
            "STREAM_MAX_BYTES": "1048576",
            "STREAM_DUPLICATE_WINDOW_SECONDS": "120",
            **identity.env("orders"),
        },
    )
    js = nc.jetstream()
    name = await bus.ensure_stream(js, subject_prefix, "orders", settings.streams, owner=True)
    config = (await js.stream_info(name)).config
    assert (config.num_replicas, config.max_age, config.max_bytes, config.duplicate_window) == (
        1,
        3600.0,
        1048576,
        120.0,
    )
    assert config.discard == DiscardPolicy.OLD


async def test_the_owner_updates_changed_limits_and_a_subscriber_leaves_them(
    nc: NatsClient, subject_prefix: str
) -> None:
    js = nc.jetstream()
    name = await bus.ensure_stream(js, subject_prefix, "orders", StreamLimits(max_age_seconds=3600))
    await bus.ensure_stream(js, subject_prefix, "orders", StreamLimits(max_age_seconds=60))
    assert (await js.stream_info(name)).config.max_age == 3600.0
    await bus.ensure_stream(
        js, subject_prefix, "orders", StreamLimits(max_age_seconds=7200, max_bytes=2 << 20), owner=True
    )
    config = (await js.stream_info(name)).config
    assert (config.max_age, config.max_bytes) == (7200.0, 2 << 20)
    assert config.subjects == [f"{subject_prefix}.orders.>"]


async def test_limits_the_server_refuses_leave_the_stream_usable_and_say_why(
    nc: NatsClient, subject_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    js = nc.jetstream()
    name = await bus.ensure_stream(js, subject_prefix, "orders", StreamLimits())
    # a single server cannot keep three copies
    assert await bus.ensure_stream(js, subject_prefix, "orders", StreamLimits(replicas=3), owner=True) == name
    assert (await js.stream_info(name)).config.num_replicas == 1
    assert any("could not change the limits" in record.getMessage() for record in caplog.records)
