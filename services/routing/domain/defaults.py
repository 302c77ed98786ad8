"""The default rule set: five demo warehouses for mainland China and one cross-border (bonded)
warehouse in Shenzhen for destinations outside it, tiered coverage, a cost/time matrix derived from
distance, carriers and carrier rules (East China → SF economy, remote regions → EMS, cold chain only
by cold-chain carriers, abroad by SF International). Operations replace it through versioned rule sets."""

from __future__ import annotations

from services.routing.domain.geography import ABROAD, BY_NAME, PROVINCES, distance_km
from services.routing.domain.model import COLD_CHAIN, FRESH
from services.routing.domain.rules import (
    CROSS_BORDER,
    Carrier,
    CarrierRule,
    Coverage,
    Rate,
    RuleSet,
    Tier,
    Warehouse,
)

WAREHOUSES = (
    Warehouse(
        "WH-SH", "Shanghai", "Shanghai", "Shanghai", 31.23, 121.47, cold_chain=True, daily_capacity=8000
    ),
    Warehouse("WH-BJ", "Beijing", "Beijing", "Beijing", 39.90, 116.40, daily_capacity=6000),
    Warehouse(
        "WH-GZ", "Guangzhou", "Guangdong", "Guangzhou", 23.13, 113.26, cold_chain=True, daily_capacity=6000
    ),
    Warehouse("WH-WH", "Wuhan", "Hubei", "Wuhan", 30.59, 114.31, daily_capacity=4000),
    Warehouse("WH-CD", "Chengdu", "Sichuan", "Chengdu", 30.57, 104.07, daily_capacity=4000),
    Warehouse(
        "WH-XB",
        "Shenzhen cross-border",
        "Guangdong",
        "Shenzhen",
        22.54,
        114.06,
        daily_capacity=3000,
        cross_border=True,
    ),
)
# the cross-border warehouse reaches Hong Kong and Macao next day, everything else abroad by standard
XB_NEXT_DAY = ("HK", "MO")

SAME_DAY = {
    "WH-SH": ("Shanghai",),
    "WH-BJ": ("Beijing",),
    "WH-GZ": ("Guangdong",),
    "WH-WH": ("Hubei",),
    "WH-CD": ("Sichuan",),
}
NEXT_DAY = {
    "WH-SH": ("Jiangsu", "Zhejiang", "Anhui"),
    "WH-BJ": ("Tianjin", "Hebei", "Shandong", "Shanxi", "Liaoning"),
    "WH-GZ": ("Guangxi", "Hainan", "Fujian", "Hunan"),
    "WH-WH": ("Henan", "Hunan", "Jiangxi", "Anhui", "Chongqing"),
    "WH-CD": ("Chongqing", "Guizhou", "Yunnan", "Shaanxi"),
}
# Remote regions are served from the two warehouses with the contracts to reach them.
REMOTE_SERVED_BY = ("WH-BJ", "WH-CD")

CARRIERS = (
    Carrier("SF", "SF Express"),
    Carrier("SF-COLD", "SF Cold Chain", cold_chain=True),
    Carrier("ZTO", "ZTO Express"),
    Carrier("EMS", "China Post EMS"),
    Carrier("SF-INTL", "SF International", cross_border=True),
)

# carrier → (price factor, per-kg price in fen, days adjustment)
_CARRIER_TERMS = {"SF": (1.3, 200, -1), "SF-COLD": (2.0, 400, -1), "ZTO": (1.0, 100, 0), "EMS": (1.2, 150, 1)}
# cross-border: (per-parcel base in fen, per-km in fen, per-kg in fen); customs adds two days
_INTL_TERMS = (3000, 1.5, 1500)

CARRIER_RULES = (
    CarrierRule(
        "cold chain only by cold-chain carriers", "SF-COLD", "cold chain", goods_types=(COLD_CHAIN, FRESH)
    ),
    CarrierRule("abroad by SF International", "SF-INTL", "international", areas=(CROSS_BORDER,)),
    CarrierRule("remote regions by EMS", "EMS", "standard", remote=True),
    CarrierRule("expedited orders by SF express", "SF", "express", priorities=("expedited",)),
    CarrierRule("East China by SF economy", "SF", "economy", areas=("east",)),
    CarrierRule("everything else by ZTO", "ZTO", "standard"),
)


def _coverage() -> tuple[Coverage, ...]:
    entries = []
    for warehouse in WAREHOUSES:
        wid = warehouse.warehouse_id
        if warehouse.cross_border:
            abroad = tuple(a.code for a in ABROAD)
            entries += [
                Coverage(wid, Tier.NEXT_DAY, XB_NEXT_DAY),
                Coverage(wid, Tier.STANDARD, tuple(c for c in abroad if c not in XB_NEXT_DAY)),
            ]
            continue
        standard = tuple(
            p.name
            for p in PROVINCES
            if (not p.remote or wid in REMOTE_SERVED_BY) and p.name not in SAME_DAY[wid] + NEXT_DAY[wid]
        )
        entries += [
            Coverage(wid, Tier.SAME_DAY, SAME_DAY[wid]),
            Coverage(wid, Tier.NEXT_DAY, NEXT_DAY[wid]),
            Coverage(wid, Tier.STANDARD, standard),
        ]
    return tuple(entries)


def _days(km: float) -> int:
    return 1 if km < 400 else 2 if km < 1200 else 3 if km < 2500 else 4


def _rates() -> tuple[Rate, ...]:
    rates = []
    intl_base, intl_per_km, intl_per_kg = _INTL_TERMS
    for warehouse in WAREHOUSES:
        if warehouse.cross_border:
            for region in ABROAD:
                km = distance_km(warehouse.lat, warehouse.lon, region.lat, region.lon)
                rates.append(
                    Rate(
                        warehouse.warehouse_id,
                        region.code,
                        "SF-INTL",
                        round(intl_base + km * intl_per_km),
                        intl_per_kg,
                        _days(km) + 2,
                    )
                )
            continue
        for province in PROVINCES:
            km = distance_km(warehouse.lat, warehouse.lon, province.lat, province.lon)
            base = 400 + km * 0.9
            for carrier, (factor, per_kg, adjust) in _CARRIER_TERMS.items():
                if carrier == "SF-COLD" and not warehouse.cold_chain:
                    continue
                if carrier == "EMS" and province.remote and warehouse.warehouse_id not in REMOTE_SERVED_BY:
                    continue
                rates.append(
                    Rate(
                        warehouse.warehouse_id,
                        province.name,
                        carrier,
                        round(base * factor),
                        per_kg,
                        max(1, _days(km) + adjust),
                    )
                )
    return tuple(rates)


def default_rules(version: int = 1) -> RuleSet:
    return RuleSet(
        version=version,
        warehouses=WAREHOUSES,
        coverage=_coverage(),
        rates=_rates(),
        carriers=CARRIERS,
        carrier_rules=CARRIER_RULES,
    )


assert set(BY_NAME) == {p.name for p in PROVINCES}
