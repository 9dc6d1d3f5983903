"""The tiers of the elderly-care network, as facility kinds: one place that names them.

"One centre, many stations" (一中心多站点): a district centre (区级养老服务指导中心),
street/town comprehensive centres (街道/乡镇综合养老服务中心), community day-care
stations (社区日间照料站/养老服务站), elderly canteens and meal points
(老年食堂/助餐点), and nursing homes (养老院/敬老院) with beds.

Each facility carries one ``kind``; what an existing facility of one kind also
serves is :data:`SERVED_BY` (a comprehensive centre has day-care places and a
canteen, so it covers for stations and canteens too).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Every facility kind, lowest tier first.
KINDS: tuple[str, ...] = ("station", "canteen", "centre", "district_centre", "home")

#: Chinese and English names of each kind, for tables, sheets and maps.
KIND_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "station": ("社区养老服务站", "community care station"),
    "canteen": ("老年食堂/助餐点", "elderly canteen / meal point"),
    "centre": ("街道(乡镇)综合养老服务中心", "street/town comprehensive centre"),
    "district_centre": ("区级养老服务中心", "district centre"),
    "home": ("养老机构", "nursing home"),
})

#: Which existing facility kinds already serve each planned kind.
SERVED_BY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "station": ("station", "centre", "district_centre"),
    "canteen": ("canteen", "centre", "district_centre"),
    "centre": ("centre", "district_centre"),
    "district_centre": ("district_centre",),
    "home": ("home",),
})

#: Facility attributes a list may carry (missing ones are reported, never guessed).
ATTRIBUTES: Mapping[str, str] = MappingProxyType({
    "floor_area_m2": "建筑面积(平方米) floor area, m²",
    "land_m2": "用地面积(平方米) land, m²",
    "beds": "床位 beds",
    "nursing_beds": "护理型床位 nursing-type beds",
    "meals_per_day": "日供餐能力(份) meals per day",
    "street_code": "街道(乡镇)代码 street/town code",
    "community_code": "社区(村)代码 community/village code",
})


def kind_zh(kind: str) -> str:
    """The Chinese name of ``kind`` (the kind itself when unknown)."""
    return KIND_NAMES.get(kind, (kind, kind))[0]
