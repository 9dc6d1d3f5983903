"""Plan targets: review a district against a plan's figures, per street (or zone), community and tier.

:func:`targets` reviews a region's facilities against a targets file (a
shipped preset such as ``shuimogou``, or a planner's own TOML): which streets
and communities pass which target, the district's figures against the plan's,
with the plan, section and clause each target comes from, and which
under-used facilities could merge without anyone losing coverage. The
:class:`~geoplan.targets.review.Review` it returns writes an XLSX workbook,
GeoJSON and a GeoPackage; :func:`geoplan.targets.review_map.review_map` draws
the passing and failing units over the street network, offline.

Modules: :mod:`~geoplan.targets.presets` (targets files),
:mod:`~geoplan.targets.indicators` (the figures),
:mod:`~geoplan.targets.consolidation` (under-used facilities),
:mod:`~geoplan.targets.review` (the result and its files),
:mod:`~geoplan.targets.review_map` (the map, imports folium),
:mod:`~geoplan.targets.to_pass` (the least-cost plan that passes).
"""

import sys
import types

from geoplan.targets.build import targets
from geoplan.targets.consolidation import ConsolidationOptions
from geoplan.targets.presets import INDICATORS, Target, TargetSet, available_presets, load_targets, loads_targets
from geoplan.targets.review import Review

__all__ = [
    "INDICATORS", "ConsolidationOptions", "Review", "Target", "TargetSet", "available_presets", "load_targets", "loads_targets", "targets",
]


class _CallablePackage(types.ModuleType):
    """``geoplan.targets(...)`` calls :func:`targets`, and ``geoplan.targets.review`` is still the module.

    The package and its main function share a name; making the package callable
    keeps both ``geoplan.targets(region, "shuimogou")`` and ``import
    geoplan.targets.review_map`` working (a function bound to the name would hide
    the subpackage's modules).
    """

    def __call__(self, *args, **kwargs):
        return targets(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
