"""The Grafana dashboard asks only for figures the services serve (a renamed metric empties a panel
without a word otherwise)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import services.gateway.metrics
import services.inventory.metrics
import services.kit.metrics
import services.orders.metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "oms.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def served() -> set[str]:
    assert services.gateway.metrics and services.inventory.metrics
    assert services.kit.metrics and services.orders.metrics
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("oms_")
        for suffix in SUFFIXES.get(family.type, ())
    }


def queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_every_oms_metric_the_dashboard_asks_for_is_served() -> None:
    asked = {name for expr in queries() for name in re.findall(r"\boms_[a-z_]+", expr)}
    assert asked, "the dashboard asks for no oms_ figure"
    assert asked <= served(), f"not served: {sorted(asked - served())}"


def test_the_dashboard_has_the_panels_operations_reads() -> None:
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    for wanted in (
        "Request rate per service",
        "Error rate per service",
        "p99 latency per service",
        "Outbox depth",
        "Relay lag",
        "Consumer lag",
        "Dead letters",
        "Orders created by channel",
    ):
        assert wanted in titles
