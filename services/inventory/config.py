"""Inventory service settings, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.inventory.domain.policy import LowStockScope, Policy
from services.kit.config import CommonSettings, InvalidSetting, integer, number, optional

DEFAULT_PORT = 50052


def _scope(env: Mapping[str, str]) -> LowStockScope:
    scope = optional(env, "LOW_STOCK_SCOPE", LowStockScope.WAREHOUSE.value)
    if scope not in set(LowStockScope):
        raise InvalidSetting("setting LOW_STOCK_SCOPE must be 'warehouse' or 'pool'")
    return LowStockScope(scope)


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    policy: Policy
    sweep_seconds: float
    invariant_check_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        cap_percent = number(env, "RESERVATION_CAP_PERCENT", 95.0)
        if not 0 < cap_percent <= 100:
            raise InvalidSetting("setting RESERVATION_CAP_PERCENT must be in (0, 100]")
        safety_percent = integer(env, "SAFETY_STOCK_PERCENT", 30)
        if not 0 <= safety_percent <= 100:
            raise InvalidSetting("setting SAFETY_STOCK_PERCENT must be in [0, 100]")
        return cls(
            common=CommonSettings.from_env("inventory", DEFAULT_PORT, env),
            policy=Policy(
                reservation_ttl=timedelta(seconds=integer(env, "RESERVATION_TTL_SECONDS", 900)),
                cap_basis_points=round(cap_percent * 100),
                safety_percent=safety_percent,
                low_stock_scope=_scope(env),
            ),
            sweep_seconds=number(env, "EXPIRY_SWEEP_SECONDS", 5.0),
            invariant_check_seconds=number(env, "INVARIANT_CHECK_SECONDS", 600.0),
        )
