"""What a printed label carries besides the number: sorting codes in each carrier's field names. Pure."""

from __future__ import annotations

import json

from sandboxes.carriers.routes import AREA_CODES
from sandboxes.carriers.state import Waybill


def _codes(waybill: Waybill) -> tuple[str, str, str]:
    origin = AREA_CODES[waybill.origin]
    destination = AREA_CODES[waybill.destination]
    return origin, destination, f"{destination}{'ABCDEFGHJK'[waybill.sort_no % 10]}{waybill.sort_no:02d}"


def area_codes(waybill: Waybill) -> tuple[str, str]:
    return AREA_CODES[waybill.origin], AREA_CODES[waybill.destination]


def sf_label(waybill: Waybill) -> dict[str, str]:
    origin, destination, sort_code = _codes(waybill)
    return {
        "sourceTransferCode": f"{origin}W",
        "sourceCityCode": origin,
        "destRouteLabel": f"{destination}W-{sort_code}",
        "destTransferCode": f"{destination}W",
        "codingMapping": f"S{waybill.sort_no:02d}",
        "proName": "顺丰标快",
        "twoDimensionCode": f"MMM={{'k1':'{destination}W','k2':'{sort_code}','k5':'{waybill.waybill_no}'}}",
    }


def kuaidi100_label(waybill: Waybill) -> dict[str, str]:
    _, destination, sort_code = _codes(waybill)
    return {
        "bulkpen": f"{waybill.destination}-{sort_code}",
        "destCode": destination,
        "destName": f"{waybill.destination}集散中心",
        "destSortingCode": sort_code,
        "pkgCode": f"{destination}-{waybill.sort_no:02d}",
        "pkgName": f"{waybill.destination}集包地",
        "label": f"https://sandbox.invalid/label/{waybill.waybill_no}.png",
    }


def cainiao_print_data(waybill: Waybill, cp_code: str) -> str:
    _, destination, sort_code = _codes(waybill)
    data = {
        "waybillCode": waybill.waybill_no,
        "cpCode": cp_code,
        "routingInfo": {
            "sortation": {"name": sort_code},
            "consolidation": {
                "name": f"{waybill.destination}集包",
                "code": f"{destination}{waybill.sort_no:02d}",
            },
            "routeCode": f"{destination}-{sort_code}",
        },
    }
    return json.dumps(
        {"data": data, "templateURL": "https://cloudprint.cainiao.com/template/standard/101/1"},
        ensure_ascii=False,
    )
