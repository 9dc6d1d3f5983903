"""geoplan: plan elderly-care facilities for Chinese cities.

15-minute care circles (15分钟养老服务圈), coverage in people, gaps, and the
sites for community care stations and elderly canteens, from a real street
network and a real population grid.

The examples in geoplan's docstrings use ``wuchang``, the shipped default
region: ``wuchang = geoplan.load_region("wuchang")`` (Wuchang district, Wuhan;
231,028 people aged 60+). No list of its existing facilities is shipped, so
its coverage counts a station at each of its 124 candidate sites, the most a
one-per-community plan can reach (``with_circles=False`` skips drawing the
care-circle polygons):

    >>> import geoplan
    >>> report = geoplan.analyse_coverage(wuchang, with_circles=False)
    >>> report.site_source, len(report.sites)
    ('candidates', 124)
    >>> row = report.summary.loc[("pop_60", 15)]
    >>> f"{row['covered']:,.0f} of {row['population']:,.0f} ({row['covered_pct']:.1f} %)"
    '172,783 of 231,028 (74.8 %)'
"""

from geoplan.analysis import CoverageReport, analyse_coverage
from geoplan.config import RegionConfig, available_regions, load_config
from geoplan.coords import from_wgs84, to_wgs84
from geoplan.coverage import by_unit, catchments, coverage_summary, gaps
from geoplan.demand import load_demand
from geoplan.errors import ConfigError, CRSMismatchError, EmptyDataError, GeoplanError, InfeasibleError, InputError
from geoplan.isochrones import care_circles
from geoplan.network import WalkNetwork, load_network
from geoplan.reach import ReachMatrix, Router, travel_times
from geoplan.region import Region, load_region
from geoplan.sites import candidates_from_communities, candidates_from_network, load_facilities
from geoplan import targets  # callable: geoplan.targets(region, preset) is geoplan.targets.targets (see its docstring)

__version__ = "0.1.0"

__all__ = [
    "CRSMismatchError",
    "ConfigError",
    "CoverageReport",
    "EmptyDataError",
    "GeoplanError",
    "InfeasibleError",
    "InputError",
    "ReachMatrix",
    "Region",
    "RegionConfig",
    "Router",
    "WalkNetwork",
    "analyse_coverage",
    "available_regions",
    "by_unit",
    "candidates_from_communities",
    "candidates_from_network",
    "care_circles",
    "catchments",
    "coverage_summary",
    "from_wgs84",
    "gaps",
    "load_config",
    "load_demand",
    "load_facilities",
    "load_network",
    "load_region",
    "targets",
    "to_wgs84",
    "travel_times",
]
