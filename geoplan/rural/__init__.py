"""Outer and rural districts: towns and villages, a county-town-village canteen network by road, and merging remote homes.

* :mod:`~geoplan.rural.units` -- towns (乡镇), villages (村) and rural cells,
  from the user's layers and tables, else derived and labelled as derived;
* :mod:`~geoplan.rural.targets` -- rural targets files and the canteen
  network's rules (meal walk, delivery by e-bike, supply by car, costs);
* :mod:`~geoplan.rural.canteens` -- county central kitchen -> town canteen
  -> village meal point or delivery: which villages are served, by which
  mode, and the least-cost plan over the three tiers
  (:func:`geoplan.optimize.least_cost`);
* :mod:`~geoplan.rural.homes` -- ranking rural homes (敬老院) by residents,
  use and remoteness, and merges that never lose capacity;
* :mod:`~geoplan.rural.review` -- all of it as one review with its files and map.

Travel times come from :mod:`geoplan.modes` (walk, e-bike, car on the same
reach engine); how much of the district the street network covers, from
:mod:`geoplan.extent`.

>>> from geoplan.rural import available_rural_presets
>>> available_rural_presets()
['rural_canteens']
"""

from geoplan.rural.canteens import TIER_NAMES, CanteenFigures, CanteenPlan, ServiceModel, canteen_figures, canteen_plan
from geoplan.rural.homes import HomeMergeOptions, HomeMerges, check_capacity, merge_homes
from geoplan.rural.review import RuralReview, rural_map, rural_review
from geoplan.rural.targets import CanteenRules, RuralTargets, available_rural_presets, load_rural_targets
from geoplan.rural.units import RuralUnits, rural_units

__all__ = [
    "TIER_NAMES", "CanteenFigures", "CanteenPlan", "CanteenRules", "HomeMergeOptions", "HomeMerges", "RuralReview", "RuralTargets",
    "RuralUnits", "ServiceModel", "available_rural_presets", "canteen_figures", "canteen_plan", "check_capacity", "load_rural_targets",
    "merge_homes", "rural_map", "rural_review", "rural_units",
]
