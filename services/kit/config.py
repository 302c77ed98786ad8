"""Settings helpers: every setting comes from the environment, and a missing one fails fast by name."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from services.kit.identity import IdentitySettings

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

    @classmethod
    def from_env(
        cls, service_name: str, default_port: int, env: Mapping[str, str] | None = None
    ) -> CommonSettings:
        # imported here: the identity module builds on this one's helpers
        from services.kit.identity import IdentitySettings

        env = os.environ if env is None else env
        return cls(
            service_name=service_name,
            port=integer(env, "PORT", default_port),
            host=optional(env, "HOST", "127.0.0.1"),
            database_url=required(env, "DATABASE_URL"),
            nats_url=required(env, "NATS_URL"),
            subject_prefix=optional(env, "OMS_SUBJECT_PREFIX", "oms"),
            grace_seconds=number(env, "SHUTDOWN_GRACE_SECONDS", 5.0),
            log_level=optional(env, "LOG_LEVEL", "INFO"),
            identity=IdentitySettings.from_env(service_name, env),
        )


def settings_or_exit(load: Callable[[], T]) -> T:
    """Load settings at start-up; a missing or bad one ends the process with its name, not a traceback."""
    try:
        return load()
    except (MissingSetting, InvalidSetting) as error:
        sys.exit(f"configuration error: {error}")
