"""Render deploy/envoy/envoy.yaml for a local run: ports, the gateway's address, the descriptor path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TRANSCODER = "envoy.filters.http.grpc_json_transcoder"


def render(
    template: Path,
    *,
    listen_port: int,
    admin_port: int,
    gateway_host: str,
    gateway_port: int,
    descriptor: Path,
) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(template.read_text())
    config["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=admin_port)
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "public")
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen_port)
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    transcoder = next(item for item in manager["http_filters"] if item["name"] == TRANSCODER)
    transcoder["typed_config"]["proto_descriptor"] = str(descriptor)
    cluster = next(item for item in config["static_resources"]["clusters"] if item["name"] == "gateway")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"].update(address=gateway_host, port_value=gateway_port)
    return config


def write(config: dict[str, Any], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target
