"""The dev overlay's NATS (deploy/k8s/overlays/dev/nats.yaml) run here: three servers from the very config
of its ConfigMap, only the addresses and folders moved from the pods' to loopback ports and temporary
folders, form one JetStream cluster whose nodes the probes call healthy; a stream made with the kit's
STREAM_REPLICAS=3 keeps a copy on every node and takes events with one node gone."""

from __future__ import annotations

import asyncio
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from omsctl import embedded
from services.kit import bus
from tests.conftest import random_ref

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
NATS_YAML = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "overlays" / "dev" / "nats.yaml"
NODES = 3


def pod_config() -> tuple[str, dict[str, str]]:
    """nats.conf as the pods read it, and the probes' paths by kind."""
    documents = list(yaml.safe_load_all(NATS_YAML.read_text()))
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    (statefulset,) = [d for d in documents if d["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    probes = {
        kind: container[kind]["httpGet"]["path"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    return config["data"]["nats.conf"], probes


def substitute(text: str, pattern: str, replacement: str) -> str:
    changed, count = re.subn(pattern, replacement, text)
    assert count == 1, f"nats.conf has no single {pattern!r}: the test no longer matches the config"
    return changed


def node_config(text: str, index: int, ports: list[dict[str, int]], folder: Path) -> str:
    own = ports[index]
    text = substitute(text, r"listen: 0\.0\.0\.0:4222", f"listen: 127.0.0.1:{own['client']}")
    text = substitute(text, r"http: 0\.0\.0\.0:8222", f"http: 127.0.0.1:{own['monitor']}")
    text = substitute(text, r"listen: 0\.0\.0\.0:6222", f"listen: 127.0.0.1:{own['cluster']}")
    text = substitute(text, r"store_dir: \S+", f"store_dir: {folder / 'jetstream'}")
    text = substitute(text, r"pid_file: \S+", f"pid_file: {folder / 'nats.pid'}")
    for other in range(NODES):
        route = rf"nats://nats-{other}\.nats-cluster:6222"
        text = substitute(text, route, f"nats://127.0.0.1:{ports[other]['cluster']}")
    return text


def healthy(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[dict[str, int]], list[subprocess.Popen[bytes]]]]:
    text, _ = pod_config()
    ports = [
        {"client": embedded.free_port(), "cluster": embedded.free_port(), "monitor": embedded.free_port()}
    ]
    for _ in range(NODES - 1):
        ports.append(
            {"client": embedded.free_port(), "cluster": embedded.free_port(), "monitor": embedded.free_port()}
        )
    processes = []
    for index in range(NODES):
        folder = tmp_path / f"nats-{index}"
        folder.mkdir()
        (folder / "nats.conf").write_text(node_config(text, index, ports, folder))
        log = (folder / "nats.log").open("wb")
        processes.append(
            subprocess.Popen(
                [embedded.executable("nats-server"), "--config", str(folder / "nats.conf")],
                env={"SERVER_NAME": f"nats-{index}"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        yield ports, processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


async def test_three_nodes_from_the_dev_config_keep_every_stream_on_each_and_survive_losing_one(
    cluster: tuple[list[dict[str, int]], list[subprocess.Popen[bytes]]],
) -> None:
    ports, processes = cluster
    _, probes = pod_config()
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        for node in ports:
            for _ in range(200):
                if healthy(node["monitor"], probes[kind]):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"a node never passed its {kind} ({probes[kind]})")

    client = await bus.connect(f"nats://127.0.0.1:{ports[0]['client']}", "tests")
    try:
        js = client.jetstream(timeout=10)
        prefix = random_ref("k8s")
        limits = bus.StreamLimits(replicas=NODES)
        for _ in range(100):
            try:
                name = await bus.ensure_stream(js, prefix, "orders", limits, owner=True)
                break
            except Exception:  # no JetStream leader elected yet
                await asyncio.sleep(0.2)
        else:
            pytest.fail("the cluster never took a stream")
        info = await js.stream_info(name)
        assert info.config.num_replicas == NODES
        assert info.cluster is not None and info.cluster.leader
        peers = {info.cluster.leader, *(replica.name for replica in info.cluster.replicas or [])}
        assert peers == {f"nats-{index}" for index in range(NODES)}

        # a node drained or lost (the disruption budget allows one): the other two keep the quorum
        victim = next(i for i in range(1, NODES) if f"nats-{i}" != info.cluster.leader)
        processes[victim].kill()
        processes[victim].wait()
        for attempt in range(50):
            try:
                acknowledged = await js.publish(f"{prefix}.orders.created", b"{}", timeout=2)
                break
            except Exception:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
        assert acknowledged.stream == name and acknowledged.seq == 1
    finally:
        await client.close()
