"""Render deploy/envoy/envoy.yaml: for a local run (ports, the gateway's address, the descriptor path,
the development CORS origins) and, as `python -m omsctl.envoy --target DIR`, for Envoy's pod in
Kubernetes (the template's addresses kept, CORS origins from the settings, the descriptor copied).

CORS_ALLOWED_ORIGINS is a comma-separated list of origins (`https://console.example.com`); `*` may
stand for the port (`http://localhost:*`) or for one leftmost label of the host
(`https://*.example.com`). A bare `*` (any origin) is refused. None are allowed unless listed, except
that a local run allows a browser on localhost / 127.0.0.1 at any port.

ENVOY_XFF_TRUSTED_HOPS is how many proxies in front of Envoy (a cloud load balancer, …) append the
client's address to x-forwarded-for; Envoy takes the address that many hops from the right and passes
it to the gateway. 0 (the default) means Envoy faces the clients and the connection's peer is the
client; a number larger than the real hops would let a caller choose its own address.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
CORS = "envoy.filters.http.cors"
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "envoy" / "envoy.yaml"
LOCAL_CORS_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>(?:\*\.)?[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>\d+|\*))?"
)


def parse_origins(text: str) -> list[str]:
    origins = [entry.strip().rstrip("/") for entry in text.split(",") if entry.strip()]
    for origin in origins:
        if _ORIGIN.fullmatch(origin) is None:
            raise ValueError(
                f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin such as https://console.example.com "
                "(a bare * is not allowed: list the origins)"
            )
    return origins


def origin_matchers(origins: Sequence[str]) -> list[dict[str, Any]]:
    """Envoy string matchers: exact for a plain origin, an anchored regex where `*` stands in."""
    matchers: list[dict[str, Any]] = []
    for origin in origins:
        match = _ORIGIN.fullmatch(origin)
        if match is None:
            raise ValueError(f"not an origin: {origin!r}")
        if "*" not in origin:
            matchers.append({"exact": origin})
            continue
        host = re.escape(match["host"]).replace(r"\*\.", r"[A-Za-z0-9-]+\.")
        port = "" if match["port"] is None else (r":[0-9]+" if match["port"] == "*" else f":{match['port']}")
        matchers.append({"safe_regex": {"regex": f"{match['scheme']}://{host}{port}"}})
    return matchers


def _manager(config: dict[str, Any]) -> dict[str, Any]:
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "public")
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def set_cors_origins(config: dict[str, Any], origins: Sequence[str]) -> None:
    (virtual_host,) = _manager(config)["route_config"]["virtual_hosts"]
    virtual_host["typed_per_filter_config"][CORS]["allow_origin_string_match"] = origin_matchers(origins)


def parse_trusted_hops(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 10:
        raise ValueError(f"ENVOY_XFF_TRUSTED_HOPS must be a whole number from 0 to 10, not {text!r}")
    return int(text)


def set_trusted_hops(config: dict[str, Any], hops: int) -> None:
    _manager(config)["xff_num_trusted_hops"] = hops


def set_descriptor(config: dict[str, Any], descriptor: Path) -> None:
    transcoder = next(item for item in _manager(config)["http_filters"] if item["name"] == TRANSCODER)
    transcoder["typed_config"]["proto_descriptor"] = str(descriptor)


def render(
    template: Path,
    *,
    listen_port: int,
    admin_port: int,
    gateway_host: str,
    gateway_port: int,
    descriptor: Path,
    env: Mapping[str, str] | None = None,
    upstreams: Mapping[str, tuple[str, int]] | None = None,
    authz: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """The local stack's config; CORS_ALLOWED_ORIGINS replaces the development origins when given."""
    env = os.environ if env is None else env
    config: dict[str, Any] = yaml.safe_load(template.read_text())
    config["admin"]["address"]["socket_address"].update(address="127.0.0.1", port_value=admin_port)
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "public")
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=listen_port)
    set_descriptor(config, descriptor)
    given = env.get("CORS_ALLOWED_ORIGINS")
    set_cors_origins(config, parse_origins(given) if given is not None else list(LOCAL_CORS_ORIGINS))
    set_trusted_hops(config, parse_trusted_hops(env.get("ENVOY_XFF_TRUSTED_HOPS", "0")))
    cluster = next(item for item in config["static_resources"]["clusters"] if item["name"] == "gateway")
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"].update(address=gateway_host, port_value=gateway_port)
    if upstreams is not None and authz is not None:
        add_direct_lane(config, upstreams, authz)
    return config


