"""An HTTP/JSON client of the platform through Envoy, standard library only (docs/contracts/openapi.json).

It gets a bearer token (OMS_TOKEN as given, or a service account's client credentials exchanged at
`POST /v1/tokens`), creates an order (`POST /v1/orders`; a repeat of the same channel order answers the
stored one with "created": false), reads it back (`GET /v1/orders/{order_id}`) and reads an order that
does not exist. Each answer the API documents is handled: 400 names the wrong field, 401 says the
credentials were refused, 404 is an unknown order, 429 and 503 are retried after their Retry-After.

    eval "$(.venv/bin/python -m omsctl env)"       # OMS_HTTP and an ops OMS_TOKEN of the running stack
    python3 examples/http_client.py

Settings (environment): OMS_HTTP (http://127.0.0.1:8080), OMS_TOKEN, or OMS_CLIENT_ID and
OMS_CLIENT_SECRET instead of a token.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

RETRIES = 5


class ApiError(Exception):
    """An error answer: the HTTP status and the body's gRPC code and message (google.rpc.Status)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.code = int(body.get("code", 2))
        self.message = str(body.get("message", ""))
        self.details = list(body.get("details", []))
        super().__init__(f"HTTP {status} (gRPC code {self.code}): {self.message}")

    @property
    def fields(self) -> list[str]:
        """The fields a 400 names (google.rpc.BadRequest in the details)."""
        return [
            violation["field"]
            for detail in self.details
            if detail.get("@type", "").endswith("google.rpc.BadRequest")
            for violation in detail.get("fieldViolations", [])
        ]


class Client:
    def __init__(self, base: str, token: str, retries: int = RETRIES) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.retries = retries

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Client:
        env = dict(os.environ) if env is None else env
        base = env.get("OMS_HTTP", "http://127.0.0.1:8080")
        if env.get("OMS_TOKEN"):
            return cls(base, env["OMS_TOKEN"])
        if env.get("OMS_CLIENT_ID") and env.get("OMS_CLIENT_SECRET"):
            return cls(base, issue_token(base, env["OMS_CLIENT_ID"], env["OMS_CLIENT_SECRET"]))
        raise SystemExit("set OMS_TOKEN, or OMS_CLIENT_ID and OMS_CLIENT_SECRET (examples/README.md)")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        return send(
            self.base, method, path, body, {"authorization": f"Bearer {self.token}", **headers}, self.retries
        )

    def create_order(self, order: dict[str, Any]) -> dict[str, Any]:
        # the order is idempotent on (channel, channelOrderId): a retry answers the stored order. The
        # Idempotency-Key header travels to the service with the call, one key per logical request.
        answer: dict[str, Any] = self.call(
            "POST", "/v1/orders", order, **{"idempotency-key": str(uuid.uuid4())}
        )
        return answer

    def get_order(self, order_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("GET", f"/v1/orders/{urllib.parse.quote(order_id, safe='')}")
        return answer


def issue_token(base: str, client_id: str, client_secret: str) -> str:
    """A service account's credentials for a 1 h bearer token (no token needed for this call)."""
    answer = send(
        base, "POST", "/v1/tokens", {"clientId": client_id, "clientSecret": client_secret}, {}, RETRIES
    )
    return str(answer["accessToken"])


def send(
    base: str, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str], retries: int
) -> Any:
    """One call; 429 and 503 are waited out (Retry-After seconds) up to `retries` times."""
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(retries + 1):
        request = urllib.request.Request(
            base + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", "accept": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {"message": raw.decode("utf-8", "replace")}
            if error.code in (429, 503) and attempt < retries:
                wait = float(error.headers.get("retry-after") or 1)
                print(f"{method} {path}: {error.code}, retrying in {wait:g} s", file=sys.stderr)
                time.sleep(wait)
                continue
            raise ApiError(error.code, answer) from None
    raise AssertionError("unreachable")


DEMO_ORDER: dict[str, Any] = {
    "channel": "CHANNEL_OWN_SHOP",
    "channelOrderId": "",
    "buyerId": "buyer-42",
    "lines": [
        {
            "sku": "SKU-TEA-250G",
            "title": "Longjing tea 250 g",
            "quantity": 2,
            "unitPrice": {"currencyCode": "CNY", "amountMinor": "8800"},
        }
    ],
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
}


def main() -> int:
    client = Client.from_env()
    order = {**DEMO_ORDER, "channelOrderId": f"EXAMPLE-{uuid.uuid4().hex[:12]}"}
    try:
        created = client.create_order(order)
        order_id = created["order"]["orderId"]
        print(f"created {order_id} (created: {created['created']}, outcome {created['outcome']})")
        again = client.create_order(order)
        print(f"the same channel order again: {again['order']['orderId']} (created: {again['created']})")
        read = client.get_order(order_id)["order"]
        total = read["total"]
        print(f"read back: {read['status']}, total {total['amountMinor']} {total['currencyCode']}")
        try:
            client.create_order({**order, "lines": [{**order["lines"][0], "quantity": 0}]})
        except ApiError as error:
            print(f"a bad order: {error.status}, fields {error.fields}: {error.message}")
        try:
            client.get_order("01900000-0000-7000-8000-000000000000")  # a well-formed id (UUIDv7) no order has
        except ApiError as error:
            print(f"an unknown order: {error.status} {error.message}")
    except ApiError as error:
        if error.status == 401:
            print("the credentials were refused: mint a token with `omsctl token` (examples/README.md)")
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
