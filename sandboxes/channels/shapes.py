"""Orders as each marketplace returns them: a Taobao `trade` of taobao.trade.fullinfo.get and a Douyin
shop order of order.orderDetail (the shapes of tests/fixtures/channels, which the orders service's
channel adapters parse), with new ids and times, and optional padding in a field no adapter reads."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sandboxes.channels.protocols import taobao

# (sku, title, price in fen)
TAOBAO_ITEMS = (
    ("TEA-LJ-250", "西湖龙井 明前特级 250g 礼盒装", 19900),
    ("CUP-GL-300", "双层玻璃茶杯 300ml", 4990),
)
DOUYIN_ITEMS = (("CREAM-50", "玻尿酸保湿面霜 50ml", 15900), ("TONER-200", "氨基酸爽肤水 200ml", 8900))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _padding(pad_bytes: int) -> dict[str, Any]:
    # nested like the incident's address-detail field, so the growth is in structure, not one string
    chunk = 200
    return {"blocks": [{"seq": i, "text": "x" * chunk} for i in range(max(1, pad_bytes // (chunk + 22)))]}


def taobao_trade(tid: int, at: datetime, dice: random.Random, pad_bytes: int = 0) -> dict[str, Any]:
    sku, title, price = TAOBAO_ITEMS[dice.randrange(len(TAOBAO_ITEMS))]
    num = dice.randint(1, 3)
    when = taobao.format_time(at)
    total = price * num
    trade: dict[str, Any] = {
        "tid": tid,
        "type": "fixed",
        "status": "WAIT_SELLER_SEND_GOODS",
        "seller_nick": "西湖茶语旗舰店",
        "buyer_nick": "w**",
        "buyer_open_uid": f"AAH{tid % 10**12:012d}",
        "created": when,
        "pay_time": when,
        "modified": when,
        "total_fee": _yuan(total),
        "post_fee": "10.00",
        "payment": _yuan(total + 1000),
        "buyer_message": "",
        "receiver_name": "王小明",
        "receiver_mobile": "13812345678",
        "receiver_state": "浙江省",
        "receiver_city": "杭州市",
        "receiver_district": "西湖区",
        "receiver_address": "文三路 478 号华星时代广场 A 座 1203 室",
        "receiver_zip": "310012",
        "orders": {
            "order": [
                {
                    "oid": tid + 1,
                    "outer_sku_id": sku,
                    "title": title,
                    "price": _yuan(price),
                    "num": num,
                    "total_fee": _yuan(total),
                    "discount_fee": "0.00",
                    "payment": _yuan(total),
                    "status": "WAIT_SELLER_SEND_GOODS",
                    "refund_status": "NO_REFUND",
                }
            ]
        },
    }
    if pad_bytes:
        trade["receiver_address_detail_ext"] = _padding(pad_bytes)
    return trade


def douyin_order(order_id: str, at: datetime, dice: random.Random, pad_bytes: int = 0) -> dict[str, Any]:
    sku, title, price = DOUYIN_ITEMS[dice.randrange(len(DOUYIN_ITEMS))]
    num = dice.randint(1, 3)
    seconds = int(at.timestamp())
    order: dict[str, Any] = {
        "shop_id": 4463798,
        "shop_name": "润肤小铺官方旗舰店",
        "order_id": order_id,
        "order_status": 2,
        "order_status_desc": "备货中",
        "create_time": seconds,
        "pay_time": seconds,
        "update_time": seconds,
        "order_amount": price * num + 600,
        "pay_amount": price * num + 600,
        "post_amount": 600,
        "doudian_open_id": f"1@#{order_id[-12:]}",
        "buyer_words": "",
        "post_receiver": "陈静",
        "post_tel": "13700002222",
        "post_addr": {
            "province": {"name": "上海市", "id": "31"},
            "city": {"name": "上海市", "id": "310100"},
            "town": {"name": "徐汇区", "id": "310104"},
            "detail": "宜山路 700 号 C 座 12 楼",
        },
        "sku_order_list": [
            {
                "order_id": f"{order_id}1",
                "parent_order_id": order_id,
                "product_name": title,
                "out_sku_id": sku,
                "code": sku,
                "item_num": num,
                "goods_price": price,
                "origin_amount": price * num,
                "pay_amount": price * num,
            }
        ],
    }
    if pad_bytes:
        order["post_addr"]["detail_ext"] = _padding(pad_bytes)
    return order