# ---- the direct lane for reads (services/gateway/edge_authz.py) -----------------------------------

EXT_AUTHZ = "envoy.filters.http.ext_authz"
_EXT_AUTHZ = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
_EXT_AUTHZ_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
_BUFFER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute"
_HTTP2 = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
}
# in a pod: the services' Kubernetes names and ports (deploy/k8s/base), the gateway's authoriser port
POD_UPSTREAMS = {
    "orders": ("orders", 50051),
    "inventory": ("inventory", 50052),
    "routing": ("routing", 50053),
    "logistics": ("logistics", 50054),
    "aftersales": ("aftersales", 50055),
}
AUTHZ_PORT = 52050
POD_AUTHZ = ("gateway", AUTHZ_PORT)
LANE_HEADER = "x-oms-lane"


def direct_methods() -> list[str]:
    """The unary reads Envoy sends straight to their service once the authoriser admitted them."""
    from google.protobuf import descriptor_pool

    from oms.aftersales.v1 import aftersales_pb2  # noqa: F401 - the services described here
    from oms.gateway.v1 import gateway_pb2  # noqa: F401
    from oms.inventory.v1 import inventory_pb2  # noqa: F401
    from oms.logistics.v1 import logistics_pb2  # noqa: F401
    from oms.orders.v1 import orders_pb2  # noqa: F401
    from oms.routing.v1 import routing_pb2  # noqa: F401
    from services.gateway.domain.policy import POLICY, direct_read

    pool = descriptor_pool.Default()
    found = []
    for method in sorted(POLICY):
        service, _, name = method.partition("/")
        described = pool.FindMethodByName(f"{service}.{name}")
        if direct_read(method) and not described.client_streaming and not described.server_streaming:
            found.append(f"/{method}")
    return found


def _cluster(name: str, host: str, port: int, http2: bool) -> dict[str, Any]:
    endpoint = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }
    if http2:
        cluster["typed_extension_protocol_options"] = _HTTP2
    return cluster


