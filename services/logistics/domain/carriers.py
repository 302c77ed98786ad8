"""The carrier accounts logistics ships through, and which of routing's carrier codes each one serves.

SF Express is called directly (丰桥); ZTO, YTO, EMS and JD through the Kuaidi100 aggregator; STO and
Yunda e-waybills come from Cainiao and are tracked through Kuaidi100, as many merchants do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.kit.errors import InvalidArgument


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Protocol(StrEnum):
    SF = "sf"
    KUAIDI100 = "kuaidi100"
    CAINIAO = "cainiao"


@dataclass(frozen=True)
class CarrierAccount:
    carrier: str
    name: str
    protocol: Protocol
    # the Kuaidi100 company code its waybills are issued (ZTO…) or tracked (Cainiao's) under
    company: str = ""


@dataclass(frozen=True)
class Product:
    """What one of routing's carrier codes means here: the account, and its product on that account."""

    account: str
    # SF's expressTypeId; Cainiao's cp_code
    product: str = ""


ACCOUNTS: dict[str, CarrierAccount] = {
    account.carrier: account
    for account in (
        CarrierAccount("sf", "SF Express", Protocol.SF),
        CarrierAccount("zto", "ZTO Express", Protocol.KUAIDI100, "zhongtong"),
        CarrierAccount("yto", "YTO Express", Protocol.KUAIDI100, "yuantong"),
        CarrierAccount("ems", "China Post EMS", Protocol.KUAIDI100, "ems"),
        CarrierAccount("jd", "JD Logistics", Protocol.KUAIDI100, "jd"),
        CarrierAccount("cainiao", "Cainiao e-waybills (STO, Yunda)", Protocol.CAINIAO),
    )
}

# routing's carrier code → the account and product its waybill is asked of
PRODUCTS: dict[str, Product] = {
    "SF": Product("sf", "1"),  # 顺丰标快
    "SF-COLD": Product("sf", "14"),  # 顺丰冷运
    "SF-INTL": Product("sf", "23"),  # 顺丰国际
    "ZTO": Product("zto"),
    "YTO": Product("yto"),
    "EMS": Product("ems"),
    "JD": Product("jd"),
    "STO": Product("cainiao", "STO"),
    "YUNDA": Product("cainiao", "YUNDA"),
}

# Cainiao's cp_code → the Kuaidi100 company its waybills are followed under
CAINIAO_COMPANIES = {"STO": "shentong", "YUNDA": "yunda"}


def product_of(carrier: str, field: str = "carrier") -> Product:
    try:
        return PRODUCTS[carrier]
    except KeyError:
        known = ", ".join(PRODUCTS)
        raise InvalidArgument(field, f"unknown carrier {carrier[:32]!r}; known: {known}") from None


def account_of(carrier: str) -> CarrierAccount:
    return ACCOUNTS[product_of(carrier).account]


def tracking_company(carrier: str) -> str:
    """The Kuaidi100 company code a waybill of routing's carrier code is followed under ("" for SF)."""
    product = product_of(carrier)
    if product.account == "cainiao":
        return CAINIAO_COMPANIES[product.product]
    return ACCOUNTS[product.account].company


def routing_codes(account: str) -> list[str]:
    return [code for code, product in PRODUCTS.items() if product.account == account]
