"""`omsctl trace <id>`: everything one trace left behind in the local stack.

Log lines of every process (they carry `trace_id`), the order timeline entries and the gateway's
audit records with that trace id, in time order per source. The order's process-manager steps run
in the trace that created the order and link to the trace that made them due (a payment, a release):
both directions of such a link are followed, so the trace of an ingest also shows the payment's
entries, and the payment's trace the steps it caused (marked `via`).
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
    records, linked = asyncio.run(_records(state.get("databases", {}), trace_id))
    found = records
    wanted = {trace_id, *linked}
    for log in sorted((home / "logs").glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if any(wanted_id in line for wanted_id in wanted):
                found += 1
                print(f"[{log.stem}] {line}")
    if not found:
        print(f"no trace of {trace_id}")
    return 0 if found else 1


# timeline entries of the trace, of the traces its steps link to, and the steps linking to it
_TIMELINE = """
WITH linked AS (
  SELECT linked_trace_id AS trace_id FROM order_timeline WHERE trace_id = $1 AND linked_trace_id <> ''
  UNION SELECT trace_id FROM order_timeline WHERE linked_trace_id = $1
)
SELECT at, kind, order_id, actor_type || ':' || actor_id AS who, detail,
  CASE WHEN trace_id = $1 THEN '' ELSE trace_id END AS via
FROM order_timeline
WHERE trace_id = $1 OR trace_id IN (SELECT trace_id FROM linked)
ORDER BY sequence
"""


async def _records(databases: dict[str, str], trace_id: str) -> tuple[int, set[str]]:
    """Print the trace's database records; returns how many, and the linked trace ids met."""
    queries = {
        "orders": _TIMELINE,
        "gateway": "SELECT at, method AS kind, array_to_string(target_ids, ',') AS order_id,"
        " principal AS who, result || ' ' || detail AS detail FROM audit_log WHERE trace_id = $1 ORDER BY at",
    }
    found = 0
    linked: set[str] = set()
    for service, sql in queries.items():
        url = databases.get(service)
        if not url:
            continue
        conn = await asyncpg.connect(plain_url(url))
        try:
            for row in await conn.fetch(sql, trace_id):
                found += 1
                record = {k: str(v) for k, v in dict(row).items()}
                if record.get("via"):
                    linked.add(record["via"])
                elif "via" in record:
                    del record["via"]
                print(json.dumps({"source": f"{service} db", **record}))
        finally:
            await conn.close()
    return found, linked
