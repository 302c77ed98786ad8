"""The carrier clients' pure parts: signatures against the vectors worked out by hand for the sandbox
(openssl over each documented formula), the breaker's failure ratio and half-open probe, and the
waybill fields read from each carrier's answer."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.logistics.carriers import cainiao, sf
from services.logistics.carriers.breaker import Breakers, CircuitOpen
from services.logistics.carriers.config import BreakerSettings
from services.logistics.carriers.http import CarrierDown
from services.logistics.carriers.signing import (
    java_urlencode,
    kuaidi100_label_sign,
    kuaidi100_push_sign,
    kuaidi100_query_sign,
    sf_msg_digest,
    top_sign,
)
from services.logistics.domain.carriers import BreakerState

# printf '%s' '%7B%22orderId%22%3A%22OMS-1+%E6%B5%8B%E8%AF%95*%7E%22%7D1700000000000cw-123' \
#   | openssl md5 -binary | base64
SF_VECTOR = ('{"orderId":"OMS-1 测试*~"}', "1700000000000", "cw-123", "1EHXF/34sPdfD6XrtmI82g==")


def test_sf_msg_digest_matches_the_known_vector() -> None:
    msg_data, timestamp, checkword, expected = SF_VECTOR
    assert sf_msg_digest(msg_data, timestamp, checkword) == expected
    assert java_urlencode('a b*~{"测"}') == "a+b*%7E%7B%22%E6%B5%8B%22%7D"


def test_kuaidi100_signs_match_the_known_vectors() -> None:
    param = '{"kuaidicom":"zhongtong","orderId":"A1"}'
    assert kuaidi100_label_sign(param, "1576123932000", "K", "S") == "D497BE54092A303A1315684B92E3C475"
    query = '{"com":"yuantong","num":"YT1234567890123"}'
    assert kuaidi100_query_sign(query, "K", "C") == "DDA2877D14313686E68363FC860FD82D"
    assert kuaidi100_push_sign('{"status":"polling"}', "salt123") == "D3E37349DAA1504C5808621A3D636F88"


def test_top_sign_matches_the_known_vector() -> None:
    params = {
        "method": "cainiao.waybill.ii.get",
        "app_key": "12345678",
        "timestamp": "2026-01-01 00:00:00",
        "v": "2.0",
        "sign_method": "md5",
        "format": "json",
        "session": "",
        "sign": "ignored",
    }
    assert top_sign(params, "sec") == "FD2E2FCA7B5F0B375986E841A4C4C429"


def breakers(changes: list[tuple[str, BreakerState]]) -> Breakers:
    settings = BreakerSettings(failure_ratio=0.5, window=10, min_calls=4, open_seconds=0.05)
    return Breakers(settings, lambda name, state: changes.append((name, state)))


async def ok() -> str:
    return "ok"


async def down() -> str:
    raise CarrierDown("A1009")


async def test_the_breaker_opens_on_the_failure_ratio_not_on_a_few_failures() -> None:
    changes: list[tuple[str, BreakerState]] = []
    breaker = breakers(changes)
    for work in (ok, ok, down, ok, down, ok):  # 2 of 6: under the ratio
        with pytest.raises(CarrierDown) if work is down else _nothing():
            await breaker.call("sf", work)
    assert breaker.state("sf")[0] is BreakerState.CLOSED
    with pytest.raises(CarrierDown):
        await breaker.call("sf", down)  # 3 of 7
    assert breaker.state("sf")[0] is BreakerState.CLOSED
    with pytest.raises(CarrierDown):
        await breaker.call("sf", down)  # 4 of 8: the ratio
    assert breaker.state("sf")[0] is BreakerState.OPEN and changes == [("sf", BreakerState.OPEN)]
    with pytest.raises(CircuitOpen):
        await breaker.call("sf", ok)
    assert breaker.state("zto")[0] is BreakerState.CLOSED


async def test_after_its_open_time_one_probe_closes_the_breaker_or_opens_it_again() -> None:
    changes: list[tuple[str, BreakerState]] = []
    breaker = breakers(changes)
    for _ in range(4):
        with pytest.raises(CarrierDown):
            await breaker.call("jd", down)
    await _past(0.06)
    with pytest.raises(CarrierDown):
        await breaker.call("jd", down)  # the probe fails: open again
    assert breaker.state("jd")[0] is BreakerState.OPEN
    await _past(0.06)
    assert await breaker.call("jd", ok) == "ok"
    assert [state for _, state in changes] == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


async def _past(seconds: float) -> None:
    """purgatory times its open state on the wall clock: let it pass."""
    await asyncio.sleep(seconds)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def test_an_sf_answer_gives_the_waybill_and_its_sorting_codes() -> None:
    found = sf.waybill_of(
        {
            "orderId": "s-1",
            "originCode": "755",
            "destCode": "021",
            "waybillNoInfoList": [{"waybillType": 1, "waybillNo": "SF1234567890123"}],
            "routeLabelInfo": [
                {"routeLabelData": {"destRouteLabel": "021W-021A01", "twoDimensionCode": "MMM"}}
            ],
        }
    )
    assert found is not None
    assert (found.waybill_no, found.sorting_code, found.destination_code) == (
        "SF1234567890123",
        "021W-021A01",
        "021",
    )
    assert found.label["twoDimensionCode"] == "MMM"
    assert sf.waybill_of({"waybillNoInfoList": []}) is None


def test_a_cainiao_module_gives_the_waybill_and_its_routing() -> None:
    printed = {"data": {"routingInfo": {"sortation": {"name": "010A01"}, "consolidation": {"code": "01001"}}}}
    found = cainiao.waybill_of({"object_id": "1", "waybill_code": "77000", "print_data": json.dumps(printed)})
    assert (found.waybill_no, found.sorting_code, found.destination_code) == ("77000", "010A01", "01001")


ACCOUNTS_ENV = {
    "SF_PARTNER_ID": "p",
    "SF_CHECKWORD": "c",
    "KUAIDI100_KEY": "k",
    "KUAIDI100_SECRET": "s",
    "KUAIDI100_CUSTOMER": "cu",
    "CAINIAO_APP_KEY": "a",
    "CAINIAO_APP_SECRET": "b",
}


def test_kuaidi100_subscriptions_and_queries_go_to_its_poll_host_and_labels_to_its_api_host() -> None:
    from services.logistics.carriers.kuaidi100 import Kuaidi100Client
    from services.logistics.config import carrier_config

    real = carrier_config(
        {
            **ACCOUNTS_ENV,
            "CARRIER_API_URL": "https://elsewhere.example",
            "KUAIDI100_API_URL": "https://api.kuaidi100.com/",
            "KUAIDI100_POLL_URL": "https://poll.kuaidi100.com",
        }
    )
    client = Kuaidi100Client(None, real)  # type: ignore[arg-type]  # no call is made
    assert (client.base, client.poll_base) == ("https://api.kuaidi100.com", "https://poll.kuaidi100.com")
    # one sandbox serving both paths needs one setting
    sandbox = carrier_config({**ACCOUNTS_ENV, "CARRIER_API_URL": "http://127.0.0.1:18010"})
    client = Kuaidi100Client(None, sandbox)  # type: ignore[arg-type]
    assert client.base == client.poll_base == "http://127.0.0.1:18010"
