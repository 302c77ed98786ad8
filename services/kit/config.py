"""Settings helpers: every setting comes from the environment, and a missing one fails fast by name."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from services.kit.identity import IdentitySettings

from services.kit.bus import StreamLimits

T = TypeVar("T")


class MissingSetting(RuntimeError):
    """A required environment variable is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(f"required setting {name} is not set")
        self.name = name


class InvalidSetting(RuntimeError):
    """An environment variable is set to something unusable."""


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise MissingSetting(name)
    return value


def optional(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def integer(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidSetting(f"setting {name} must be an integer, got {raw!r}") from None


def number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidSetting(f"setting {name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class CommonSettings:
    """What every service needs: where it listens, its database, the event bus, who it is."""

    service_name: str
    port: int
    # loopback unless told otherwise: nothing but the local platform can reach a service
    host: str
    database_url: str
    nats_url: str
    subject_prefix: str
    grace_seconds: float
    log_level: str
    identity: IdentitySettings
    streams: StreamLimits = field(default_factory=StreamLimits)
    # processed outbox rows and inbox entries are kept this long: longer than the stream's duplicate
    # window, so an event re-sent or redelivered late is still recognised
    outbox_retention_seconds: float = 86400.0
    inbox_retention_seconds: float = 86400.0
    purge_every_seconds: float = 600.0
    readiness_check_seconds: float = 2.0
    # connections kept open to the database; past them a few more are opened for a burst and closed
    # again (each costs Postgres a new backend), so the pool is sized for the service's usual load
    db_pool_size: int = 30
    db_pool_overflow: int = 10
    # `GET /metrics` (Prometheus) on this port, on `host`; 0: not served
    metrics_port: int = 0

    @classmethod
    def from_env(
        cls, service_name: str, default_port: int, env: Mapping[str, str] | None = None
    ) -> CommonSettings:
        # imported here: the identity module builds on this one's helpers
        from services.kit.identity import IdentitySettings

        env = os.environ if env is None else env
        defaults = StreamLimits()
        streams = StreamLimits(
            replicas=integer(env, "STREAM_REPLICAS", defaults.replicas),
            max_age_seconds=number(env, "STREAM_MAX_AGE_SECONDS", defaults.max_age_seconds),
            max_bytes=integer(env, "STREAM_MAX_BYTES", defaults.max_bytes),
            duplicate_window_seconds=number(
                env, "STREAM_DUPLICATE_WINDOW_SECONDS", defaults.duplicate_window_seconds
            ),
        )
        if not 1 <= streams.replicas <= 5:
            raise InvalidSetting("setting STREAM_REPLICAS must be between 1 and 5")
        port = integer(env, "PORT", default_port)
        settings = cls(
            service_name=service_name,
            port=port,
            host=optional(env, "HOST", "127.0.0.1"),
            database_url=required(env, "DATABASE_URL"),
            nats_url=required(env, "NATS_URL"),
            subject_prefix=optional(env, "OMS_SUBJECT_PREFIX", "oms"),
            grace_seconds=number(env, "SHUTDOWN_GRACE_SECONDS", 5.0),
            log_level=optional(env, "LOG_LEVEL", "INFO"),
            identity=IdentitySettings.from_env(service_name, env),
            streams=streams,
            outbox_retention_seconds=number(env, "OUTBOX_RETENTION_SECONDS", 86400.0),
            inbox_retention_seconds=number(env, "INBOX_RETENTION_SECONDS", 86400.0),
            purge_every_seconds=number(env, "PURGE_EVERY_SECONDS", 600.0),
            readiness_check_seconds=number(env, "READINESS_CHECK_SECONDS", 2.0),
            db_pool_size=integer(env, "DB_POOL_SIZE", 30),
            db_pool_overflow=integer(env, "DB_POOL_OVERFLOW", 10),
            metrics_port=integer(env, "METRICS_PORT", default_metrics_port(port)),
        )
        if not 0 <= settings.metrics_port < 65536:
            raise InvalidSetting("setting METRICS_PORT must be a port number, or 0 to serve no metrics")
        if not 1 <= settings.db_pool_size <= 200 or not 0 <= settings.db_pool_overflow <= 200:
            raise InvalidSetting("setting DB_POOL_SIZE must be 1–200 and DB_POOL_OVERFLOW 0–200")
        for name, kept in (
            ("OUTBOX_RETENTION_SECONDS", settings.outbox_retention_seconds),
            ("INBOX_RETENTION_SECONDS", settings.inbox_retention_seconds),
        ):
            if kept <= streams.duplicate_window_seconds:
                raise InvalidSetting(
                    f"setting {name} ({kept:g}s) must be longer than the stream's duplicate window "
                    f"STREAM_DUPLICATE_WINDOW_SECONDS ({streams.duplicate_window_seconds:g}s)"
                )
        return settings


# the metrics port sits this far above the gRPC port unless METRICS_PORT says otherwise (50051: 51051)
METRICS_PORT_OFFSET = 1000


def default_metrics_port(grpc_port: int) -> int:
    """Beside the gRPC port; none for a server on a free port (PORT=0), which has no port to be beside."""
    if grpc_port <= 0 or grpc_port + METRICS_PORT_OFFSET >= 65536:
        return 0
    return grpc_port + METRICS_PORT_OFFSET


def settings_or_exit(load: Callable[[], T]) -> T:
    """Load settings at start-up; a missing or bad one ends the process with its name, not a traceback."""
    try:
        return load()
    except (MissingSetting, InvalidSetting) as error:
        sys.exit(f"configuration error: {error}")
