from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from services.kit import tracing
from services.kit.clock import FixedClock, SystemClock
from services.kit.config import CommonSettings, InvalidSetting, MissingSetting, settings_or_exit
from services.kit.db import async_url, with_database
from services.kit.ids import is_id, new_id
from services.kit.logs import JsonFormatter
from tests import identity

ENV = {"DATABASE_URL": "postgresql://u@h:5/orders", "NATS_URL": "nats://h:4222", **identity.env("orders")}


def test_missing_settings_are_named() -> None:
    with pytest.raises(MissingSetting, match="NATS_URL"):
        CommonSettings.from_env("orders", 1, {"DATABASE_URL": "postgresql://x"})
    with pytest.raises(InvalidSetting, match="PORT"):
        CommonSettings.from_env("orders", 1, {**ENV, "PORT": "eighty"})
    with pytest.raises(MissingSetting, match="IDENTITY_SIGNING_KEY"):
        CommonSettings.from_env("orders", 1, {**ENV, "IDENTITY_SIGNING_KEY": ""})
    settings = CommonSettings.from_env("orders", 50051, ENV)
    assert (settings.port, settings.subject_prefix, settings.host) == (50051, "oms", "127.0.0.1")
    assert settings.identity.issuer == "orders"
    assert CommonSettings.from_env("orders", 1, {**ENV, "HOST": "0.0.0.0"}).host == "0.0.0.0"


def test_a_service_with_a_missing_setting_exits_with_its_name() -> None:
    def load() -> CommonSettings:
        return CommonSettings.from_env("orders", 1, {})

    with pytest.raises(SystemExit) as exited:
        settings_or_exit(load)
    assert "DATABASE_URL" in str(exited.value.code)


def test_ids_are_time_ordered() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first < second
    assert is_id(first) and not is_id("1234") and not is_id("550e8400-e29b-41d4-a716-446655440000")


def test_the_fixed_clock_moves_only_when_told_and_refuses_naive_times() -> None:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(minutes=15))
    assert clock.now() == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert SystemClock().now().tzinfo is UTC
    with pytest.raises(ValueError):
        FixedClock(datetime(2026, 1, 1))


def test_database_urls_pick_asyncpg_and_swap_the_database() -> None:
    assert async_url("postgres://u:p@h:5432/x") == "postgresql+asyncpg://u:p@h:5432/x"
    assert with_database("postgresql://u:p@h:5432/postgres", "orders") == "postgresql://u:p@h:5432/orders"


def test_trace_context_survives_metadata_and_headers() -> None:
    tracing.setup_tracing("tests")
    with tracing.tracer().start_as_current_span("caller"):
        trace_id = tracing.current_trace_id()
        metadata = tracing.outgoing_metadata()
    context = tracing.context_from_metadata([(k, v.encode()) for k, v in metadata])
    with tracing.tracer().start_as_current_span("callee", context=context):
        assert tracing.current_trace_id() == trace_id
        headers = tracing.outgoing_headers()
    assert tracing.trace_id_of(headers["traceparent"]) == trace_id


def test_log_lines_are_json_with_the_trace_id() -> None:
    tracing.setup_tracing("tests")
    formatter = JsonFormatter("orders")
    with tracing.tracer().start_as_current_span("work"):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "stored %s", ("order-1",), None)
        record.order_id = "order-1"
        line = json.loads(formatter.format(record))
        assert line["trace_id"] == tracing.current_trace_id()
    assert (line["msg"], line["service"], line["order_id"]) == ("stored order-1", "orders", "order-1")


def test_an_exhausted_connection_pool_is_a_retryable_unavailable_and_bugs_stay_opaque() -> None:
    import grpc
    import sqlalchemy.exc

    from services.kit.errors import NotFound
    from services.kit.status import to_status

    assert to_status(sqlalchemy.exc.TimeoutError("QueuePool limit reached"))[0] == grpc.StatusCode.UNAVAILABLE
    assert to_status(NotFound("order 7 not found")) == (grpc.StatusCode.NOT_FOUND, "order 7 not found")
    assert to_status(KeyError("secret")) == (grpc.StatusCode.INTERNAL, "internal error")


def test_stream_and_retention_settings_are_read_and_a_retention_within_the_dedupe_window_is_refused() -> None:
    settings = CommonSettings.from_env(
        "orders", 1, {**ENV, "STREAM_REPLICAS": "3", "OUTBOX_RETENTION_SECONDS": "7200"}
    )
    assert settings.streams.replicas == 3
    assert settings.outbox_retention_seconds == 7200
    assert settings.inbox_retention_seconds == 86400
    with pytest.raises(InvalidSetting, match="INBOX_RETENTION_SECONDS"):
        CommonSettings.from_env(
            "orders", 1, {**ENV, "STREAM_DUPLICATE_WINDOW_SECONDS": "600", "INBOX_RETENTION_SECONDS": "60"}
        )
    with pytest.raises(InvalidSetting, match="STREAM_REPLICAS"):
        CommonSettings.from_env("orders", 1, {**ENV, "STREAM_REPLICAS": "0"})
