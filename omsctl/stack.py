"""The local platform: infrastructure (given by URL or embedded), migrated databases, every service
as its own process, and Envoy in front — started in order, health-checked, stopped in reverse."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omsctl import embedded, envoy
from services.kit.db import with_database
from services.kit.identity import generate_key, public_key_of, trusted_keys_json
from services.kit.sealing import KeyRing

log = logging.getLogger("omsctl")

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceSpec:
    """One platform service: how to run it, its default port, whether it owns a database, its peers."""

    name: str
    default_port: int
    database: bool
    peers: tuple[str, ...] = ()
    # sealing keys for personal data (PII_KEYS, PII_ACTIVE_KEY, PII_HASH_KEY)
    pii: bool = False
    # the edge's credentials: JWT keys, API keys, service accounts, webhook secrets, carriers' push secrets
    edge: bool = False
    # calls the carriers' APIs (the carrier sandbox locally) and is pushed their tracking
    carriers: bool = False
    # calls the payment providers' APIs (the payment sandbox locally): PAYMENT_* settings
    payments: bool = False
    # polls the marketplaces' order APIs (the channel sandbox locally): CHANNEL_CONNECTIONS
    channels: bool = False

    @property
    def module(self) -> str:
        return f"services.{self.name}"


# Order matters: a service starts after the peers it calls.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "orders", 50051, database=True, peers=("routing", "inventory", "logistics"), pii=True, channels=True
    ),
    ServiceSpec("inventory", 50052, database=True),
    ServiceSpec("routing", 50053, database=True, peers=("inventory",)),
    ServiceSpec("logistics", 50054, database=True, pii=True, carriers=True),
    ServiceSpec("aftersales", 50055, database=True, peers=("orders", "inventory"), payments=True),
    ServiceSpec(
        "gateway",
        50050,
        database=True,
        peers=("orders", "inventory", "routing", "logistics", "aftersales"),
        edge=True,
    ),
)


@dataclass(frozen=True)
class SandboxSpec:
    """A stand-in for an outside system, speaking its real protocol over HTTP (docs/sandboxes.md)."""

    name: str
    default_port: int
    module: str
    label: str


SANDBOXES: tuple[SandboxSpec, ...] = (
    SandboxSpec("carriers", 18010, "sandboxes.carriers", "carrier sandbox (SF, Kuaidi100, Cainiao)"),
    SandboxSpec("payments", 18020, "sandboxes.payments", "payment sandbox (WeChat Pay v3, Alipay)"),
    SandboxSpec("channels", 18030, "sandboxes.channels", "channel sandbox (Taobao TOP, Douyin shop)"),
    SandboxSpec("sms", 18040, "sandboxes.sms", "SMS sandbox (Aliyun SMS)"),
)
SANDBOX_NAMES = frozenset(spec.name for spec in SANDBOXES)
SERVICE_NAMES = frozenset(spec.name for spec in SERVICES)
ENVOY_PORT = 8080
ENVOY_ADMIN_PORT = 9901
# each service's /metrics sits beside its gRPC port by default (50051: 51051), as in services.kit.config
METRICS_PORT_OFFSET = 1000
# never handed to a process of ours unless pinned: the standard ports of servers a developer may run
# beside the platform (PostgreSQL, Redis, NATS, Prometheus)
STANDARD_PORTS = frozenset({5432, 6379, 4222, 9090})


def metrics_name(service: str) -> str:
    """The port book's name of a service's metrics port (`orders-metrics`)."""
    return f"{service}-metrics"


# Settings that pin a port (`omsctl up` fails if it is taken rather than moving it).
PORT_SETTINGS = {
    "envoy": "OMS_HTTP_PORT",
    "envoy-admin": "OMS_ADMIN_PORT",
    **{name: f"OMS_{name.upper()}_PORT" for name in (*SERVICE_NAMES, *SANDBOX_NAMES)},
    **{metrics_name(name): f"OMS_{name.upper()}_METRICS_PORT" for name in SERVICE_NAMES},
    "postgres": "OMS_POSTGRES_PORT",
    "redis": "OMS_REDIS_PORT",
    "nats": "OMS_NATS_PORT",
}

# the carriers' tracking pushes arrive here, through Envoy (the gateway's real-format webhooks)
SF_PUSH_PATH = "/v1/webhooks/tracking/sf"
KUAIDI100_PUSH_PATH = "/v1/webhooks/tracking/kuaidi100"
# the payment providers notify here, through Envoy (the gateway checks their signatures)
PROVIDER_NOTIFY_PATH = "/v1/webhooks/providers"
# the channels push new orders here, through Envoy (the gateway checks their HMAC signatures)
CHANNEL_PUSH_PATH = "/v1/webhooks/channels"
# development marketplace apps: the channel sandbox checks them, orders polls with them (the refresh
# token is the merchant's authorisation; orders keeps the tokens it refreshes to in its database)
CHANNEL_APPS = {
    "taobao": {
        "app_key": "12345678",
        "app_secret": "sandbox-taobao-app-secret",
        "refresh_token": "sandbox-taobao-refresh-token",
        "shop_id": "2200000000001",
    },
    "douyin": {
        "app_key": "7000000000000000001",
        "app_secret": "sandbox-douyin-app-secret",
        "refresh_token": "sandbox-douyin-refresh-token",
        "shop_id": "4463798",
    },
}
# development carrier accounts: logistics calls the sandbox with these, the sandbox checks them
CARRIER_CREDENTIALS = {
    "SF_PARTNER_ID": "OMS_SANDBOX",
    "SF_CHECKWORD": "sandbox-sf-checkword",
    "KUAIDI100_KEY": "sandbox-kuaidi100-key",
    "KUAIDI100_SECRET": "sandbox-kuaidi100-secret",
    "KUAIDI100_CUSTOMER": "SANDBOXCUSTOMER",
    "CAINIAO_APP_KEY": "12345678",
    "CAINIAO_APP_SECRET": "sandbox-cainiao-secret",
}
# the development SMS account: the gateway sends alerts with it, the SMS sandbox checks it
SMS_ACCOUNT = {
    "ACCESS_KEY_ID": "LTAI5tOmsSandboxSms01",
    "ACCESS_KEY_SECRET": "sandbox-sms-access-key-secret",
    "SIGN_NAME": "OMS告警",
    "TEMPLATE_CODE": "SMS_471250001",
}
# who is told of alerts locally: operations' and the supervisor's on-call phones (the sandbox's
# /_control/messages shows what they got); ALERT_ROUTES given replaces it
DEV_ALERT_ROUTES = json.dumps(
    [
        {
            "kinds": ["*"],
            "min_severity": "high",
            "chain": [
                {"role": "ops", "phone": "13800000001"},
                {"role": "supervisor", "phone": "13800000002"},
                {"role": "admin"},
            ],
        },
        {"kinds": ["*"], "min_severity": "low", "chain": [{"role": "ops"}]},
    ]
)


def sms_client_env(port: int) -> dict[str, str]:
    """The gateway's alert sinks locally: the log and SMS through the sandbox (ALERT_* given win)."""
    defaults = {
        "ALERT_SINKS": "log,sms",
        "ALERT_SMS_URL": f"http://127.0.0.1:{port}/",
        **{f"ALERT_SMS_{name}": value for name, value in SMS_ACCOUNT.items()},
        "ALERT_ROUTES": DEV_ALERT_ROUTES,
    }
    return {name: os.environ.get(name, value) for name, value in defaults.items()}


