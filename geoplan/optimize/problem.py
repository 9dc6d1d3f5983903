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

import numpy as np
import pandas as pd
from scipy import sparse

from geoplan.demand import population_columns
from geoplan.errors import InputError

log = logging.getLogger(__name__)

#: Default priority weights, per person of each group, added up: a person aged
#: 60-79 weighs 1 and a person aged 80+ weighs 2 (they are in ``pop_60`` and in
#: ``pop_80``), so the very old count double, as the plans ask ("80+ first").
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({"pop_60": 1.0, "pop_80": 1.0})

#: The kinds of facility that can be planned.
KINDS = ("station", "canteen", "centre")

#: Which existing facility kinds already serve each planned kind: a
#: comprehensive centre (综合养老服务中心) has day-care places and a canteen,
#: so it counts as covering for stations and for canteens.
SERVED_BY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"station": ("station", "centre"), "canteen": ("canteen", "centre"), "centre": ("centre",)}
)


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """What to plan for one kind of facility.

    Parameters
    ----------
    kind
        ``"station"`` (community care station 社区养老服务站), ``"canteen"``
        (elderly canteen 老年食堂/助餐点) or ``"centre"``.
    p
        At most this many new sites (MCLP, p-median; a cap in the target model).
    budget
        At most this total cost of new sites (same unit as the site costs).
    threshold_min
        The walk (minutes) within which a site serves a person: 15 for the
        15-minute care circle, often 10 for a canteen.
    capacity
        Capacitated models: how much one site serves, in ``capacity_group``
        people times ``use_rate`` (day-care places, meals per day). A site's
        own ``capacity`` (from its file) replaces it where given. ``None``:
        uncapacitated.
    capacity_group, use_rate
        What one unit of capacity serves: ``use_rate`` units per person of
        ``capacity_group`` (e.g. 0.3 meals per 60+ person per day).
    target_pct
        Target model: at least this percentage of ``target_group`` within the
        threshold after the plan.
    target_group
        The group the target counts (default ``pop_60``).
    min_catchment
        Consolidation: existing sites with fewer ``target_group`` people
        within the threshold than this may close.
    """

    kind: str = "station"
    p: int | None = None
    budget: float | None = None
    threshold_min: float = 15.0
    capacity: float | None = None
    capacity_group: str = "pop_60"
    use_rate: float = 1.0
    target_pct: float | None = None
    target_group: str = "pop_60"
    min_catchment: float | None = None

    @property
    def threshold_s(self) -> float:
        return float(self.threshold_min) * 60.0

    @property
    def capacitated(self) -> bool:
        return self.capacity is not None


