"""omsctl — run and inspect the platform.

omsctl up [--fresh] [--empty] [--no-demo]
                      start everything (embedded Postgres/Redis/NATS unless URLs are given), load the
                      demo catalogue (not with --empty) and run `omsctl demo` in the background (not
                      with --empty or --no-demo), keep it running; Ctrl-C stops it
omsctl demo [--orders N] [--seconds S] [--seed N]
                      drive a bounded stream of orders through the running stack and its sandboxes
                      (channels, payments, routing, waybills, tracking, returns, refunds, risk holds,
                      a stuck order, a silent channel) so every queue has something: docs/demo.md
omsctl down           stop what `up` started, even if `up` itself was killed
omsctl status         what runs, its health and each service's key figures (exit 0 when healthy or stopped)
omsctl restart NAME   restart one process of the running stack (a service, envoy, postgres, …)
omsctl env            `export` lines for the endpoints and a token: eval "$(omsctl env)"
omsctl protos         generate gen/ from protos/
omsctl contracts [--check]
                      write docs/contracts/asyncapi.yaml and openapi.json from the protos and the services'
                      subjects tables (--check: write nothing, exit 1 when one is stale): docs/contracts.md
omsctl token --sub S --role R [--role R2] [--customer C] [--channel CH]
                      mint a development bearer token with the local stack's JWT key
omsctl k8s-secrets [--home DIR]
                      the Secrets of the Kubernetes dev overlay, with development values:
                      `omsctl k8s-secrets | kubectl apply -f -` (deploy/k8s/README.md)
omsctl trace TRACE_ID what each service logged, the order timeline and the audit log recorded for one trace
omsctl payments [show | set PROVIDER SWITCH=VALUE … | reset | refunds | pay PROVIDER TRADE FEN]
                      the payment sandbox's switches (latency, SYSTEM_ERROR, timeouts after a refund
                      was accepted, CLOSED/ABNORMAL refunds, late or duplicate notifications, …)
omsctl channels [show | set CHANNEL SWITCH=VALUE … | reset | revoke CHANNEL | orders | make CHANNEL N [P]]
                      the channel sandbox: make orders and push some of them, token expiry, error
                      spikes, slow answers, a push that stops, growing payloads: docs/sandboxes.md
omsctl carriers [show | set CARRIER SWITCH=VALUE … | reset | waybills [--carrier C] [--order O]]
                      the carrier sandbox's misbehaviour switches (latency, failures, timeouts, dead
                      carriers, 429s, duplicate or reordered pushes, …): docs/sandboxes.md
omsctl sms [show | set SWITCH=VALUE … | reset | messages [--phone P]]
                      the SMS sandbox: its switches (latency, failures, throttling) and the texts it got
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from omsctl import embedded, k8s, stack, tokens, users

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


def up(fresh: bool, empty: bool = False, with_demo: bool = True) -> int:
    oms_home = home()
    state = stack.read_state(oms_home)
    if state is not None:
        print("a previous `omsctl up` left processes behind; stopping them first", flush=True)
        stack.stop_from_state(oms_home)
    if fresh:
        stack.reset(oms_home)
    oms_home.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(oms_home / "restart-requests", ignore_errors=True)
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
    ports = stack.PortBook.kept_in(oms_home)
    infra = stack.Infra(oms_home, ports=ports)
    platform = stack.Platform(infra, oms_home, ports=ports)
    code = 0
    demo_run: embedded.Process | None = None
    try:
        print("starting infrastructure …", flush=True)
        infra.start()
        print("migrating and starting services …", flush=True)
        platform.start()
        stack.write_state(oms_home, infra, platform)
        for note in ports.notes:
            print(note, flush=True)
        loaded = None
        if not empty:
            from omsctl import catalogue

            loaded = catalogue.load(platform)
            if with_demo:
                demo_run = start_demo(oms_home)
        print_banner(
            infra,
            platform,
            time.monotonic() - started,
            oms_home,
            loaded,
            demo_log=demo_run.log_path if demo_run else None,
            demo_skipped=not with_demo,
        )
        supervisor = stack.Supervisor(
            oms_home,
            [*infra.processes(), *platform.processes],
            say=lambda line: _say(time.strftime("%H:%M:%S ") + line),
            changed=lambda: stack.write_state(oms_home, infra, platform),
        )
        while True:
            time.sleep(0.2)
            supervisor.tick()
            if demo_run is not None and demo_run.popen.poll() is not None:
                _demo_finished(demo_run)
                demo_run = None
    except KeyboardInterrupt:
        _say("\nstopping …")
    except Exception as error:
        _say(f"start-up failed: {error}", sys.stderr)
        code = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if demo_run is not None:
        demo_run.stop()
    platform.stop()
    infra.stop()
    stack.state_path(oms_home).unlink(missing_ok=True)
    _say("stopped; nothing left running")
    return code


def start_demo(oms_home: Path) -> embedded.Process:
    """`omsctl demo` in the background, once the catalogue is in: the banner and the supervision wait for
    nothing, its lines go to logs/demo.log, and it stops with `up` (or when `up` dies)."""
    # OMS_DEMO_ORDERS / OMS_DEMO_SECONDS size it (a small machine, a test); the demo's defaults otherwise
    sized = [
        *(["--orders", os.environ["OMS_DEMO_ORDERS"]] if os.environ.get("OMS_DEMO_ORDERS") else []),
        *(["--seconds", os.environ["OMS_DEMO_SECONDS"]] if os.environ.get("OMS_DEMO_SECONDS") else []),
    ]
    return embedded.spawn(
        "demo",
        [embedded.python(), "-m", "omsctl", "demo", *sized],
        oms_home / "logs",
        env=embedded.python_env(stack.ROOT, {"OMS_HOME": str(oms_home)}),
        cwd=stack.ROOT,
    )


def _demo_finished(run: embedded.Process) -> None:
    """Say that the background demo ended, with its closing summary (the last block of its log)."""
    try:
        text = run.log_path.read_text(errors="replace")
    except OSError:
        text = ""
    summary = text.rstrip().rsplit("\n\n", 1)[-1] if "\n\n" in text else ""
    code = run.popen.returncode
    _say(time.strftime("%H:%M:%S ") + f"the demo ended (exit {code}); its lines are in {run.log_path}")
    if summary.startswith("demo "):
        _say(summary)


def _say(line: str, stream: TextIO | None = None) -> None:
    """Print, but never let a closed terminal or pipe (BrokenPipeError) skip stopping the children."""
    with contextlib.suppress(OSError):
        print(line, file=stream or sys.stdout, flush=True)


def print_banner(
    infra: stack.Infra,
    platform: stack.Platform,
    seconds: float,
    oms_home: Path,
    loaded: object = None,
    demo_log: Path | None = None,
    demo_skipped: bool = False,
) -> None:
    edge = platform.endpoints["envoy"]
    body = json.dumps(DEMO_ORDER, ensure_ascii=False)
    rows = [
        ("Web console (sign in below)", f"http://{edge}/console"),
        ("HTTP/JSON, gRPC, gRPC-Web (Envoy)", f"http://{edge}"),
        ("Envoy admin", f"http://{platform.endpoints['envoy-admin']}"),
        ("Envoy stats (Prometheus)", f"http://{platform.endpoints['envoy-admin']}/stats/prometheus"),
        *(
            (f"{name} (gRPC)", address)
            for name, address in platform.endpoints.items()
            if name in stack.SERVICE_NAMES
        ),
        *((f"{name} metrics", f"http://{address}/metrics") for name, address in platform.metrics.items()),
        *(
            (sandbox.label, f"http://{platform.endpoints[sandbox.name]}")
            for sandbox in stack.SANDBOXES
            if sandbox.name in platform.endpoints
        ),
        ("PostgreSQL", infra.database_url),
        ("Redis", infra.redis_url),
        ("NATS JetStream", infra.nats_url),
        ("logs", str(oms_home / "logs")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"\nOMS platform is up in {seconds:.1f} s\n"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    if loaded is not None:
        from omsctl.catalogue import Loaded

        assert isinstance(loaded, Loaded)
        lines += ["", f"Demo catalogue (omsctl/demo_catalogue.yaml): {loaded.summary()}"]
        lines += [f"  note: {note}" for note in loaded.notes]
        lines += [
            "",
            f"Console sign-ins (http://{edge}/console; more with `omsctl user add`):",
            *(
                f"  {user['sub']} / {user['password']}  ({', '.join(user['roles'])})"
                for user in loaded.logins
            ),
        ]
    else:
        lines += ["", "No demo catalogue (--empty): create warehouses, SKUs and stock first"]
    demo_lines: list[str] = []
    if demo_log is not None:
        demo_lines = [
            "",
            "The demo runs in the background (`omsctl demo`: 60 orders on four channels, payments,",
            "waybills, tracking, refunds, risk holds, a stuck order, a silent channel; at most 90 s);",
            "`make demo` runs it again, `make run ARGS=--no-demo` skips it. Watch it (docs/demo.md):",
            f"  in the console: http://{edge}/console (demo-ops / demo-ops-pass; queues, 360°, dashboard)",
            f"  tail -f {demo_log}",
            "  .venv/bin/python -m omsctl events",
            f'  curl -s -H "authorization: Bearer $OMS_TOKEN" http://{edge}/v1/order-stats',
            "",
        ]
    elif loaded is not None and demo_skipped:
        demo_lines = ["", "No demo (--no-demo): `make demo` drives a stream of orders through the stack", ""]
    token = tokens.mint(stack.edge_settings(oms_home), "demo-ops", ["ops"], 12 * 3600)
    auth = f"-H 'authorization: Bearer {token}'"
    lines += [
        "",
        "A demo token (role ops, 12 h); mint others with",
        "`.venv/bin/python -m omsctl token --sub me --role admin`:",
        f"  export OMS_TOKEN={token}",
        "",
        "Endpoints and that token in your shell (OMS_HTTP, OMS_TOKEN, …):",
        '  eval "$(.venv/bin/python -m omsctl env)"',
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
        'Pay it, see it allocated and its events: README.md, "Your first order".',
        'Shipments, waybills, pick lists and tracking: README.md, "Logistics"; the carrier sandbox\'s',
        "switches: .venv/bin/python -m omsctl carriers set sf latency_ms=50 failure_rate=0.05",
        "Events: .venv/bin/python -m omsctl events  (JetStream oms.orders.> on " + infra.nats_url + ")",
        *demo_lines,
        "Stop: Ctrl-C here, or `make down` from another terminal.",
    ]
    print("\n".join(lines), flush=True)


def demo(orders: int, seconds: float, seed: int | None) -> int:
    """Drive the demo's orders through the running stack (omsctl/demo.py)."""
    state = _running_state()
    if state is None:
        print("OMS platform is stopped; `make run` starts it", file=sys.stderr)
        return 1
    from omsctl import demo as driver

    endpoints: dict[str, str] = state["endpoints"]  # type: ignore[assignment]
    return driver.run(endpoints, stack.edge_settings(home()), orders, seconds, seed)


