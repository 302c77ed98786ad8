"""Channel polling (`make bench-guards-poll`, issue 15): 10,000 Taobao orders at the channel sandbox, 1 % of
them pushed first, the other 99 % never pushed; orders' own polling code then finds them by modified time.

What runs: embedded Postgres migrated with orders' migrations, the channel sandbox as a real process on a
free port, and, in this process, the gateway's channel webhook as far as orders needs it (the push's
signature checked with the gateway's own rule, then ingested through orders' ingest path as a channel
payload, as `tests/channels_sandbox.py` does). Orders' settings, policy and channel connection are built
from the environment the service reads (`Settings.from_env`, `bootstrap.policy_of`,
`channel_jobs.connections_of`), and the poll is `channel_jobs.poll_channels`: what the leader-elected job
calls every CHANNEL_POLL_INTERVAL_S, paging the sandbox 100 orders a call.

The poll runs until its cursor has passed every order made (one round when all were made within the
first look back), then once more: the overlap reads them all again and must create nothing. Then SQL:

- poll_orders_stored: the channel's orders;
- poll_duplicates: the channel's orders shown twice: a channel order id stored more than once (the unique
  constraint should make it impossible), revised by a re-read (`version` > 1: an UPDATED outcome, though
  nothing changed at the channel), or with more than one `created` timeline entry; each order counted once.
  `poll_created_events_extra` is the `orders.created` events beyond one per stored order;
- poll_missing: made at the sandbox, not stored;
- poll_seconds, poll_orders_per_s: the covering rounds, orders read from the API per second;
- poll_pages: the order API calls the covering rounds made (the sandbox's own call count agrees);
- poll_again_*: the second round, every order already stored (each one read back and found UNCHANGED:
  what most of a real poll's orders are, since most orders do arrive by push).

Each round starts after ANALYZE of orders' tables, as a live database keeps its statistics. Without it
the second round is about 4× slower (10,000 orders: 41-54 s, not 13 s): the per-order locked read of
`get_by_channel` apparently keeps a plan made while the table was nearly empty (its time grows with
the table).

BENCH_POLL_ORDERS (10000) changes the number made; 1 % of them (at least one) are pushed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import bench_stack, identity_env
from omsctl import embedded
from omsctl.stack import CHANNEL_APPS, ROOT
from services.gateway.domain.webhooks import signed
from services.kit.db import make_engine
from services.kit.sealing import KeyRing
from services.orders import bootstrap, channel_jobs, handlers
from services.orders.channel_apis import ChannelApis
from services.orders.config import Settings
from services.orders.domain.channel_health import Connection
from services.orders.domain.model import Channel
from services.orders.domain.timeline import Actor, ActorType
from services.orders.handlers import channel_health as health
from services.orders.store import OrdersUnitOfWork

ORDERS = int(os.environ.get("BENCH_POLL_ORDERS", "10000"))
PUSHED = max(1, ORDERS // 100)
CHANNEL = "taobao"
MAX_ROUNDS = 10
# the sandbox makes at most this many orders per control call
MAKE_PER_CALL = 1000
SECRET = os.urandom(32)
WEBHOOK_WINDOW_S = 300


class CountedApis(ChannelApis):
    """Orders' own channel API client, counting the order pages it asks for."""

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(timeout_seconds)
        self.pages = 0

    async def orders(self, connection: Connection, start: datetime, end: datetime, page: int) -> health.Page:
        self.pages += 1
        return await super().orders(connection, start, end, page)


