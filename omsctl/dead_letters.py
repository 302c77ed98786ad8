"""`omsctl dead-letters`: the bus's dead letters of every service (or one), listed and replayed.

Each service answers on core NATS (services/kit/dead_letters.py): this asks each one in turn and
prints what it says, so it works against `make run` and, with `--nats-url` and `--prefix`, against a
cluster (e.g. through `kubectl port-forward svc/nats 4222`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

SERVICES = ("orders", "inventory", "routing", "logistics", "aftersales", "gateway")
TIMEOUT_SECONDS = 5.0


async def ask(
    nats_url: str, prefix: str, services: Sequence[str], request: dict[str, Any]
) -> list[dict[str, Any]]:
    import nats
    from nats.errors import NoRespondersError, TimeoutError

    from services.kit.dead_letters import requests_subject

    nc = await nats.connect(nats_url, name="omsctl-dead-letters", connect_timeout=5, max_reconnect_attempts=1)
    answers = []
    try:
        for service in services:
            try:
                reply = await nc.request(
                    requests_subject(prefix, service), json.dumps(request).encode(), timeout=TIMEOUT_SECONDS
                )
                answers.append({"service": service, **json.loads(reply.data)})
            except (NoRespondersError, TimeoutError):
                answers.append({"service": service, "error": "no answer (is it running?)"})
    finally:
        await nc.close()
    return answers


def run(
    nats_url: str, prefix: str, action: str, service: str, ids: Sequence[int], consumer: str, replayed: bool
) -> int:
    """Print each service's answer as JSON lines; 1 when a service did not answer or a replay failed."""
    services = [service] if service else list(SERVICES)
    if action == "replay":
        if not service or not ids:
            print("replay needs --service and the dead-letter ids", file=sys.stderr)
            return 2
        request: dict[str, Any] = {"action": "replay", "ids": list(ids)}
    else:
        request = {"action": "list", "consumer": consumer, "replayed": replayed, "limit": 200}
    answers = asyncio.run(ask(nats_url, prefix, services, request))
    failed = False
    for answer in answers:
        print(json.dumps(answer, ensure_ascii=False))
        failed |= bool(answer.get("error") or answer.get("failed"))
    return 1 if failed else 0