def sms_sandbox_env() -> dict[str, str]:
    return {
        "SMS_SANDBOX_ACCESS_KEY_ID": SMS_ACCOUNT["ACCESS_KEY_ID"],
        "SMS_SANDBOX_ACCESS_KEY_SECRET": SMS_ACCOUNT["ACCESS_KEY_SECRET"],
        "SMS_SANDBOX_SIGN_NAMES": SMS_ACCOUNT["SIGN_NAME"],
        "SMS_SANDBOX_TEMPLATE_CODES": SMS_ACCOUNT["TEMPLATE_CODE"],
    }


@dataclass
class PortBook:
    """Which port each process listens on. With a file (`.oms/ports.json`), a port chosen once is kept
    and reused by the next `up`, so clients need not re-read the banner; OMS_*_PORT settings pin one.
    Without a file (tests, benchmarks) ports are free ones, or the defaults when `prefer_defaults`."""

    path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    prefer_defaults: bool = True
    chosen: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def kept_in(cls, home: Path, env: dict[str, str] | None = None) -> PortBook:
        path = home / "ports.json"
        kept = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, dict(os.environ if env is None else env), True, {k: int(v) for k, v in kept.items()})

    def choose(self, name: str, default: int | None) -> int:
        setting = PORT_SETTINGS.get(name, "")
        pinned = self.env.get(setting, "").strip() if self.path is not None else ""
        if pinned:
            if not pinned.isdigit() or not 0 < int(pinned) < 65536:
                raise ValueError(f"{setting}: must be a port number, not {pinned!r}")
            if embedded.free_port(int(pinned)) != int(pinned):
                raise RuntimeError(f"{setting}={pinned}: something else listens on that port")
            return self._keep(name, int(pinned))
        kept = self.chosen.get(name)
        if kept and self._usable(name, kept):
            if embedded.free_port(kept) == kept:
                return self._keep(name, kept)
            self.notes.append(f"port {kept} kept for {name} is taken by another program; moving {name}")
        preferred = default if self.prefer_defaults and default and self._usable(name, default) else None
        port = embedded.free_port(preferred)
        while not self._usable(name, port):
            port = embedded.free_port(None)
        return self._keep(name, port)

    def _usable(self, name: str, port: int) -> bool:
        """Not a standard server's port, and not one this book gave another process."""
        return port not in STANDARD_PORTS and all(
            chosen != port for other, chosen in self.chosen.items() if other != name
        )

    def _keep(self, name: str, port: int) -> int:
        self.chosen[name] = port
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.chosen, indent=2, sort_keys=True))
        return port


