"""omsctl — run and inspect the platform.

omsctl up [--fresh]   start everything (embedded Postgres/Redis/NATS unless URLs are given), Ctrl-C stops it
omsctl down           stop what `up` started, even if `up` itself was killed
omsctl status         what runs and its health
omsctl protos         generate gen/ from protos/
omsctl token --sub S --role R [--role R2] [--customer C] [--channel CH]
                      mint a development bearer token with the local stack's JWT key
omsctl trace TRACE_ID what each service logged, the order timeline and the audit log recorded for one trace
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from omsctl import embedded, stack, tokens

DEMO_ORDER = {
    "channel": "CHANNEL_OWN_SHOP",
    "channelOrderId": "DEMO-1001",
    "buyerId": "buyer-42",
    "lines": [
        {
            "sku": "SKU-TEA-250G",
            "title": "Longjing tea 250 g",
            "quantity": 2,
            "unitPrice": {"currencyCode": "CNY", "amountMinor": "8800"},
        }
    ],
    "shippingAddress": {
        "recipientName": "Li Lei",
        "phone": "13800000000",
        "countryCode": "CN",
        "province": "Zhejiang",
        "city": "Hangzhou",
        "district": "Xihu",
        "detail": "1 Wensan Road",
    },
    "shippingFee": {"currencyCode": "CNY", "amountMinor": "1000"},
}


def home() -> Path:
    return Path(os.environ.get("OMS_HOME", stack.ROOT / ".oms")).resolve()


def up(fresh: bool) -> int:
    oms_home = home()
    state = stack.read_state(oms_home)
    if state is not None:
        print("a previous `omsctl up` left processes behind; stopping them first", flush=True)
        stack.stop_from_state(oms_home)
    if fresh:
        stack.reset(oms_home)
    oms_home.mkdir(parents=True, exist_ok=True)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    infra = stack.Infra(oms_home)
    platform = stack.Platform(infra, oms_home)
    code = 0
    try:
        print("starting infrastructure …", flush=True)
        infra.start()
        print("migrating and starting services …", flush=True)
        platform.start()
        stack.write_state(oms_home, infra, platform)
        print_banner(infra, platform, time.monotonic() - started, oms_home)
        while True:
            time.sleep(1.0)
            for process in platform.processes:
                if process.popen.poll() is not None:
                    print(
                        f"{process.name} exited ({process.popen.returncode}); see {process.log_path}",
                        flush=True,
                    )
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
    except Exception as error:
        print(f"start-up failed: {error}", file=sys.stderr, flush=True)
        code = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    platform.stop()
    infra.stop()
    stack.state_path(oms_home).unlink(missing_ok=True)
    print("stopped; nothing left running", flush=True)
    return code


def print_banner(infra: stack.Infra, platform: stack.Platform, seconds: float, oms_home: Path) -> None:
    edge = platform.endpoints["envoy"]
    body = json.dumps(DEMO_ORDER, ensure_ascii=False)
    rows = [
        ("HTTP/JSON, gRPC, gRPC-Web (Envoy)", f"http://{edge}"),
        ("Envoy admin", f"http://{platform.endpoints['envoy-admin']}"),
        *(
            (f"{name} (gRPC)", address)
            for name, address in platform.endpoints.items()
            if not name.startswith("envoy")
        ),
        ("PostgreSQL", infra.database_url),
        ("Redis", infra.redis_url),
        ("NATS JetStream", infra.nats_url),
        ("logs", str(oms_home / "logs")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"\nOMS platform is up in {seconds:.1f} s\n"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    token = tokens.mint(stack.edge_settings(oms_home), "demo-ops", ["ops"], 12 * 3600)
    auth = f"-H 'authorization: Bearer {token}'"
    lines += [
        "",
        "A demo token (role ops, 12 h); mint others with",
        "`.venv/bin/python -m omsctl token --sub me --role admin`:",
        f"  export OMS_TOKEN={token}",
        "",
        'Create an order (a repeat returns the same order with "created": false):',
        f"  curl -s -X POST http://{edge}/v1/orders {auth} -H 'content-type: application/json' -d '{body}'",
        "",
        "Read it back (orderId from the answer above):",
        f"  curl -s {auth} http://{edge}/v1/orders/<orderId>",
        "",
        "Both in one line:",
        f"  curl -s {auth} http://{edge}/v1/orders/$(curl -s -X POST http://{edge}/v1/orders {auth} "
        f"-H 'content-type: application/json' -d '{body}' | python3 -c "
        '\'import json,sys; print(json.load(sys.stdin)["order"]["orderId"])\')',
        "",
        "gRPC without proto files (server reflection through Envoy):",
        f"  .venv/bin/grpcurl -plaintext -H 'authorization: Bearer {token}' {edge} list",
        "",
        "Events: JetStream subject oms.orders.created on " + infra.nats_url,
        "Stop: Ctrl-C here, or `make down` from another terminal.",
    ]
    print("\n".join(lines), flush=True)


def down() -> int:
    stopped = stack.stop_from_state(home())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def status() -> int:
    state = stack.read_state(home())
    if state is None:
        print("not running")
        return 1
    healthy = True
    for entry in state["processes"]:
        alive = embedded.is_running(entry["pid"])
        health = ""
        if alive and entry["name"] in {spec.name for spec in stack.SERVICES}:
            health = stack.health_status(f"127.0.0.1:{entry['port']}")
        elif alive:
            health = "RUNNING"
        healthy &= alive and health in ("SERVING", "RUNNING")
        shown = health if alive else "DEAD"
        print(f"  {entry['name']:<10} pid {entry['pid']:<8} port {entry['port']:<6} {shown}")
    for name, address in state["endpoints"].items():
        print(f"  endpoint {name:<12} {address}")
    return 0 if healthy else 1


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = argparse.ArgumentParser(
        prog="omsctl", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the whole platform; Ctrl-C stops it")
    up_parser.add_argument("--fresh", action="store_true", help="start from empty databases and streams")
    commands.add_parser("down", help="stop what `up` started")
    commands.add_parser("status", help="show what runs and its health")
    commands.add_parser("protos", help="generate gen/ from protos/")
    tokens.add_arguments(commands)
    trace_parser = commands.add_parser(
        "trace", help="gather one trace id's logs, timeline entries and audit records"
    )
    trace_parser.add_argument("trace_id")
    args = parser.parse_args()
    if args.command == "token":
        sys.exit(tokens.run(args, {**stack.edge_settings(home()), **os.environ}))
    if args.command == "trace":
        from omsctl.tracing import show

        sys.exit(show(home(), args.trace_id))
    if args.command == "up":
        sys.exit(up(args.fresh))
    if args.command == "down":
        sys.exit(down())
    if args.command == "status":
        sys.exit(status())
    from omsctl.protos import generate

    sys.exit(generate())


if __name__ == "__main__":
    main()
