"""The inputs of a site optimisation: demand weights, sites, walking times, costs and capacities.

A :class:`Problem` is everything the models need, in arrays that follow the
demand and site ids: people per group and the priority weight of every demand
point, every site (existing facilities and candidates) with its kind, cost and
capacity, the sparse demand x site walking times, and one :class:`KindSpec` per
kind of facility to plan (its threshold, count, budget, capacity, target).
It is built from a :class:`~geoplan.region.Region` by :func:`build_problem` or
from plain frames by :meth:`Problem.from_matrix` (tests, other data).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

if TYPE_CHECKING:
    import geopandas as gpd

from geoplan.demand import population_columns
from geoplan.errors import InputError
from geoplan.optimize.options import KINDS, KindSpec
from geoplan.reach import ReachMatrix
from geoplan.tiers import ATTRIBUTES, SERVED_BY

log = logging.getLogger(__name__)

#: Default priority weights, per person of each group, added up: a person aged
#: 60-79 weighs 1 and a person aged 80+ weighs 2 (they are in ``pop_60`` and in
#: ``pop_80``), so the very old count double, as the plans ask ("80+ first").
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({"pop_60": 1.0, "pop_80": 1.0})

@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """Demand, sites and walking times for a site optimisation.

    Attributes
    ----------
    people
        People per group (``pop_*`` columns), indexed by ``demand_id``.
    weight
        Priority weight of each demand point (:func:`priority_weights`).
    sites
        Every site, existing and candidate, indexed by ``site_id``, with
        ``kind``, ``status`` (``existing``/``candidate``), ``cost`` and
        ``capacity`` (NaN: the kind's default), and the facility attributes
        and unit codes of :data:`geoplan.tiers.ATTRIBUTES` the table carries.
    eligible
        For each planned kind, which sites may take a new facility of it.
    reach
        The labelled walking times demand x site (:class:`~geoplan.reach.ReachMatrix`,
        rows following ``people``, columns following ``sites``): every
        "within the threshold" and "nearest site" of the models asks it.
    specs
        One :class:`KindSpec` per planned kind.
    weights
        The group weights that made ``weight``.
    """

    people: pd.DataFrame
    weight: np.ndarray
    sites: pd.DataFrame
    eligible: Mapping[str, np.ndarray]
    reach: ReachMatrix
    specs: tuple[KindSpec, ...]
    weights: Mapping[str, float]

    @property
    def n_demand(self) -> int:
        return self.reach.shape[0]

    @property
    def n_sites(self) -> int:
        return self.reach.shape[1]

    @property
    def cutoff_s(self) -> float:
        return self.reach.cutoff_s

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.specs)

    def spec(self, kind: str) -> KindSpec:
        return next(s for s in self.specs if s.kind == kind)

    def with_specs(self, specs: Sequence[KindSpec]) -> "Problem":
        """The same demand, sites and walks with other kinds to plan."""
        specs = tuple(specs)
        _check_specs(specs, self.people, self.reach)
        return dataclasses.replace(self, specs=specs)

    def existing_for(self, kind: str) -> np.ndarray:
        """Positions of the existing sites that serve ``kind`` (see :data:`SERVED_BY`)."""
        sites = self.sites
        mask = (sites["status"].to_numpy() == "existing") & np.isin(sites["kind"].to_numpy(), SERVED_BY[kind])
        return np.flatnonzero(mask)

    def own_existing(self, kind: str) -> np.ndarray:
        """Positions of the existing sites of exactly ``kind`` (the ones consolidation may close)."""
        sites = self.sites
        return np.flatnonzero((sites["status"].to_numpy() == "existing") & (sites["kind"].to_numpy() == kind))

    def candidates_for(self, kind: str) -> np.ndarray:
        """Positions of the candidate sites that may take a new ``kind``."""
        return np.flatnonzero(self.eligible[kind])

    def capacity_of(self, kind: str, positions: np.ndarray) -> np.ndarray:
        """Capacity of the sites at ``positions`` for ``kind``: their own, else the kind's default."""
        spec = self.spec(kind)
        own = self.sites["capacity"].to_numpy(dtype=float)[positions]
        return np.where(np.isnan(own), float(spec.capacity) if spec.capacity is not None else np.inf, own)

    def capacity_demand(self, kind: str) -> np.ndarray:
        """Each demand point's need in capacity units for ``kind``."""
        spec = self.spec(kind)
        return self.people[spec.capacity_group].to_numpy(dtype=float) * float(spec.use_rate)

    @classmethod
    def from_matrix(
        cls,
        times_s,
        people: pd.DataFrame,
        sites: pd.DataFrame,
        *,
        specs: Sequence[KindSpec] | KindSpec = KindSpec(),
        weights: Mapping[str, float] = DEFAULT_WEIGHTS,
        cutoff_s: float | None = None,
        eligible: Mapping[str, np.ndarray] | None = None,
    ) -> "Problem":
        """A problem from a walking-time matrix and plain frames.

        Parameters
        ----------
        times_s
            Demand x site walking times in seconds: a sparse matrix (a stored
            entry is reachable) or a dense array (``inf`` or NaN: not reachable).
        people
            People per group, one row per matrix row, indexed by ``demand_id``.
        sites
            One row per matrix column, indexed by ``site_id``: ``status``
            (``existing`` or ``candidate``), optional ``kind`` (default
            ``station``), ``cost`` (default 1) and ``capacity`` (default NaN).
        specs
            The kinds to plan.
        eligible
            For each kind, a boolean array over sites: may take a new one.
            Default: every candidate may take every planned kind.
        """
        specs = (specs,) if isinstance(specs, KindSpec) else tuple(specs)
        sites = _normalise_sites(sites)
        if isinstance(times_s, ReachMatrix):
            reach = times_s.for_demand(pd.Index(people.index))
            if not reach.site_ids.equals(pd.Index(sites.index)):
                raise InputError("The reach matrix's sites do not follow the site table; select them in its order (reach.select(ids)).")
        else:
            times = _as_csr(times_s)
            if times.shape != (len(people), len(sites)):
                raise InputError(
                    f"The walking-time matrix is {times.shape[0]} x {times.shape[1]} but there are "
                    f"{len(people)} demand points and {len(sites)} sites."
                )
            if cutoff_s is None:  # the matrix is taken as complete: every walk up to the longest one asked about
                cutoff_s = max([float(times.data.max()) if times.nnz else 0.0, *(s.threshold_s for s in specs)])
            reach = ReachMatrix(times.tocsc(), pd.Index(people.index), pd.Index(sites.index), float(cutoff_s))
        _check_specs(specs, people, reach)
        weight = priority_weights(people, weights).to_numpy(dtype=float)
        candidate = sites["status"].to_numpy() == "candidate"
        if eligible is None:
            eligible = {s.kind: candidate.copy() for s in specs}
        else:
            eligible = {k: np.asarray(eligible[k], dtype=bool) & candidate for k in (s.kind for s in specs)}
        return cls(
            people=people[population_columns(people)].astype(float),
            weight=weight,
            sites=sites,
            eligible=MappingProxyType(dict(eligible)),
            reach=reach,
            specs=specs,
            weights=MappingProxyType(dict(weights)),
        )


def priority_weights(demand: pd.DataFrame, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> pd.Series:
    """The priority weight of every demand point: people per group times the group's weight, added up.

    Groups overlap (an 80+ person is in ``pop_60``, ``pop_65`` and ``pop_80``),
    so the weights add up: with the default ``{"pop_60": 1.0, "pop_80": 1.0}`` a
    person aged 60-79 weighs 1 and a person aged 80+ weighs 2. Extra columns of
    the demand (``pop_disabled``, ``pop_alone``...) can be weighted the same way.

    >>> import pandas as pd
    >>> demand = pd.DataFrame({"pop_60": [10.0, 4.0], "pop_80": [2.0, 0.0]})
    >>> priority_weights(demand).tolist()
    [12.0, 4.0]
    """
    if not weights:
        raise InputError("weights is empty; give at least one group, e.g. {'pop_60': 1.0}.")
    known = population_columns(demand)
    unknown = [g for g in weights if g not in known]
    if unknown:
        raise InputError(
            f"Unknown population group(s) {unknown} in weights; the demand has {known}. "
            "Extra groups (e.g. pop_disabled, pop_alone) must be columns of the demand data."
        )
    bad = {g: w for g, w in weights.items() if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0)}
    if bad:
        raise InputError(f"Group weights must be finite numbers >= 0; got {bad}.")
    total = np.zeros(len(demand))
    for group, w in weights.items():
        total += float(w) * demand[group].to_numpy(dtype=float)
    return pd.Series(total, index=demand.index, name="weight")


def _as_csr(times_s) -> sparse.csr_matrix:
    if sparse.issparse(times_s):
        times = sparse.csr_matrix(times_s, dtype=float, copy=True)
    else:
        dense = np.asarray(times_s, dtype=float)
        reachable = np.isfinite(dense)
        rows, cols = np.nonzero(reachable)
        times = sparse.csr_matrix((dense[rows, cols], (rows, cols)), shape=dense.shape)
    times.sum_duplicates()
    times.sort_indices()
    if times.nnz and (times.data < 0).any():
        raise InputError("Walking times must be >= 0 seconds.")
    return times


def _normalise_sites(sites: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(index=pd.Index(sites.index, name="site_id"))
    if frame.index.has_duplicates:
        dup = sorted(map(str, frame.index[frame.index.duplicated()].unique()))[:10]
        raise InputError(f"Site ids repeat: {dup}. Every existing facility and candidate needs its own site_id.")
    if "status" not in sites:
        raise InputError("The site table needs a 'status' column ('existing' or 'candidate').")
    status = sites["status"].astype(str).to_numpy()
    odd = sorted(set(status) - {"existing", "candidate"})
    if odd:
        raise InputError(f"Unknown site status {odd}; use 'existing' or 'candidate'.")
    frame["status"] = status
    frame["kind"] = sites["kind"].astype(str).to_numpy() if "kind" in sites else "station"
    odd = sorted(set(frame["kind"]) - set(KINDS))
    if odd:
        raise InputError(f"Unknown facility kind {odd}; use one of {', '.join(KINDS)}.")
    for column, default in (("cost", 1.0), ("capacity", np.nan)):
        values = pd.to_numeric(sites[column], errors="coerce").to_numpy(dtype=float) if column in sites else np.full(len(sites), default)
        if column == "cost":
            values = np.where(np.isnan(values), default, values)
        bad = values < 0
        if bad.any():
            listed = ", ".join(f"{i} ({v:g})" for i, v in zip(frame.index[bad][:10], values[bad][:10]))
            raise InputError(f"Site {column} must be >= 0; negative for {listed}.")
        frame[column] = values
    for column in ("name", "geometry", "unit_id", *ATTRIBUTES):  # facility attributes and unit codes travel with the sites
        if column in sites:
            frame[column] = sites[column].to_numpy()
    return frame


def _check_specs(specs: tuple[KindSpec, ...], people: pd.DataFrame, reach: ReachMatrix | None) -> None:
    """The kinds are KindSpecs, each once, with known groups and (given ``reach``) a walk it holds."""
    if not specs:
        raise InputError("Nothing to plan: give at least one kind (KindSpec).")
    kinds = [s.kind for s in specs]
    if len(set(kinds)) != len(kinds):
        raise InputError(f"Each kind can be planned once; got {kinds}.")
    known = population_columns(people)
    for spec in specs:
        if not isinstance(spec, KindSpec):
            raise InputError(f"Kinds must be KindSpec objects, got {type(spec).__name__}.")
        for name, group in (("target_group", spec.target_group), ("capacity_group", spec.capacity_group)):
            if group not in known:
                raise InputError(f"Unknown population group {group!r} for {name}; the demand has {known}.")
        if reach is not None:
            reach.check_threshold(spec.threshold_s)


@dataclasses.dataclass(frozen=True)
class PlanningSites:
    """Every site a plan can use, in the order walking times must follow: existing facilities, then candidates.

    ``eligible`` names, per planned kind, the candidate ids that may take it.
    """

    sites: "gpd.GeoDataFrame"
    eligible: Mapping[str, pd.Index]


def planning_sites(region, kinds: Sequence[str] = ("station",), *, candidates=None, facilities=None, costs=None) -> PlanningSites:
    """The sites of a plan for ``region``: its (or the given) facilities, then candidates, with costs applied.

    ``candidates`` is one frame shared by every kind or a mapping kind ->
    frame; ``costs`` a cost per site id replacing the sites' ``cost`` column.
    """
    import geopandas as gpd

    facilities = region.facilities if facilities is None else facilities.to_crs(region.crs)
    if candidates is None:
        candidates = region.candidates
    if isinstance(candidates, Mapping):
        frames = {k: c.to_crs(region.crs) for k, c in candidates.items()}
        unknown = sorted(set(frames) - set(kinds))
        if unknown:
            raise InputError(f"Candidates were given for {unknown}, which are not being planned ({list(kinds)}).")
        merged = pd.concat(list(frames.values())) if frames else region.candidates.iloc[:0]
        cand = merged[~merged.index.duplicated()]
        eligible = {k: pd.Index(frames[k].index if k in frames else cand.index) for k in kinds}
    else:
        cand = candidates.to_crs(region.crs)
        eligible = {k: pd.Index(cand.index) for k in kinds}
    cand = cand.assign(status="candidate")
    clash = facilities.index.intersection(cand.index)
    if len(clash):
        raise InputError(
            f"Site ids {sorted(map(str, clash))[:10]} are both existing facilities and candidates; "
            "give candidates ids of their own."
        )
    carried = [a for a in ATTRIBUTES if a in facilities.columns or a in cand.columns]  # tier attributes, when given
    columns = ["name", "kind", "status", "cost", "capacity", *carried, "geometry"]
    sites = gpd.GeoDataFrame(
        pd.concat([_site_columns(facilities.assign(status="existing"), columns), _site_columns(cand, columns)]),
        geometry="geometry",
        crs=region.crs,
    )
    sites.index.name = "site_id"
    if costs is not None:
        costs = pd.Series(costs, dtype=float)
        missing = costs.index.difference(sites.index)
        if len(missing):
            raise InputError(f"costs name sites that do not exist: {sorted(map(str, missing))[:10]}.")
        if (costs < 0).any() or costs.isna().any():
            raise InputError("costs must be numbers >= 0.")
        sites.loc[costs.index, "cost"] = costs.to_numpy()
    return PlanningSites(sites=sites, eligible=MappingProxyType(eligible))


def build_problem(
    region,
    *,
    specs: Sequence[KindSpec],
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    candidates=None,
    facilities=None,
    costs: pd.Series | Mapping | None = None,
    reach: ReachMatrix | None = None,
    cutoff_min: float | None = None,
) -> Problem:
    """A :class:`Problem` for ``region``: its demand, its facilities and candidates, walking times.

    Parameters
    ----------
    region
        A :class:`~geoplan.region.Region`.
    specs
        The kinds to plan.
    candidates, facilities, costs
        See :func:`planning_sites` (default: the region's own).
    reach
        A precomputed :class:`~geoplan.reach.ReachMatrix` from the sites of
        :func:`planning_sites` (facilities first, then candidates) to the
        region's demand, with a cutoff at least the largest threshold. By
        default it is computed.
    cutoff_min
        How far to compute walking times (default: the largest threshold).
    """
    specs = tuple(specs)
    # check the cheap things before the walking times are computed
    demand = region.demand
    people = demand[population_columns(demand)]
    priority_weights(demand, weights)
    planned = planning_sites(region, [s.kind for s in specs], candidates=candidates, facilities=facilities, costs=costs)
    sites = planned.sites
    if cutoff_min is None:
        cutoff_min = max(s.threshold_min for s in specs)
    if reach is None:
        _check_specs(specs, people, None)  # before the walking times are computed (as far as the thresholds)
        reach = region.reach(sites, cutoff_min=cutoff_min)
    elif not reach.site_ids.equals(pd.Index(sites.index)):
        raise InputError("The given reach matrix does not follow the sites (existing facilities, then candidates: geoplan.optimize.planning_sites).")
    status = sites["status"].to_numpy()
    eligible = {k: sites.index.isin(ids) & (status == "candidate") for k, ids in planned.eligible.items()}
    return Problem.from_matrix(reach.for_demand(people.index), people, sites, specs=specs, weights=weights, eligible=eligible)


def _site_columns(frame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        if column in frame:
            out[column] = frame[column].to_numpy() if column != "geometry" else frame.geometry.to_numpy()
        elif column == "kind":
            out[column] = "station"
        elif column == "cost":
            out[column] = 1.0
        elif column == "name":
            out[column] = frame.index.astype(str)
        else:
            out[column] = np.nan
    return out