def down() -> int:
    oms_home = home()
    stopped = stack.stop_from_state(oms_home)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    outside = embedded.remove_outside(oms_home / "postgres")
    if outside is not None:
        print(f"removed Postgres's own folder {outside} (kept outside the private home)")
    return 0


def _running_state() -> dict[str, object] | None:
    """The state of a stack whose supervisor (or at least one of its processes) still runs."""
    state = stack.read_state(home())
    if state is None:
        return None
    if embedded.is_running(int(state.get("omsctl_pid") or 0) or -1) or any(
        embedded.is_running(entry["pid"]) for entry in state["processes"]
    ):
        return state
    return None


def status() -> int:
    """Exit 0 when everything is healthy or the platform is cleanly stopped; 1 when part of it is down."""
    state = stack.read_state(home())
    if _running_state() is None:
        left = " (a killed `omsctl up` left a state file; `make down` clears it)" if state else ""
        print(f"OMS platform is stopped{left}")
        return 0
    assert state is not None
    healthy = True
    for entry in state["processes"]:
        alive = embedded.is_running(entry["pid"])
        health = ""
        if alive and entry["name"] in stack.SERVICE_NAMES:
            health = stack.health_status(f"127.0.0.1:{entry['port']}")
        elif alive:
            health = "RUNNING"
        healthy &= alive and health in ("SERVING", "RUNNING")
        shown = health if alive else "DEAD"
        print(f"  {entry['name']:<10} pid {entry['pid']:<8} port {entry['port']:<6} {shown}")
    for name, address in state["endpoints"].items():
        print(f"  endpoint {name:<12} {address}")
    if state.get("metrics"):
        from omsctl import figures

        print("figures since each service started (its /metrics; docs/observability.md):")
        print("\n".join(figures.lines(state["metrics"].items())))
    return 0 if healthy else 1