def add_direct_lane(
    config: dict[str, Any], upstreams: Mapping[str, tuple[str, int]], authz: tuple[str, int]
) -> None:
    """Each direct read's gRPC route (native, or JSON the transcoder turned into gRPC) to its own
    service, asked of the gateway's authoriser first; the authoriser's `x-oms-lane: gateway` sends
    the call on to the routes below (the gateway's proxy) instead. Every other route leaves ext_authz
    off."""
    manager = _manager(config)
    filters = manager["http_filters"]
    router = next(index for index, item in enumerate(filters) if item["name"] == "envoy.filters.http.router")
    filters.insert(
        router,
        {
            "name": EXT_AUTHZ,
            "typed_config": {
                "@type": _EXT_AUTHZ,
                "transport_api_version": "V3",
                # the authoriser's answer decides the route: direct, or on to the gateway
                "clear_route_cache": True,
                "failure_mode_allow": False,
                "status_on_error": {"code": 503},
                "with_request_body": {"max_request_bytes": 65536, "allow_partial_message": False},
                "http_service": {
                    "server_uri": {
                        "uri": f"http://{authz[0]}:{authz[1]}",
                        "cluster": "gateway-authz",
                        "timeout": "2s",
                    },
                    "path_prefix": "/authz",
                    "authorization_request": {
                        "allowed_headers": {
                            "patterns": [
                                {"exact": "authorization"},
                                {"exact": "x-request-id"},
                                {"exact": "x-oms-json-fields"},
                            ]
                        }
                    },
                    "authorization_response": {
                        "allowed_upstream_headers": {
                            "patterns": [{"exact": LANE_HEADER}, {"exact": "x-oms-assertion"}]
                        }
                    },
                },
            },
        },
    )
    (virtual_host,) = manager["route_config"]["virtual_hosts"]
    virtual_host["typed_per_filter_config"][EXT_AUTHZ] = {"@type": _EXT_AUTHZ_ROUTE, "disabled": True}
    routes = []
    for method in direct_methods():
        service = method.split(".")[1]
        routes.append(
            {
                "match": {
                    "path": method,
                    "headers": [
                        {"name": "content-type", "string_match": {"prefix": "application/grpc"}},
                        {
                            "name": LANE_HEADER,
                            "string_match": {"exact": "gateway"},
                            "invert_match": True,
                            "treat_missing_header_as_empty": True,
                        },
                    ],
                },
                "route": {
                    "cluster": service,
                    "timeout": "30s",
                    "max_stream_duration": {"grpc_timeout_header_max": "30s"},
                },
                "typed_per_filter_config": {
                    "envoy.filters.http.buffer": {"@type": _BUFFER_ROUTE, "disabled": True},
                    EXT_AUTHZ: {"@type": _EXT_AUTHZ_ROUTE, "check_settings": {}},
                },
            }
        )
    virtual_host["routes"] = routes + virtual_host["routes"]
    clusters = config["static_resources"]["clusters"]
    for service, (host, port) in upstreams.items():
        clusters.append(_cluster(service, host, port, http2=True))
    clusters.append(_cluster("gateway-authz", authz[0], authz[1], http2=False))


STATS_PORT = 9902
STATS_PATH = "/stats/prometheus"


_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def add_stats_listener(config: dict[str, Any], port: int = STATS_PORT) -> None:
    """A listener for Prometheus that serves `GET /stats/prometheus` from the admin interface and
    nothing else (404): admin itself stays on loopback, as it is unauthenticated and can stop Envoy."""
    admin = dict(config["admin"]["address"]["socket_address"])
    get_stats = {"path": STATS_PATH, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]}
    routes = [
        {"match": get_stats, "route": {"cluster": "envoy-admin"}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    manager = {
        "@type": _HCM,
        "stat_prefix": "stats",
        "route_config": {"virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    config["static_resources"]["listeners"].append(
        {
            "name": "stats",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "filter_chains": [
                {
                    "filters": [
                        {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
                    ]
                }
            ],
        }
    )
    endpoint = {"endpoint": {"address": {"socket_address": admin}}}
    config["static_resources"]["clusters"].append(
        {
            "name": "envoy-admin",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "envoy-admin", "endpoints": [{"lb_endpoints": [endpoint]}]},
        }
    )


def render_for_pod(template: Path, target: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The deployed config: the template's addresses, the descriptor beside the config, only the
    CORS origins the settings list (none by default), the trusted hops in front of Envoy, and the
    Prometheus stats listener (`STATS_PORT`)."""
    config: dict[str, Any] = yaml.safe_load(template.read_text())
    set_descriptor(config, target / "oms.pb")
    set_cors_origins(config, parse_origins(env.get("CORS_ALLOWED_ORIGINS", "")))
    set_trusted_hops(config, parse_trusted_hops(env.get("ENVOY_XFF_TRUSTED_HOPS", "0")))
    add_direct_lane(config, POD_UPSTREAMS, POD_AUTHZ)
    add_stats_listener(config)
    return config


def write(config: dict[str, Any], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m omsctl.envoy", description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, required=True, help="folder for envoy.yaml and oms.pb")
    parser.add_argument("--descriptor", type=Path, default=ROOT / "gen" / "oms.pb")
    args = parser.parse_args(argv)
    config = render_for_pod(TEMPLATE, args.target, os.environ)
    write(config, args.target / "envoy.yaml")
    shutil.copyfile(args.descriptor, args.target / "oms.pb")


if __name__ == "__main__":
    main()