@dataclasses.dataclass(frozen=True)
class Problem:
    """Demand, sites and walking times for a site optimisation, in arrays.

    Attributes
    ----------
    people
        People per group (``pop_*`` columns), indexed by ``demand_id``.
    weight
        Priority weight of each demand point (:func:`priority_weights`).
    sites
        Every site, existing and candidate, indexed by ``site_id``, with
        ``kind``, ``status`` (``existing``/``candidate``), ``cost`` and
        ``capacity`` (NaN: the kind's default).
    eligible
        For each planned kind, which sites may take a new facility of it.
    times_s
        Walking times demand x site (CSR, seconds), stored up to ``cutoff_s``.
    specs
        One :class:`KindSpec` per planned kind.
    weights
        The group weights that made ``weight``.
    """

    people: pd.DataFrame
    weight: np.ndarray
    sites: pd.DataFrame
    eligible: Mapping[str, np.ndarray]
    times_s: sparse.csr_matrix
    cutoff_s: float
    specs: tuple[KindSpec, ...]
    weights: Mapping[str, float]

    @property
    def n_demand(self) -> int:
        return self.times_s.shape[0]

    @property
    def n_sites(self) -> int:
        return self.times_s.shape[1]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(s.kind for s in self.specs)

    def spec(self, kind: str) -> KindSpec:
        return next(s for s in self.specs if s.kind == kind)

    def existing_for(self, kind: str) -> np.ndarray:
        """Positions of the existing sites that serve ``kind`` (see :data:`SERVED_BY`)."""
        sites = self.sites
        mask = (sites["status"].to_numpy() == "existing") & np.isin(sites["kind"].to_numpy(), SERVED_BY[kind])
        return np.flatnonzero(mask)

    def candidates_for(self, kind: str) -> np.ndarray:
        """Positions of the candidate sites that may take a new ``kind``."""
        return np.flatnonzero(self.eligible[kind])

    def within(self, threshold_s: float, columns: np.ndarray | None = None) -> sparse.csr_matrix:
        """Boolean demand x site (or x ``columns``) matrix: walk at most ``threshold_s``."""
        times = self.times_s if columns is None else self.times_s[:, columns]
        keep = times.data <= threshold_s + 1e-9
        out = sparse.csr_matrix((keep.astype(np.int8), times.indices, times.indptr), shape=times.shape)
        out.eliminate_zeros()
        return out

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
        times = _as_csr(times_s)
        if times.shape != (len(people), len(sites)):
            raise InputError(
                f"The walking-time matrix is {times.shape[0]} x {times.shape[1]} but there are "
                f"{len(people)} demand points and {len(sites)} sites."
            )
        sites = _normalise_sites(sites)
        _check_specs(specs, people)
        weight = priority_weights(people, weights).to_numpy(dtype=float)
        candidate = sites["status"].to_numpy() == "candidate"
        if eligible is None:
            eligible = {s.kind: candidate.copy() for s in specs}
        else:
            eligible = {k: np.asarray(eligible[k], dtype=bool) & candidate for k in (s.kind for s in specs)}
        cutoff = float(cutoff_s) if cutoff_s is not None else (float(times.data.max()) if times.nnz else 0.0)
        for spec in specs:
            if spec.threshold_s > cutoff + 1e-9 and cutoff_s is not None:
                raise InputError(
                    f"The {spec.kind} threshold of {spec.threshold_min:g} min is beyond the walking times "
                    f"computed ({cutoff / 60:g} min). Compute the reach with a larger cutoff."
                )
        return cls(
            people=people[population_columns(people)].astype(float),
            weight=weight,
            sites=sites,
            eligible=MappingProxyType(dict(eligible)),
            times_s=times,
            cutoff_s=cutoff,
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
    for column in ("name", "geometry", "unit_id"):
        if column in sites:
            frame[column] = sites[column].to_numpy()
    return frame


def _check_specs(specs: tuple[KindSpec, ...], people: pd.DataFrame) -> None:
    if not specs:
        raise InputError("Nothing to plan: give at least one kind (KindSpec).")
    kinds = [s.kind for s in specs]
    if len(set(kinds)) != len(kinds):
        raise InputError(f"Each kind can be planned once; got {kinds}.")
    known = population_columns(people)
    for spec in specs:
        if spec.kind not in KINDS:
            raise InputError(f"Unknown facility kind {spec.kind!r}; use one of {', '.join(KINDS)}.")
        if spec.p is not None and (not isinstance(spec.p, (int, np.integer)) or spec.p < 0):
            raise InputError(f"p (the number of new {spec.kind} sites) must be a whole number >= 0, got {spec.p!r}.")
        if spec.budget is not None and not spec.budget >= 0:
            raise InputError(f"The {spec.kind} budget must be >= 0, got {spec.budget!r}.")
        if not spec.threshold_min > 0:
            raise InputError(f"The {spec.kind} threshold must be positive minutes, got {spec.threshold_min!r}.")
        if spec.capacity is not None and not spec.capacity >= 0:
            raise InputError(
                f"The {spec.kind} capacity must be >= 0 (people or meals a site serves), got {spec.capacity!r}."
            )
        if not spec.use_rate >= 0:
            raise InputError(f"The {spec.kind} use_rate must be >= 0, got {spec.use_rate!r}.")
        if spec.target_pct is not None and not 0 <= spec.target_pct <= 100:
            raise InputError(f"target_pct is a percentage between 0 and 100, got {spec.target_pct!r}.")
        if spec.min_catchment is not None and not spec.min_catchment >= 0:
            raise InputError(f"min_catchment must be >= 0 people, got {spec.min_catchment!r}.")
        for name, group in (("target_group", spec.target_group), ("capacity_group", spec.capacity_group)):
            if group not in known:
                raise InputError(f"Unknown population group {group!r} for {name}; the demand has {known}.")


def build_problem(
    region,
    *,
    specs: Sequence[KindSpec],
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    candidates=None,
    facilities=None,
    costs: pd.Series | Mapping | None = None,
    reach=None,
    cutoff_min: float | None = None,
) -> Problem:
    """A :class:`Problem` for ``region``: its demand, its facilities and candidates, walking times.

    Parameters
    ----------
    region
        A :class:`~geoplan.region.Region`.
    specs
        The kinds to plan.
    candidates
        Candidate sites (default ``region.candidates``), one frame shared by
        every kind or a mapping kind -> frame.
    facilities
        Existing facilities (default ``region.facilities``).
    costs
        Cost per site id, replacing the sites' ``cost`` column (default 1).
    reach
        A precomputed :class:`~geoplan.reach.ReachMatrix` from every site
        (facilities first, then candidates, in the order of this function) to
        the region's demand, with a cutoff at least the largest threshold. By
        default it is computed.
    cutoff_min
        How far to compute walking times (default: the largest threshold).
    """
    import geopandas as gpd

    specs = tuple(specs)
    # check the cheap things before the walking times are computed
    _check_specs(specs, region.demand)
    priority_weights(region.demand, weights)
    facilities = region.facilities if facilities is None else facilities.to_crs(region.crs)
    if candidates is None:
        candidates = region.candidates
    if isinstance(candidates, Mapping):
        frames = {k: c.to_crs(region.crs) for k, c in candidates.items()}
        unknown = sorted(set(frames) - {s.kind for s in specs})
        if unknown:
            raise InputError(f"Candidates were given for {unknown}, which are not being planned ({[s.kind for s in specs]}).")
        merged = pd.concat([f for f in frames.values()])
        merged = merged[~merged.index.duplicated()]
        eligible_ids = {s.kind: pd.Index(frames.get(s.kind, merged).index) for s in specs}
        cand = merged
    else:
        cand = candidates.to_crs(region.crs)
        eligible_ids = {s.kind: pd.Index(cand.index) for s in specs}
    cand = cand.assign(status="candidate")
    clash = facilities.index.intersection(cand.index)
    if len(clash):
        raise InputError(
            f"Site ids {sorted(map(str, clash))[:10]} are both existing facilities and candidates; "
            "give candidates ids of their own."
        )
    columns = ["name", "kind", "status", "cost", "capacity", "geometry"]
    sites = gpd.GeoDataFrame(
        pd.concat([_site_columns(facilities, columns), _site_columns(cand, columns)]),
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
    if cutoff_min is None:
        cutoff_min = max(s.threshold_min for s in specs)
    if reach is None:
        reach = region.reach(sites, cutoff_min=cutoff_min)
    elif not reach.site_ids.equals(pd.Index(sites.index)):
        raise InputError("The given reach matrix does not follow the sites (existing facilities, then candidates).")
    demand = region.demand
    times = reach.times_s
    if not reach.demand_ids.equals(demand.index):
        rows = reach.demand_ids.get_indexer(demand.index)
        if (rows < 0).any():  # -1 would silently take the last row's walking times
            missing = sorted(map(str, demand.index[rows < 0]))[:10]
            raise InputError(
                f"The given reach matrix has no walking times for demand points {missing}; "
                "compute it for the region's demand (region.reach(...))."
            )
        times = sparse.csr_matrix(times)[rows]
    eligible = {k: sites.index.isin(ids) & (sites["status"].to_numpy() == "candidate") for k, ids in eligible_ids.items()}
    return Problem.from_matrix(
        times,
        demand[population_columns(demand)],
        sites,
        specs=specs,
        weights=weights,
        cutoff_s=reach.cutoff_s,
        eligible=eligible,
    )


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