@dataclass
class Infra:
    """Postgres, Redis and NATS: from DATABASE_URL/REDIS_URL/NATS_URL when reachable, else embedded."""

    home: Path
    durable: bool = True
    database_url: str = ""
    redis_url: str = ""
    nats_url: str = ""
    ports: PortBook | None = None
    started: list[Any] = field(default_factory=list)

    def _port(self, name: str) -> int:
        return self.ports.choose(name, None) if self.ports is not None else 0

    def start(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        logs = self.home / "logs"
        self.database_url = self._given(env, "DATABASE_URL", 5432)
        if not self.database_url:
            pg = embedded.EmbeddedPostgres(
                self.home / "postgres", logs, port=self._port("postgres"), durable=self.durable
            )
            pg.start()
            self.started.append(pg)
            self.database_url = pg.url
        self.redis_url = self._given(env, "REDIS_URL", 6379)
        if not self.redis_url:
            redis = embedded.EmbeddedRedis(
                self.home / "redis",
                logs,
                port=self._port("redis"),
                durable=self.durable,
                maxmemory=embedded.redis_memory(
                    env.get("REDIS_MAXMEMORY", "").strip() or embedded.DEFAULT_REDIS_MAXMEMORY
                ),
            )
            redis.start()
            self.started.append(redis)
            self.redis_url = redis.url
        self.nats_url = self._given(env, "NATS_URL", 4222)
        if not self.nats_url:
            nats = embedded.EmbeddedNats(self.home / "nats", logs, port=self._port("nats"))
            nats.start()
            self.started.append(nats)
            self.nats_url = nats.url

    @staticmethod
    def _given(env: dict[str, str], name: str, default_port: int) -> str:
        url = env.get(name, "").strip()
        if not url:
            return ""
        parsed = urlparse(url)
        try:
            embedded.wait_for_port(
                parsed.port or default_port, timeout=2, host=parsed.hostname or "127.0.0.1"
            )
        except TimeoutError:
            log.warning("%s is set but %s is not reachable; starting an embedded server instead", name, url)
            return ""
        return url

    def processes(self) -> list[embedded.Process]:
        return [server.process for server in self.started if server.process is not None]

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()
        self.started.clear()


async def create_databases(server_url: str, names: list[str]) -> None:
    import asyncpg

    from services.kit.db import plain_url

    conn = await asyncpg.connect(plain_url(server_url))
    try:
        existing = {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@dataclass
class Platform:
    """Services and Envoy on top of an Infra."""

    infra: Infra
    home: Path
    subject_prefix: str = "oms"
    database_names: dict[str, str] = field(default_factory=dict)
    fixed_ports: bool = True
    ports: PortBook | None = None
    processes: list[embedded.Process] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)
    # each service's metrics endpoint (host:port; GET /metrics)
    metrics: dict[str, str] = field(default_factory=dict)

    def database_name(self, service: str) -> str:
        return self.database_names.get(service, service)

    def push_urls(self, ports: dict[str, int]) -> tuple[str, str]:
        """Where the carriers push tracking: SF's address with its secret token, Kuaidi100's callback."""
        edge = f"http://127.0.0.1:{ports['envoy']}"
        token = push_settings(self.home)["SF_PUSH_TOKEN"]
        return f"{edge}{SF_PUSH_PATH}?token={token}", f"{edge}{KUAIDI100_PUSH_PATH}"

    def sandbox_env(self, spec: SandboxSpec, ports: dict[str, int]) -> dict[str, str]:
        """The carrier sandbox: the development accounts, and SF's push address (Kuaidi100 pushes to the
        callback logistics subscribes with). In the environment, not on the command line: the address
        carries SF's push token. The payment sandbox: the provider halves of the payment keys. The SMS
        sandbox: the development SMS account."""
        if spec.name == "sms":
            return embedded.python_env(ROOT, sms_sandbox_env())
        if spec.name == "payments":
            edge = f"http://127.0.0.1:{ports['envoy']}{PROVIDER_NOTIFY_PATH}"
            notify = {
                "PAYMENT_SANDBOX_WECHAT_NOTIFY_URL": f"{edge}/wechat_pay",
                "PAYMENT_SANDBOX_ALIPAY_NOTIFY_URL": f"{edge}/alipay",
            }
            return embedded.python_env(ROOT, {**payment_sandbox_env(self.home), **notify})
        if spec.name == "channels":
            return embedded.python_env(ROOT, channel_sandbox_env(self.home, ports["envoy"]))
        sf_push, _ = self.push_urls(ports)
        extra = {f"CARRIER_SANDBOX_{name}": value for name, value in CARRIER_CREDENTIALS.items()}
        extra["CARRIER_SANDBOX_PUSH_URL"] = sf_push
        # logistics keeps its waybills across restarts, the sandbox forgets them: a fixed seed would
        # issue the same numbers again after a restart (CARRIER_SANDBOX_SEED given replays one)
        extra["CARRIER_SANDBOX_SEED"] = os.environ.get("CARRIER_SANDBOX_SEED", "random")
        return embedded.python_env(ROOT, extra)

    def service_env(self, spec: ServiceSpec, ports: dict[str, int]) -> dict[str, str]:
        extra = {
            "PORT": str(ports[spec.name]),
            "NATS_URL": self.infra.nats_url,
            "REDIS_URL": self.infra.redis_url,
            "OMS_SUBJECT_PREFIX": self.subject_prefix,
        }
        if metrics_name(spec.name) in ports:
            extra["METRICS_PORT"] = str(ports[metrics_name(spec.name)])
        if spec.database:
            extra["DATABASE_URL"] = with_database(self.infra.database_url, self.database_name(spec.name))
        for peer in spec.peers:
            extra[f"{peer.upper()}_SERVICE_ADDR"] = f"127.0.0.1:{ports[peer]}"
        if spec.pii:
            extra.update(pii_settings(self.home))
        if spec.edge:
            if "gateway-authz" in ports:  # Envoy's authoriser for the direct reads
                extra["AUTHZ_PORT"] = str(ports["gateway-authz"])
            extra.update(edge_settings(self.home))
            extra.update(push_settings(self.home))
            extra.update(sms_client_env(ports["sms"]))
        if spec.carriers:
            _, kuaidi100_push = self.push_urls(ports)
            extra.update(CARRIER_CREDENTIALS)
            extra["CARRIER_API_URL"] = f"http://127.0.0.1:{ports['carriers']}"
            extra["KUAIDI100_CALLBACK_URL"] = kuaidi100_push
            extra["KUAIDI100_PUSH_SALT"] = push_settings(self.home)["KUAIDI100_PUSH_SALT"]
        if spec.channels:
            extra["CHANNEL_CONNECTIONS"] = channel_connections(ports["channels"])
        if spec.payments:
            extra.update(payment_client_env(self.home, ports["payments"]))
            edge = f"http://127.0.0.1:{ports['envoy']}{PROVIDER_NOTIFY_PATH}"
            extra["PAYMENT_WECHAT_REFUND_NOTIFY_URL"] = f"{edge}/wechat_pay"
        if spec.edge:
            # the gateway checks the providers' notifications: WeChat's platform key and APIv3 key,
            # Alipay's public key and the app id (the merchant's private keys stay with after-sales)
            keys = payment_settings(self.home)
            extra.update(
                {
                    f"PAYMENT_{name}": keys[name]
                    for name in (
                        "WECHAT_PLATFORM_SERIAL",
                        "WECHAT_PLATFORM_PUBLIC_KEY",
                        "WECHAT_APIV3_KEY",
                        "ALIPAY_PUBLIC_KEY",
                        "ALIPAY_APP_ID",
                    )
                }
            )
        extra.update(identity_settings(self.home, spec))
        return embedded.python_env(ROOT, extra)

    def start(self, timeout: float = 60.0) -> None:
        logs = self.home / "logs"
        with_db = [spec for spec in SERVICES if spec.database]
        asyncio.run(create_databases(self.infra.database_url, [self.database_name(s.name) for s in with_db]))
        if self.ports is None:
            self.ports = PortBook(prefer_defaults=self.fixed_ports)
        ports = {spec.name: self.ports.choose(spec.name, spec.default_port) for spec in SERVICES}
        ports.update(
            {
                metrics_name(spec.name): self.ports.choose(
                    metrics_name(spec.name), spec.default_port + METRICS_PORT_OFFSET
                )
                for spec in SERVICES
            }
        )
        # chosen before anything starts: the sandbox and logistics are told Envoy's push addresses
        ports["envoy"] = self.ports.choose("envoy", ENVOY_PORT)
        ports["envoy-admin"] = self.ports.choose("envoy-admin", ENVOY_ADMIN_PORT)
        ports["gateway-authz"] = self.ports.choose("gateway-authz", envoy.AUTHZ_PORT)
        ports.update({spec.name: self.ports.choose(spec.name, spec.default_port) for spec in SANDBOXES})
        migrations = [
            embedded.spawn(
                f"{spec.name}-migrate",
                [embedded.python(), "-m", spec.module, "migrate"],
                logs,
                env=self.service_env(spec, ports),
                cwd=ROOT,
            )
            for spec in with_db
        ]
        for migration in migrations:
            if migration.popen.wait(timeout=timeout) != 0:
                raise RuntimeError(f"{migration.name} failed; see {migration.log_path}")

        def launch(spec: ServiceSpec) -> embedded.Process:
            return embedded.spawn(
                spec.name,
                [embedded.python(), "-m", spec.module],
                logs,
                env=self.service_env(spec, ports),
                cwd=ROOT,
                port=ports[spec.name],
            )

        for spec in SERVICES:
            self.processes.append(launch(spec))
            self.endpoints[spec.name] = f"127.0.0.1:{ports[spec.name]}"
            self.metrics[spec.name] = f"127.0.0.1:{ports[metrics_name(spec.name)]}"
        sandboxes = []
        for sandbox in SANDBOXES:
            sandboxes.append(
                embedded.spawn(
                    sandbox.name,
                    [
                        embedded.python(),
                        "-m",
                        sandbox.module,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ports[sandbox.name]),
                    ],
                    logs,
                    env=self.sandbox_env(sandbox, ports),
                    cwd=ROOT,
                    port=ports[sandbox.name],
                )
            )
            self.endpoints[sandbox.name] = f"127.0.0.1:{ports[sandbox.name]}"
        self.processes.extend(sandboxes)
        deadline = time.monotonic() + timeout
        for index, spec in enumerate(SERVICES):
            # as the supervisor does later: a service that dies while starting is started again
            for attempt in range(1, STARTUP_ATTEMPTS + 1):
                try:
                    wait_for_health(self.processes[index], deadline)
                    break
                except RuntimeError:
                    if attempt == STARTUP_ATTEMPTS:
                        raise
                    log.warning("%s exited while starting; starting it again", spec.name)
                    time.sleep(RESTART_FIRST_DELAY)
                    self.processes[index] = launch(spec)
        for process in sandboxes:
            embedded.wait_for_port(process.port, max(1.0, deadline - time.monotonic()), process.popen)
        self._start_envoy(ports, logs, deadline)

    def _start_envoy(self, ports: dict[str, int], logs: Path, deadline: float) -> None:
        listen, admin, gateway_port = ports["envoy"], ports["envoy-admin"], ports["gateway"]
        config = envoy.render(
            ROOT / "deploy" / "envoy" / "envoy.yaml",
            listen_port=listen,
            admin_port=admin,
            gateway_host="127.0.0.1",
            gateway_port=gateway_port,
            descriptor=ROOT / "gen" / "oms.pb",
            upstreams={
                spec.name: ("127.0.0.1", ports[spec.name]) for spec in SERVICES if spec.name != "gateway"
            },
            authz=("127.0.0.1", ports["gateway-authz"]),
        )
        path = envoy.write(config, self.home / "envoy.yaml")
        process = embedded.spawn(
            "envoy",
            [embedded.executable("envoy"), "-c", str(path), "--use-dynamic-base-id", "--log-level", "warn"],
            logs,
            port=listen,
        )
        self.processes.append(process)
        # Envoy is started last: however long the services took, it gets its own half minute
        deadline = max(deadline, time.monotonic() + 30)
        embedded.wait_for_port(listen, max(1.0, deadline - time.monotonic()), process.popen)
        wait_for_envoy_ready(admin, deadline, process)
        self.endpoints["envoy"] = f"127.0.0.1:{listen}"
        self.endpoints["envoy-admin"] = f"127.0.0.1:{admin}"

    def stop(self) -> None:
        """The edge first (no new calls come in), then every service and sandbox at once."""
        edge = [process for process in self.processes if process.name in ("envoy", "gateway")]
        embedded.stop_together(edge)
        embedded.stop_together([process for process in self.processes if process not in edge])
        self.processes.clear()


