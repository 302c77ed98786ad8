"""Gateway settings, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.gateway.routes import PUBLIC_SERVICES
from services.kit.config import integer, number, optional, required

DEFAULT_PORT = 50050


@dataclass(frozen=True)
class Settings:
    port: int
    upstreams: dict[str, str]
    upstream_deadline_seconds: float
    grace_seconds: float
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            port=integer(env, "PORT", DEFAULT_PORT),
            upstreams={service: required(env, variable) for service, variable in PUBLIC_SERVICES.items()},
            upstream_deadline_seconds=number(env, "UPSTREAM_DEADLINE_SECONDS", 10.0),
            grace_seconds=number(env, "SHUTDOWN_GRACE_SECONDS", 5.0),
            log_level=optional(env, "LOG_LEVEL", "INFO"),
        )
