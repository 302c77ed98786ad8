"""Routing service settings, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import CommonSettings, number, required

DEFAULT_PORT = 50053


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    inventory_address: str
    retry_parked_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            common=CommonSettings.from_env("routing", DEFAULT_PORT, env),
            inventory_address=required(env, "INVENTORY_SERVICE_ADDR"),
            retry_parked_seconds=number(env, "RETRY_PARKED_SECONDS", 2.0),
        )
