"""After-sales service settings, from the environment only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.aftersales.domain.sla import SlaPolicy
from services.aftersales.handlers.common import Policy
from services.aftersales.providers.config import (
    AlipayConfig,
    WechatPayConfig,
    alipay_from_env,
    wechat_from_env,
)
from services.kit.config import CommonSettings, InvalidSetting, number, optional, required

DEFAULT_PORT = 50055


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    orders_address: str
    inventory_address: str
    policy: Policy
    wechat: WechatPayConfig | None
    alipay: AlipayConfig | None
    # how often the refund and restock runners and the SLA sweep look for due work
    runner_seconds: float = 0.5
    sla_seconds: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        respond = number(env, "AFTERSALES_RESPOND_HOURS", 48.0)
        escalate = number(env, "AFTERSALES_ESCALATE_HOURS", 72.0)
        if not 0 < respond < escalate:
            raise InvalidSetting(
                "settings AFTERSALES_RESPOND_HOURS and AFTERSALES_ESCALATE_HOURS: 0 < respond < escalate"
            )
        hold = optional(env, "AFTERSALES_HOLD_NEXT_ORDER", "false").strip().lower()
        if hold not in ("true", "false"):
            raise InvalidSetting("setting AFTERSALES_HOLD_NEXT_ORDER must be true or false")
        query = number(env, "REFUND_QUERY_SECONDS", 60.0)
        retry = number(env, "REFUND_RETRY_SECONDS", 2.0)
        if query <= 0 or retry <= 0:
            raise InvalidSetting("settings REFUND_QUERY_SECONDS and REFUND_RETRY_SECONDS must be above 0")
        policy = Policy(
            sla=SlaPolicy(
                respond_within=timedelta(hours=respond),
                escalate_after=timedelta(hours=escalate),
                hold_next_order=hold == "true",
            ),
            query_every=timedelta(seconds=query),
            retry_delays=tuple(timedelta(seconds=retry * factor) for factor in (1, 5, 30, 150)),
        )
        return cls(
            common=CommonSettings.from_env("aftersales", DEFAULT_PORT, env),
            orders_address=required(env, "ORDERS_SERVICE_ADDR"),
            inventory_address=required(env, "INVENTORY_SERVICE_ADDR"),
            policy=policy,
            wechat=wechat_from_env(env),
            alipay=alipay_from_env(env),
            runner_seconds=number(env, "REFUND_RUNNER_SECONDS", 0.5),
            sla_seconds=number(env, "AFTERSALES_SLA_SWEEP_SECONDS", 60.0),
        )