def restart(name: str, timeout: float = 60.0) -> int:
    """Ask the running supervisor to restart one process: it is stopped here and started again there."""
    state = _running_state()
    if state is None:
        print("OMS platform is stopped; `make run` starts it", file=sys.stderr)
        return 1
    entries = {entry["name"]: entry for entry in state["processes"]}  # type: ignore[attr-defined]
    if name not in entries:
        print(f"no process {name!r}; one of: {', '.join(entries)}", file=sys.stderr)
        return 2
    old = entries[name]
    began = time.monotonic()
    request = stack.restart_request(home(), name)
    request.parent.mkdir(parents=True, exist_ok=True)
    request.touch()
    embedded.stop_pid(old["pid"], signal.SIGINT if name == "postgres" else signal.SIGTERM)
    deadline = began + timeout
    while time.monotonic() < deadline:
        now = stack.read_state(home()) or {"processes": []}
        new = next((e for e in now["processes"] if e["name"] == name), None)
        if new and new["pid"] != old["pid"] and stack.ready_at(name, new["port"]):
            print(
                f"{name} restarted on port {new['port']} (pid {old['pid']} → {new['pid']}) "
                f"in {time.monotonic() - began:.1f} s"
            )
            return 0
        time.sleep(0.1)
    print(f"{name} did not come back within {timeout:.0f} s; see {old['log']}", file=sys.stderr)
    return 1


