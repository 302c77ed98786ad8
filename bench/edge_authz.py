"""Edge benchmark for issue 16's item 3 (`make bench-edge-authz`): what taking the gateway off the data
path would save, measured before building it.

Four paths for the same authenticated GetOrder, one call at a time and in turn (so a machine whose
speed drifts slows all of them alike), in one `make run`-shaped platform:

- `direct`: straight to the orders service with a gateway assertion (no edge at all);
- `gateway_proxy`: through Envoy and the gateway's proxy (the call sends `x-oms-lane: gateway`, which
  takes it past the direct lane), as every call went before the lane;
- `direct_lane`: through Envoy as it runs: its ext_authz asks the gateway's authoriser, then Envoy
  forwards straight to orders;
- `ext_authz`: through a second Envoy whose `ext_authz` filter asks a minimal HTTP authorisation server
  (`serve` below: the bearer token verified, once per token, as the gateway does; the assertion minted)
  and then forwards the call straight to orders.

The minimal server does less than the gateway's gate would (no rate limit, no scope check, no
unknown-field or NUL check), so `ext_authz_added_p50_ms` is a lower bound of that design's cost.
Prints each path's p50 and what it adds to `direct`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.gateway import order_request, sequential
from oms.orders.v1 import orders_pb2_grpc
from omsctl import embedded, tokens
from omsctl.embedded import wait_for_port
from omsctl.envoy import LANE_HEADER
from omsctl.stack import SERVICES, Infra, Platform, edge_settings, identity_settings
from services.gateway.config import DEFAULT_LIMITS
from services.kit.identity import ASSERTION_HEADER, IdentitySettings, Principal, Signer

_MANAGER = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
QUIET = ("--log-level", "warn")
CALLS = int(os.environ.get("BENCH_EDGE_CALLS", "1600"))

_ENVOY = """
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: ext_authz
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {manager}
          stat_prefix: ext_authz
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: orders, timeout: 10s}}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              http_service:
                server_uri: {{uri: "http://127.0.0.1:{authz}", cluster: authz, timeout: 2s}}
                authorization_request:
                  allowed_headers:
                    patterns: [{{exact: authorization}}]
                authorization_response:
                  allowed_upstream_headers:
                    patterns: [{{exact: {assertion}}}]
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: orders
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: orders
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {orders}}}}}}}
  - name: authz
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: authz
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {authz}}}}}}}
"""


def serve(port: int, edge_file: str, identity_file: str) -> None:
    """The minimal authorisation server: 200 with the assertion for a good bearer token, else 401."""
    from aiohttp import web

    from services.gateway import auth

    verified = auth.VerifiedTokens(auth.JwtSettings.from_settings(json.loads(Path(edge_file).read_text())))
    signer = Signer(IdentitySettings.from_env("gateway", json.loads(Path(identity_file).read_text())))

    async def check(request: web.Request) -> web.Response:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            caller = verified.verify(token.strip(), time.time())
        except auth.AuthError:
            return web.Response(status=401)
        assertion = signer.mint(Principal(caller.subject, "user", caller.roles), "orders")
        return web.Response(status=200, headers={ASSERTION_HEADER: assertion})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", check)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-edge-"))
    home.chmod(0o755)
    os.environ["RATE_LIMITS"] = DEFAULT_LIMITS + ",role:ops.read=2000/s:4000"
    os.environ["LOG_LEVEL"] = "WARNING"
    infra = Infra(home, durable=False)
    platform = Platform(infra, home, subject_prefix="benchedge", fixed_ports=False)
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        infra.start()
        platform.start()
        token = tokens.mint(edge_settings(home), "bench", ["ops"], 3600)
        edge_md = (("authorization", f"Bearer {token}"),)
        gateway = next(spec for spec in SERVICES if spec.name == "gateway")
        identity = identity_settings(home, gateway)
        (home / "edge.json").write_text(json.dumps(edge_settings(home)))
        (home / "identity.json").write_text(json.dumps(identity))
        signer = Signer(IdentitySettings.from_env("gateway", identity))
        direct_md = (
            (ASSERTION_HEADER, signer.mint(Principal("bench", "user", frozenset({"ops"})), "orders")),
        )
        authz, listen, admin = _free_port(), _free_port(), _free_port()
        server_files = (str(home / "edge.json"), str(home / "identity.json"))
        helpers.append(
            subprocess.Popen([sys.executable, "-m", "bench.edge_authz", "serve", str(authz), *server_files])
        )
        orders = platform.endpoints["orders"]
        config = home / "ext_authz.yaml"
        config.write_text(
            _ENVOY.format(
                listen=listen,
                admin=admin,
                authz=authz,
                orders=orders.rsplit(":", 1)[1],
                assertion=ASSERTION_HEADER,
                manager=_MANAGER,
            )
        )
        helpers.append(
            subprocess.Popen(
                [embedded.executable("envoy"), "-c", str(config), "--use-dynamic-base-id", *QUIET]
            )
        )
        wait_for_port(authz, 30)
        wait_for_port(listen, 30)

        async def seed() -> str:
            async with grpc.aio.insecure_channel(orders) as channel:
                reply = await orders_pb2_grpc.OrdersServiceStub(channel).IngestOrder(
                    order_request("bench-edge-1"), metadata=direct_md, timeout=10
                )
            return str(reply.order.order_id)

        paths: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
            "direct": (orders, direct_md),
            # the platform's Envoy, told to take the gateway's proxy as every call did before the lane
            "gateway_proxy": (platform.endpoints["envoy"], (*edge_md, (LANE_HEADER, "gateway"))),
            # the platform's Envoy as it runs: its ext_authz asks the gateway's authoriser
            "direct_lane": (platform.endpoints["envoy"], edge_md),
            "ext_authz": (f"127.0.0.1:{listen}", edge_md),
        }
        latencies = asyncio.run(sequential(paths, asyncio.run(seed()), CALLS))
        direct = statistics.median(latencies["direct"]) * 1000
        print(f"direct_p50_ms: {direct:.2f} ms")
        for name in ("gateway_proxy", "direct_lane", "ext_authz"):
            p50 = statistics.median(latencies[name]) * 1000
            print(f"{name}_p50_ms: {p50:.2f} ms")
            print(f"{name}_added_p50_ms: {p50 - direct:.2f} ms")
        print(f"edge_calls_per_path: {CALLS} calls")
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=10)
        platform.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
