"""A peer outage under load against the running local stack (`make run`): orders are created and paid
through Envoy at a steady rate while one process is frozen (SIGSTOP, then SIGCONT) or, for Postgres,
killed (the supervisor restarts it); then every order must end ALLOCATED with no dead letter.

    make bench-outage ARGS="routing 60"      # what, and for how many seconds

Prints `name: value unit` lines. Uses SKU-TEA-250G from the demo catalogue (one unit per order).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from omsctl import stack

RATE_PER_SECOND = 4.0


class Edge:
    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.ops = _token(home, "ops")
        self.finance = _token(home, "finance")

    def call(self, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {token or self.ops}", "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def order_and_pay(self, buyer: int) -> tuple[str, int, str]:
        ref = f"OUTAGE-{uuid.uuid4().hex[:10]}"
        line = {
            "sku": "SKU-TEA-250G",
            "title": "tea",
            "quantity": 1,
            "unitPrice": {"currencyCode": "CNY", "amountMinor": "8800"},
        }
        status, created = self.call(
            "POST",
            "/v1/orders",
            {
                "channel": "CHANNEL_OWN_SHOP",
                "channelOrderId": ref,
                "buyerId": f"buyer-{buyer}",
                "lines": [line],
                "shippingAddress": {
                    "recipientName": "Li Lei",
                    "phone": "13800000000",
                    "countryCode": "CN",
                    "province": "Zhejiang",
                    "city": "Hangzhou",
                    "district": "Xihu",
                    "detail": "1 Wensan Road",
                },
                "shippingFee": {"currencyCode": "CNY", "amountMinor": "1000"},
            },
        )
        if status != 200:
            return "create", status, ""
        order_id = created["order"]["orderId"]
        status, _ = self.call(
            "POST",
            "/v1/payment-notifications",
            {
                "provider": "wechat_pay",
                "transactionId": f"wx-{ref}",
                "merchantOrderNo": order_id,
                "amount": {"currencyCode": "CNY", "amountMinor": "9800"},
                "paidAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "status": "PAYMENT_STATUS_SUCCESS",
            },
            self.finance,
        )
        return ("ok" if status == 200 else "pay"), status, order_id


def _token(home: Path, role: str) -> str:
    """A token signed with the running stack's key, as `omsctl token` mints it."""
    minted = subprocess.run(
        [sys.executable, "-m", "omsctl", "token", "--sub", f"bench-{role}", "--role", role],
        capture_output=True,
        text=True,
        check=True,
        cwd=stack.ROOT,
        env={**os.environ, "OMS_HOME": str(home)},
    )
    return minted.stdout.split()[-1]


def main() -> int:
    victim = sys.argv[1] if len(sys.argv) > 1 else "routing"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    home = Path(os.environ.get("OMS_HOME", stack.ROOT / ".oms")).resolve()
    state = json.loads((home / "state.json").read_text())
    pid = next(entry["pid"] for entry in state["processes"] if entry["name"] == victim)
    edge = Edge(f"http://{state['endpoints']['envoy']}", home)
    started = time.monotonic()
    faulted = ended = 0.0
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = []
        while time.monotonic() - started < seconds + 10:
            now = time.monotonic()
            if not faulted and now - started >= 5:
                os.kill(pid, signal.SIGKILL if victim == "postgres" else signal.SIGSTOP)
                faulted = now
            if faulted and not ended and now - faulted >= seconds:
                if victim != "postgres":
                    os.kill(pid, signal.SIGCONT)
                ended = now
            futures.append(pool.submit(edge.order_and_pay, len(futures)))
            time.sleep(1 / RATE_PER_SECOND)
        results = [future.result() for future in futures]
    if not ended:
        if victim != "postgres":
            os.kill(pid, signal.SIGCONT)
        ended = time.monotonic()
    pending = {order_id for outcome, _, order_id in results if outcome == "ok"}
    accepted = len(pending)
    deadline = time.monotonic() + 300
    while pending and time.monotonic() < deadline:
        for order_id in list(pending):
            status, body = edge.call("GET", f"/v1/orders/{order_id}")
            if status == 200 and body["order"]["status"] == "ORDER_STATUS_ALLOCATED":
                pending.discard(order_id)
        if pending:
            time.sleep(1)
    settled = time.monotonic() - ended
    _, letters = edge.call("GET", "/v1/order-dead-letters")
    print(f"{victim}_outage: {seconds:.0f} s")
    print(f"outage_orders_created: {len(results)} orders")
    print(f"outage_orders_refused: {len(results) - accepted} orders")
    print(f"outage_orders_not_allocated: {len(pending)} orders")
    print(f"outage_all_allocated_after_fault_end: {settled:.1f} s")
    print(f"outage_dead_letters: {len(letters.get('deadLetters', []))} entries")
    return 1 if pending else 0


if __name__ == "__main__":
    raise SystemExit(main())
