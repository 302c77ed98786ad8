"""`omsctl trace <id>`: everything one trace left behind in the local stack.

Log lines of every process (they carry `trace_id`), the order timeline entries and the gateway's
audit records with that trace id, in time order per source.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import asyncpg

from omsctl import stack
from services.kit.db import plain_url

_TRACE = re.compile(r"^[0-9a-f]{32}$")


def show(home: Path, trace_id: str) -> int:
    trace_id = trace_id.strip().lower()
    if not _TRACE.match(trace_id):
        print("a trace id is 32 hex digits (the x-trace-id header of an answer)")
        return 2
    state = stack.read_state(home)
    if state is None:
        print(f"nothing is running from {home}; start it with `make run`")
        return 1
    found = 0
    for log in sorted((home / "logs").glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if trace_id in line:
                found += 1
                print(f"[{log.stem}] {line}")
    found += asyncio.run(_records(state.get("databases", {}), trace_id))
    if not found:
        print(f"no trace of {trace_id}")
    return 0 if found else 1


async def _records(databases: dict[str, str], trace_id: str) -> int:
    queries = {
        "orders": "SELECT at, kind, order_id, actor_type || ':' || actor_id AS who, detail"
        " FROM order_timeline WHERE trace_id = $1 ORDER BY sequence",
        "gateway": "SELECT at, method AS kind, array_to_string(target_ids, ',') AS order_id,"
        " principal AS who, result || ' ' || detail AS detail FROM audit_log WHERE trace_id = $1 ORDER BY at",
    }
    found = 0
    for service, sql in queries.items():
        url = databases.get(service)
        if not url:
            continue
        conn = await asyncpg.connect(plain_url(url))
        try:
            for row in await conn.fetch(sql, trace_id):
                found += 1
                print(json.dumps({"source": f"{service} db", **{k: str(v) for k, v in dict(row).items()}}))
        finally:
            await conn.close()
    return found