# --- the supervisor: a crashed process is started again, on the same port, with back-off ----------

RESTART_FIRST_DELAY = 0.5
STARTUP_ATTEMPTS = 3
RESTART_MAX_DELAY = 30.0
# a process that stayed up this long has its back-off forgotten
RESTART_STABLE_SECONDS = 60.0


def restart_request(home: Path, name: str) -> Path:
    """A file `omsctl restart NAME` leaves, so the supervisor restarts at once and does not count it."""
    return home / "restart-requests" / name


@dataclass
class Watch:
    process: embedded.Process
    state: str = "running"  # running → waiting (back-off) → starting (until healthy) → running
    failures: int = 0
    started_at: float = field(default_factory=time.monotonic)
    down_since: float = 0.0
    next_start: float = 0.0


@dataclass
class Supervisor:
    """Keeps every process `omsctl up` started running: one that exits is started again with the
    same command on the same port after a back-off (0.5 s, doubling up to 30 s, forgotten after 60 s
    up), and what happens is said through `say`. `changed` runs when a pid changes."""

    home: Path
    processes: list[embedded.Process]
    say: Callable[[str], None]
    changed: Callable[[], None]
    watches: list[Watch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.watches = [Watch(process) for process in self.processes]

    def tick(self) -> None:
        now = time.monotonic()
        for watch in self.watches:
            process = watch.process
            if watch.state in ("running", "starting") and process.popen.poll() is not None:
                self._exited(watch, now)
            elif watch.state == "waiting" and now >= watch.next_start:
                process.respawn()
                watch.state, watch.started_at = "starting", now
                self.changed()
            elif watch.state == "starting" and ready(process):
                watch.state = "running"
                self.say(
                    f"{process.name} is back on port {process.port} (pid {process.pid}) "
                    f"after {now - watch.down_since:.1f} s"
                )

    def _exited(self, watch: Watch, now: float) -> None:
        process, code = watch.process, watch.process.popen.returncode
        request = restart_request(self.home, process.name)
        if watch.state == "running":
            watch.down_since = now
        if request.exists():
            request.unlink(missing_ok=True)
            delay = 0.0
            self.say(f"{process.name} stopped for `omsctl restart`; starting it again")
        else:
            if watch.state == "running" and now - watch.started_at >= RESTART_STABLE_SECONDS:
                watch.failures = 0
            watch.failures += 1
            delay = min(RESTART_MAX_DELAY, RESTART_FIRST_DELAY * 2 ** (watch.failures - 1))
            self.say(
                f"{process.name} exited ({code}); restarting it in {delay:.1f} s "
                f"(restart {watch.failures}; see {process.log_path})"
            )
        watch.state, watch.next_start = "waiting", now + delay


def ready(process: embedded.Process) -> bool:
    return ready_at(process.name, process.port)


def ready_at(name: str, port: int) -> bool:
    """A service when its health says SERVING; any other process when its port accepts connections."""
    if name in SERVICE_NAMES:
        return health_status(f"127.0.0.1:{port}", timeout=0.5) == "SERVING"
    try:
        embedded.wait_for_port(port, 0.2)
    except TimeoutError:
        return False
    return True


def _last_lines(path: Path, count: int = 5) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return ""
    return "".join(f"\n  {line[:300]}" for line in lines)


def wait_for_health(process: embedded.Process, deadline: float) -> None:
    status = ""
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited with {process.popen.returncode}; see {process.log_path}"
                + _last_lines(process.log_path)
            )
        status = health_status(f"127.0.0.1:{process.port}")
        if status == "SERVING":
            return
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} not healthy ({status or 'no answer'}); see {process.log_path}")


