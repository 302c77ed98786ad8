"""`omsctl up` wires the channel sandbox: it pushes to Envoy's channel webhooks signed with the gateway's
own channel secrets (and no others), and orders is connected to it with the apps the sandbox checks."""

from __future__ import annotations

import json
from pathlib import Path

from omsctl.stack import SANDBOXES, SERVICES, Infra, Platform, edge_settings
from sandboxes.channels.config import parse
from services.orders.channel_settings import parse_connections
from services.orders.domain.model import Channel

PORTS = {
    "channels": 18030,
    "envoy": 8080,
    "routing": 50053,
    "inventory": 50052,
    "logistics": 50054,
    "orders": 50051,
}


def test_the_channel_sandbox_pushes_to_the_gateway_with_its_channel_secrets_only(tmp_path: Path) -> None:
    spec = next(spec for spec in SANDBOXES if spec.name == "channels")
    assert (spec.default_port, spec.module) == (18030, "sandboxes.channels")

    env = Platform(Infra(tmp_path), tmp_path).sandbox_env(spec, PORTS)
    settings = parse([], env)

    gateway = json.loads(edge_settings(tmp_path)["WEBHOOK_SECRETS"])
    assert settings.push_url == "http://127.0.0.1:8080/v1/webhooks/channels"
    assert set(json.loads(env["CHANNEL_SANDBOX_WEBHOOK_SECRETS"])) == {"channel/taobao", "channel/douyin"}
    assert json.loads(env["CHANNEL_SANDBOX_WEBHOOK_SECRETS"])["channel/taobao"] == gateway["channel/taobao"]
    assert env["CHANNEL_SANDBOX_SEED"] == "random"


def test_orders_is_connected_to_the_sandbox_with_the_apps_it_checks(tmp_path: Path) -> None:
    orders = next(spec for spec in SERVICES if spec.name == "orders")
    infra = Infra(tmp_path)
    infra.database_url = "postgresql://oms@127.0.0.1:5432/postgres"
    infra.nats_url, infra.redis_url = "nats://127.0.0.1:4222", "redis://127.0.0.1:6379"
    platform = Platform(infra, tmp_path)
    sandbox = parse([], platform.sandbox_env(next(s for s in SANDBOXES if s.name == "channels"), PORTS))

    connections = parse_connections(platform.service_env(orders, PORTS)["CHANNEL_CONNECTIONS"])

    assert [c.channel for c in connections] == [Channel.TAOBAO, Channel.DOUYIN]
    for connection in connections:
        app = sandbox.apps[connection.channel.value.lower()]
        assert connection.api_url == "http://127.0.0.1:18030"
        assert (connection.app_key, connection.app_secret, connection.refresh_token) == (
            app.app_key,
            app.app_secret,
            app.refresh_token,
        )
