"""The demo catalogue (omsctl/demo_catalogue.yaml) loaded into a running stack through its public
API: Envoy's HTTP/JSON with an admin token signed by the stack's own key, never by writing a
database. Every call is idempotent (puts, receipts with fixed ids, agent customers replaced), so
loading on every `omsctl up` changes nothing the second time."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omsctl import tokens
from omsctl.stack import Platform, edge_settings

DATA_FILE = Path(__file__).with_name("demo_catalogue.yaml")
# SKU attributes sent only when inventory's PutSkuRequest has them (JSON name → proto field)
SKU_ATTRIBUTES = {
    "goodsType": "goods_type",
    "category": "category",
    "weightG": "weight_g",
    "customised": "customised",
}
RETRIED = (429, 503)


@dataclass
class Loaded:
    warehouses: int = 0
    skus: int = 0
    stock_rows: int = 0
    users: list[str] = field(default_factory=list)
    # the console sign-ins the catalogue made (sub, password, roles), for the banner
    logins: list[dict[str, Any]] = field(default_factory=list)
    sent_attributes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.warehouses} warehouses, {self.skus} SKUs, {self.stock_rows} stock rows, "
            f"{len(self.users)} demo users"
        )


def read(path: Path = DATA_FILE) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: must be a mapping")
    return document


def put_sku_fields() -> set[str]:
    """The fields inventory's PutSkuRequest has in the generated descriptors (gen/)."""
    from oms.inventory.v1 import inventory_pb2

    return set(inventory_pb2.PutSkuRequest.DESCRIPTOR.fields_by_name)


def sku_body(item: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """PutSku's JSON body: the title, and each attribute whose field PutSkuRequest has (`known`), so an
    edge that refuses unknown fields accepts it before and after the attributes exist."""
    sendable = [name for name, field in SKU_ATTRIBUTES.items() if field in known and name in item]
    attributes = {name: item[name] for name in sendable}
    return {"title": item["title"], **attributes}


def user_body(user: dict[str, Any]) -> dict[str, Any]:
    """A catalogue user as PutUser's body (the console's sign-in)."""
    return {
        "subject": user["sub"],
        "password": user["password"],
        "roles": list(user["roles"]),
        "customerId": user.get("customer_id", ""),
    }


class Edge:
    """JSON calls through Envoy with one token; throttled or briefly unavailable calls are retried."""

    def __init__(self, address: str, token: str, timeout: float = 10.0) -> None:
        self.host, port = address.rsplit(":", 1)
        self.port, self.token, self.timeout = int(port), token, timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, answer, raw = self._send(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {status} {raw[:300].decode(errors='replace')}")
        return answer

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The HTTP status and the JSON answer (an error's `{"code", "message"}` too), never raising for
        a status: a 404 while an order is on its way is an answer like any other."""
        status, answer, _ = self._send(method, path, body)
        return status, answer

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any], bytes]:
        delay = 0.2
        for attempt in range(8):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.request(
                    method,
                    path,
                    body=None if body is None else json.dumps(body).encode(),
                    headers={"authorization": f"Bearer {self.token}", "content-type": "application/json"},
                )
                reply = conn.getresponse()
                raw = reply.read()
            finally:
                conn.close()
            if reply.status not in RETRIED or attempt == 7:
                try:
                    answer = json.loads(raw or b"{}")
                except ValueError:
                    answer = {"message": raw[:300].decode(errors="replace")}
                return reply.status, answer if isinstance(answer, dict) else {"answer": answer}, raw
            time.sleep(float(reply.getheader("retry-after") or delay))
            delay = min(2.0, delay * 2)
        raise AssertionError("unreachable")


def load(platform: Platform, path: Path = DATA_FILE) -> Loaded:
    token = tokens.mint(edge_settings(platform.home), "omsctl-catalogue", ["admin"], 600)
    return load_through(Edge(platform.endpoints["envoy"], token), read(path))


def load_through(edge: Edge, document: dict[str, Any]) -> Loaded:
    loaded = Loaded()
    known = put_sku_fields()
    loaded.sent_attributes = [name for name, proto in SKU_ATTRIBUTES.items() if proto in known]
    unsent = [name for name in SKU_ATTRIBUTES if name not in loaded.sent_attributes]
    if unsent:
        loaded.notes.append(f"SKU attributes not sent (PutSku has no such fields yet): {', '.join(unsent)}")
    for warehouse in document.get("warehouses", []):
        edge.call("PUT", f"/v1/inventory/warehouses/{warehouse['id']}", {"name": warehouse["name"]})
        loaded.warehouses += 1
    for item in document.get("skus", []):
        body = sku_body(item, known)
        edge.call("PUT", f"/v1/inventory/skus/{item['sku']}", body)
        loaded.skus += 1
        for warehouse_id, quantity in item.get("stock", {}).items():
            receipt = {
                "receiptId": f"demo-{warehouse_id}-{item['sku']}",
                "warehouseId": warehouse_id,
                "sku": item["sku"],
                "quantity": str(quantity),
            }
            edge.call("POST", "/v1/inventory/receipts", receipt)
            loaded.stock_rows += 1
    for user in document.get("users", []):
        if user.get("password"):
            edge.call("POST", "/v1/users", user_body(user))
            loaded.logins.append(user)
        if user.get("customers"):
            edge.call(
                "POST",
                f"/v1/agents/{user['sub']}/customers",
                {"buyerIds": list(user["customers"]), "replace": True},
            )
        loaded.users.append(user["sub"])
    loaded.notes += _routing_notes(edge, document)
    return loaded


def _routing_notes(edge: Edge, document: dict[str, Any]) -> list[str]:
    """Which catalogue warehouses and carriers routing's active rule set does not plan with yet."""
    try:
        rule_set = edge.call("GET", "/v1/routing/rule-sets/0")["ruleSet"]
        rules = json.loads(rule_set["documentJson"])
    except (RuntimeError, KeyError, ValueError) as error:
        return [f"could not read routing's active rule set: {error}"]
    warehouses = {w.get("warehouse_id") for w in rules.get("warehouses", [])}
    carriers = {c.get("code") for c in rules.get("carriers", [])}
    missing = [w["id"] for w in document.get("warehouses", []) if w["id"] not in warehouses]
    missing += [c["code"] for c in document.get("carriers", []) if c["code"] not in carriers]
    if not missing:
        return []
    version = rule_set.get("version")
    return [f"routing's active rule set (version {version}) does not plan with {', '.join(missing)} yet"]
