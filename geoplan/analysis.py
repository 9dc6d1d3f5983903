"""The coverage analysis of a region: one call from a prepared region to every figure and layer."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd

from geoplan import _files
from geoplan.errors import InputError
from geoplan.coverage import by_unit, catchments, coverage_summary, gaps, nearest_time_s
from geoplan.isochrones import care_circles
from geoplan.reach import ReachMatrix
from geoplan.region import Region
from geoplan.tiers import SERVED_BY

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CoverageReport:
    """Who lives within a walk of ``sites`` in ``region``, in people, with the layers to map it.

    Attributes
    ----------
    sites
        The sites analysed, with each site's people within the largest
        threshold per group (``within_<threshold>_<group>`` columns).
    summary
        :func:`geoplan.coverage.coverage_summary`: covered people per group and threshold.
    units
        Coverage per community unit (None when the region has none).
    gaps
        Cells whose older people live beyond the largest threshold.
    circles
        Care-circle polygons per site and threshold (None when not asked for).
    site_source
        ``"facilities"`` (existing) or ``"candidates"`` (every candidate site open).
    """

    region: Region
    sites: gpd.GeoDataFrame
    reach: ReachMatrix
    summary: pd.DataFrame
    nearest_time_s: pd.Series
    units: pd.DataFrame | None
    gaps: gpd.GeoDataFrame
    circles: gpd.GeoDataFrame | None
    site_source: str

    @property
    def threshold_min(self) -> float:
        return max(self.summary.index.get_level_values("threshold_min"))

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the layers (GeoJSON in WGS84 and one GeoPackage) and the tables (CSV, JSON).

        Every file is written beside its final name and renamed into place, so a
        failure leaves no half-written file.
        """
        out_dir = Path(out_dir)
        stem = self.region.key
        written: dict[str, Path] = {}
        layers = {"sites": self.sites, "gaps": self.gaps, "boundary": self.region.boundary}
        if self.circles is not None:
            layers["care_circles"] = self.circles
        if self.units is not None and self.region.communities is not None:
            layers["units"] = gpd.GeoDataFrame(
                self.units.join(self.region.communities[["geometry"]], how="left"),
                geometry="geometry", crs=self.region.crs,
            )
        gpkg = out_dir / f"{stem}_coverage.gpkg"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NaN of Infinity value found")  # empty cells are written as null
            with _files.atomic_file(gpkg) as tmp:
                for name, layer in layers.items():
                    _plain(layer).to_file(tmp, layer=name, driver="GPKG")
            written["gpkg"] = gpkg
            for name, layer in layers.items():
                path = out_dir / f"{stem}_{name}.geojson"
                with _files.atomic_file(path) as tmp:
                    _plain(layer).to_crs(4326).to_file(tmp, driver="GeoJSON")
                written[name] = path
        summary_csv = out_dir / f"{stem}_coverage_summary.csv"
        with _files.atomic_file(summary_csv) as tmp:
            self.summary.to_csv(tmp, encoding="utf-8-sig")
        written["summary"] = summary_csv
        summary_json = out_dir / f"{stem}_coverage_summary.json"
        with _files.atomic_file(summary_json) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        written["summary_json"] = summary_json
        return written

    def to_dict(self) -> dict:
        """The summary as plain data (for JSON and the API)."""
        rows = self.summary.reset_index().to_dict(orient="records")
        return {
            "region": self.region.key,
            "site_source": self.site_source,
            "sites": int(len(self.sites)),
            "coverage": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        }


def analyse_coverage(
    region: Region,
    sites: gpd.GeoDataFrame | None = None,
    *,
    thresholds_min: tuple[float, ...] | None = None,
    gap_group: str = "pop_60",
    with_circles: bool = True,
    serving: str | None = None,
) -> CoverageReport:
    """Coverage of ``region`` by ``sites`` (default: its existing facilities, else every candidate site).

    A region with no known facilities is analysed as if a station stood at
    every candidate site: the most a one-per-community plan could reach. The
    report says which it is. ``serving`` (a kind, e.g. ``"station"``) counts
    only the sites that serve it (:data:`geoplan.tiers.SERVED_BY`: stations and
    the centres for day care, as the targets review counts them); ``None``
    counts every site, of whatever kind.
    """
    thresholds = tuple(thresholds_min or region.thresholds_min)
    if sites is None:
        source = "facilities" if len(region.facilities) else "candidates"
        sites = region.facilities if source == "facilities" else region.candidates
    else:
        source = "given"
    sites = sites_serving(sites, serving)
    sites = sites.to_crs(region.crs)
    reach = region.reach(sites, cutoff_min=max(thresholds))
    demand = region.demand
    summary = coverage_summary(demand, reach, thresholds_min=thresholds)
    top = max(thresholds)
    per_site = catchments(demand, reach, threshold_min=top)
    sites = sites.join(per_site.add_prefix(f"within_{top:g}min_"))
    units = None
    if "unit_id" in demand and region.communities is not None:
        units = by_unit(demand, reach, threshold_min=top, sites=sites, communities=region.communities)
    gap_cells = gaps(demand, reach, threshold_min=top, group=gap_group if gap_group in demand else region.groups[0])
    circles = None
    if with_circles and len(sites):  # drawn from the same walking times as the counts: the people inside are the covered
        circles = care_circles(region.network, sites, demand=demand, reach=reach, thresholds_min=thresholds,
                               max_access_m=region.config.analysis.max_access_m)
    return CoverageReport(
        region=region,
        sites=sites,
        reach=reach,
        summary=summary,
        nearest_time_s=nearest_time_s(reach, demand),
        units=units,
        gaps=gap_cells,
        circles=circles,
        site_source=source,
    )


def sites_serving(sites: gpd.GeoDataFrame, kind: str | None) -> gpd.GeoDataFrame:
    """The sites whose kind serves ``kind`` (all of them for ``None``); an ``InputError`` when none does."""
    if kind is None:
        return sites
    if kind not in SERVED_BY:
        raise InputError(f"Unknown facility kind {kind!r}; use one of {', '.join(SERVED_BY)}.")
    kinds = sites["kind"] if "kind" in sites else pd.Series("station", index=sites.index)
    kept = sites[kinds.isin(SERVED_BY[kind]).to_numpy()]
    if len(sites) and kept.empty:
        found = ", ".join(f"{k} {n}" for k, n in kinds.value_counts().items())
        raise InputError(
            f"None of the {len(sites)} sites serves {kind} care (they are {found}; {kind} care is given by "
            f"{', '.join(SERVED_BY[kind])}). Count another kind, or every site."
        )
    return kept


def _plain(layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy with one geometry column and no index levels, as GDAL drivers want."""
    extra = [c for c in layer.columns if c != layer.geometry.name and isinstance(layer[c].dtype, gpd.array.GeometryDtype)]
    plain = layer.drop(columns=extra).reset_index()
    numeric = plain.select_dtypes("number").columns
    plain[numeric] = plain[numeric].replace([float("inf"), float("-inf")], float("nan"))
    for column in plain.columns:
        if plain[column].dtype == object and column != plain.geometry.name:
            plain[column] = plain[column].astype(str)
    return plain
