"""Children are started with fork and exec while gRPC is busy in the same process (Postgres started
again under a running service, the supervisor's restarts). gRPC's fork handlers must be off there:
on, a fork during a call skips them half-way, and the child may die before it execs (a Postgres
restart failed in CI that way) or the parent's gRPC may hang at exit. Importing omsctl turns them
off; each case runs in a fresh interpreter, since gRPC reads the switch when it is first imported."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

FORKS_DURING_CALLS = """
import asyncio, subprocess
{first}
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def main() -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{{port}}")
    stub = health_pb2_grpc.HealthStub(channel)
    done = False

    async def calls() -> None:
        while not done:
            await stub.Check(health_pb2.HealthCheckRequest())

    callers = [asyncio.create_task(calls()) for _ in range(8)]
    # preexec_fn makes subprocess fork (as spawn's parent-death arrangement does), not vfork
    await asyncio.to_thread(lambda: [subprocess.run(["true"], preexec_fn=lambda: None) for _ in range(60)])
    done = True
    await asyncio.gather(*callers)
    await channel.close()
    await server.stop(None)


asyncio.run(main())
print("finished")
"""

SKIPPED = "skipping fork() handlers"


def _run(first_line: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    return subprocess.run(
        [sys.executable, "-c", FORKS_DURING_CALLS.format(first=first_line)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def test_with_omsctl_imported_first_forks_during_grpc_calls_run_no_grpc_fork_handlers() -> None:
    quiet = _run("import omsctl")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "finished" in quiet.stdout
    assert SKIPPED not in quiet.stderr


def test_without_it_the_same_forks_trip_grpcs_handlers_so_the_check_above_can_fail() -> None:
    noisy = _run("")
    assert noisy.returncode == 0, noisy.stderr[-2000:]
    assert SKIPPED in noisy.stderr
