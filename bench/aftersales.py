"""After-sales benchmark (`make bench-aftersales`).

1. `refund_cents_off`: 10,000 random vouchers (BENCH_VOUCHERS): random orders (1–6 lines, 1–10 units,
   prices, a promotion, a coupon, points and shipping split by orders' own rule), each refunded in random
   partial refunds until every unit is back. Counted: every minor unit by which a voucher's lines and its
   totals disagree, plus every minor unit by which the refunds of a line, summed, differ from what was paid
   for it per bucket. Goal 0.
2. `auto_refunds_per_s`: the real orders, inventory and after-sales processes and the payment sandbox
   (a real process, every call 50 ms late). Orders are paid (the sandbox holds the trade, orders the
   payment); then BENCH_TICKETS refund-only tickets are opened by BENCH_CLIENTS concurrent clients, each
   approved by the rules, refunded at the sandbox and settled. The figure is tickets per second from the
   first opening to the last refund settled. `refunds_duplicated`: refunds the sandbox executed more than
   once, or more than one refund for one ticket (goal 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench import ceilings
from bench.common import bench_stack, client_channel, cpu_seconds
from oms.aftersales.v1 import aftersales_pb2 as apb
from oms.aftersales.v1 import aftersales_pb2_grpc
from oms.common.v1 import common_pb2
from oms.orders.v1 import orders_pb2, orders_pb2_grpc
from omsctl import embedded
from omsctl.stack import ROOT, payment_client_env, payment_sandbox_env
from services.aftersales.domain.order_snapshot import Buckets, OrderSnapshot, Payment, SnapshotLine
from services.aftersales.domain.reasons import Reason, Responsibility
from services.aftersales.domain.vouchers import RefundLine, calculate_voucher, ledger_after
from services.kit.sealing import KeyRing
from services.orders.domain.money import split_order

VOUCHERS = int(os.environ.get("BENCH_VOUCHERS", "10000"))
TICKETS = int(os.environ.get("BENCH_TICKETS", "1000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
LATENCY_MS = int(os.environ.get("BENCH_PROVIDER_LATENCY_MS", "50"))
FIELDS = ("goods_minor", "promotion_minor", "coupon_minor", "points_minor", "shipping_minor")
RULES = json.dumps(
    {
        "rules": [
            {
                "name": "small_refund_only",
                "conditions": {"kinds": ["REFUND_ONLY"], "max_amount_minor": 20000},
                "outcome": "APPROVE",
            }
        ]
    }
)


# ---- 1. vouchers to the cent ---------------------------------------------------------------------


def random_order(rng: random.Random, number: int) -> OrderSnapshot:
    lines = [(rng.randrange(1, 100_000), rng.randrange(1, 11)) for _ in range(rng.randrange(1, 7))]
    goods = [price * quantity for price, quantity in lines]
    total = sum(goods)
    promotion = rng.randrange(0, total // 3 + 1)
    coupon = rng.randrange(0, (total - promotion) // 3 + 1)
    points = rng.randrange(0, (total - promotion - coupon) // 3 + 1)
    shipping = rng.randrange(0, 2_000)
    shares = split_order(goods, promotion, coupon, points, shipping)
    snapshot_lines = tuple(
        SnapshotLine(
            index,
            f"SKU-{index}",
            "item",
            quantity,
            Buckets(
                share.goods_minor,
                share.promotion_minor,
                share.coupon_minor,
                share.points_minor,
                share.shipping_minor,
            ),
            False,
        )
        for index, ((_, quantity), share) in enumerate(zip(lines, shares, strict=True))
    )
    paid = sum(share.paid_minor for share in shares)
    return OrderSnapshot(
        f"o-{number}",
        "c-1",
        "OWN_SHOP",
        "DELIVERED",
        "CNY",
        None,
        snapshot_lines,
        Payment("wechat_pay", f"t-{number}", f"m-{number}", paid),
    )


def cents_off(count: int, seed: int = 14) -> tuple[int, int]:
    """(minor units off over every voucher and every fully refunded line, vouchers made)."""
    rng = random.Random(seed)
    off = made = number = 0
    while made < count:
        number += 1
        order = random_order(rng, number)
        ledger: dict[int, Any] = {}
        merchant = rng.random() < 0.5
        while made < count:
            left = [
                (line.index, line.quantity - (ledger[line.index].units if line.index in ledger else 0))
                for line in order.lines
            ]
            left = [(index, units) for index, units in left if units > 0]
            if not left:
                break
            chosen = rng.sample(left, rng.randrange(1, len(left) + 1))
            lines = [RefundLine(index, rng.randrange(1, units + 1)) for index, units in chosen]
            reason = Reason.DAMAGED if merchant else Reason.CHANGED_MIND
            responsibility = Responsibility.MERCHANT if merchant else Responsibility.CUSTOMER
            voucher = calculate_voucher(order, lines, reason, responsibility, refunded=ledger)
            off += voucher.imbalance_minor
            ledger = dict(ledger_after(ledger, voucher))
            made += 1
        if all(
            index in ledger and ledger[index].units == line.quantity for index, line in enumerate(order.lines)
        ):
            for line in order.lines:
                back = ledger[line.index].amounts
                for name in FIELDS[:4]:
                    off += abs(getattr(back, name) - getattr(line.amounts, name))
                if merchant:
                    off += abs(back.shipping_minor - line.amounts.shipping_minor)
    return off, made


# ---- 2. tickets auto-approved and refunded end to end --------------------------------------------


def start_sandbox(home: Any, notify_url: str) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandboxes.payments",
            "--host=127.0.0.1",
            "--port=0",
            "--seed=21",
            f"--wechat-notify-url={notify_url}",
            f"--alipay-notify-url={notify_url}",
        ],
        cwd=ROOT,
        env=embedded.python_env(ROOT, payment_sandbox_env(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"the payment sandbox did not start: {line!r}")
    return process, line.removeprefix("listening on ").strip()


def control(base: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}{path}",
        data=data,
        method="GET" if data is None else "POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer: dict[str, Any] = json.load(reply)
    return answer


def money(amount: int) -> common_pb2.Money:
    return common_pb2.Money(currency_code="CNY", amount_minor=amount)


def order_request(ref: str) -> orders_pb2.IngestOrderRequest:
    return orders_pb2.IngestOrderRequest(
        channel=orders_pb2.CHANNEL_OWN_SHOP,
        channel_order_id=ref,
        buyer_id=f"buyer-{ref}",
        lines=[
            orders_pb2.OrderLine(sku="SKU-A", title="A", quantity=2, unit_price=money(3000)),
            orders_pb2.OrderLine(sku="SKU-B", title="B", quantity=1, unit_price=money(4000)),
        ],
        shipping_address=common_pb2.Address(
            recipient_name="李雷",
            phone="13800000000",
            country_code="CN",
            province="Zhejiang",
            city="Hangzhou",
            district="Xihu",
            detail="1 Road",
        ),
        shipping_fee=money(800),
        discounts=[orders_pb2.Discount(kind=orders_pb2.DISCOUNT_KIND_COUPON, amount=money(1000))],
    )


async def paid_orders(orders: str, sandbox: str, count: int) -> list[str]:
    async with client_channel(orders) as channel:
        stub = orders_pb2_grpc.OrdersServiceStub(channel)
        ids: list[str] = []
        for start in range(0, count, 200):
            batch = [order_request(f"AS-{n}-{time.time_ns()}") for n in range(start, min(count, start + 200))]
            reply = await stub.IngestOrders(
                orders_pb2.IngestOrdersRequest(items=[orders_pb2.IngestItem(order=o) for o in batch])
            )
            ids.extend(result.order_id for result in reply.results)
        for order_id in ids:
            found = (await stub.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))).order
            total = found.total.amount_minor
            trade = control(
                sandbox,
                "/_control/payments",
                {"provider": "wechat_pay", "out_trade_no": order_id.replace("-", ""), "amount": total},
            )
            request = orders_pb2.ReportPaymentRequest(
                provider="wechat_pay",
                transaction_id=trade["trade"]["trade_no"],
                merchant_order_no=order_id.replace("-", ""),
                amount=money(total),
                status=orders_pb2.PAYMENT_STATUS_SUCCESS,
            )
            request.paid_at.GetCurrentTime()
            await stub.ReportPayment(request)
        return ids


async def auto_refunds(aftersales: str, orders: list[str]) -> tuple[float, int, int]:
    """(tickets per second end to end, tickets settled, tickets opened)."""
    async with client_channel(aftersales) as channel:
        stub = aftersales_pb2_grpc.AftersalesServiceStub(channel)
        version = (await stub.PutApprovalRules(apb.PutApprovalRulesRequest(document=RULES))).version
        await stub.ActivateApprovalRules(apb.ActivateApprovalRulesRequest(version=version))
        started = time.perf_counter()
        opened_in = await open_all(stub, orders)
        print(f"tickets_opened_per_s: {len(orders) / opened_in:.0f} tickets/s")
        settled = 0
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            settled = await count_settled(stub)
            if settled >= len(orders):
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
    return settled / elapsed, settled, len(orders)


def open_request(order_id: str) -> apb.OpenTicketRequest:
    return apb.OpenTicketRequest(
        order_id=order_id,
        kind=apb.TICKET_KIND_REFUND_ONLY,
        reason="changed_mind",
        lines=[apb.TicketLineRequest(line_index=0, quantity=1)],
        request_id=f"bench-{order_id}",
    )


async def open_all(stub: aftersales_pb2_grpc.AftersalesServiceStub, orders: list[str]) -> float:
    """One refund-only ticket per order, opened by CLIENTS concurrent clients; seconds it took."""
    queue = list(orders)
    started = time.perf_counter()

    async def client() -> None:
        while queue:
            await stub.OpenTicket(open_request(queue.pop()))

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return time.perf_counter() - started


async def echo_rate(echo: str, orders: list[str]) -> float:
    """The ceiling: the same clients sending the same OpenTicket requests to a server that answers at
    once (bench/echo.py)."""
    async with client_channel(echo) as channel:
        return len(orders) / await open_all(aftersales_pb2_grpc.AftersalesServiceStub(channel), orders)


async def count_settled(stub: aftersales_pb2_grpc.AftersalesServiceStub) -> int:
    settled, token = 0, ""
    while True:
        page = await stub.ListRefunds(apb.ListRefundsRequest(page_size=1000, page_token=token))
        settled += sum(1 for refund in page.refunds if refund.status == "SUCCESS")
        token = page.next_page_token
        if not token:
            return settled


def main() -> None:
    started = time.perf_counter()
    off, made = cents_off(VOUCHERS)
    print(f"refund_cents_off: {off} minor units")
    print(f"refund_vouchers_checked: {made} vouchers")
    print(f"refund_vouchers_per_s: {made / (time.perf_counter() - started):.0f} vouchers/s")
    keys = {
        "PII_KEYS": f"b1:{KeyRing.generate_key()}",
        "PII_ACTIVE_KEY": "b1",
        "PII_HASH_KEY": KeyRing.generate_key(),
    }
    with bench_stack() as bench:
        # the sandbox's payment notifications go nowhere: the bench pays orders itself
        sandbox_process, sandbox = start_sandbox(bench.home, "http://127.0.0.1:9/notify")
        try:
            control(sandbox, "/_control/wechat_pay", {"latency_ms": LATENCY_MS})
            inventory = bench.start("inventory", {"DATABASE_URL": bench.database("inventory")})
            orders = bench.start(
                "orders",
                {
                    "DATABASE_URL": bench.database("orders"),
                    "ROUTING_SERVICE_ADDR": "127.0.0.1:9",
                    "INVENTORY_SERVICE_ADDR": inventory,
                    "PROCESS_MANAGER_CONCURRENCY": "0",
                    **keys,
                },
            )
            aftersales = bench.start(
                "aftersales",
                {
                    "DATABASE_URL": bench.database("aftersales"),
                    "ORDERS_SERVICE_ADDR": orders,
                    "INVENTORY_SERVICE_ADDR": inventory,
                    **payment_client_env(bench.home, int(sandbox.rsplit(":", 1)[1])),
                },
            )
            ids = asyncio.run(paid_orders(orders, sandbox, TICKETS))
            groups = {
                name: [p.pid for p in bench.processes if p.name.startswith(name)]
                for name in ("orders", "inventory", "aftersales")
            }
            groups["sandbox"] = [sandbox_process.pid]
            before, wall = cpu_seconds(groups), time.perf_counter()
            rate, settled, opened = asyncio.run(auto_refunds(aftersales, ids))
            elapsed = time.perf_counter() - wall
            for name, used in cpu_seconds(groups).items():
                print(f"auto_refunds_cpu_{name}: {(used - before[name]) / elapsed * 100:.0f} % of a core")
            refunds = control(sandbox, "/_control/refunds")["refunds"]
            echo = asyncio.run(echo_rate(ceilings.start_echo(bench), ids))
        finally:
            sandbox_process.terminate()
            sandbox_process.wait(timeout=10)
    per_trade: dict[str, int] = {}
    for refund in refunds:
        per_trade[refund["out_trade_no"]] = per_trade.get(refund["out_trade_no"], 0) + 1
    duplicated = sum(refund["executed"] - 1 for refund in refunds if refund["executed"] > 1)
    duplicated += sum(count - 1 for count in per_trade.values() if count > 1)
    print(f"auto_refunds_per_s: {rate:.0f} tickets/s")
    ceilings.ratio("auto_refunds_per_s", rate, "grpc_echo_per_s", echo, "calls/s")
    print(f"auto_refunds_settled: {settled} of {opened} tickets")
    print(f"refunds_duplicated: {duplicated} refunds")
    print(f"provider_latency_ms: {LATENCY_MS} ms")
    print(f"bench_clients: {CLIENTS} clients")


if __name__ == "__main__":
    main()
