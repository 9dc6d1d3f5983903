"""Batch runs over many regions: every district of a city under a grid of scenarios and thresholds, on Dask.

The regions come from a template config (:func:`district_regions`: Wuhan's 13
districts from ``wuchang.toml``, no TOML file per district) or from configs
(:func:`configured_region`). Each is cut to the part its street network
covers, and the part left out is reported in area and older people
(:func:`clip_to_network`); a district the network does not reach is skipped
with the reason. :func:`run_batch` runs one task per region and scenario on a
Dask cluster (local worker processes, or a scheduler's), resumes finished
work from markers written after each task's files, and writes partitioned
GeoParquet layers, a summary table and one review workbook across regions.
A rerun writes the same bytes; timings go to a separate run log.

Modules: :mod:`~geoplan.batch.regions` (regions and the clip),
:mod:`~geoplan.batch.task` (one task on a worker, its files and marker),
:mod:`~geoplan.batch.runner` (the cluster, resume, the run log),
:mod:`~geoplan.batch.collect` (the files across regions).

Two districts of Wuhan, coverage within 10 and 15 minutes by the existing
facilities (a station at every candidate site where none are known), on two
local workers::

    from geoplan.batch import district_regions, run_batch
    regions = district_regions("wuchang", ["jiangan", "qingshan"], directory="out/batch/regions")
    result = run_batch(regions, ["existing", "recommend p=5"], out_dir="out/batch", thresholds_min=(10, 15), workers=2)
    result.files["summary_csv"]
"""

from geoplan.batch.regions import (
    MIN_NETWORK_SHARE, BatchRegion, ExtentSummary, NoNetworkCoverage, clip_to_network, configured_region, district_regions,
    extent_layer,
)
from geoplan.batch.runner import BatchResult, check_batch_folder, run_batch
from geoplan.batch.task import BatchSettings, BatchTask, ScenarioSpec, TaskOutcome, run_task

__all__ = [
    "MIN_NETWORK_SHARE", "BatchRegion", "BatchResult", "BatchSettings", "BatchTask", "ExtentSummary", "NoNetworkCoverage",
    "ScenarioSpec", "TaskOutcome", "check_batch_folder", "clip_to_network", "configured_region", "district_regions", "extent_layer", "run_batch",
    "run_task",
]