def sign(sender: str, timestamp: str, body: str) -> int:
    """Hex HMAC-SHA256 of "<timestamp>\\n<body>" with the sender's webhook secret, as the gateway checks."""
    import base64
    import hashlib
    import hmac

    secrets = json.loads(stack.edge_settings(home()).get("WEBHOOK_SECRETS", "{}"))
    # `payment/wechat_pay`, or just `wechat_pay` when one kind has that sender
    matches = [name for name in secrets if name == sender or name.partition("/")[2] == sender]
    if len(matches) != 1:
        print(
            f"no single webhook secret for {sender!r}; senders: {', '.join(sorted(secrets))}", file=sys.stderr
        )
        return 2
    key = base64.b64decode(secrets[matches[0]])
    print(hmac.new(key, timestamp.encode() + b"\n" + body.encode(), hashlib.sha256).hexdigest())
    return 0


def env(subject: str, roles: list[str], ttl: int) -> int:
    """`export` lines for the running stack's endpoints and a token: `eval "$(omsctl env)"`."""
    state = _running_state()
    if state is None:
        print("OMS platform is stopped; `make run` starts it", file=sys.stderr)
        return 1
    endpoints: dict[str, str] = state["endpoints"]  # type: ignore[assignment]
    urls: dict[str, str] = state["urls"]  # type: ignore[assignment]
    values = {
        "OMS_HTTP": f"http://{endpoints['envoy']}",
        "OMS_GRPC": endpoints["envoy"],
        "OMS_ADMIN": f"http://{endpoints['envoy-admin']}",
        **{f"OMS_{name.upper()}_ADDR": endpoints[name] for name in stack.SERVICE_NAMES if name in endpoints},
        **{
            f"OMS_{name.upper()}_URL": f"http://{endpoints[name]}"
            for name in stack.SANDBOX_NAMES
            if name in endpoints
        },
        "OMS_DATABASE_URL": urls["DATABASE_URL"],
        "OMS_REDIS_URL": urls["REDIS_URL"],
        "OMS_NATS_URL": urls["NATS_URL"],
        "OMS_SUBJECT_PREFIX": str(state.get("subject_prefix") or "oms"),
        "OMS_TOKEN": tokens.mint(stack.edge_settings(home()), subject, roles, ttl),
    }
    for name in sorted(values):
        print(f"export {name}={shlex.quote(values[name])}")
    return 0


