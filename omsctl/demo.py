"""`omsctl demo`: a realistic, bounded stream of orders through a running stack, so that the dashboard
moves and every queue has something in it within a minute.

Only the public API through Envoy (HTTP/JSON, tokens signed with the stack's key for the people who
would make each call: ops, the warehouse floor, the buyers) and the sandboxes' own endpoints: the
channel sandbox makes and pushes Taobao and Douyin orders, the payment sandbox pays own-shop orders
(its signed notification goes through the gateway as a provider's would), the carrier sandbox pushes
tracking. Nothing is written to a database and no service is called behind the gateway.

What one run makes (`--orders`, at least MIN_ORDERS; `--seconds` caps it, and it stops by itself once
everything it started has come to rest):

- orders on four channels: Taobao and Douyin through the channel sandbox (paid on the marketplace),
  JD through `POST /v1/channel-orders` in JD's own JSON, our own shop through `POST /v1/orders`;
- own-shop payments by WeChat Pay and Alipay notifications, two of them from a provider whose clock is
  off by half an hour or more: parked for review;
- routing and stock (orders' own process manager), then e-waybills in batches for the allocated
  shipments, pick lists, picks, packs and scan-outs, and the carriers' tracking pushes up to delivery;
- after-sales on delivered orders: refunds only (WeChat Pay and Alipay), a return received at the
  desk, each ending in a refund at the payment sandbox, and a ticket for customised goods left for
  customer service's review;
- two risky orders the default risk rules hold (a hotel address over 500.00, a 90 % line discount
  without a campaign), one order stuck in EXCEPTION (a JD listing whose SKU the catalogue lacks), one
  held by ops (the buyer is changing the address);
- a silent channel: Douyin sends its orders at the start only, then nothing, so channel health shows
  its last order ageing (and raises `channel_silent` after CHANNEL_SILENT_AFTER_S within business
  hours).
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from omsctl import catalogue, tokens

MIN_ORDERS = 14
TOKEN_TTL_SECONDS = 3 * 3600
# how often the demo looks again (statuses, waybills, tickets)
TICK_SECONDS = 0.5
WAYBILL_ROUND_SECONDS = 2.0
# how often the run's orders are listed again (one call, only those still on their way)
REFRESH_SECONDS = 1.0
# a buyer pays a moment after checking out
PAY_AFTER_SECONDS = 1.0
# arrivals take this share of the time allowed, leaving the rest for delivery and after-sales
ARRIVALS_SHARE = 0.4
MAX_ARRIVAL_GAP_SECONDS = 1.5
CONNECTION_FAILURES_TO_STOP = 20

# mainland addresses routing's default rule set covers: (province, city, district, street)
ADDRESSES = (
    ("上海市", "上海市", "徐汇区", "漕溪北路 88 号 3 楼"),
    ("浙江省", "杭州市", "西湖区", "文三路 90 号 1 单元 602"),
    ("北京市", "北京市", "朝阳区", "建国路 93 号 万达广场 8 号楼"),
    ("广东省", "广州市", "天河区", "体育西路 103 号 维多利广场"),
    ("湖北省", "武汉市", "洪山区", "珞喻路 129 号"),
    ("四川省", "成都市", "武侯区", "人民南路四段 9 号"),
    ("江苏省", "南京市", "鼓楼区", "中山路 18 号 德基广场"),
    ("广东省", "深圳市", "南山区", "科技园科发路 1 号"),
)
# cold-chain and fresh goods go to where the cold-chain warehouses (Shanghai, Guangzhou) reach
COLD_ADDRESSES = (ADDRESSES[0], ADDRESSES[1], ADDRESSES[3], ADDRESSES[6], ADDRESSES[7])
# the default rules' address keywords ("酒店") with an amount over 500.00
HOTEL_ADDRESS = ("浙江省", "杭州市", "西湖区", "北山街 78 号 湖畔酒店 1208 房")
NAMES = ("李雷", "韩梅梅", "王芳", "张伟", "刘洋", "陈静", "杨帆", "赵敏", "黄磊", "周婷")

# own-shop goods (demo_catalogue.yaml) and our prices in fen; SKU-TEA-250G is left to README's walk-through
MUG = ("SKU-MUG", "Celadon mug", 6800)
ICECREAM = ("SKU-ICECREAM-COLD", "Osmanthus ice cream 6-pack (chilled)", 12900)
LYCHEE = ("SKU-LYCHEE-1KG", "Fresh lychee 1 kg", 8900)
SCARF = ("SKU-XB-SILK-SCARF", "Suzhou silk scarf", 39900)
SEAL = ("SKU-SEAL-ENGRAVED", "Hand-engraved name seal", 26800)
OWN_GOODS = (MUG, MUG, ICECREAM, LYCHEE, SCARF)
COLD_SKUS = {ICECREAM[0], LYCHEE[0]}
# what the JD shop lists (the channel sandbox's tea and cups), yuan as JD writes it
JD_GOODS = (
    ("TEA-LJ-250", "西湖龙井 明前特级 250g 礼盒装", "199.00"),
    ("CUP-GL-300", "双层玻璃茶杯 300ml", "49.90"),
)
# a JD listing whose SKU was never put in the catalogue: routing refuses it, the paid order is stuck
UNMAPPED = ("TEA-GIFT-2025", "龙井 新春礼盒 (未建档)", "299.00")
# every SKU the demo sells, topped up to its catalogue stock when a run finds it below half of that
SOLD = frozenset(
    {"SKU-MUG", "SKU-ICECREAM-COLD", "SKU-LYCHEE-1KG", "SKU-XB-SILK-SCARF", "SKU-SEAL-ENGRAVED"}
    | {"TEA-LJ-250", "CUP-GL-300", "CREAM-50", "TONER-200"}
)

# roles of the special own-shop orders, in the order they arrive (after-sales first: they need the time
# to be delivered)
AFTERSALES_ROLES = ("refund", "refund_alipay", "return", "review")
SPECIAL_ROLES = ("skewed", "risk_hotel", "hold", "skewed_alipay", "risk_discount")
RESTING = {
    "ORDER_STATUS_DELIVERED",
    "ORDER_STATUS_COMPLETED",
    "ORDER_STATUS_ON_HOLD",
    "ORDER_STATUS_EXCEPTION",
    "ORDER_STATUS_CANCELLED",
    "ORDER_STATUS_PARTIALLY_REFUNDED",
    "ORDER_STATUS_REFUNDED",
}
TICKET_DONE = {"TICKET_STATUS_REFUNDED", "TICKET_STATUS_CLOSED", "TICKET_STATUS_REFUND_FAILED"}


@dataclass
class Planned:
    """One order the demo will place, and what it is there to show."""

    number: int
    channel: str  # OWN_SHOP, TAOBAO, DOUYIN, JD
    role: str = ""
    provider: str = ""
    skew_s: int = 0
    lines: list[tuple[str, str, int, int, int]] = field(
        default_factory=list
    )  # sku, title, qty, fen, discount
    address: tuple[str, str, str, str] = ADDRESSES[0]
    buyer: str = ""
    phone: str = ""
    expedited: bool = False


@dataclass
class Tracked:
    plan: Planned
    channel_order_id: str
    placed_at: float
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    order_id: str = ""
    total: int = 0
    status: str = ""
    paid: bool = False
    held: bool = False
    seen: set[str] = field(default_factory=set)
    shipments: dict[str, str] = field(default_factory=dict)  # shipment id → warehouse
    scanned: bool = False
    ticket_id: str = ""
    ticket_status: str = ""
    returned: bool = False


@dataclass
class Tally:
    orders: Counter[str] = field(default_factory=Counter)
    payments: int = 0
    skewed: int = 0
    batches: int = 0
    waybills: int = 0
    pick_lists: int = 0
    scanned_out: int = 0
    tickets: int = 0
    returns: int = 0
    failures: int = 0


class Stopped(Exception):
    """The stack stopped answering."""


def plan(count: int, dice: random.Random, run: str) -> list[Planned]:
    """The orders of one run, in the order they arrive."""
    rest = count - len(AFTERSALES_ROLES) - len(SPECIAL_ROLES) - 1  # the unmapped JD order
    douyin = max(1, round(rest * 0.15))
    jd = max(1, round(rest * 0.1))
    taobao = max(2, round(rest * 0.4))
    own = max(0, rest - douyin - jd - taobao)
    taobao = rest - douyin - jd - own
    number = iter(range(1, count + 1))

    def own_shop(role: str = "") -> Planned:
        sku, title, price = dice.choice(OWN_GOODS)
        quantity = dice.choice((1, 1, 2, 3))
        provider = (
            "alipay" if role.endswith("_alipay") or (not role and dice.random() < 0.35) else "wechat_pay"
        )
        order = Planned(
            next(number), "OWN_SHOP", role, provider, buyer=f"demo-buyer-{run}-{dice.randrange(10**4)}"
        )
        order.expedited = not role and dice.random() < 0.15
        if role in AFTERSALES_ROLES:
            sku, title, price, quantity = (*MUG, 2)
        if role == "review":
            # customised goods are never auto-approved; demo-agent's customer, so the agent sees it
            sku, title, price, quantity, order.buyer = (*SEAL, 1, "buyer-42")
        discount = 0
        if role == "risk_discount":
            sku, title, price, quantity = (*SCARF, 1)
            discount = price * 9 // 10  # a 90 % line discount and no campaign: the price rule locks it
        if role == "risk_hotel":
            sku, title, price, quantity = (*SCARF, 2)
        order.lines = [(sku, title, quantity, price, discount)]
        order.address = (
            HOTEL_ADDRESS
            if role == "risk_hotel"
            else dice.choice(COLD_ADDRESSES if sku in COLD_SKUS else ADDRESSES)
        )
        if role == "skewed":
            order.skew_s = 1800 + dice.randrange(600)  # the provider's clock half an hour fast or more
        if role == "skewed_alipay":
            order.skew_s = -(2400 + dice.randrange(600))
        return order

    first = [own_shop(role) for role in AFTERSALES_ROLES]
    # Douyin sends its orders early, then falls silent
    first += [Planned(next(number), "DOUYIN") for _ in range(douyin)]
    dice.shuffle(first)
    # then the risky, skewed, held and stuck ones, so every queue has something early on
    special = [own_shop(role) for role in SPECIAL_ROLES]
    special.append(Planned(next(number), "JD", "unmapped"))
    dice.shuffle(special)
    later = [own_shop() for _ in range(own)]
    later += [Planned(next(number), "TAOBAO") for _ in range(taobao)]
    later += [Planned(next(number), "JD") for _ in range(jd)]
    dice.shuffle(later)
    # a Taobao order leads them, so Taobao has sent something before Douyin falls silent
    lead = next((i for i, order in enumerate(later) if order.channel == "TAOBAO"), 0)
    later.insert(0, later.pop(lead))
    orders = first + special + later
    for order in orders:
        if not order.phone:
            order.phone = "13" + "".join(str(dice.randrange(10)) for _ in range(9))
        if order.channel == "JD":
            goods = [UNMAPPED] if order.role == "unmapped" else [dice.choice(JD_GOODS)]
            order.lines = [(sku, title, dice.randint(1, 2), _fen(yuan), 0) for sku, title, yuan in goods]
            order.address = dice.choice(ADDRESSES)
    return orders


def _fen(yuan: str) -> int:
    whole, _, part = yuan.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _china_time(moment: datetime) -> str:
    return (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


class Demo:
    def __init__(
        self,
        endpoints: Mapping[str, str],
        signing: Mapping[str, str],
        orders: int,
        seconds: float,
        seed: int | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.signing = dict(signing)
        self.count, self.seconds = orders, seconds
        self.dice = random.Random(seed)
        self.started_at = datetime.now(UTC)
        self.run = self.started_at.strftime("%m%d%H%M%S") + f"{self.dice.randrange(256):02x}"
        self.say = say or (lambda line: print(line, flush=True))
        envoy = self.endpoints["envoy"]
        self.ops = catalogue.Edge(envoy, self._token("demo-ops", "ops"))
        self.floor = catalogue.Edge(envoy, self._token("demo-warehouse", "warehouse"))
        self.customers: dict[str, catalogue.Edge] = {}
        self.tracked: list[Tracked] = []
        self.by_order: dict[str, Tracked] = {}
        self.requested: set[str] = set()
        self.batches: list[str] = []
        self.tally = Tally()
        self.connection_failures = 0
        self.douyin_last = ""
        self.quarantined = ""
        self.began = time.monotonic()

    # ---- plumbing ---------------------------------------------------------------------------

    def _token(self, subject: str, role: str, customer: str = "") -> str:
        return tokens.mint(self.signing, subject, [role], TOKEN_TTL_SECONDS, customer_id=customer)

    def customer(self, buyer: str) -> catalogue.Edge:
        if buyer not in self.customers:
            token = self._token(buyer, "customer", customer=buyer)
            self.customers[buyer] = catalogue.Edge(self.endpoints["envoy"], token)
        return self.customers[buyer]

    def line(self, what: str, text: str) -> None:
        self.say(f"{time.strftime('%H:%M:%S')}  {what:<10} {text}")

    def api(
        self, edge: catalogue.Edge, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        try:
            answer = edge.request(method, path, body)
        except (OSError, http.client.HTTPException) as error:
            return self._unreachable(f"{method} {path}", error)
        self.connection_failures = 0
        return answer

    def sandbox(
        self, name: str, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://{self.endpoints[name]}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (OSError, http.client.HTTPException) as error:
            return self._unreachable(f"the {name} sandbox", error)
        self.connection_failures = 0
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {"message": raw[:200].decode(errors="replace")}
        return status, answer if isinstance(answer, dict) else {}

    def _unreachable(self, what: str, error: Exception) -> tuple[int, dict[str, Any]]:
        self.connection_failures += 1
        if self.connection_failures >= CONNECTION_FAILURES_TO_STOP:
            raise Stopped(f"{what}: {error}")
        return 0, {"message": str(error)}

    def failed(self, what: str, status: int, answer: dict[str, Any]) -> None:
        self.tally.failures += 1
        message = str(answer.get("message") or answer.get("error") or answer)[:160]
        self.line("!", f"{what}: HTTP {status} {message}")

    def elapsed(self, since: float | None = None) -> float:
        return time.monotonic() - (self.began if since is None else since)

    # ---- the run ------------------------------------------------------------------------------

    def go(self) -> int:
        self.began = time.monotonic()
        planned = plan(self.count, self.dice, self.run)
        gap = min(MAX_ARRIVAL_GAP_SECONDS, self.seconds * ARRIVALS_SHARE / max(1, len(planned)))
        self.line(
            "demo",
            f"run {self.run}: {len(planned)} orders over about {gap * len(planned):.0f} s, "
            f"at most {self.seconds:.0f} s in all",
        )
        try:
            if not self.top_up():
                return 1
            next_arrival, next_round, next_refresh, waiting = 0.0, 0.0, 0.0, list(planned)
            while self.elapsed() < self.seconds:
                while waiting and self.elapsed() >= next_arrival:
                    self.place(waiting.pop(0))
                    next_arrival += gap
                    if not waiting or not any(p.channel == "DOUYIN" for p in waiting):
                        self.douyin_silent()
                if self.elapsed() >= next_refresh:
                    self.refresh()
                    next_refresh = self.elapsed() + REFRESH_SECONDS
                self.pay()
                self.hold()
                if self.elapsed() >= next_round:
                    self.waybills()
                    next_round = self.elapsed() + WAYBILL_ROUND_SECONDS
                self.warehouse()
                self.aftersales()
                if not waiting and self.at_rest():
                    break
                time.sleep(TICK_SECONDS)
            self.summary(finished=not waiting and self.at_rest())
        except Stopped as stop:
            self.line("demo", f"the stack stopped answering ({stop}); stopping")
            return 1
        return 0

    def top_up(self) -> bool:
        """Receive stock for what the demo sells where a run finds it below half the catalogue's figure,
        so run after run has goods to sell (receipts with this run's ids; nothing is written twice)."""
        wanted = {
            item["sku"]: item.get("stock", {}) for item in catalogue.read()["skus"] if item["sku"] in SOLD
        }
        status, answer = self.api(
            self.ops, "POST", "/v1/inventory/availability:query", {"skus": sorted(wanted)}
        )
        if status == 400 and "unknown" in str(answer.get("message", "")).lower():
            # `omsctl up --empty`: what the demo sells is not in the catalogue
            self.line(
                "demo", f"the demo catalogue is not loaded ({answer.get('message')}); `make run` loads it"
            )
            return False
        if status != 200:
            self.failed("stock levels", status, answer)
            return True
        for row in answer.get("skus", []):
            on_hand = {w["warehouseId"]: int(w.get("onHand", 0)) for w in row.get("warehouses", [])}
            for warehouse, target in wanted.get(row["sku"], {}).items():
                have = on_hand.get(warehouse, 0)
                if have >= target // 2:
                    continue
                receipt = {
                    "receiptId": f"demo-{self.run}-{warehouse}-{row['sku']}",
                    "warehouseId": warehouse,
                    "sku": row["sku"],
                    "quantity": str(target - have),
                }
                status, answer = self.api(self.floor, "POST", "/v1/inventory/receipts", receipt)
                if status == 200:
                    self.line("stock", f"{warehouse} received {target - have} × {row['sku']} (had {have})")
                else:
                    self.failed(f"receipt {receipt['receiptId']}", status, answer)
        return True

    # ---- orders arrive ---------------------------------------------------------------------------

    def place(self, order: Planned) -> None:
        if order.channel in ("TAOBAO", "DOUYIN"):
            self.from_marketplace(order)
        elif order.channel == "JD":
            self.from_jd(order)
        else:
            self.from_own_shop(order)

    def track(self, order: Planned, channel_order_id: str, answer: dict[str, Any] | None = None) -> Tracked:
        tracked = Tracked(order, channel_order_id, time.monotonic())
        if answer is not None:
            tracked.order_id = str(answer.get("orderId", ""))
            tracked.total = int(answer.get("total", {}).get("amountMinor", 0))
            tracked.status = str(answer.get("status", ""))
            self.by_order[tracked.order_id] = tracked
        self.tracked.append(tracked)
        self.tally.orders[order.channel] += 1
        return tracked

    def from_marketplace(self, order: Planned) -> None:
        channel = order.channel.lower()
        status, answer = self.sandbox(
            "channels", "POST", "/_control/orders", {"channel": channel, "count": 1}
        )
        if status != 201 or not answer.get("orders"):
            self.failed(f"a {order.channel} order at the channel sandbox", status, answer)
            return
        made = answer["orders"][0]
        self.track(order, str(made["order_id"]))
        pushed = ", ".join(str(code) for code in made.get("push_answers", [])) or "not pushed"
        self.line(
            "order",
            f"{order.channel:<8} {made['order_id']}  made and pushed by the channel sandbox ({pushed})",
        )
        if order.channel == "DOUYIN":
            self.douyin_last = time.strftime("%H:%M:%S")

    def douyin_silent(self) -> None:
        if self.douyin_last and self.douyin_last != "silent":
            self.line(
                "silent",
                f"DOUYIN sends no more orders (last one {self.douyin_last}): channel health shows it ageing, "
                "channel_silent follows after CHANNEL_SILENT_AFTER_S within business hours",
            )
            self.douyin_last = "silent"

    def jd_payload(self, order: Planned, number: str) -> dict[str, Any]:
        """An order of `jingdong.pop.order.get` (what the orders service's JD adapter reads)."""
        now = datetime.now(UTC)
        province, city, district, street = order.address
        name = self.dice.choice(NAMES)
        items = [
            {
                "skuId": f"1000{zlib.crc32(sku.encode()) % 10**8:08d}",
                "outerSkuId": sku,
                "skuName": title,
                "jdPrice": _yuan(price),
                "giftPoint": "0",
                "wareId": "10001234",
                "itemTotal": str(quantity),
                "productNo": sku.split("-")[0],
                "serviceName": "",
                "newStoreId": "0",
            }
            for sku, title, quantity, price, _ in order.lines
        ]
        goods = sum(quantity * price for _, _, quantity, price, _ in order.lines)
        return {
            "orderId": number,
            "venderId": "10088",
            "orderType": "22",
            "payType": "4-在线支付",
            "orderTotalPrice": _yuan(goods),
            "orderSellerPrice": _yuan(goods),
            "orderPayment": _yuan(goods + 600),
            "freightPrice": "6.00",
            "sellerDiscount": "0.00",
            "balanceUsed": "0.00",
            "orderState": "WAIT_SELLER_STOCK_OUT",
            "orderStateRemark": "等待出库",
            "deliveryType": "任意时间",
            "invoiceInfo": "不需要开具发票",
            "orderRemark": "",
            "orderStartTime": _china_time(now - timedelta(seconds=40)),
            "orderEndTime": "",
            "paymentConfirmTime": _china_time(now - timedelta(seconds=20)),
            "modified": _china_time(now),
            "pin": f"jd_{self.dice.randrange(16**10):010x}",
            "open_id_buyer": f"o_jd_{self.run}{order.number:03d}",
            "storeOrder": "",
            "consigneeInfo": {
                "fullname": name,
                "telephone": "",
                "mobile": order.phone,
                "fullAddress": f"{province}{city}{district}{street}",
                "province": province,
                "provinceId": "1",
                "city": city,
                "cityId": "72",
                "county": district,
                "countyId": "2799",
                "town": "",
                "townId": "0",
            },
            "itemInfoList": items,
        }

    def from_jd(self, order: Planned) -> None:
        number = f"9{self.run[:10]}{order.number:03d}"
        payload = self.jd_payload(order, number)
        body = {"channel": "CHANNEL_JD", "payloadJson": json.dumps(payload, ensure_ascii=False)}
        status, answer = self.api(self.ops, "POST", "/v1/channel-orders", body)
        if status != 200:
            self.failed(f"JD order {number}", status, answer)
            return
        tracked = self.track(order, number, answer.get("order", {}))
        what = ", ".join(f"{q} × {sku}" for sku, _, q, _, _ in order.lines)
        note = "  (a listing the catalogue does not have)" if order.role == "unmapped" else ""
        city = order.address[1]
        self.line("order", f"JD       {number}  {what} to {city}, paid on JD → {tracked.order_id}{note}")
        self.changed(tracked, answer.get("order", {}))
        if order.role == "unmapped":
            self.malformed_jd(order)

    def malformed_jd(self, order: Planned) -> None:
        """A JD payload whose price is not a whole number of fen: refused naming the field, and kept in
        quarantine for a person (never dropped)."""
        number = f"9{self.run[:10]}{order.number + 500:03d}"
        payload = self.jd_payload(order, number)
        payload["itemInfoList"][0]["jdPrice"] = "19.999"
        body = {"channel": "CHANNEL_JD", "payloadJson": json.dumps(payload, ensure_ascii=False)}
        status, answer = self.api(self.ops, "POST", "/v1/channel-orders", body)
        if status != 400:
            self.failed(f"the malformed JD order {number} (expected 400)", status, answer)
            return
        self.quarantined = number
        self.line("quarantine", f"JD       {number}  refused and kept: {answer.get('message', '')}")

    def from_own_shop(self, order: Planned) -> None:
        number = f"DM{self.run}-{order.number:02d}"
        province, city, district, street = order.address
        lines = [
            {
                "sku": sku,
                "title": title,
                "quantity": quantity,
                "unitPrice": {"currencyCode": "CNY", "amountMinor": str(price)},
                **({"discount": {"currencyCode": "CNY", "amountMinor": str(discount)}} if discount else {}),
            }
            for sku, title, quantity, price, discount in order.lines
        ]
        body = {
            "channel": "CHANNEL_OWN_SHOP",
            "channelOrderId": number,
            "buyerId": order.buyer,
            "lines": lines,
            "shippingAddress": {
                "recipientName": self.dice.choice(NAMES),
                "phone": order.phone,
                "countryCode": "CN",
                "province": province,
                "city": city,
                "district": district,
                "detail": street,
            },
            "shippingFee": {"currencyCode": "CNY", "amountMinor": "800"},
            **({"priority": "ORDER_PRIORITY_EXPEDITED"} if order.expedited else {}),
        }
        status, answer = self.api(self.ops, "POST", "/v1/orders", body)
        if status != 200:
            self.failed(f"own-shop order {number}", status, answer)
            return
        tracked = self.track(order, number, answer.get("order", {}))
        what = ", ".join(f"{q} × {sku}" for sku, _, q, _, _ in order.lines)
        notes = {
            "risk_hotel": "to a hotel, over 500.00",
            "risk_discount": "a 90 % line discount, no campaign",
            "review": "customised goods",
        }
        note = notes.get(order.role, "expedited" if order.expedited else "")
        self.line(
            "order",
            f"OWN_SHOP {number}  {what} to {city}, {_yuan(tracked.total)} CNY → {tracked.order_id}"
            + (f"  ({note})" if note else ""),
        )
        self.changed(tracked, answer.get("order", {}))

    # ---- the platform moves them on ------------------------------------------------------------

    def refresh(self, everything: bool = False) -> None:
        """Every order of this run as orders has it now (one list call), and what changed."""
        # only as far back as the oldest order still on its way: the list shrinks as orders come to rest
        busy = [tracked.created for tracked in self.tracked if everything or self.busy(tracked)]
        if not busy:
            return
        since = min(busy) - timedelta(seconds=5)
        query = urlencode(
            {"filter.created_from": since.strftime("%Y-%m-%dT%H:%M:%SZ"), "page.page_size": "500"}
        )
        found: dict[tuple[str, str], dict[str, Any]] = {}
        token = ""
        for _ in range(10):
            status, answer = self.api(
                self.ops, "GET", f"/v1/orders?{query}" + (f"&page.page_token={token}" if token else "")
            )
            if status != 200:
                self.failed("the order list", status, answer)
                return
            for order in answer.get("orders", []):
                found[(order["channel"], order["channelOrderId"])] = order
            token = answer.get("page", {}).get("nextPageToken", "")
            if not token:
                break
        for tracked in self.tracked:
            order = found.get((f"CHANNEL_{tracked.plan.channel}", tracked.channel_order_id))
            if order is None:
                continue
            if not tracked.order_id:
                tracked.order_id = order["orderId"]
                tracked.total = int(order.get("total", {}).get("amountMinor", 0))
                self.by_order[tracked.order_id] = tracked
                self.line(
                    "ingested", f"{tracked.plan.channel:<8} {tracked.channel_order_id} → {tracked.order_id}"
                )
            if order["status"] != tracked.status:
                tracked.status = order["status"]
                self.changed(tracked, order)

    def changed(self, tracked: Tracked, order: dict[str, Any]) -> None:
        status = tracked.status.removeprefix("ORDER_STATUS_")
        name = f"{tracked.plan.channel:<8} {tracked.channel_order_id}"
        reason = order.get("statusReason", "")
        if status in tracked.seen:
            return
        tracked.seen.add(status)
        if status == "ALLOCATED":
            where = ", ".join(order.get("warehouseIds", []))
            self.line("allocated", f"{name}  stock committed at {where}")
        elif status == "DELIVERED":
            self.line("delivered", f"{name}  {order.get('waybillNo', '')} signed for (the carrier's pushes)")
        elif status == "ON_HOLD":
            self.line("on hold", f"{name}  {reason}")
        elif status == "EXCEPTION":
            self.line("exception", f"{name}  {reason}")
        elif status == "CANCELLED":
            self.line("cancelled", f"{name}  {reason}".rstrip())

    def pay(self) -> None:
        """Own-shop buyers pay a moment after checking out: the payment sandbox notifies the gateway in
        the provider's own format (WeChat Pay v3's encrypted resource, Alipay's RSA2-signed form)."""
        for tracked in self.tracked:
            plan_ = tracked.plan
            if plan_.channel != "OWN_SHOP" or tracked.paid or not tracked.order_id:
                continue
            if self.elapsed(tracked.placed_at) < PAY_AFTER_SECONDS:
                continue
            tracked.paid = True
            body: dict[str, Any] = {
                "provider": plan_.provider,
                "out_trade_no": tracked.order_id.replace("-", ""),
                "amount": tracked.total,
            }
            if plan_.skew_s:
                body["clock_skew_s"] = plan_.skew_s
            status, answer = self.sandbox("payments", "POST", "/_control/payments", body)
            if status not in (200, 201):
                self.failed(f"paying {tracked.channel_order_id}", status, answer)
                continue
            self.tally.payments += 1
            note = ""
            if plan_.skew_s:
                self.tally.skewed += 1
                fast = "fast" if plan_.skew_s > 0 else "slow"
                note = f"; the provider's clock is {abs(plan_.skew_s) // 60} min {fast}: parked for review"
            self.line(
                "paid",
                f"OWN_SHOP {tracked.channel_order_id}  {_yuan(tracked.total)} CNY by {plan_.provider} "
                f"(its notification through the gateway){note}",
            )

    def hold(self) -> None:
        for tracked in self.tracked:
            if tracked.plan.role != "hold" or tracked.held or tracked.status != "ORDER_STATUS_ALLOCATED":
                continue
            tracked.held = True
            reason = "the buyer asked to change the delivery address; waiting for the new one"
            status, answer = self.api(
                self.ops, "POST", f"/v1/orders/{tracked.order_id}/hold", {"reason": reason}
            )
            if status != 200:
                self.failed(f"holding {tracked.channel_order_id}", status, answer)
                continue
            self.line("hold", f"OWN_SHOP {tracked.channel_order_id}  held by demo-ops: {reason}")

    def waybills(self) -> None:
        """One e-waybill batch for every shipment of this run waiting for its waybill."""
        if not any(t.status == "ORDER_STATUS_ALLOCATED" for t in self.tracked):
            return
        status, answer = self.api(
            self.ops, "GET", "/v1/logistics/shipments?status=SHIPMENT_STATUS_CREATED&page.page_size=500"
        )
        if status != 200:
            self.failed("the shipments waiting for waybills", status, answer)
            return
        due: list[str] = []
        carriers: Counter[str] = Counter()
        for shipment in answer.get("shipments", []):
            tracked = self.by_order.get(shipment.get("orderId", ""))
            shipment_id = shipment["shipmentId"]
            if tracked is None or tracked.plan.role == "hold" or shipment_id in self.requested:
                continue
            if shipment.get("held") or shipment.get("waybill", {}).get("waybillNo"):
                continue
            tracked.shipments[shipment_id] = shipment["warehouseId"]
            due.append(shipment_id)
            carriers[shipment.get("carrier", "?")] += 1
        if not due:
            return
        status, answer = self.api(self.ops, "POST", "/v1/logistics/waybill-batches", {"shipmentIds": due})
        if status != 200:
            self.failed("a waybill batch", status, answer)
            return
        self.requested.update(due)
        self.batches.append(answer["batchId"])
        self.tally.batches += 1
        by_carrier = ", ".join(f"{carrier} {n}" for carrier, n in sorted(carriers.items()))
        self.line("waybills", f"batch {answer['batchId']}: {_n(len(due), 'shipment')} ({by_carrier})")

    def warehouse(self) -> None:
        """Finished waybill batches go to the floor: a pick list per warehouse, then each shipment is
        picked, packed and scanned out with its waybill; the carrier's tracking pushes follow."""
        for batch_id in list(self.batches):
            status, answer = self.api(self.ops, "GET", f"/v1/logistics/waybill-batches/{batch_id}")
            if status != 200:
                self.failed(f"waybill batch {batch_id}", status, answer)
                continue
            batch = answer["batch"]
            if not batch.get("finished"):
                continue
            self.batches.remove(batch_id)
            ready: dict[str, list[tuple[Tracked, str, str, str]]] = {}
            for item in batch.get("items", []):
                tracked = self.by_order.get(item.get("orderId", ""))
                if tracked is None:
                    continue
                if not item.get("waybillNo"):
                    self.line("!", f"no waybill for {tracked.channel_order_id}: {item.get('lastError', '')}")
                    continue
                self.tally.waybills += 1
                warehouse = tracked.shipments.get(item["shipmentId"], "")
                entry = (tracked, item["shipmentId"], item["waybillNo"], str(item.get("carrier", "")).upper())
                ready.setdefault(warehouse, []).append(entry)
            for warehouse, shipments in ready.items():
                self.floor_work(warehouse, shipments)

    def floor_work(self, warehouse: str, shipments: list[tuple[Tracked, str, str, str]]) -> None:
        ids = [shipment_id for _, shipment_id, _, _ in shipments]
        status, answer = self.api(
            self.floor, "POST", f"/v1/logistics/warehouses/{warehouse}/pick-lists", {"shipmentIds": ids}
        )
        if status == 200:
            self.tally.pick_lists += 1
            pick_list = answer.get("pickList", {}).get("pickListId", "")
            self.line("pick list", f"{warehouse} {pick_list}: {_n(len(ids), 'shipment')}")
        else:
            self.failed(f"a pick list at {warehouse}", status, answer)
        for tracked, shipment_id, waybill_no, carrier in shipments:
            steps = [
                ("picks", {"shipmentId": shipment_id}),
                ("packs", {"shipmentId": shipment_id}),
                ("scan-outs", {"code": waybill_no}),
            ]
            for step, body in steps:
                status, answer = self.api(
                    self.floor, "POST", f"/v1/logistics/warehouses/{warehouse}/{step}", body
                )
                if status != 200:
                    self.failed(f"{step} of {tracked.channel_order_id} at {warehouse}", status, answer)
                    break
            else:
                tracked.scanned = True
                self.tally.scanned_out += 1
                self.line(
                    "scan-out",
                    f"{tracked.plan.channel:<8} {tracked.channel_order_id}  picked, packed and out of "
                    f"{warehouse} with {carrier} {waybill_no}",
                )

    def aftersales(self) -> None:
        for tracked in self.tracked:
            role = tracked.plan.role
            if role not in AFTERSALES_ROLES or not tracked.order_id:
                continue
            if not tracked.ticket_id and tracked.status == "ORDER_STATUS_DELIVERED":
                self.open_ticket(tracked)
            elif tracked.ticket_id and tracked.ticket_status not in TICKET_DONE and role != "review":
                self.follow_ticket(tracked)

    def open_ticket(self, tracked: Tracked) -> None:
        role = tracked.plan.role
        kind = "TICKET_KIND_RETURN_AND_REFUND" if role == "return" else "TICKET_KIND_REFUND_ONLY"
        reason = {"refund": "changed_mind", "refund_alipay": "quality_issue"}.get(role, "not_as_described")
        body = {
            "orderId": tracked.order_id,
            "kind": kind,
            "reason": reason,
            "lines": [{"lineIndex": 0, "quantity": 1}],
            "customerNote": "one of the two arrived chipped" if role == "return" else "",
            "requestId": f"demo-{self.run}-{tracked.plan.number}",
        }
        customer = self.customer(tracked.plan.buyer)
        status, answer = self.api(customer, "POST", "/v1/aftersales/tickets", body)
        if status != 200:
            tracked.ticket_id = "-"
            tracked.ticket_status = "TICKET_STATUS_CLOSED"
            self.failed(f"a ticket on {tracked.channel_order_id}", status, answer)
            return
        ticket = answer["ticket"]
        tracked.ticket_id, tracked.ticket_status = ticket["ticketId"], ticket["status"]
        self.tally.tickets += 1
        decided = (
            "waiting for customer service's review"
            if tracked.ticket_status == "TICKET_STATUS_OPEN"
            else "approved by the rules"
        )
        what = kind.removeprefix("TICKET_KIND_").lower().replace("_", " ")
        self.line(
            "ticket",
            f"OWN_SHOP {tracked.channel_order_id}  {what} of 1 × {tracked.plan.lines[0][0]} ({reason}) "
            f"by {tracked.plan.buyer}: {decided}",
        )

    def follow_ticket(self, tracked: Tracked) -> None:
        customer = self.customer(tracked.plan.buyer)
        status, answer = self.api(customer, "GET", f"/v1/aftersales/tickets/{quote(tracked.ticket_id)}")
        if status != 200:
            self.failed(f"ticket {tracked.ticket_id}", status, answer)
            return
        ticket = answer["ticket"]
        tracked.ticket_status = ticket["status"]
        if (
            tracked.plan.role == "return"
            and not tracked.returned
            and tracked.ticket_status
            in (
                "TICKET_STATUS_APPROVED",
                "TICKET_STATUS_RETURN_PENDING",
            )
        ):
            tracked.returned = True
            warehouse = next(iter(tracked.shipments.values()), "")
            scan = {
                "orderCode": tracked.order_id,
                "warehouseId": warehouse,
                "lines": [{"lineIndex": 0, "quantity": 1}],
            }
            status, answer = self.api(self.floor, "POST", "/v1/aftersales/returns", scan)
            if status != 200:
                self.failed(f"the return of {tracked.channel_order_id}", status, answer)
                return
            self.tally.returns += 1
            self.line(
                "return",
                f"OWN_SHOP {tracked.channel_order_id}  the parcel back at {warehouse}'s return desk, "
                f"{answer.get('restocked', 0)} restocked",
            )
        if tracked.ticket_status in TICKET_DONE:
            refund = ticket.get("refund", {})
            amount = int(refund.get("amount", {}).get("amountMinor", 0) or 0)
            self.line(
                "refunded" if refund.get("status") == "SUCCESS" else "refund",
                f"OWN_SHOP {tracked.channel_order_id}  {_yuan(amount)} CNY back by {tracked.plan.provider} "
                f"({refund.get('status', tracked.ticket_status)}, ticket {tracked.ticket_id})",
            )

    def at_rest(self) -> bool:
        """Nothing this run started is still on its way: every order has arrived and come to rest (a
        parked payment's order waits for a person), every ticket is settled or with customer service."""
        return not self.batches and not any(self.busy(tracked) for tracked in self.tracked)

    @staticmethod
    def busy(tracked: Tracked) -> bool:
        if not tracked.order_id:
            return True
        waiting = tracked.status == "ORDER_STATUS_PENDING_PAYMENT" and not tracked.plan.skew_s
        if waiting or tracked.status not in RESTING | {"ORDER_STATUS_PENDING_PAYMENT"}:
            return True
        if tracked.plan.role not in AFTERSALES_ROLES:
            return False
        if not tracked.ticket_id:
            return True
        return tracked.plan.role != "review" and tracked.ticket_status not in TICKET_DONE

    # ---- what it left in each queue, as the public API says ----------------------------------------

    def summary(self, finished: bool) -> None:
        self.refresh(everything=True)
        ours = {t.order_id for t in self.tracked if t.order_id}
        statuses = Counter(t.status.removeprefix("ORDER_STATUS_") or "not arrived" for t in self.tracked)
        parked = self._count(
            "/v1/payment-notifications?state=PAYMENT_STATE_PARKED&page.page_size=500", "payments", ours
        )
        reviews = self._count("/v1/risk-reviews?page.page_size=500", "evaluations", ours)
        refunds = self._refunds()
        tickets = Counter(t.ticket_status.removeprefix("TICKET_STATUS_") for t in self.tracked if t.ticket_id)
        health = self._douyin()
        holders = Counter(
            "by ops"
            if t.plan.role == "hold"
            else "by the risk rules"
            if t.plan.role.startswith("risk")
            else "other"
            for t in self.tracked
            if t.status == "ORDER_STATUS_ON_HOLD"
        )
        held_by = _counts(holders) or "none"
        alerts = Counter(
            row.get("kind", "")
            for row in self._ours("/v1/alerts?page.page_size=500", "alerts", ours)
            if row.get("state") == "ALERT_STATE_OPEN"
        )
        took = self.elapsed()
        end = "done" if finished else f"stopped at the {self.seconds:.0f} s cap with work still on its way"
        rows = [
            ("orders", f"{sum(self.tally.orders.values())}: " + _counts(self.tally.orders)),
            ("statuses", _counts(statuses)),
            (
                "payments",
                f"{self.tally.payments} notified by the payment sandbox ({self.tally.skewed} clock-skewed); "
                f"{parked} parked for review",
            ),
            ("risk reviews", f"{reviews} held by the risk rules"),
            (
                "logistics",
                f"{self.tally.waybills} waybills in {self.tally.batches} batches, {self.tally.pick_lists} "
                f"pick lists, {self.tally.scanned_out} scanned out, {statuses['DELIVERED']} delivered",
            ),
            (
                "after-sales",
                f"{_n(self.tally.tickets, 'ticket')} ({_counts(tickets)}), "
                f"{_n(self.tally.returns, 'return')} received at the desk",
            ),
            ("refunds", f"{refunds} at the payment sandbox, in finance's ledger"),
            ("stuck", f"{statuses['EXCEPTION']} in exception, {statuses['ON_HOLD']} on hold ({held_by})"),
            ("silent", health),
            (
                "alerts",
                f"{sum(alerts.values())} open on this run's orders ({_counts(alerts)}) (GET /v1/alerts)",
            ),
            ("quarantine", self._quarantine()),
        ]
        if self.tally.failures:
            rows.append(("failures", f"{self.tally.failures} calls failed (the lines marked !)"))
        self.say(f"\ndemo {self.run} {end} in {took:.0f} s:")
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.say(f"  {label.ljust(width)}  {value}")

    def _count(self, path: str, key: str, ours: set[str]) -> int:
        return len(self._ours(path, key, ours))

    def _ours(self, path: str, key: str, ours: set[str]) -> list[dict[str, Any]]:
        status, answer = self.api(self.ops, "GET", path)
        if status != 200:
            self.failed(path, status, answer)
            return []
        return [row for row in answer.get(key, []) if row.get("orderId") in ours]

    def _quarantine(self) -> str:
        if not self.quarantined:
            return "nothing sent"
        status, answer = self.api(self.ops, "GET", "/v1/quarantine?page.page_size=500")
        if status != 200:
            self.failed("the quarantine", status, answer)
            return "?"
        kept = [p for p in answer.get("payloads", []) if p.get("channelOrderId") == self.quarantined]
        field_ = kept[0].get("errorField", "") if kept else ""
        return f"{len(kept)} JD payload kept ({field_}) (GET /v1/quarantine)"

    def _refunds(self) -> int:
        tickets = {t.ticket_id for t in self.tracked if t.ticket_id}
        status, answer = self.api(self.ops, "GET", "/v1/aftersales/refunds?page_size=500")
        if status != 200:
            self.failed("the refund ledger", status, answer)
            return 0
        return sum(1 for row in answer.get("refunds", []) if row.get("ticketId") in tickets)

    def _douyin(self) -> str:
        status, answer = self.api(self.ops, "GET", "/v1/channel-health")
        if status != 200:
            return f"channel health: HTTP {status}"
        shown = []
        for channel in answer.get("channels", []):
            last = channel.get("lastOrderAt", "")
            alerts = [
                alert.get("kind", "") for alert in channel.get("openAlerts", []) if isinstance(alert, dict)
            ]
            shown.append(
                f"{channel['channel'].removeprefix('CHANNEL_')} last order {last[11:19] or 'never'}"
                + (f" ({', '.join(alerts)})" if alerts else "")
            )
        return "; ".join(shown) + " (GET /v1/channel-health)"


def _n(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def run(
    endpoints: Mapping[str, str],
    signing: Mapping[str, str],
    orders: int = 60,
    seconds: float = 90.0,
    seed: int | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    if orders < MIN_ORDERS:
        print(f"--orders: at least {MIN_ORDERS} (one of each kind the demo shows)", file=sys.stderr)
        return 2
    missing = [name for name in ("envoy", "channels", "payments", "carriers") if name not in endpoints]
    if missing:
        print(f"the running stack has no {', '.join(missing)}", file=sys.stderr)
        return 1
    return Demo(endpoints, signing, orders, seconds, seed, say).go()
