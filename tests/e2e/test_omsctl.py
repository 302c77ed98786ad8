"""`make run` as a new user meets it: start, run the printed curl, restart with the data kept, stop
leaving no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import pytest

from omsctl import embedded
from omsctl.stack import SANDBOXES, SERVICES, reset

ROOT = Path(__file__).resolve().parents[2]


def _start(home: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "omsctl", "up", *args],
        cwd=ROOT,
        env={**env, "OMS_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, _read_until_up(process.stdout, process)


def _read_until_up(stream: IO[str] | None, process: subprocess.Popen[str], timeout: float = 90) -> list[str]:
    assert stream is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            pytest.fail("omsctl up ended early:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("Stop:"):
            return lines
    process.kill()
    pytest.fail("omsctl up did not come up:\n" + "".join(lines))


def _printed_command(lines: list[str], after: str) -> str:
    index = next(i for i, line in enumerate(lines) if line.startswith(after))
    return lines[index + 1].strip()


def _pids(home: Path) -> list[int]:
    state = json.loads((home / "state.json").read_text())
    return [entry["pid"] for entry in state["processes"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_make_run_serves_the_printed_curl_keeps_data_across_restarts_and_leaves_nothing_behind(
    env_without_urls: dict[str, str],
) -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-up-"))  # 0700, like a clone in `mktemp -d`
    # the demo starts as with `make run`, at its smallest: its full size only slows the test's own checks
    env = {**env_without_urls, "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}", "OMS_DEMO_ORDERS": "14"}
    try:
        _up_restart_and_down(home, env)
    finally:  # a failed assertion must not leave a platform running
        subprocess.run(
            [sys.executable, "-m", "omsctl", "down"],
            cwd=ROOT,
            env={**env, "OMS_HOME": str(home)},
            capture_output=True,
            timeout=120,
        )
        reset(home)
        shutil.rmtree(home, ignore_errors=True)


def _up_restart_and_down(home: Path, env: dict[str, str]) -> None:

    first, banner = _start(home, env)
    assert any("OMS platform is up in" in line for line in banner)
    # the demo was started behind the banner, not in the supervisor's list of processes
    assert any(line.startswith("The demo runs in the background") for line in banner)
    assert (home / "logs" / "demo.log").exists()
    pids = _pids(home)
    # postgres, redis, nats, each service, the carrier sandbox, envoy
    assert len(pids) == 3 + len(SERVICES) + len(SANDBOXES) + 1
    assert any(line.strip().startswith("logistics (gRPC)") for line in banner)
    assert any(line.strip().startswith("carrier sandbox") for line in banner)
    status = subprocess.run(
        [sys.executable, "-m", "omsctl", "status"],
        cwd=ROOT,
        env={**env, "OMS_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stdout
    shown = {line.split()[0] for line in status.stdout.splitlines() if " pid " in line}
    assert {"logistics", "carriers", "gateway", "envoy"} <= shown

    both = _printed_command(banner, "Both in one line:")
    reply = subprocess.run(["bash", "-c", both], capture_output=True, text=True, timeout=30)
    order = json.loads(reply.stdout)["order"]
    assert order["channelOrderId"] == "DEMO-1001"
    # the process manager reserves the order behind the reply: read it once that step is done, so
    # that what survives the restart is compared with the order as it was left
    read_line = _printed_command(banner, "Read it back").replace("<orderId>", order["orderId"])
    deadline = time.monotonic() + 30
    while order.get("pendingStep") and time.monotonic() < deadline:
        time.sleep(0.2)
        again = subprocess.run(["bash", "-c", read_line], capture_output=True, text=True, timeout=30)
        order = json.loads(again.stdout)["order"]
    assert not order.get("pendingStep"), order

    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 0
    assert not [pid for pid in pids if _alive(pid)]

    # the data is what this start is for: without the demo's second run behind it
    second, banner = _start(home, env, "--no-demo")
    get_line = _printed_command(banner, "Read it back").replace("<orderId>", order["orderId"])
    reply = subprocess.run(["bash", "-c", get_line], capture_output=True, text=True, timeout=30)
    assert json.loads(reply.stdout)["order"] == order
    pids = _pids(home)

    down = subprocess.run(
        [sys.executable, "-m", "omsctl", "down"],
        cwd=ROOT,
        env={**env, "OMS_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert down.returncode == 0, down.stdout
    second.wait(timeout=30)
    assert not [pid for pid in pids if _alive(pid)]
    assert not (home / "state.json").exists()


# ---- embedded Postgres as root in a private folder ---------------------------------------------


def _modes(paths: list[Path]) -> dict[Path, int]:
    return {path: path.stat().st_mode for path in paths}


def _credentials(pid: int) -> dict[str, list[int]]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: [int(v) for v in fields[name].split()] for name in ("Uid", "Gid", "Groups")}


def test_embedded_postgres_starts_from_a_private_folder_answers_sql_and_changes_no_folder_mode() -> None:
    import asyncio

    import asyncpg

    private = Path(tempfile.mkdtemp(prefix="oms-private-"))  # 0700, as `mktemp -d` makes it
    home = private / "clone" / ".oms"
    home.mkdir(parents=True)
    # the binaries inside the private folder too, as a clone's own .venv would have them
    install = private / "clone" / ".venv" / "site-packages" / "pgserver" / "pginstall"
    wheel = embedded._postgres_install()
    shutil.copytree(wheel, install, symlinks=True)
    shutil.copytree(wheel.parent.parent / "pgserver.libs", install.parent.parent / "pgserver.libs")
    watched = [p for p in [private, *private.parents]] + [p for p in install.parents if private in p.parents]
    before = _modes(watched)
    server = embedded.EmbeddedPostgres(home / "postgres", home / "logs", durable=False, install=install)
    try:
        server.start()
        assert server.process is not None

        async def answer() -> int:
            conn = await asyncpg.connect(server.url)
            try:
                return int(await conn.fetchval("SELECT 40 + 2"))
            finally:
                await conn.close()

        assert asyncio.run(answer()) == 42
        if os.geteuid() == 0:
            account = embedded.postgres_account()
            assert account is not None and account.gid != 0
            credentials = _credentials(server.process.pid)
            assert set(credentials["Uid"]) == {account.uid}
            assert set(credentials["Gid"]) == {account.gid} and 0 not in credentials["Groups"]
            folder = Path(json.loads(embedded.outside_marker(home / "postgres").read_text())["folder"])
            assert private not in folder.parents
            assert folder.stat().st_uid == account.uid and folder.stat().st_mode & 0o777 == 0o700
            assert (folder / "pgserver" / "pginstall" / "bin" / "postgres").exists()
            assert (folder / "data" / "PG_VERSION").exists()
    finally:
        server.stop()
        outside = embedded.remove_outside(home / "postgres")
        after = _modes(watched)
        shutil.rmtree(private, ignore_errors=True)
    assert after == before
    assert outside is None or not outside.exists()


def test_embedded_postgres_with_private_binaries_keeps_its_data_in_a_reachable_home() -> None:
    """A clone in a private folder (its .venv unreachable) with a test's data folder that is not."""
    import asyncio

    import asyncpg

    private = Path(tempfile.mkdtemp(prefix="oms-private-"))
    install = private / ".venv" / "site-packages" / "pgserver" / "pginstall"
    wheel = embedded._postgres_install()
    shutil.copytree(wheel, install, symlinks=True)
    shutil.copytree(wheel.parent.parent / "pgserver.libs", install.parent.parent / "pgserver.libs")
    home = Path(tempfile.mkdtemp(prefix="oms-open-"))
    home.chmod(0o755)
    server = embedded.EmbeddedPostgres(home / "postgres", home / "logs", durable=False, install=install)
    try:
        server.start()

        async def answer() -> int:
            conn = await asyncpg.connect(server.url)
            try:
                return int(await conn.fetchval("SELECT 40 + 2"))
            finally:
                await conn.close()

        assert asyncio.run(answer()) == 42
        assert (home / "postgres" / "PG_VERSION").exists()
    finally:
        server.stop()
        embedded.remove_outside(home / "postgres")
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


