"""Orders service settings, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.kit.config import CommonSettings

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class Settings:
    common: CommonSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(common=CommonSettings.from_env("orders", DEFAULT_PORT, env))