def health_status(address: str, timeout: float = 1.0, service: str = "readiness") -> str:
    """The service's readiness (its database and NATS reachable); `service=""` asks for liveness."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def wait_for_envoy_ready(admin_port: int, deadline: float, process: embedded.Process | None = None) -> None:
    """Until Envoy's admin says ready; an Envoy that exits (a port taken by another program, a bad
    config) is reported at once with the end of its log."""
    import urllib.request

    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            tail = process.log_path.read_text(errors="replace")[-2000:] if process.log_path.exists() else ""
            raise RuntimeError(f"envoy exited with {process.popen.returncode} while starting:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("envoy not ready")


# --- the state file that `down` and `status` read ------------------------------------------------


def state_path(home: Path) -> Path:
    return home / "state.json"


def write_state(home: Path, infra: Infra, platform: Platform) -> None:
    processes = [*infra.processes(), *platform.processes]
    previous = read_state(home)
    state = {
        "started_at": previous["started_at"] if previous else time.time(),
        "omsctl_pid": os.getpid(),
        "processes": [
            {"name": p.name, "pid": p.pid, "port": p.port, "log": str(p.log_path)} for p in processes
        ],
        "urls": {
            "DATABASE_URL": infra.database_url,
            "REDIS_URL": infra.redis_url,
            "NATS_URL": infra.nats_url,
        },
        "endpoints": platform.endpoints,
        "metrics": platform.metrics,
        "subject_prefix": platform.subject_prefix,
        "databases": {
            spec.name: with_database(infra.database_url, platform.database_name(spec.name))
            for spec in SERVICES
            if spec.database
        },
    }
    # written whole then renamed, so `status` and `restart` never read half a file
    partial = state_path(home).with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(state_path(home))


def read_state(home: Path) -> dict[str, Any] | None:
    path = state_path(home)
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def stop_from_state(home: Path) -> list[str]:
    """Stop what a (possibly killed) `omsctl up` left running, newest first."""
    state = read_state(home)
    if state is None:
        return []
    stopped = []
    omsctl_pid = state.get("omsctl_pid")
    if omsctl_pid and omsctl_pid != os.getpid() and embedded.is_running(omsctl_pid):
        os.kill(omsctl_pid, signal.SIGTERM)
        for _ in range(600):
            if not embedded.is_running(omsctl_pid):
                stopped.append(f"omsctl up (pid {omsctl_pid}) and everything it started")
                break
            time.sleep(0.1)
    for entry in reversed(state["processes"]):
        if embedded.is_running(entry["pid"]):
            sig = signal.SIGINT if entry["name"] == "postgres" else signal.SIGTERM
            embedded.stop_pid(entry["pid"], sig)
            stopped.append(entry["name"])
    state_path(home).unlink(missing_ok=True)
    return stopped


def reset(home: Path) -> None:
    embedded.remove_outside(home / "postgres")
    for name in ("postgres", "redis", "nats"):
        shutil.rmtree(home / name, ignore_errors=True)
    (home / "pii-keys.json").unlink(missing_ok=True)
    (home / "edge-keys.json").unlink(missing_ok=True)
    (home / "identity-keys.json").unlink(missing_ok=True)
    (home / "push-keys.json").unlink(missing_ok=True)
    (home / "payment-keys.json").unlink(missing_ok=True)


PII_SETTINGS = ("PII_KEYS", "PII_ACTIVE_KEY", "PII_HASH_KEY")


def pii_settings(home: Path) -> dict[str, str]:
    """The sealing keys: from the environment when given, else development keys minted once per
    home and kept beside the data (so data sealed by one run opens in the next; `--fresh` wipes both)."""
    if all(os.environ.get(name) for name in PII_SETTINGS):
        return {name: os.environ[name] for name in PII_SETTINGS}
    path = home / "pii-keys.json"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        minted = {
            "PII_KEYS": f"dev1:{KeyRing.generate_key()}",
            "PII_ACTIVE_KEY": "dev1",
            "PII_HASH_KEY": KeyRing.generate_key(),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(minted))
    return dict(json.loads(path.read_text()))


EDGE_SETTINGS = ("JWT_KEYS", "JWT_ACTIVE_KID", "API_KEYS", "SERVICE_ACCOUNTS", "WEBHOOK_SECRETS")
DEMO_SENDERS = (
    "payment/wechat_pay",
    "payment/alipay",
    # SF and Kuaidi100 push in their own formats (push_settings); other carriers may sign our JSON
    "carrier/zto",
    "channel/taobao",
    "channel/jd",
    "channel/shopee",
    "channel/douyin",
    "channel/pinduoduo",
    "channel/own_shop",
)


def edge_settings(home: Path) -> dict[str, str]:
    """The gateway's credentials: from the environment when JWT_KEYS is given, else development ones
    minted once per home (a demo channel key, a demo service account, a secret per webhook sender).
    The plain demo secrets are kept beside them so `omsctl token` and the tests can use them."""
    if os.environ.get("JWT_KEYS"):
        return {name: os.environ[name] for name in EDGE_SETTINGS if os.environ.get(name)}
    path = home / "edge-keys.json"
    if not path.exists():
        from services.gateway.tokens import hash_secret

        home.mkdir(parents=True, exist_ok=True)
        channel_secret, service_secret = KeyRing.generate_key(), KeyRing.generate_key()
        minted = {
            "JWT_KEYS": f"dev1:{KeyRing.generate_key()}",
            "JWT_ACTIVE_KID": "dev1",
            "API_KEYS": json.dumps(
                [
                    {
                        "key_id": "demo-taobao",
                        "secret": channel_secret,
                        "roles": ["channel"],
                        "channel": "TAOBAO",
                    }
                ]
            ),
            "SERVICE_ACCOUNTS": json.dumps(
                [
                    {
                        "client_id": "demo-service",
                        "secret_hash": hash_secret(service_secret),
                        "roles": ["service"],
                    }
                ]
            ),
            "WEBHOOK_SECRETS": json.dumps({sender: KeyRing.generate_key() for sender in DEMO_SENDERS}),
            "DEMO_CHANNEL_KEY_SECRET": channel_secret,
            "DEMO_SERVICE_SECRET": service_secret,
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(minted))
    return _with_bound_webhook_secrets(path, dict(json.loads(path.read_text())))


PUSH_SETTINGS = ("SF_PUSH_TOKEN", "KUAIDI100_PUSH_SALT")


def push_settings(home: Path) -> dict[str, str]:
    """The carriers' push secrets, shared by the gateway (which checks them), logistics (which subscribes
    Kuaidi100 with the salt) and the sandbox (which pushes with them): from the environment when given,
    else minted once per home and kept 0600 beside the data."""
    if all(os.environ.get(name) for name in PUSH_SETTINGS):
        return {name: os.environ[name] for name in PUSH_SETTINGS}
    path = home / "push-keys.json"
    if not path.exists():
        import secrets

        home.mkdir(parents=True, exist_ok=True)
        minted = {
            "SF_PUSH_TOKEN": secrets.token_urlsafe(32),
            "KUAIDI100_PUSH_SALT": secrets.token_urlsafe(24),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(minted))
    return dict(json.loads(path.read_text()))


def payment_settings(home: Path) -> dict[str, str]:
    """Development payment accounts: the merchant's and the providers' RSA key pairs and WeChat's APIv3
    key, minted once per home and kept 0600 beside the data (`--fresh` wipes them), so a restarted
    sandbox and the services that call it keep agreeing. WeChat's keys as PEM, Alipay's as the one-line
    base64 DER Alipay hands out."""
    path = home / "payment-keys.json"
    if not path.exists():
        import base64
        import secrets

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        def pair(pem: bool) -> tuple[str, str]:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
            private = key.private_bytes(
                encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            public = key.public_key().public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)
            if pem:
                return private.decode("ascii"), public.decode("ascii")
            return base64.b64encode(private).decode("ascii"), base64.b64encode(public).decode("ascii")

        (mch_private, mch_public), (platform_private, platform_public) = pair(True), pair(True)
        (app_private, app_public), (alipay_private, alipay_public) = pair(False), pair(False)
        minted = {
            "WECHAT_MCHID": "1900000109",
            "WECHAT_MERCHANT_SERIAL": secrets.token_hex(20).upper(),
            "WECHAT_MERCHANT_PRIVATE_KEY": mch_private,
            "WECHAT_MCH_PUBLIC_KEY": mch_public,
            "WECHAT_PLATFORM_SERIAL": f"PUB_KEY_ID_{secrets.randbelow(10**28):028d}",
            "WECHAT_PLATFORM_PRIVATE_KEY": platform_private,
            "WECHAT_PLATFORM_PUBLIC_KEY": platform_public,
            "WECHAT_APIV3_KEY": secrets.token_hex(16),
            "ALIPAY_APP_ID": "2021000000000001",
            "ALIPAY_APP_PRIVATE_KEY": app_private,
            "ALIPAY_APP_PUBLIC_KEY": app_public,
            "ALIPAY_PRIVATE_KEY": alipay_private,
            "ALIPAY_PUBLIC_KEY": alipay_public,
        }
        home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(minted))
    return dict(json.loads(path.read_text()))


# the sandbox checks and signs with these (PAYMENT_SANDBOX_*); the merchant halves go to the services
PAYMENT_SANDBOX_KEYS = (
    "WECHAT_MCHID",
    "WECHAT_MERCHANT_SERIAL",
    "WECHAT_MCH_PUBLIC_KEY",
    "WECHAT_PLATFORM_SERIAL",
    "WECHAT_PLATFORM_PRIVATE_KEY",
    "WECHAT_APIV3_KEY",
    "ALIPAY_APP_ID",
    "ALIPAY_APP_PUBLIC_KEY",
    "ALIPAY_PRIVATE_KEY",
)
PAYMENT_CLIENT_KEYS = (
    "WECHAT_MCHID",
    "WECHAT_MERCHANT_SERIAL",
    "WECHAT_MERCHANT_PRIVATE_KEY",
    "WECHAT_PLATFORM_SERIAL",
    "WECHAT_PLATFORM_PUBLIC_KEY",
    "WECHAT_APIV3_KEY",
    "ALIPAY_APP_ID",
    "ALIPAY_APP_PRIVATE_KEY",
    "ALIPAY_PUBLIC_KEY",
)


def payment_sandbox_env(home: Path) -> dict[str, str]:
    keys = payment_settings(home)
    extra = {f"PAYMENT_SANDBOX_{name}": keys[name] for name in PAYMENT_SANDBOX_KEYS}
    # the services keep their refunds across restarts, the sandbox forgets its trades: a fixed seed would
    # issue the same numbers again (PAYMENT_SANDBOX_SEED given replays one)
    extra["PAYMENT_SANDBOX_SEED"] = os.environ.get("PAYMENT_SANDBOX_SEED", "random")
    return extra


def payment_client_env(home: Path, port: int) -> dict[str, str]:
    keys = payment_settings(home)
    url = f"http://127.0.0.1:{port}"
    return {
        "PAYMENT_WECHAT_API_URL": url,
        "PAYMENT_ALIPAY_API_URL": url,
        **{f"PAYMENT_{name}": keys[name] for name in PAYMENT_CLIENT_KEYS},
    }


def channel_sandbox_env(home: Path, envoy_port: int) -> dict[str, str]:
    """The channel sandbox: the development apps, and where and how it pushes (the gateway's secrets of
    the channel senders; only those)."""
    secrets = json.loads(edge_settings(home).get("WEBHOOK_SECRETS", "{}"))
    return {
        "CHANNEL_SANDBOX_APPS": json.dumps(CHANNEL_APPS),
        "CHANNEL_SANDBOX_PUSH_URL": f"http://127.0.0.1:{envoy_port}{CHANNEL_PUSH_PATH}",
        "CHANNEL_SANDBOX_WEBHOOK_SECRETS": json.dumps(
            {f"channel/{name}": secrets[f"channel/{name}"] for name in CHANNEL_APPS}
        ),
        "CHANNEL_SANDBOX_SEED": os.environ.get("CHANNEL_SANDBOX_SEED", "random"),
    }


def channel_connections(port: int) -> str:
    """Orders' CHANNEL_CONNECTIONS for the channel sandbox (docs/runbook.md); a given one wins."""
    given = os.environ.get("CHANNEL_CONNECTIONS", "").strip()
    if given:
        return given
    url = f"http://127.0.0.1:{port}"
    return json.dumps(
        [
            {
                "channel": channel.upper(),
                "api_url": url,
                "app_key": app["app_key"],
                "app_secret": app["app_secret"],
                "refresh_token": app["refresh_token"],
                "shop_id": app["shop_id"],
            }
            for channel, app in CHANNEL_APPS.items()
        ]
    )