class Hooks:
    """`POST /v1/webhooks/channels/{sender}`: the gateway's signature rule, then orders' ingest path."""

    def __init__(self, new_uow: Any, policy: handlers.Policy) -> None:
        self.new_uow = new_uow
        self.policy = policy
        self.answered: dict[int, int] = {}
        self.url = ""

    def _count(self, status: int) -> None:
        self.answered[status] = self.answered.get(status, 0) + 1

    async def on_push(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        body = await request.read()
        headers = request.headers
        ok = sender == CHANNEL and signed(
            SECRET,
            headers.get("x-oms-webhook-timestamp", ""),
            headers.get("x-oms-webhook-signature", ""),
            body,
            time.time(),
            WEBHOOK_WINDOW_S,
        )
        if not ok:
            self._count(401)
            return web.json_response({"message": "authentication required"}, status=401)
        item = handlers.ChannelPayload(Channel(sender.upper()), json.loads(body))
        actor = Actor(ActorType.CHANNEL, f"channel/{sender}")
        results, _ = await handlers.ingest(self.new_uow(), self.policy, [item], actor)
        if results[0].order is None:
            self._count(400)
            return web.json_response({"message": results[0].error}, status=400)
        self._count(200)
        return web.json_response({"accepted": True, "reference": results[0].order.order_id})


@asynccontextmanager
async def hooks_running(hooks: Hooks) -> AsyncIterator[None]:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/v1/webhooks/channels/{sender}", hooks.on_push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hooks.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/webhooks/channels"
    try:
        yield
    finally:
        await runner.cleanup()


def start_sandbox(push_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = embedded.free_port()
    env = {
        "CHANNEL_SANDBOX_APPS": json.dumps(CHANNEL_APPS),
        "CHANNEL_SANDBOX_WEBHOOK_SECRETS": json.dumps(
            {f"channel/{CHANNEL}": base64.b64encode(SECRET).decode()}
        ),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandboxes.channels",
            "--host=127.0.0.1",
            f"--port={port}",
            "--seed=15",
            f"--push-url={push_url}",
        ],
        cwd=ROOT,
        env=embedded.python_env(ROOT, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"the channel sandbox did not start: {line!r}")
    return process, line.removeprefix("listening on ").strip()


async def make_orders(session: aiohttp.ClientSession, sandbox: str) -> list[dict[str, Any]]:
    """ORDERS orders, MAKE_PER_CALL a call; PUSHED of them pushed, spread evenly over the calls."""
    made: list[dict[str, Any]] = []
    for first in range(0, ORDERS, MAKE_PER_CALL):
        count = min(MAKE_PER_CALL, ORDERS - first)
        push = PUSHED * (first + count) // ORDERS - PUSHED * first // ORDERS
        body = {"channel": CHANNEL, "count": count, "push": push}
        async with session.post(f"{sandbox}/_control/orders", json=body) as reply:
            assert reply.status == 201, await reply.text()
            made.extend((await reply.json())["orders"])
    return made


async def scalar(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), {"channel": CHANNEL.upper()})).scalar_one() or 0)


async def analyze(engine: AsyncEngine) -> None:
    """Statistics of the tables as they stand, as a live database has them. Without them a table filled
    within the run keeps the plans made while it was nearly empty (a sequential scan per order read)."""
    async with engine.begin() as conn:
        for table in ("orders", "order_lines", "order_timeline"):
            await conn.execute(text(f"ANALYZE {table}"))


