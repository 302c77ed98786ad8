"""`omsctl up`'s banner lists each service's metrics URL and Envoy's Prometheus stats."""

from __future__ import annotations

from pathlib import Path

import pytest

from omsctl.__main__ import print_banner
from omsctl.stack import Infra, Platform


def test_the_banner_lists_every_metrics_url_and_envoys_stats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    infra = Infra(tmp_path)
    infra.database_url = "postgresql://oms@127.0.0.1:36669/postgres"
    infra.redis_url, infra.nats_url = "redis://127.0.0.1:48941/0", "nats://127.0.0.1:56983"
    platform = Platform(infra, tmp_path)
    platform.endpoints = {
        "envoy": "127.0.0.1:8080",
        "envoy-admin": "127.0.0.1:9901",
        "orders": "127.0.0.1:50051",
    }
    platform.metrics = {"orders": "127.0.0.1:51051", "gateway": "127.0.0.1:51050"}
    print_banner(infra, platform, 9.3, tmp_path)
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["orders", "metrics", "http://127.0.0.1:51051/metrics"] in lines
    assert ["gateway", "metrics", "http://127.0.0.1:51050/metrics"] in lines
    assert ["Envoy", "stats", "(Prometheus)", "http://127.0.0.1:9901/stats/prometheus"] in lines
