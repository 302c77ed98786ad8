"""Mainland China's 31 province-level regions with their capitals and major cities, the destinations
outside it that cross-border channels ship to, and address normalising by country."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from services.kit.errors import InvalidArgument

MAINLAND = "CN"


@dataclass(frozen=True)
class Place:
    province: str
    city: str
    lat: float
    lon: float
    # ISO 3166-1 alpha-2; anything but CN is a cross-border destination
    country: str = MAINLAND

    @property
    def cross_border(self) -> bool:
        return self.country != MAINLAND

    @property
    def region(self) -> str:
        """What coverage and rates are keyed on: the province in mainland China, else the country code."""
        return self.country if self.cross_border else self.province


@dataclass(frozen=True)
class Abroad:
    """A destination outside mainland China that cross-border channels (Shopee, exports) ship to."""

    code: str
    name: str
    chinese: str
    lat: float
    lon: float


ABROAD: tuple[Abroad, ...] = (
    Abroad("HK", "Hong Kong", "香港", 22.32, 114.17),
    Abroad("MO", "Macao", "澳门", 22.20, 113.54),
    Abroad("TW", "Taiwan", "台湾", 25.03, 121.57),
    Abroad("SG", "Singapore", "新加坡", 1.29, 103.85),
    Abroad("MY", "Malaysia", "马来西亚", 3.14, 101.69),
    Abroad("TH", "Thailand", "泰国", 13.76, 100.50),
    Abroad("PH", "Philippines", "菲律宾", 14.60, 120.98),
    Abroad("VN", "Vietnam", "越南", 21.03, 105.85),
    Abroad("ID", "Indonesia", "印度尼西亚", -6.21, 106.85),
    Abroad("BR", "Brazil", "巴西", -15.79, -47.88),
)
ABROAD_BY_CODE = {a.code: a for a in ABROAD}
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Province:
    name: str
    chinese: str
    capital: str
    lat: float
    lon: float
    area: str
    remote: bool = False


PROVINCES: tuple[Province, ...] = (
    Province("Beijing", "北京", "Beijing", 39.90, 116.40, "north"),
    Province("Tianjin", "天津", "Tianjin", 39.13, 117.20, "north"),
    Province("Hebei", "河北", "Shijiazhuang", 38.04, 114.51, "north"),
    Province("Shanxi", "山西", "Taiyuan", 37.87, 112.55, "north"),
    Province("Inner Mongolia", "内蒙古", "Hohhot", 40.84, 111.75, "north"),
    Province("Liaoning", "辽宁", "Shenyang", 41.80, 123.43, "northeast"),
    Province("Jilin", "吉林", "Changchun", 43.82, 125.32, "northeast"),
    Province("Heilongjiang", "黑龙江", "Harbin", 45.80, 126.53, "northeast"),
    Province("Shanghai", "上海", "Shanghai", 31.23, 121.47, "east"),
    Province("Jiangsu", "江苏", "Nanjing", 32.06, 118.80, "east"),
    Province("Zhejiang", "浙江", "Hangzhou", 30.27, 120.15, "east"),
    Province("Anhui", "安徽", "Hefei", 31.82, 117.23, "east"),
    Province("Fujian", "福建", "Fuzhou", 26.07, 119.30, "east"),
    Province("Jiangxi", "江西", "Nanchang", 28.68, 115.86, "east"),
    Province("Shandong", "山东", "Jinan", 36.65, 117.12, "east"),
    Province("Henan", "河南", "Zhengzhou", 34.75, 113.62, "central"),
    Province("Hubei", "湖北", "Wuhan", 30.59, 114.31, "central"),
    Province("Hunan", "湖南", "Changsha", 28.23, 112.94, "central"),
    Province("Guangdong", "广东", "Guangzhou", 23.13, 113.26, "south"),
    Province("Guangxi", "广西", "Nanning", 22.82, 108.37, "south"),
    Province("Hainan", "海南", "Haikou", 20.04, 110.20, "south"),
    Province("Chongqing", "重庆", "Chongqing", 29.56, 106.55, "southwest"),
    Province("Sichuan", "四川", "Chengdu", 30.57, 104.07, "southwest"),
    Province("Guizhou", "贵州", "Guiyang", 26.65, 106.63, "southwest"),
    Province("Yunnan", "云南", "Kunming", 25.04, 102.71, "southwest"),
    Province("Tibet", "西藏", "Lhasa", 29.65, 91.14, "southwest", remote=True),
    Province("Shaanxi", "陕西", "Xi'an", 34.34, 108.94, "northwest"),
    Province("Gansu", "甘肃", "Lanzhou", 36.06, 103.83, "northwest"),
    Province("Qinghai", "青海", "Xining", 36.62, 101.78, "northwest", remote=True),
    Province("Ningxia", "宁夏", "Yinchuan", 38.49, 106.23, "northwest"),
    Province("Xinjiang", "新疆", "Urumqi", 43.83, 87.62, "northwest", remote=True),
)

# (English, Chinese, province, lat, lon): capitals above are cities too
MAJOR_CITIES: tuple[tuple[str, str, str, float, float], ...] = (
    ("Suzhou", "苏州", "Jiangsu", 31.30, 120.62),
    ("Wuxi", "无锡", "Jiangsu", 31.49, 120.31),
    ("Ningbo", "宁波", "Zhejiang", 29.87, 121.54),
    ("Wenzhou", "温州", "Zhejiang", 28.00, 120.67),
    ("Shenzhen", "深圳", "Guangdong", 22.54, 114.06),
    ("Dongguan", "东莞", "Guangdong", 23.02, 113.75),
    ("Foshan", "佛山", "Guangdong", 23.02, 113.12),
    ("Qingdao", "青岛", "Shandong", 36.07, 120.38),
    ("Xiamen", "厦门", "Fujian", 24.48, 118.09),
    ("Dalian", "大连", "Liaoning", 38.91, 121.60),
    ("Kashgar", "喀什", "Xinjiang", 39.47, 75.99),
    ("Sanya", "三亚", "Hainan", 18.25, 109.51),
    ("Luoyang", "洛阳", "Henan", 34.62, 112.45),
    ("Yichang", "宜昌", "Hubei", 30.69, 111.29),
    ("Mianyang", "绵阳", "Sichuan", 31.47, 104.68),
)

_CAPITAL_CHINESE = {
    "Beijing": "北京",
    "Tianjin": "天津",
    "Shijiazhuang": "石家庄",
    "Taiyuan": "太原",
    "Hohhot": "呼和浩特",
    "Shenyang": "沈阳",
    "Changchun": "长春",
    "Harbin": "哈尔滨",
    "Shanghai": "上海",
    "Nanjing": "南京",
    "Hangzhou": "杭州",
    "Hefei": "合肥",
    "Fuzhou": "福州",
    "Nanchang": "南昌",
    "Jinan": "济南",
    "Zhengzhou": "郑州",
    "Wuhan": "武汉",
    "Changsha": "长沙",
    "Guangzhou": "广州",
    "Nanning": "南宁",
    "Haikou": "海口",
    "Chongqing": "重庆",
    "Chengdu": "成都",
    "Guiyang": "贵阳",
    "Kunming": "昆明",
    "Lhasa": "拉萨",
    "Xi'an": "西安",
    "Lanzhou": "兰州",
    "Xining": "西宁",
    "Yinchuan": "银川",
    "Urumqi": "乌鲁木齐",
}

BY_NAME = {p.name: p for p in PROVINCES}
_SUFFIXES = re.compile(
    r"(维吾尔自治区|壮族自治区|回族自治区|特别行政区|自治区|省|市"
    r"|province|city|municipality|autonomous region)$"
)


def _key(text: str) -> str:
    cleaned = text.strip().lower().replace("’", "'")
    previous = None
    while previous != cleaned:
        previous = cleaned
        cleaned = _SUFFIXES.sub("", cleaned).strip()
    return re.sub(r"[\s\-_]", "", cleaned)


_PROVINCE_KEYS: dict[str, str] = {}
for _p in PROVINCES:
    for _alias in (_p.name, _p.chinese):
        _PROVINCE_KEYS[_key(_alias)] = _p.name
_PROVINCE_KEYS[_key("Xizang")] = "Tibet"
_PROVINCE_KEYS[_key("Nei Mongol")] = "Inner Mongolia"

_CITIES: dict[tuple[str, str], Place] = {}
for _p in PROVINCES:
    _place = Place(_p.name, _p.capital, _p.lat, _p.lon)
    _CITIES[(_p.name, _key(_p.capital))] = _place
    _CITIES[(_p.name, _key(_CAPITAL_CHINESE[_p.capital]))] = _place
for _english, _chinese, _province, _lat, _lon in MAJOR_CITIES:
    _CITIES[(_province, _key(_english))] = Place(_province, _english, _lat, _lon)
    _CITIES[(_province, _key(_chinese))] = Place(_province, _english, _lat, _lon)


_ABROAD_KEYS = {_key(alias): a.code for a in ABROAD for alias in (a.name, a.chinese)}
_ABROAD_KEYS[_key("Macau")] = "MO"


def is_region_code(text: str) -> bool:
    """A country code as coverage and rates name a destination outside mainland China."""
    return bool(_COUNTRY_CODE.match(text)) and text != MAINLAND


def normalise(province: str, city: str, field: str = "address", country: str = MAINLAND) -> Place:
    """An address as the platform names it, by country: mainland provinces must be known; elsewhere
    the address keeps its own names (a city-state's missing or code-only province and city take the
    country's name) and coverage is by country code.

    A mainland city we do not know keeps its own name and sits at its province capital's coordinates.
    """
    country = country.strip().upper() or MAINLAND
    if not _COUNTRY_CODE.match(country):
        raise InvalidArgument(f"{field}.country_code", "must be an ISO 3166-1 alpha-2 code such as CN or SG")
    if country == MAINLAND and _key(province) in _ABROAD_KEYS:
        country = _ABROAD_KEYS[_key(province)]  # "香港" written as a province of CN
    if country != MAINLAND:
        return _abroad(province, city, country)
    name = _PROVINCE_KEYS.get(_key(province))
    if name is None:
        raise InvalidArgument(f"{field}.province", f"unknown province {province!r} in mainland China (CN)")
    region = BY_NAME[name]
    if region.capital == region.name and not city.strip():
        city = region.capital
    if not city.strip():
        raise InvalidArgument(f"{field}.city", "is required")
    known = _CITIES.get((name, _key(city)))
    if known is not None:
        return known
    return Place(name, city.strip(), region.lat, region.lon)


def _abroad(province: str, city: str, country: str) -> Place:
    known = ABROAD_BY_CODE.get(country)
    fallback = known.name if known else country

    def own(text: str) -> str:
        text = text.strip()
        return "" if text.upper() == country or _key(text) == _key(fallback) else text

    province_name = own(province) or fallback
    city_name = own(city) or province_name
    lat, lon = (known.lat, known.lon) if known else (0.0, 0.0)
    return Place(province_name, city_name, lat, lon, country)


def distance_km(a_lat: float, a_lon: float, b_lat: float, b_lon: float) -> float:
    """Great-circle distance."""
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    dp, dl = p2 - p1, math.radians(b_lon - a_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))
