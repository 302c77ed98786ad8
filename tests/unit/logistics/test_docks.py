"""The sender on a label: the warehouse's dock from the directory, the plan's origin when it names one,
the warehouse id when the directory does not know it; the directory file refused with the key at fault;
and a Cainiao batch never mixing two docks under one sender."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.kit.config import InvalidSetting
from services.logistics.carriers.config import CarrierConfig
from services.logistics.carriers.gateway import CarrierGateway
from services.logistics.config import DEFAULT_DOCKS_PATH, carrier_config, load_docks
from services.logistics.domain.docks import InvalidDocks, parse
from services.logistics.domain.model import Line, Place, Recipient
from services.logistics.domain.waybills import Issued, WaybillOrder
from services.logistics.handlers.waybills import waybill_order
from tests.unit.logistics.builders import shipment
from tests.unit.logistics.test_carrier_clients import ACCOUNTS_ENV

DOCKS = parse(
    {
        "warehouses": {
            "WH-SH": {
                "name": "上海仓发货组",
                "phone": "021-59770000",
                "province": "上海市",
                "city": "上海市",
                "district": "青浦区",
                "detail": "华新镇华志路 1688 号",
            }
        }
    }
)


def test_a_shipment_without_an_origin_starts_at_its_warehouses_dock() -> None:
    assert DOCKS.origin("WH-SH", Place()) == Place("CN", "上海市", "上海市", "青浦区", "华新镇华志路 1688 号")
    named = Place("CN", "浙江省", "杭州市", "余杭区", "仓前街道 1 号")
    assert DOCKS.origin("WH-SH", named) == named  # the plan's own origin wins
    assert DOCKS.origin("WH-NEW", Place()) == Place()  # unknown: what the plan gave


def test_the_label_names_the_docks_team_and_phone_or_the_warehouse_id() -> None:
    order = waybill_order(shipment(warehouse_id="WH-SH"), DOCKS)
    assert (order.sender_name, order.sender_phone) == ("上海仓发货组", "021-59770000")
    order = waybill_order(shipment(warehouse_id="WH-NEW"), DOCKS)
    assert (order.sender_name, order.sender_phone) == ("WH-NEW", "")


def test_the_shipped_directory_names_every_demo_warehouse() -> None:
    shipped = load_docks(DEFAULT_DOCKS_PATH)
    assert set(shipped.by_warehouse) == {"WH-SH", "WH-BJ", "WH-GZ", "WH-WH", "WH-CD", "WH-XB"}
    assert all(dock.place.detail and dock.phone for dock in shipped.by_warehouse.values())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"docks": {}}, "one key, `warehouses`"),
        ({"warehouses": {"WH-1": {"name": "a", "province": "b", "city": "c"}}}, r"WH-1\.detail: is required"),
        ({"warehouses": {"WH-1": {"name": "a", "colour": "red"}}}, "WH-1: unknown keys colour"),
        ({"warehouses": {"WH-1": "somewhere"}}, "WH-1: must be a mapping"),
        ({"warehouses": {"WH-1": {"name": ["a"]}}}, r"WH-1\.name: must be text"),
    ],
)
def test_a_bad_directory_is_refused_naming_the_warehouse_and_key(document: object, message: str) -> None:
    with pytest.raises(InvalidDocks, match=message):
        parse(document)


def test_a_directory_file_that_cannot_be_read_stops_the_service_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "docks.yaml"
    broken.write_text("warehouses: [", encoding="utf-8")
    with pytest.raises(InvalidSetting, match=r"LOGISTICS_DOCKS_FILE .*docks\.yaml"):
        load_docks(broken)


class RecordingCainiao:
    def __init__(self) -> None:
        self.calls: list[list[WaybillOrder]] = []

    async def create(self, cp_code: str, orders: list[WaybillOrder]) -> list[Issued]:
        self.calls.append(list(orders))
        return [Issued(None) for _ in orders]  # type: ignore[arg-type]  # only the grouping is looked at


def cainiao_order(number: int, sender_name: str, sender: Place) -> WaybillOrder:
    return WaybillOrder(
        carrier_order_id=f"s-{number}",
        order_id=f"o-{number}",
        carrier="cainiao",
        product="YTO",
        sender=sender,
        sender_name=sender_name,
        destination=Place("CN", "北京市", "北京市", "朝阳区"),
        recipient=Recipient("张三", "13900000000", "1 号"),
        lines=(Line("SKU-1", "Tea", 1),),
    )


async def test_a_cainiao_call_carries_the_parcels_of_one_dock_only() -> None:
    config: CarrierConfig = carrier_config({**ACCOUNTS_ENV, "CARRIER_API_URL": "http://127.0.0.1:1"})
    gateway = CarrierGateway(config)
    recording = RecordingCainiao()
    gateway.cainiao = recording  # type: ignore[assignment]
    shanghai, beijing = (
        Place("CN", "上海市", "上海市", "青浦区", "1 号"),
        Place("CN", "北京市", "北京市", "顺义区", "2 号"),
    )
    orders = [
        cainiao_order(n, "SH", shanghai) if n % 2 else cainiao_order(n, "BJ", beijing) for n in range(6)
    ]
    outcomes = await gateway._cainiao_create(orders)
    assert len(outcomes) == 6
    assert sorted(len(call) for call in recording.calls) == [3, 3]
    for call in recording.calls:
        assert len({(order.sender_name, order.sender) for order in call}) == 1
