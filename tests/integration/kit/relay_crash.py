"""Runs an outbox relay that SIGKILLs its own process after publishing N events: a real crash mid-batch,
after some events reached JetStream but before the relay marked them published."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from services.kit import bus
from services.kit.db import make_engine
from services.kit.outbox import OutboxRelay


class CrashingJetStream:
    def __init__(self, js: Any, crash_after: int) -> None:
        self.js = js
        self.left = crash_after

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        ack = await self.js.publish(*args, **kwargs)
        self.left -= 1
        if self.left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return ack

    def __getattr__(self, name: str) -> Any:
        return getattr(self.js, name)


async def main(database_url: str, nats_url: str, prefix: str, crash_after: int, batch_size: int) -> None:
    engine = make_engine(database_url)
    nc = await bus.connect(nats_url, "relay-crash")
    relay = OutboxRelay(
        engine,
        CrashingJetStream(nc.jetstream(), crash_after),  # type: ignore[arg-type]
        service="crash-test",
        subject_prefix=prefix,
        batch_size=batch_size,
    )
    await relay.run(asyncio.Event())


if __name__ == "__main__":
    url, nats_url, prefix, crash_after, batch = sys.argv[1:6]
    asyncio.run(main(url, nats_url, prefix, int(crash_after), int(batch)))
