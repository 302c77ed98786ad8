"""Tracking pushes end to end (`make bench-logistics`, after bench.logistics): the whole platform as
`make run` starts it (Envoy, the gateway, logistics, the carrier sandbox), shipments waybilled through the
sandbox, then carriers' pushes in their real formats sent through Envoy by many concurrent clients, half
SF route pushes (JSON, the push token in the address), half Kuaidi100 pushes (a form signed with the
salt): Envoy → gateway (verify, audit) → logistics (parse, record the node, outbox) → NATS.

Each push carries one node new to its shipment (its own description), so each is one tracking event
and one `oms.logistics.tracking_updated` on NATS. Measured:

- tracking_pushes_per_s: pushes answered with the carrier's success reply, per second, over the run;
- tracking_push_reply_p50_ms / _p99_ms: push sent → reply received. Logistics commits the node before
  it answers, so this is also "push sent → node visible in GetTracking";
- tracking_to_timeline_p99_ms: push sent → its `oms.logistics.tracking_updated` event received on NATS
  (what orders' timeline consumes; the timeline itself is orders' part and not measured here).

- http_echo_per_s: the ceiling, the same clients sending the same pushes to a server that answers at
  once (bench/http_echo.py), and `tracking_pushes_per_s_vs_http_echo_per_s`.

Prints `name: value unit` lines. BENCH_SECONDS (10), BENCH_CLIENTS (64), BENCH_SHIPMENTS (400).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import psutil

from bench import ceilings
from bench.common import percentile
from oms.logistics.v1 import events_pb2
from omsctl import embedded, tokens
from omsctl.stack import (
    KUAIDI100_PUSH_PATH,
    SF_PUSH_PATH,
    Infra,
    Platform,
    edge_settings,
    push_settings,
)
from services.gateway.config import DEFAULT_LIMITS
from services.kit import bus

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "64"))
SHIPMENTS = int(os.environ.get("BENCH_SHIPMENTS", "400"))
WARM_UP_SECONDS = 2.0
SF_OK = {"return_code": "0000"}


def control(platform: Platform, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"http://{platform.endpoints['carriers']}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def shipments_request(number: int) -> dict[str, Any]:
    carrier = "SF" if number % 2 == 0 else "ZTO"
    return {
        "orderId": f"bench-track-{number}",
        "customerId": f"c-{number % 97}",
        "channel": "TAOBAO",
        "address": {
            "recipientName": "张三",
            "phone": "13900000000",
            "province": "上海市",
            "city": "上海市",
            "district": "浦东新区",
            "detail": "世纪大道 1 号",
        },
        "shipments": [
            {
                "warehouseId": "WH-SH",
                "carrier": carrier,
                "lines": [{"sku": "TEA", "title": "龙井茶", "quantity": "1"}],
                "origin": {
                    "province": "上海市",
                    "city": "上海市",
                    "district": "青浦区",
                    "detail": "华新镇 1 号",
                },
            }
        ],
    }


async def waybilled_shipments(
    session: aiohttp.ClientSession, edge: str, service: str
) -> list[dict[str, str]]:
    """SHIPMENTS shipments, half SF and half ZTO, with their waybills from the sandbox."""
    headers = {"authorization": f"Bearer {service}"}
    gate = asyncio.Semaphore(16)

    async def one(number: int) -> dict[str, str]:
        async with (
            gate,
            session.post(
                f"{edge}/v1/logistics/shipments", json=shipments_request(number), headers=headers
            ) as reply,
        ):
            answer = await reply.json()
            assert reply.status == 200, answer
        shipment = answer["shipments"][0]
        return {"id": shipment["shipmentId"], "carrier": shipment["carrier"]}

    made = await asyncio.gather(*(one(n) for n in range(SHIPMENTS)))
    async with session.post(
        f"{edge}/v1/logistics/waybill-batches", json={"shipmentIds": [s["id"] for s in made]}, headers=headers
    ) as reply:
        batch_id = (await reply.json())["batchId"]
    deadline = time.monotonic() + 120
    while True:
        async with session.get(f"{edge}/v1/logistics/waybill-batches/{batch_id}", headers=headers) as reply:
            batch = (await reply.json())["batch"]
        if batch["finished"]:
            break
        assert time.monotonic() < deadline, "the waybill batch did not finish"
        await asyncio.sleep(0.2)
    numbers = {item["shipmentId"]: item["waybillNo"] for item in batch["items"]}
    for shipment in made:
        shipment["waybill"] = numbers[shipment["id"]]
    assert all(s["waybill"] for s in made), "some shipments got no waybill"
    return made


def sf_push(shipment: dict[str, str], description: str) -> bytes:
    route = {
        "id": description,
        "mailno": shipment["waybill"],
        "orderid": shipment["id"],
        "acceptTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600)),
        "acceptAddress": "上海",
        "remark": description,
        "opCode": "30",  # sorted at the hub: in transit
    }
    return json.dumps({"Body": {"WaybillRoute": [route]}}, ensure_ascii=False).encode()


def kuaidi100_push(shipment: dict[str, str], description: str, salt: str) -> bytes:
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600))
    track = {
        "message": "ok",
        "nu": shipment["waybill"],
        "ischeck": "0",
        "condition": "00",
        "com": "zhongtong",
        "status": "200",
        "state": "0",
        "data": [{"time": now, "ftime": now, "context": description}],
    }
    param = json.dumps(
        {
            "status": "polling",
            "billstatus": "got",
            "message": "",
            "autoCheck": "0",
            "comOld": "",
            "comNew": "",
            "lastResult": track,
        },
        ensure_ascii=False,
    )
    sign = hashlib.md5((param + salt).encode("utf-8")).hexdigest().upper()
    return urlencode({"param": param, "sign": sign}).encode()


class Run:
    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.replies: list[float] = []
        self.to_event: list[float] = []
        self.answered = 0
        self.refused: dict[str, int] = {}
        self.measuring = False


async def pushers(
    session: aiohttp.ClientSession,
    edge: str,
    shipments: list[dict[str, str]],
    run: Run,
    clients: int,
    until: float,
    phase: str,
) -> None:
    secrets = push_settings(Path(os.environ["OMS_BENCH_HOME"]))
    sf_url = f"{edge}{SF_PUSH_PATH}?token={secrets['SF_PUSH_TOKEN']}"
    kuaidi100_url = f"{edge}{KUAIDI100_PUSH_PATH}"
    counter = 0

    async def client(index: int) -> None:
        nonlocal counter
        while time.monotonic() < until:
            counter += 1
            shipment = shipments[counter % len(shipments)]
            description = f"bench {phase} {index}-{counter}"
            if shipment["carrier"] == "SF":
                url, body = sf_url, sf_push(shipment, description)
                headers = {"content-type": "application/json;charset=UTF-8"}
            else:
                url, body = (
                    kuaidi100_url,
                    kuaidi100_push(shipment, description, secrets["KUAIDI100_PUSH_SALT"]),
                )
                headers = {"content-type": "application/x-www-form-urlencoded"}
            measuring = run.measuring
            started = time.perf_counter()
            if measuring:
                run.sent[description] = started
            async with session.post(url, data=body, headers=headers) as reply:
                answer = await reply.read()
            took = time.perf_counter() - started
            ok = reply.status == 200 and (b'"0000"' in answer or b'"returnCode":"200"' in answer)
            if not measuring:
                continue
            if ok:
                run.answered += 1
                run.replies.append(took)
            else:
                run.refused[str(reply.status)] = run.refused.get(str(reply.status), 0) + 1
                run.sent.pop(description, None)

    await asyncio.gather(*(client(n) for n in range(clients)))


class Phase:
    """`clients` pushing as fast as they are answered, for `seconds` after a warm-up."""

    def __init__(self, name: str, clients: int, seconds: float) -> None:
        self.name, self.clients, self.seconds = name, clients, seconds
        self.run = Run()
        self.elapsed = 0.0
        self.cpu: dict[str, float] = {}
        self.load = 0.0

    async def push(
        self, platform: Platform, session: aiohttp.ClientSession, shipments: list[dict[str, str]]
    ) -> None:
        edge = f"http://{platform.endpoints['envoy']}"
        ends = time.monotonic() + WARM_UP_SECONDS + self.seconds
        load = asyncio.create_task(pushers(session, edge, shipments, self.run, self.clients, ends, self.name))
        await asyncio.sleep(WARM_UP_SECONDS)
        groups = process_groups(platform)
        self.run.measuring, started, before = True, time.perf_counter(), tree_cpu(groups)
        await load
        self.elapsed = time.perf_counter() - started
        self.cpu = {name: used - before.get(name, 0.0) for name, used in tree_cpu(groups).items()}
        self.load = os.getloadavg()[0]
        for _ in range(100):  # the last events still on their way
            if not self.run.sent:
                break
            await asyncio.sleep(0.1)

    def report(self, suffix: str = "") -> None:
        run, elapsed = self.run, self.elapsed
        print(f"tracking_pushes_per_s{suffix}: {run.answered / elapsed:.0f} pushes/s")
        print(f"tracking_pushes_answered{suffix}: {run.answered} pushes")
        print(f"tracking_pushes_refused{suffix}: {sum(run.refused.values())} pushes")
        for status, count in sorted(run.refused.items()):
            print(f"tracking_pushes_refused_http_{status}{suffix}: {count} pushes")
        print(f"tracking_push_reply_p50_ms{suffix}: {percentile(run.replies, 0.50) * 1000:.1f} ms")
        print(f"tracking_push_reply_p99_ms{suffix}: {percentile(run.replies, 0.99) * 1000:.1f} ms")
        print(f"tracking_to_timeline_p50_ms{suffix}: {percentile(run.to_event, 0.50) * 1000:.1f} ms")
        print(f"tracking_to_timeline_p99_ms{suffix}: {percentile(run.to_event, 0.99) * 1000:.1f} ms")
        print(f"tracking_events_missing{suffix}: {len(run.sent)} events")
        print(f"tracking_clients{suffix}: {self.clients} clients")
        print(f"tracking_load_average{suffix}: {self.load:.1f} runnable")
        for name, used in self.cpu.items():
            print(f"tracking_cpu_{name}{suffix}: {used / elapsed * 100:.0f} % of a core")


async def measure(platform: Platform) -> None:
    edge = f"http://{platform.endpoints['envoy']}"
    service = tokens.mint(edge_settings(platform.home), "bench-orders", ["service"], 3600)
    phases = [Phase("light", 4, 5.0), Phase("heavy", CLIENTS, SECONDS)]
    current: list[Run] = []
    nats = await bus.connect(platform.infra.nats_url, "bench-tracking")

    async def on_event(msg: Any) -> None:
        event = events_pb2.TrackingUpdated.FromString(msg.data)
        for run in current:
            sent = run.sent.pop(event.description, None)
            if sent is not None:
                run.to_event.append(time.perf_counter() - sent)

    await nats.subscribe(f"{platform.subject_prefix}.logistics.tracking_updated", cb=on_event)
    connector = aiohttp.TCPConnector(limit=CLIENTS, limit_per_host=CLIENTS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        shipments = await waybilled_shipments(session, edge, service)
        for phase in phases:
            current[:] = [phase.run]
            await phase.push(platform, session, shipments)
        current[:] = []
        echo = await http_echo_rate(session, shipments, CLIENTS, SECONDS)
    await nats.close()
    light, heavy = phases
    heavy.report()
    light.report(f"_{light.clients}_clients")
    ceilings.ratio(
        "tracking_pushes_per_s", heavy.run.answered / heavy.elapsed, "http_echo_per_s", echo, "pushes/s"
    )


async def http_echo_rate(
    session: aiohttp.ClientSession, shipments: list[dict[str, str]], clients: int, seconds: float
) -> float:
    """The ceiling: the same clients sending the same pushes, for as long, to a server that answers
    each at once (bench/http_echo.py, straight, no Envoy)."""
    port = embedded.free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.http_echo", env={**os.environ, "PORT": str(port)}
    )
    try:
        await asyncio.to_thread(embedded.wait_for_port, port, 10.0)
        run = Run()
        ends = time.monotonic() + WARM_UP_SECONDS + seconds
        edge = f"http://127.0.0.1:{port}"
        load = asyncio.create_task(pushers(session, edge, shipments, run, clients, ends, "echo"))
        await asyncio.sleep(WARM_UP_SECONDS)
        run.measuring, started = True, time.perf_counter()
        await load
        return run.answered / (time.perf_counter() - started)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)


def process_groups(platform: Platform) -> dict[str, list[int]]:
    """Where the CPU goes: each process of the path, Postgres (its backends counted in `tree_cpu`), this
    client."""
    groups = {p.name: [p.pid] for p in platform.processes if p.name in ("envoy", "gateway", "logistics")}
    for server in platform.infra.started:
        process = getattr(server, "process", None)
        if process is not None:
            groups[process.name] = [process.pid]
    groups["bench-client"] = [os.getpid()]
    return groups


def tree_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds of each group's processes and all their children, live or ended (Postgres runs each
    connection in a backend of its own)."""
    used: dict[str, float] = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                times = root.cpu_times()
                total += times.user + times.system
                if pid == os.getpid():
                    continue  # this client's children are the platform itself
                total += times.children_user + times.children_system
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child_times = child.cpu_times()
                        total += child_times.user + child_times.system
        used[name] = total
    return used


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="oms-bench-tracking-"))
    home.chmod(0o755)
    os.environ["OMS_BENCH_HOME"] = str(home)
    # what a carrier's push service is allowed from its few addresses is an operator's choice; here the
    # bench's one address may push as fast as the platform takes it
    os.environ["RATE_LIMITS"] = DEFAULT_LIMITS.replace("push=500/s:2000", "push=100000/s:100000")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    infra = Infra(home, durable=False)
    platform = Platform(infra, home, subject_prefix="benchtrack", fixed_ports=False)
    try:
        infra.start()
        platform.start()
        # the sandbox's own pushes would mix with the bench's: it only issues the waybills here
        control(platform, "/_control/all", {"push_enabled": False})
        asyncio.run(measure(platform))
    finally:
        platform.stop()
        infra.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
