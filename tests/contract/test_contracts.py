"""The contracts others build on: protos lint-clean and fully transcoded, Envoy's config valid, the
events catalogue in sync with the protos."""

from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from omsctl import envoy
from services.gateway.routes import EDGE_SERVICES, PUBLIC_SERVICES
from services.orders import messages as orders_messages

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sysconfig.get_path("scripts"))


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen" / "oms.pb").read_bytes())


def test_protos_are_buf_lint_clean() -> None:
    result = subprocess.run([str(BIN / "buf"), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_envoy_config_is_valid(tmp_path: Path) -> None:
    config = envoy.render(
        ROOT / "deploy" / "envoy" / "envoy.yaml",
        listen_port=8080,
        admin_port=9901,
        gateway_host="gateway",
        gateway_port=50050,
        descriptor=ROOT / "gen" / "oms.pb",
    )
    path = envoy.write(config, tmp_path / "envoy.yaml")
    result = subprocess.run(
        [str(BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_every_public_service_is_transcoded_and_every_rpc_has_an_http_route() -> None:
    config = envoy.render(
        ROOT / "deploy" / "envoy" / "envoy.yaml",
        listen_port=1,
        admin_port=2,
        gateway_host="gateway",
        gateway_port=3,
        descriptor=Path("x"),
    )
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    transcoder = next(f for f in manager["http_filters"] if f["name"] == envoy.TRANSCODER)
    assert set(transcoder["typed_config"]["services"]) == set(EDGE_SERVICES)
    services = {
        f"{file.package}.{service.name}": service
        for file in descriptor_set().file
        for service in file.service
    }
    for name in PUBLIC_SERVICES:
        for method in services[name].method:
            rule = method.options.Extensions[annotations_pb2.http]
            assert rule.WhichOneof("pattern"), f"{name}.{method.name} has no google.api.http annotation"


def test_the_events_catalogue_lists_exactly_the_event_messages() -> None:
    in_protos = {
        f"{file.package}.{message.name}"
        for file in descriptor_set().file
        if file.name.endswith("/events.proto")
        for message in file.message_type
    }
    catalogue = (ROOT / "docs" / "events.md").read_text()
    rows = re.findall(r"^\| `(oms\.[a-z_]+\.[a-z_.]+)` \| `(oms\.[\w.]+)` \|", catalogue, flags=re.MULTILINE)
    assert {message for _, message in rows} == in_protos
    for subject, message in rows:
        domain = message.split(".")[1]
        assert subject.startswith(f"oms.{domain}."), f"{subject} is not on its domain's stream"
        assert f"### `{message}`" in catalogue, f"{message} has no field table"
    listed = {subject for subject, _ in rows}
    for subject in orders_messages.SUBJECTS:
        assert f"oms.{subject}" in listed, f"oms.{subject} is published but not catalogued"
