"""The route a parcel travels, carrier-neutral: each carrier's protocol turns a step into its own codes.

Pure: the caller passes the random generator, so a seed replays the same routes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Node(StrEnum):
    """The set of tracking nodes every carrier code maps onto (issue 13, item 5)."""

    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    REFUSED = "refused"
    RETURNED = "returned"
    PROBLEM = "problem"


class Action(StrEnum):
    """What happened at a step; SF's opCode depends on it, not only on the node."""

    COLLECTED = "collected"
    SORTED = "sorted"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    DELIVERING = "delivering"
    SIGNED = "signed"


ACTION_NODE: dict[Action, Node] = {
    Action.COLLECTED: Node.PICKED_UP,
    Action.SORTED: Node.IN_TRANSIT,
    Action.DEPARTED: Node.IN_TRANSIT,
    Action.ARRIVED: Node.IN_TRANSIT,
    Action.DELIVERING: Node.OUT_FOR_DELIVERY,
    Action.SIGNED: Node.DELIVERED,
}

# city → telephone area code, which SF and the sorting codes on labels use as the city's code
AREA_CODES = {
    "北京": "010",
    "上海": "021",
    "广州": "020",
    "深圳": "755",
    "杭州": "571",
    "南京": "025",
    "苏州": "512",
    "武汉": "027",
    "成都": "028",
    "重庆": "023",
    "西安": "029",
    "天津": "022",
    "长沙": "731",
    "郑州": "371",
    "青岛": "532",
    "厦门": "592",
}
CITIES = tuple(AREA_CODES)

COURIERS = ("王师傅", "李师傅", "张师傅", "刘师傅", "陈师傅")


@dataclass(frozen=True)
class Step:
    action: Action
    city: str
    facility: str
    next_facility: str = ""
    courier: str = ""
    courier_phone: str = ""

    @property
    def node(self) -> Node:
        return ACTION_NODE[self.action]


def city_in(address: str, rng: random.Random) -> str:
    """The known city an address names, or a random one (addresses in tests are often placeholders)."""
    for city in CITIES:
        if city in address:
            return city
    return rng.choice(CITIES)


def plan_route(origin: str, destination: str, rng: random.Random) -> list[Step]:
    """Outlet → origin hub → destination hub → outlet → courier → signed: seven steps."""
    origin_outlet = f"{origin}{rng.choice(('南山', '宝安', '朝阳', '浦东', '天河', '西湖'))}营业点"
    origin_hub = f"{origin}转运中心"
    destination_hub = f"{destination}集散中心" if destination != origin else f"{origin}分拨中心"
    destination_outlet = f"{destination}{rng.choice(('东区', '西区', '南区', '北区'))}营业部"
    courier = rng.choice(COURIERS)
    phone = f"13{rng.randrange(10**8, 10**9)}"
    return [
        Step(Action.COLLECTED, origin, origin_outlet),
        Step(Action.SORTED, origin, origin_hub),
        Step(Action.DEPARTED, origin, origin_hub, next_facility=destination_hub),
        Step(Action.ARRIVED, destination, destination_hub),
        Step(Action.ARRIVED, destination, destination_outlet),
        Step(Action.DELIVERING, destination, destination_outlet, courier=courier, courier_phone=phone),
        Step(Action.SIGNED, destination, destination_outlet, courier=courier),
    ]


def describe(step: Step) -> str:
    """A Chinese scan text in the style carriers print on their routes."""
    match step.action:
        case Action.COLLECTED:
            return f"快件已由【{step.facility}】收取"
        case Action.SORTED:
            return f"快件在【{step.facility}】完成分拣，准备发出"
        case Action.DEPARTED:
            return f"快件离开【{step.facility}】，已发往【{step.next_facility}】"
        case Action.ARRIVED:
            return f"快件到达【{step.facility}】"
        case Action.DELIVERING:
            return f"快件交给{step.courier}，正在派送途中（联系电话：{step.courier_phone}）"
        case Action.SIGNED:
            return "快件已签收，签收人：本人，感谢使用，期待再次为您服务"