def _with_bound_webhook_secrets(path: Path, settings: dict[str, str]) -> dict[str, str]:
    """A home minted before webhook secrets named their kind gets its demo secrets bound (once)."""
    secrets = json.loads(settings.get("WEBHOOK_SECRETS", "{}"))
    kinds = {key.partition("/")[2]: key for key in DEMO_SENDERS}
    if all("/" in key for key in secrets):
        return settings
    settings["WEBHOOK_SECRETS"] = json.dumps(
        {kinds.get(key, key) if "/" not in key else key: value for key, value in secrets.items()}
    )
    path.write_text(json.dumps(settings))
    return settings


def identity_settings(home: Path, spec: ServiceSpec) -> dict[str, str]:
    """Each service's signing key (Ed25519, minted once per home, kept 0600 beside the data) and the
    public keys it trusts: the gateway's, and those of the services that call it (its callers in
    SERVICES' peer graph), so a service can be told who is calling by nobody else."""
    path = home / "identity-keys.json"
    keys: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if any(other.name not in keys for other in SERVICES):
        home.mkdir(parents=True, exist_ok=True)
        keys = {other.name: keys.get(other.name) or generate_key() for other in SERVICES}
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(keys))
    callers = [other.name for other in SERVICES if spec.name in other.peers]
    trusted = dict.fromkeys(["gateway", *callers])
    return {
        "IDENTITY_SIGNING_KID": f"{spec.name}-1",
        "IDENTITY_SIGNING_KEY": keys[spec.name],
        "IDENTITY_TRUSTED_KEYS": trusted_keys_json(
            (f"{name}-1", name, public_key_of(keys[name])) for name in trusted
        ),
    }
