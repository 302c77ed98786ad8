"""The contracts others build on: protos lint-clean and fully transcoded, Envoy's config valid, the
events catalogue in sync with the protos."""

from __future__ import annotations

import json
import re
import subprocess
import sysconfig
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from omsctl import embedded, envoy
from services.aftersales import subjects as aftersales_subjects
from services.gateway.routes import EDGE_SERVICES, PUBLIC_SERVICES
from services.inventory import subjects as inventory_subjects
from services.logistics import subjects as logistics_subjects
from services.orders import subjects as orders_subjects
from services.routing import subjects as routing_subjects

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


def test_the_envoy_config_rendered_for_kubernetes_is_valid(tmp_path: Path) -> None:
    config = envoy.render_for_pod(
        envoy.TEMPLATE, ROOT / "gen", {"CORS_ALLOWED_ORIGINS": "https://*.example.com"}
    )
    path = envoy.write(config, tmp_path / "envoy.yaml")
    result = subprocess.run(
        [str(BIN / "envoy"), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("origins", ["*", "https://console.example.com/app", "console.example.com"])
def test_a_cors_setting_that_is_not_a_list_of_origins_is_refused(origins: str) -> None:
    with pytest.raises(ValueError, match="CORS_ALLOWED_ORIGINS"):
        envoy.parse_origins(f"https://ok.example.com,{origins}")


@pytest.fixture
def edge_alone(tmp_path: Path) -> Iterator[str]:
    """Envoy with the real config, its gateway unreachable and a local rate limit of 2 requests."""
    listen, admin = embedded.free_port(), embedded.free_port()
    config = envoy.render(
        envoy.TEMPLATE,
        listen_port=listen,
        admin_port=admin,
        gateway_host="127.0.0.1",
        gateway_port=embedded.free_port(),
        descriptor=ROOT / "gen" / "oms.pb",
        env={"CORS_ALLOWED_ORIGINS": "https://console.example.com"},
    )
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    limiter = next(f for f in manager["http_filters"] if f["name"].endswith("local_ratelimit"))
    limiter["typed_config"]["token_bucket"] = {
        "max_tokens": 2,
        "tokens_per_fill": 1,
        "fill_interval": "3600s",
    }
    path = envoy.write(config, tmp_path / "envoy.yaml")
    process = subprocess.Popen(
        [str(BIN / "envoy"), "-c", str(path), "--use-dynamic-base-id", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        embedded.wait_for_port(listen, 30, process)
        yield f"http://127.0.0.1:{listen}"
    finally:
        process.terminate()
        process.wait(10)


def answer(url: str, method: str = "GET", body: bytes | None = None, **headers: str) -> tuple[int, Any, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_envoys_own_errors_are_json_in_the_services_shape_and_cors_allows_only_listed_origins(
    edge_alone: str,
) -> None:
    answers = {
        "unknown route": answer(f"{edge_alone}/v1/no-such-thing"),
        "too large": answer(
            f"{edge_alone}/v1/orders",
            "POST",
            b"{" + b" " * (1 << 20) + b"}",
            **{"content-type": "application/json"},
        ),
        "gateway down": answer(f"{edge_alone}/v1/order-stats"),
    }
    limited = answer(f"{edge_alone}/v1/order-stats")
    answers["rate limited"] = limited
    codes = {}
    for name, (status, headers, body) in answers.items():
        assert headers["content-type"] == "application/json", name
        document = json.loads(body)
        assert set(document) == {"code", "message", "details"} and document["details"] == [], name
        assert document["message"], name
        codes[name] = (status, document["code"])
    assert codes == {
        "unknown route": (404, 5),
        "too large": (413, 8),
        "gateway down": (503, 14),
        "rate limited": (429, 8),
    }
    assert limited[1]["retry-after"] == "1"
    preflight = {"access-control-request-method": "POST"}
    _, listed, _ = answer(
        f"{edge_alone}/v1/orders", "OPTIONS", origin="https://console.example.com", **preflight
    )
    _, other, _ = answer(f"{edge_alone}/v1/orders", "OPTIONS", origin="https://evil.example.net", **preflight)
    assert listed["access-control-allow-origin"] == "https://console.example.com"
    assert other["access-control-allow-origin"] is None


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
    published = {
        **orders_subjects.PUBLISHED,
        **inventory_subjects.PUBLISHED,
        **routing_subjects.PUBLISHED,
        **logistics_subjects.PUBLISHED,
        **aftersales_subjects.PUBLISHED,
    }
    assert {subject for subject, _ in rows} == {f"oms.{subject}" for subject in published}
    for subject, message in rows:
        assert published[subject.removeprefix("oms.")] == message, f"{subject} is catalogued with {message}"


def test_envoy_believes_only_the_configured_hops_of_x_forwarded_for() -> None:
    def manager(config: dict[str, Any]) -> dict[str, Any]:
        return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]

    local = envoy.render(
        envoy.TEMPLATE,
        listen_port=8080,
        admin_port=9901,
        gateway_host="gateway",
        gateway_port=50050,
        descriptor=ROOT / "gen" / "oms.pb",
        env={},
    )
    deployed = envoy.render_for_pod(envoy.TEMPLATE, ROOT / "gen", {"ENVOY_XFF_TRUSTED_HOPS": "1"})
    assert manager(local)["use_remote_address"] is True
    assert (manager(local)["xff_num_trusted_hops"], manager(deployed)["xff_num_trusted_hops"]) == (0, 1)
    (added,) = manager(local)["route_config"]["request_headers_to_add"]
    assert added["header"]["key"] == "x-oms-client-address"
    assert added["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"
    with pytest.raises(ValueError, match="ENVOY_XFF_TRUSTED_HOPS"):
        envoy.parse_trusted_hops("-1")


def test_the_pods_stats_listener_serves_prometheus_stats_and_nothing_else_of_admin(tmp_path: Path) -> None:
    config = envoy.render_for_pod(envoy.TEMPLATE, ROOT / "gen", {})
    listen, admin, stats = embedded.free_port(), embedded.free_port(), embedded.free_port()
    # the pod's config on free ports (and no gateway to reach): what matters is the stats listener
    config["admin"]["address"]["socket_address"]["port_value"] = admin
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    listeners["public"]["address"]["socket_address"].update(address="127.0.0.1", port_value=listen)
    assert listeners["stats"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9902}
    listeners["stats"]["address"]["socket_address"].update(address="127.0.0.1", port_value=stats)
    clusters = {item["name"]: item for item in config["static_resources"]["clusters"]}
    admin_endpoint = clusters["envoy-admin"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    admin_endpoint["endpoint"]["address"]["socket_address"]["port_value"] = admin
    gateway = clusters["gateway"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    gateway["address"]["socket_address"].update(address="127.0.0.1", port_value=embedded.free_port())
    clusters["gateway"]["type"] = "STATIC"
    path = envoy.write(config, tmp_path / "envoy.yaml")
    process = subprocess.Popen(
        [str(BIN / "envoy"), "-c", str(path), "--use-dynamic-base-id", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        embedded.wait_for_port(stats, 30, process)
        status, _headers, body = answer(f"http://127.0.0.1:{stats}/stats/prometheus")
        assert status == 200 and b"envoy_server_live" in body
        assert answer(f"http://127.0.0.1:{stats}/stats")[0] == 404
        assert answer(f"http://127.0.0.1:{stats}/quitquitquit", "POST", b"")[0] == 404
        assert answer(f"http://127.0.0.1:{stats}/stats/prometheus", "POST", b"")[0] == 404
        assert process.poll() is None, "Envoy is still running"
    finally:
        process.terminate()
        process.wait(10)