def _switches(words: list[str]) -> dict[str, object]:
    switches: dict[str, object] = {}
    for word in words:
        name, _, raw = word.partition("=")
        try:
            switches[name] = json.loads(raw)
        except ValueError:
            switches[name] = raw  # a text value: timeout_mode=drop, push_url=http://…
    return switches


def _control(sandbox: str, path: str, body: dict[str, object] | None = None) -> int:
    """One call to a running sandbox's control API (`/_control…`), its JSON answer printed."""
    import urllib.error
    import urllib.request

    state = _running_state()
    endpoints: dict[str, str] = state["endpoints"] if state else {}  # type: ignore[assignment]
    if sandbox not in endpoints:
        print(f"the {sandbox} sandbox is not running; `make run` starts it", file=sys.stderr)
        return 1
    request = urllib.request.Request(
        f"http://{endpoints[sandbox]}/_control{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="POST" if body is not None else "GET",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            print(json.dumps(json.load(reply), indent=2, ensure_ascii=False))
    except urllib.error.HTTPError as error:
        print(error.read().decode("utf-8", "replace"), file=sys.stderr)
        return 2
    return 0


def carriers(action: str, words: list[str], carrier: str = "", order: str = "") -> int:
    """The carrier sandbox's control API: show, set switches, reset, list waybills."""
    import urllib.parse

    if action == "show":
        return _control("carriers", "")
    if action == "reset":
        return _control("carriers", "/reset", {})
    if action == "waybills":
        query = urllib.parse.urlencode({k: v for k, v in (("carrier", carrier), ("order_id", order)) if v})
        return _control("carriers", "/waybills" + (f"?{query}" if query else ""))
    if len(words) < 2 or any("=" not in word for word in words[1:]):
        print("usage: omsctl carriers set CARRIER SWITCH=VALUE [SWITCH=VALUE …]", file=sys.stderr)
        return 2
    return _control("carriers", f"/{urllib.parse.quote(words[0])}", _switches(words[1:]))


def payments(action: str, words: list[str]) -> int:
    """The payment sandbox's control API: show, set switches, reset, list refunds, pay a trade."""
    import urllib.parse

    if action == "show":
        return _control("payments", "")
    if action == "reset":
        return _control("payments", "/reset", {})
    if action == "refunds":
        return _control("payments", "/refunds")
    if action == "pay":
        if len(words) != 3 or not words[2].isdigit():
            print("usage: omsctl payments pay PROVIDER OUT_TRADE_NO AMOUNT_IN_FEN", file=sys.stderr)
            return 2
        provider, trade, amount = words
        return _control(
            "payments", "/payments", {"provider": provider, "out_trade_no": trade, "amount": int(amount)}
        )
    if len(words) < 2 or any("=" not in word for word in words[1:]):
        print("usage: omsctl payments set PROVIDER SWITCH=VALUE [SWITCH=VALUE …]", file=sys.stderr)
        return 2
    return _control("payments", f"/{urllib.parse.quote(words[0])}", _switches(words[1:]))


def channels(action: str, words: list[str]) -> int:
    """The channel sandbox's control API: show, set switches, reset, revoke tokens, list or make orders."""
    import urllib.parse

    if action == "show":
        return _control("channels", "")
    if action == "reset":
        return _control("channels", "/reset", {})
    if action == "orders":
        return _control("channels", "/orders")
    if action == "revoke":
        if len(words) != 1:
            print("usage: omsctl channels revoke CHANNEL", file=sys.stderr)
            return 2
        return _control("channels", f"/{urllib.parse.quote(words[0])}/revoke", {})
    if action == "make":
        if len(words) not in (2, 3) or not all(word.isdigit() for word in words[1:]):
            print("usage: omsctl channels make CHANNEL COUNT [HOW_MANY_PUSHED]", file=sys.stderr)
            return 2
        body: dict[str, object] = {"channel": words[0], "count": int(words[1])}
        if len(words) == 3:
            body["push"] = int(words[2])
        return _control("channels", "/orders", body)
    if len(words) < 2 or any("=" not in word for word in words[1:]):
        print("usage: omsctl channels set CHANNEL SWITCH=VALUE [SWITCH=VALUE …]", file=sys.stderr)
        return 2
    return _control("channels", f"/{urllib.parse.quote(words[0])}", _switches(words[1:]))


def sms(action: str, words: list[str], phone: str = "") -> int:
    """The SMS sandbox's control API: show, set switches, reset, list the texts it received."""
    import urllib.parse

    if action == "show":
        return _control("sms", "")
    if action == "reset":
        return _control("sms", "/reset", {})
    if action == "messages":
        return _control(
            "sms", "/messages" + (f"?{urllib.parse.urlencode({'phone': phone})}" if phone else "")
        )
    if not words or any("=" not in word for word in words):
        print("usage: omsctl sms set SWITCH=VALUE [SWITCH=VALUE …]", file=sys.stderr)
        return 2
    return _control("sms", "", _switches(words))


def main() -> None:
    # `.venv/bin/python -m omsctl …` as the README has it, without the Makefile's PYTHONPATH: the
    # generated code (events, tokens) must import all the same
    generated = str(Path(__file__).resolve().parent.parent / "gen")
    if generated not in sys.path:
        sys.path.insert(0, generated)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    parser = argparse.ArgumentParser(
        prog="omsctl", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the whole platform; Ctrl-C stops it")
    up_parser.add_argument("--fresh", action="store_true", help="start from empty databases and streams")
    up_parser.add_argument("--empty", action="store_true", help="do not load the demo catalogue")
    up_parser.add_argument(
        "--no-demo", action="store_true", help="do not run `omsctl demo` once the stack is up"
    )
    demo_parser = commands.add_parser(
        "demo",
        help="drive a bounded stream of orders through the running stack so every queue has something",
        description="orders on several channels, provider payments (a few clock-skewed: parked), routing, "
        "waybills, tracking to delivery, returns and refunds, risk holds, a stuck order and a silent "
        "channel, through the public API and the sandboxes only (docs/demo.md)",
    )
    demo_parser.add_argument("--orders", type=int, default=60, help="how many orders (default 60)")
    demo_parser.add_argument(
        "--seconds", type=float, default=90.0, help="stop after this long at the latest (default 90)"
    )
    demo_parser.add_argument("--seed", type=int, default=None, help="replay the same choices")
    commands.add_parser("down", help="stop what `up` started")
    restart_parser = commands.add_parser("restart", help="restart one process of the running stack")
    restart_parser.add_argument(
        "name", help="orders, inventory, routing, logistics, gateway, carriers, envoy, postgres, redis, nats"
    )
    env_parser = commands.add_parser("env", help="print `export` lines for the endpoints and a token")
    env_parser.add_argument("--sub", default="demo-ops", help="the token's subject (default demo-ops)")
    env_parser.add_argument("--role", action="append", dest="roles", help="the token's roles (default ops)")
    env_parser.add_argument("--ttl", type=int, default=12 * 3600, help="token lifetime in seconds")
    commands.add_parser("status", help="show what runs and its health")
    commands.add_parser("protos", help="generate gen/ from protos/")
    contracts_parser = commands.add_parser(
        "contracts", help="write docs/contracts/asyncapi.yaml and openapi.json (docs/contracts.md)"
    )
    contracts_parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a document is stale"
    )
    tokens.add_arguments(commands)
    users.add_arguments(commands)
    k8s.add_arguments(commands)
    sign_parser = commands.add_parser(
        "sign", help="the x-oms-webhook-signature of a webhook body, with the stack's demo secret"
    )
    sign_parser.add_argument("sender", help="wechat_pay, alipay, sf, zto, taobao, …")
    sign_parser.add_argument("timestamp", help="the x-oms-webhook-timestamp sent with it (unix seconds)")
    sign_parser.add_argument("body", help="the raw body, exactly as sent")
    events_parser = commands.add_parser("events", help="print the order events on NATS, one line each")
    events_parser.add_argument("--order", default="", help="only this order's events")
    events_parser.add_argument(
        "--seconds", type=float, default=0, help="stop after this long without a new event (0: follow)"
    )
    dead_parser = commands.add_parser(
        "dead-letters",
        help="events a consumer terminated: list (every service, or --service) or replay --service S IDS",
    )
    dead_parser.add_argument("action", choices=("list", "replay"))
    dead_parser.add_argument("ids", nargs="*", type=int, help="the dead letters to replay")
    dead_parser.add_argument("--service", default="", help="orders, inventory, routing, logistics, …")
    dead_parser.add_argument("--consumer", default="", help="list only this consumer's")
    dead_parser.add_argument("--replayed", action="store_true", help="list the replayed ones too")
    dead_parser.add_argument("--nats-url", default="", help="another platform's NATS (default: make run's)")
    dead_parser.add_argument("--prefix", default="", help="its subject prefix (default: make run's, oms)")
    trace_parser = commands.add_parser(
        "trace", help="gather one trace id's logs, timeline entries and audit records"
    )
    trace_parser.add_argument("trace_id")
    carriers_parser = commands.add_parser(
        "carriers",
        help="the carrier sandbox's switches: show, set CARRIER SWITCH=VALUE …, reset, waybills",
        description="e.g. `omsctl carriers set sf latency_ms=50 failure_rate=0.05`, "
        "`omsctl carriers set cainiao dead=true`, `omsctl carriers set all reorder_pushes=true`, "
        "`omsctl carriers reset`; CARRIER is sf, zto, yto, ems, jd, cainiao or all (docs/sandboxes.md)",
    )
    carriers_parser.add_argument(
        "action", nargs="?", default="show", choices=["show", "set", "reset", "waybills"]
    )
    carriers_parser.add_argument("words", nargs="*", help="for set: CARRIER SWITCH=VALUE …")
    carriers_parser.add_argument("--carrier", default="", help="waybills: only this carrier's")
    carriers_parser.add_argument(
        "--order", default="", help="waybills: only this order id's (the shipment id)"
    )
    payments_parser = commands.add_parser(
        "payments",
        help="the payment sandbox: show, set PROVIDER SWITCH=VALUE …, reset, refunds, pay PROVIDER TRADE FEN",
        description="e.g. `omsctl payments set wechat_pay latency_ms=50 timeout_next=1 timeout_mode=drop`, "
        "`omsctl payments set all refund_outcome=CLOSED processing_ms=2000`, `omsctl payments refunds`, "
        "`omsctl payments pay wechat_pay <order id without hyphens> 18600`; PROVIDER is wechat_pay, "
        "alipay or all (docs/sandboxes.md)",
    )
    payments_parser.add_argument(
        "action", nargs="?", default="show", choices=["show", "set", "reset", "refunds", "pay"]
    )
    payments_parser.add_argument(
        "words", nargs="*", help="set: PROVIDER SWITCH=VALUE …; pay: PROVIDER TRADE FEN"
    )
    channels_parser = commands.add_parser(
        "channels",
        help="the channel sandbox: show, set CHANNEL SWITCH=VALUE …, reset, revoke, orders, make",
        description="e.g. `omsctl channels make taobao 10 6` (ten orders, six pushed), "
        "`omsctl channels set douyin token_lifetime_s=120 failure_rate=0.3`, "
        "`omsctl channels set taobao push_enabled=false pad_bytes=900000`, `omsctl channels revoke taobao`; "
        "CHANNEL is taobao, douyin or all (docs/sandboxes.md)",
    )
    channels_parser.add_argument(
        "action", nargs="?", default="show", choices=["show", "set", "reset", "revoke", "orders", "make"]
    )
    channels_parser.add_argument(
        "words", nargs="*", help="set: CHANNEL SWITCH=VALUE …; revoke: CHANNEL; make: CHANNEL COUNT [PUSHED]"
    )
    sms_parser = commands.add_parser(
        "sms",
        help="the SMS sandbox: show, set SWITCH=VALUE …, reset, messages [--phone P]",
        description="e.g. `omsctl sms set throttle_next=1`, "
        "`omsctl sms set failure_rate=0.2 latency_ms=300`, `omsctl sms messages --phone 13800000001` "
        "(docs/sandboxes.md)",
    )
    sms_parser.add_argument("action", nargs="?", default="show", choices=["show", "set", "reset", "messages"])
    sms_parser.add_argument("words", nargs="*", help="for set: SWITCH=VALUE …")
    sms_parser.add_argument("--phone", default="", help="messages: only this phone's")
    args = parser.parse_args()
    if args.command == "channels":
        sys.exit(channels(args.action, args.words))
    if args.command == "sms":
        sys.exit(sms(args.action, args.words, args.phone))
    if args.command == "payments":
        sys.exit(payments(args.action, args.words))
    if args.command == "carriers":
        sys.exit(carriers(args.action, args.words, args.carrier, args.order))
    if args.command == "user":
        sys.exit(users.run(args, home()))
    if args.command == "k8s-secrets":
        sys.exit(k8s.run(args, home()))
    if args.command == "token":
        sys.exit(tokens.run(args, {**stack.edge_settings(home()), **os.environ}))
    if args.command == "trace":
        from omsctl.tracing import show

        sys.exit(show(home(), args.trace_id))
    if args.command == "up":
        sys.exit(up(args.fresh, args.empty, with_demo=not args.no_demo))
    if args.command == "demo":
        sys.exit(demo(args.orders, args.seconds, args.seed))
    if args.command == "sign":
        sys.exit(sign(args.sender, args.timestamp, args.body))
    if args.command == "events":
        state = _running_state()
        if state is None:
            print("OMS platform is stopped; `make run` starts it", file=sys.stderr)
            sys.exit(1)
        from omsctl import events

        urls: dict[str, str] = state["urls"]  # type: ignore[assignment]
        prefix = str(state.get("subject_prefix") or "oms")
        sys.exit(events.run(urls["NATS_URL"], prefix, args.order, args.seconds))
    if args.command == "dead-letters":
        from omsctl import dead_letters

        nats_url, prefix = args.nats_url, args.prefix
        if not nats_url:
            state = _running_state()
            if state is None:
                print("OMS platform is stopped; `make run` starts it (or give --nats-url)", file=sys.stderr)
                sys.exit(1)
            nats_url = str(state["urls"]["NATS_URL"])  # type: ignore[index]
            prefix = prefix or str(state.get("subject_prefix") or "oms")
        sys.exit(
            dead_letters.run(
                nats_url, prefix or "oms", args.action, args.service, args.ids, args.consumer, args.replayed
            )
        )
    if args.command == "contracts":
        from omsctl import contracts

        sys.exit(contracts.run(check=args.check))
    if args.command == "restart":
        sys.exit(restart(args.name))
    if args.command == "env":
        sys.exit(env(args.sub, args.roles or ["ops"], args.ttl))
    if args.command == "down":
        sys.exit(down())
    if args.command == "status":
        sys.exit(status())
    from omsctl.protos import generate

    sys.exit(generate())


if __name__ == "__main__":
    main()
