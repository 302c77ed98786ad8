"""`make run` as a new user meets it: start, run the printed curl, restart with the data kept, stop
leaving no process behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import pytest

from omsctl import embedded
from omsctl.stack import SERVICES, reset

ROOT = Path(__file__).resolve().parents[2]


def _start(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "omsctl", "up"],
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
    env = {**env_without_urls, "PYTHONPATH": f"{ROOT / 'gen'}:{ROOT}"}
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
    pids = _pids(home)
    assert len(pids) == 3 + len(SERVICES) + 1  # postgres, redis, nats, each service, envoy
    assert (
        subprocess.run(
            [sys.executable, "-m", "omsctl", "status"],
            cwd=ROOT,
            env={**env, "OMS_HOME": str(home)},
            capture_output=True,
        ).returncode
        == 0
    )

    both = _printed_command(banner, "Both in one line:")
    reply = subprocess.run(["bash", "-c", both], capture_output=True, text=True, timeout=30)
    order = json.loads(reply.stdout)["order"]
    assert order["channelOrderId"] == "DEMO-1001"

    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 0
    assert not [pid for pid in pids if _alive(pid)]

    second, banner = _start(home, env)
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