async def measure(url: str, nats_url: str) -> list[str]:
    keys = {
        "PII_KEYS": f"b1:{KeyRing.generate_key()}",
        "PII_ACTIVE_KEY": "b1",
        "PII_HASH_KEY": KeyRing.generate_key(),
    }
    base_env = {
        **identity_env("orders"),
        **keys,
        "DATABASE_URL": url,
        "NATS_URL": nats_url,
        "ROUTING_SERVICE_ADDR": "127.0.0.1:9",
        "INVENTORY_SERVICE_ADDR": "127.0.0.1:9",
    }
    settings = Settings.from_env(base_env)
    policy = bootstrap.policy_of(settings)
    engine = make_engine(url)

    def new_uow() -> OrdersUnitOfWork:
        return bootstrap.unit_of_work(engine, settings.keys)

    hooks = Hooks(new_uow, policy)
    async with hooks_running(hooks), aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        process, sandbox = start_sandbox(hooks.url)
        try:
            # orders' settings as the service reads them, CHANNEL_CONNECTIONS naming the sandbox
            connection = {"channel": CHANNEL.upper(), "api_url": sandbox, **CHANNEL_APPS[CHANNEL]}
            channels = Settings.from_env(
                {**base_env, "CHANNEL_CONNECTIONS": json.dumps([connection])}
            ).channels
            watch = channel_jobs.watch_of(channels)
            api = CountedApis(channels.api_timeout_s)
            await health.connect(new_uow, channel_jobs.connections_of(channels, new_uow))

            made_started = time.perf_counter()
            made = await make_orders(http, sandbox)
            made_seconds = time.perf_counter() - made_started
            pushed = sum(1 for order in made if order["pushed"])
            stored_by_push = await scalar(engine, "SELECT count(*) FROM orders WHERE channel = :channel")
            latest = max(datetime.fromisoformat(order["modified_at"]) for order in made)

            await analyze(engine)
            rounds, seen, created, errors = 0, 0, 0, []
            started = time.perf_counter()
            while rounds < MAX_ROUNDS:
                rounds += 1
                (polled,) = await channel_jobs.poll_channels(new_uow, policy, api, watch, lambda _: None)
                seen, created = seen + polled.seen, created + polled.created
                if polled.error:
                    errors.append(polled.error)
                cursor = await _cursor(new_uow)
                if not polled.error and cursor is not None and cursor >= latest:
                    break
            seconds = time.perf_counter() - started
            pages = api.pages

            await analyze(engine)
            again_started = time.perf_counter()
            (again,) = await channel_jobs.poll_channels(new_uow, policy, api, watch, lambda _: None)
            again_seconds = time.perf_counter() - again_started
            again_pages = api.pages - pages
            async with http.get(f"{sandbox}/_control") as reply:
                calls = (await reply.json())["calls"][CHANNEL]
            await api.close()
        finally:
            process.terminate()
            process.wait(10)

    async with engine.connect() as conn:
        params = {"channel": CHANNEL.upper()}
        stored_ids = {
            str(ref)
            for (ref,) in await conn.execute(
                text("SELECT channel_order_id FROM orders WHERE channel = :channel"), params
            )
        }
    stored = await scalar(engine, "SELECT count(*) FROM orders WHERE channel = :channel")
    duplicate_rows = await scalar(
        engine,
        "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM orders WHERE channel = :channel "
        "GROUP BY channel_order_id HAVING count(*) > 1) AS twice",
    )
    revised = await scalar(engine, "SELECT count(*) FROM orders WHERE channel = :channel AND version > 1")
    created_twice = await scalar(
        engine,
        "SELECT count(*) FROM (SELECT o.order_id FROM orders o JOIN order_timeline t USING (order_id) "
        "WHERE o.channel = :channel AND t.kind = 'created' GROUP BY o.order_id HAVING count(*) > 1) AS x",
    )
    doubled = await scalar(
        engine,
        "SELECT count(DISTINCT o.channel_order_id) FROM orders o WHERE o.channel = :channel AND ("
        " o.version > 1"
        " OR (SELECT count(*) FROM orders d WHERE d.channel = o.channel"
        "     AND d.channel_order_id = o.channel_order_id) > 1"
        " OR (SELECT count(*) FROM order_timeline t"
        "     WHERE t.order_id = o.order_id AND t.kind = 'created') > 1)",
    )
    created_events = await scalar(engine, "SELECT count(*) FROM outbox WHERE subject LIKE '%orders.created'")
    await engine.dispose()

    missing = len({order["order_id"] for order in made} - stored_ids)
    return [
        f"poll_orders_made: {len(made)} orders",
        f"poll_orders_pushed: {pushed} orders",
        f"poll_orders_stored_by_push: {stored_by_push} orders",
        f"poll_orders_stored: {stored} orders",
        f"poll_duplicates: {doubled} orders",
        f"poll_duplicate_rows: {duplicate_rows} orders",
        f"poll_orders_revised: {revised} orders",
        f"poll_orders_created_twice: {created_twice} orders",
        f"poll_created_events_extra: {created_events - stored} events",
        f"poll_missing: {missing} orders",
        f"poll_rounds: {rounds} rounds",
        f"poll_orders_seen: {seen} orders",
        f"poll_orders_created: {created} orders",
        f"poll_errors: {len(errors)} rounds{' (' + errors[0] + ')' if errors else ''}",
        f"poll_seconds: {seconds:.2f} s",
        f"poll_orders_per_s: {seen / seconds:.0f} orders/s",
        f"poll_pages: {pages} pages",
        f"poll_again_seen: {again.seen} orders",
        f"poll_again_created: {again.created} orders",
        f"poll_again_seconds: {again_seconds:.2f} s",
        f"poll_again_orders_per_s: {again.seen / again_seconds:.0f} orders/s",
        f"poll_again_pages: {again_pages} pages",
        f"poll_sandbox_api_calls: {calls.get('calls', 0)} calls",
        f"poll_pushes_accepted: {hooks.answered.get(200, 0)} pushes",
        f"poll_pushes_refused: {sum(n for status, n in hooks.answered.items() if status != 200)} pushes",
        f"poll_make_seconds: {made_seconds:.2f} s",
    ]


async def _cursor(new_uow: Any) -> datetime | None:
    uow = new_uow()
    async with uow:
        found = await uow.channels.get(CHANNEL.upper())
    return found.poll_cursor if found is not None else None


def main() -> None:
    with bench_stack() as bench:
        lines = asyncio.run(measure(bench.database("orders"), bench.infra.nats_url))
    for line in lines:
        print(line)
    failed = [line for line in lines if line.startswith(("poll_duplicates:", "poll_missing:"))]
    if any(not line.endswith(": 0 orders") for line in failed):
        sys.exit("orders doubled or missing: " + "; ".join(failed))


if __name__ == "__main__":
    main()