# ---- the supervisor: restarts, kept ports, `env`, children that die with omsctl -------------------


def _omsctl(
    home: Path, env: dict[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omsctl", *args],
        cwd=ROOT,
        env={**env, "OMS_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _state(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "state.json").read_text()))


def _entry(home: Path, name: str) -> dict[str, Any]:
    return next(entry for entry in _state(home)["processes"] if entry["name"] == name)


def _read_lines(stream: IO[str], until: str, timeout: float) -> list[str]:
    """Lines omsctl prints after its banner, up to one containing `until`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        if until in line:
            return lines
    pytest.fail(f"omsctl never said {until!r}:\n" + "".join(lines))


def _free_port() -> int:
    return embedded.free_port()


# two `omsctl up` starts, a kill and a restart, the whole stack killed, then the README's walk-through:
# about 110 s alone here
@pytest.mark.timeout(270)
def test_up_restarts_a_killed_service_keeps_ports_prints_env_dies_with_its_children_and_serves_the_readme(
    env_without_urls: dict[str, str],
) -> None:
    parent = Path(tempfile.mkdtemp(prefix="oms-sup-"))  # 0700
    home = parent / ".oms"
    env = {**env_without_urls, "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}", "OMS_HTTP_PORT": str(_free_port())}
    parent_mode = parent.stat().st_mode
    try:
        # supervision alone: the demo's load would only slow this test on a small machine
        first, banner = _start(home, env, "--no-demo")
        assert any(line.startswith("No demo (--no-demo)") for line in banner)
        assert first.stdout is not None
        assert _state(home)["endpoints"]["envoy"] == f"127.0.0.1:{env['OMS_HTTP_PORT']}"
        ports = {entry["name"]: entry["port"] for entry in _state(home)["processes"]}

        # kill -9 one service: it comes back on the same port and answers
        orders = _entry(home, "orders")
        os.kill(orders["pid"], signal.SIGKILL)
        said = _read_lines(first.stdout, "orders is back", timeout=30)
        assert any("orders exited (-9); restarting it" in line for line in said)
        again = _entry(home, "orders")
        assert again["pid"] != orders["pid"] and again["port"] == orders["port"]
        from omsctl.stack import health_status

        assert health_status(f"127.0.0.1:{again['port']}") == "SERVING"

        restarted = _omsctl(home, env, "restart", "inventory")
        assert restarted.returncode == 0, restarted.stderr
        assert _entry(home, "inventory")["port"] == ports["inventory"]

        # the carrier sandbox's switches, through its control API
        switched = _omsctl(home, env, "carriers", "set", "sf", "latency_ms=50", "timeout_mode=drop")
        assert switched.returncode == 0, switched.stderr
        assert json.loads(switched.stdout)["carriers"]["sf"]["latency_ms"] == 50
        assert json.loads(switched.stdout)["carriers"]["sf"]["timeout_mode"] == "drop"
        refused = _omsctl(home, env, "carriers", "set", "sf", "no_such_switch=1")
        assert refused.returncode == 2 and "no_such_switch" in refused.stderr
        reset_ = _omsctl(home, env, "carriers", "reset")
        assert json.loads(reset_.stdout)["carriers"]["sf"]["latency_ms"] == 0

        # and the payment sandbox's, the same way
        switched = _omsctl(home, env, "payments", "set", "wechat_pay", "latency_ms=50", "timeout_mode=drop")
        assert switched.returncode == 0, switched.stderr
        assert json.loads(switched.stdout)["providers"]["wechat_pay"]["latency_ms"] == 50
        assert json.loads(switched.stdout)["providers"]["wechat_pay"]["timeout_mode"] == "drop"
        refused = _omsctl(home, env, "payments", "set", "alipay", "no_such_switch=1")
        assert refused.returncode == 2 and "no_such_switch" in refused.stderr
        paid = _omsctl(home, env, "payments", "pay", "alipay", "OMSCTLTRADE01", "1234")
        assert paid.returncode == 0 and json.loads(paid.stdout)["trade"]["total"] == 1234, paid.stderr
        reset_ = _omsctl(home, env, "payments", "reset")
        assert json.loads(reset_.stdout)["providers"]["wechat_pay"]["latency_ms"] == 0

        # and the SMS sandbox's, with the texts it received
        switched = _omsctl(home, env, "sms", "set", "throttle_next=2", "latency_ms=10")
        assert switched.returncode == 0, switched.stderr
        assert json.loads(switched.stdout)["behaviour"]["throttle_next"] == 2
        refused = _omsctl(home, env, "sms", "set", "no_such_switch=1")
        assert refused.returncode == 2 and "no_such_switch" in refused.stderr
        texts = _omsctl(home, env, "sms", "messages", "--phone", "13800000001")
        assert texts.returncode == 0 and isinstance(json.loads(texts.stdout)["messages"], list), texts.stderr
        reset_ = _omsctl(home, env, "sms", "reset")
        assert json.loads(reset_.stdout)["behaviour"]["throttle_next"] == 0

        # `omsctl env` prints export lines a shell can eval, with a token that works at the edge
        printed = _omsctl(home, env, "env")
        assert printed.returncode == 0, printed.stderr
        names = {line.split("=", 1)[0] for line in printed.stdout.splitlines()}
        assert {
            "export OMS_HTTP",
            "export OMS_TOKEN",
            "export OMS_NATS_URL",
            "export OMS_ORDERS_ADDR",
        } <= names
        script = (
            f"{printed.stdout}\n"
            'curl -s -w " %{http_code}" -H "authorization: Bearer $OMS_TOKEN" '
            '"$OMS_HTTP/v1/orders"'
        )
        assert subprocess.run(["bash", "-c", script], capture_output=True, text=True).stdout.endswith(" 200")

        # kill -9 omsctl: every process it started gets its stop signal and is gone soon after (a
        # service drains its calls for up to SHUTDOWN_GRACE_SECONDS, 5 s, first; idle, all are gone
        # within 2 s; the margin is for a loaded machine)
        names = {entry["pid"]: entry["name"] for entry in _state(home)["processes"]}
        first.kill()
        first.wait(timeout=10)
        deadline = time.monotonic() + 20
        while [pid for pid in names if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [names[pid] for pid in names if _alive(pid)], "still running after omsctl died"

        stopped = _omsctl(home, env, "status")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout

        # the next `up` reuses every port, and loads the demo catalogue again without doubling stock
        second, _ = _start(home, env, "--no-demo")
        assert {entry["name"]: entry["port"] for entry in _state(home)["processes"]} == ports
        query = (
            f"{_omsctl(home, env, 'env').stdout}\n"
            'curl -s -X POST -H "authorization: Bearer $OMS_TOKEN" -H "content-type: application/json" '
            '-d \'{"skus": ["SKU-TEA-250G"]}\' "$OMS_HTTP/v1/inventory/availability:query"'
        )
        stock = json.loads(subprocess.run(["bash", "-c", query], capture_output=True, text=True).stdout)
        assert stock["skus"][0]["poolOnHand"] == str(500 + 200 + 200 + 100 + 100)  # demo_catalogue.yaml

        # the README's walk-through, exactly as written, on this stack (one start less for the suite)
        _follow_the_walk_through(home, env)

        down = _omsctl(home, env, "down")
        assert down.returncode == 0, down.stdout
        second.wait(timeout=30)
        assert _omsctl(home, env, "status").returncode == 0
        assert not embedded.outside_marker(home / "postgres").exists()
    finally:
        _omsctl(home, env, "down", timeout=120)
        reset(home)
        assert parent.stat().st_mode == parent_mode
        shutil.rmtree(parent, ignore_errors=True)


# ---- the README walk-through, exactly as written -------------------------------------------------


def _walk_through() -> list[str]:
    """The README's "Your first order" block, as steps (each starts with its `# N.` comment)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- walk-through", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    steps = re.split(r"\n(?=# \d\. )", block.strip())
    return [step.replace(".venv/bin/python", sys.executable) for step in steps]


def _follow_the_walk_through(home: Path, env: dict[str, str]) -> None:
    """The README's walk-through on a running `make run` stack (with the demo catalogue, without the
    demo): it creates, pays and allocates an order and shows its events."""
    steps = _walk_through()
    assert [step.split(".", 1)[0] for step in steps] == ["# 0", "# 1", "# 2", "# 3", "# 4"]
    # step 3 is what a person re-runs until the order has moved on
    wait_for_allocation = (
        "for attempt in $(seq 60); do\n"
        f"  STATUS=$({steps[3].split(chr(10), 1)[1]})\n"
        '  [ "$STATUS" = ORDER_STATUS_ALLOCATED ] && break; sleep 0.5\n'
        'done; echo "status $STATUS"'
    )
    script = "\n".join(["set -e", *steps[:3], wait_for_allocation, steps[4]])
    ran = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        # as a person pastes them: without the Makefile's PYTHONPATH
        env={**{k: v for k, v in env.items() if k != "PYTHONPATH"}, "OMS_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout.splitlines()
    order_id = next(line.split()[1] for line in out if line.startswith("order "))
    paid = json.loads(next(line for line in out if line.startswith("{")))
    assert paid["created"] is True and paid["trade"]["total"] == 18600  # the sandbox took the payment
    assert "status ORDER_STATUS_ALLOCATED" in out
    subjects = [line.split()[0] for line in out if line.startswith("oms.orders.")]
    assert {"oms.orders.created", "oms.orders.paid", "oms.orders.allocated"} <= set(subjects)
    assert all(line.endswith(order_id) for line in out if line.startswith("oms.orders."))
