"""Benchmark of geoplan's optimiser, in one run (``python bench/optimize.py`` from the repository root).

1. geoplan vs spopt on Wuchang's reach matrix (7,909 demand cells x 124
   community candidates, 15-minute walk), same solver (HiGHS through PuLP),
   each comparison in four variants with the same repeats (median, min, max):

   * ``geoplan``: ``optimize(problem, ModelOptions(model))`` (with its reductions);
   * ``geoplan_without_reductions``: ``ModelOptions(model, reduce=False)``;
   * ``spopt_full``: spopt's model from the full dense matrix;
   * ``spopt_reduced``: spopt's model from the matrix that geoplan's reductions
     leave (demand covered by existing sites dropped and counted as a
     constant, identical rows merged with summed weights, dominated
     candidates dropped: :mod:`geoplan.optimize.reduce`). Making that matrix
     is timed apart (``reduction_for_spopt``), not in spopt's time.

   MCLP for p = 5, 10, 20 on the candidates alone, and p = 5 with the sample
   facility list as existing sites (spopt: ``predefined_facilities_arr``);
   the LSCP against geoplan's target model (every coverable 60+ person); the
   p-median on a sub-instance (spopt's dense assignment model is too slow for
   the whole district). All four objectives must agree. geoplan gets a
   ready :class:`~geoplan.optimize.Problem` and spopt a ready dense matrix
   (neither preparation is timed); the timed call builds and solves.
2. The largest instance solved to proven optimality within 60 s: MCLP
   (p = 20) on Hongshan district (洪山区: 45,500 populated 100 m cells) with
   street-junction candidates every 200, 150 and 100 m (geoplan alone, one
   run each: there is no baseline to compare with).
3. With ``--figures``: the figures for the note on Wuchang, the 5 best new
   stations and 3 canteens, and the fewest stations for 80 % of 60+ within
   15 minutes, without and with the sample facility list (one run each;
   about 3 minutes on 2 idle cores, twice that on a loaded machine, so
   ``make bench`` leaves them out).

Goals: the same objective everywhere; geoplan at least as fast as spopt on
the full matrix and on the reduced one (ratios of medians, summed over p);
every Hongshan instance optimal within the time limit. Writes
``bench/results/optimize.json``; exits 0 whether or not the goals pass.

    python bench/optimize.py                 # 3 repeats of every variant
    python bench/optimize.py --figures       # and the figures for the Wuchang note
    python bench/optimize.py --quick         # smoke run: 1 repeat, p = 5, one spacing
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, goal, machine, measure, speedup, write_result  # noqa: E402

import geoplan  # noqa: E402
from geoplan.optimize import (  # noqa: E402
    KindSpec,
    ModelOptions,
    Problem,
    SolverOptions,
    TargetUnreachable,
    build_problem,
    optimize,
    recommend,
)
from geoplan.optimize.reduce import dominated_columns, merge_identical_rows  # noqa: E402
from geoplan.sites import candidates_from_network  # noqa: E402

GROUPS = ["pop_total", "pop_60", "pop_65", "pop_80"]
SAMPLE_FACILITIES = REPO / "data/facilities/wuchang_sample_gcj02.csv"
VARIANTS = ("geoplan", "geoplan_without_reductions", "spopt_full", "spopt_reduced")
log = logging.getLogger("bench.optimize")


# --------------------------------------------------------------------------- spopt's inputs


@dataclasses.dataclass(frozen=True)
class SpoptInputs:
    """What one spopt model is built from: a dense cost matrix and its weights, and how it maps back."""

    cost: np.ndarray  # demand rows x site columns, inf where not reachable (or the p-median's penalty)
    weights: np.ndarray | None
    columns: np.ndarray  # problem site position of every column
    p: int | None = None
    predefined: np.ndarray | None = None  # 0/1 per column: an existing site spopt must keep
    constant: float = 0.0  # weight already covered (existing sites), outside the model

    @property
    def shape(self) -> tuple[int, int]:
        return self.cost.shape


def to_dense(times: sparse.spmatrix, fill: float = np.inf) -> np.ndarray:
    """Dense copy of a sparse walking-time matrix: stored entries (explicit zeros too) kept, ``fill`` elsewhere."""
    coo = sparse.coo_matrix(times)
    out = np.full(coo.shape, fill)
    out[coo.row, coo.col] = coo.data
    return out


def cover_cost(cover: sparse.spmatrix) -> np.ndarray:
    """A 0/1 coverage pattern as a cost matrix for spopt: 0 where covered, inf elsewhere."""
    return np.where(sparse.csr_matrix(cover).toarray() > 0, 0.0, np.inf)


def mclp_inputs(problem: Problem, spec: KindSpec, *, reduced: bool) -> SpoptInputs:
    """spopt's MCLP inputs: the full matrix (existing sites as predefined facilities), or geoplan's reduced one."""
    tau = spec.threshold_s
    existing, candidates = problem.existing_for(spec.kind), problem.candidates_for(spec.kind)
    w = problem.weight
    if not reduced:
        columns = np.r_[existing, candidates].astype(np.int64)
        predefined = np.r_[np.ones(len(existing)), np.zeros(len(candidates))] if len(existing) else None
        cost = to_dense(problem.reach.limited(tau, columns))
        return SpoptInputs(cost, w, columns, p=spec.p + len(existing), predefined=predefined)
    covered = problem.reach.covered(tau, existing) if len(existing) else np.zeros(problem.n_demand, bool)
    cover = problem.reach.within(tau, candidates)
    keep = ~covered & (cover.getnnz(axis=1) > 0) & (w > 0)
    cover, (merged_w,), _ = merge_identical_rows(cover[np.flatnonzero(keep)], w[keep])
    beaten = dominated_columns(cover, np.ones(cover.shape[1]))
    return SpoptInputs(
        cover_cost(cover[:, ~beaten]), merged_w, candidates[~beaten], p=spec.p, constant=float(w[covered].sum())
    )


def lscp_inputs(problem: Problem, spec: KindSpec, *, reduced: bool) -> SpoptInputs:
    """spopt's LSCP inputs: every coverable person of the target group must be covered (no existing sites)."""
    tau = spec.threshold_s
    candidates = problem.candidates_for(spec.kind)
    g = problem.people[spec.target_group].to_numpy(dtype=float)
    cover = problem.reach.within(tau, candidates)
    rows = np.flatnonzero((cover.getnnz(axis=1) > 0) & (g > 0))
    if not reduced:
        return SpoptInputs(to_dense(problem.reach.limited(tau, candidates))[rows], None, candidates)
    cover, _, _ = merge_identical_rows(cover[rows])
    beaten = dominated_columns(cover, np.ones(cover.shape[1]))
    return SpoptInputs(cover_cost(cover[:, ~beaten]), None, candidates[~beaten])


def pmedian_inputs(problem: Problem, spec: KindSpec, *, reduced: bool) -> SpoptInputs:
    """spopt's p-median inputs: walks up to the cutoff, the cutoff where there is none (no existing sites)."""
    penalty = problem.cutoff_s
    candidates = problem.candidates_for(spec.kind)
    times = problem.reach.limited(penalty, candidates)
    w = problem.weight
    if reduced:  # rows with the same walks to every site: one row, weights summed
        times, (w,), _ = merge_identical_rows(times, w, with_data=True)
    return SpoptInputs(to_dense(times, fill=penalty), w, candidates, p=spec.p)


# --------------------------------------------------------------------------- the four variants


def spopt_solve(model_name: str, inputs: SpoptInputs, radius_s: float | None):
    import pulp
    from spopt.locate import LSCP, MCLP, PMedian

    if model_name == "mclp":
        model = MCLP.from_cost_matrix(
            inputs.cost, inputs.weights, service_radius=radius_s, p_facilities=inputs.p, predefined_facilities_arr=inputs.predefined
        )
    elif model_name == "lscp":
        model = LSCP.from_cost_matrix(inputs.cost, service_radius=radius_s)
    else:
        model = PMedian.from_cost_matrix(inputs.cost, inputs.weights, p_facilities=inputs.p)
    return model.solve(pulp.HiGHS(msg=False), results=False)


def spopt_answer(model, inputs: SpoptInputs, problem: Problem) -> tuple[float, list]:
    import pulp

    chosen = [j for j, v in enumerate(model.fac_vars) if v.value() > 0.5]
    if inputs.predefined is not None:
        chosen = [j for j in chosen if not inputs.predefined[j]]
    objective = float(pulp.value(model.problem.objective)) + inputs.constant
    return objective, sorted(map(str, problem.sites.index[inputs.columns[chosen]]))


def compare(label: str, problem: Problem, options: ModelOptions, spopt_model: str, inputs_fn, *, radius_s: float | None,
            repeat: int, solver: SolverOptions) -> dict:
    """geoplan with and without reductions, spopt on the full and on the reduced matrix: same repeats, medians."""
    spec = problem.specs[0]
    full = inputs_fn(problem, spec, reduced=False)
    reduction = measure(lambda: inputs_fn(problem, spec, reduced=True), repeat)
    reduced = reduction.result
    plain = dataclasses.replace(options, reduce=False)
    timings = {
        "geoplan": measure(lambda: optimize(problem, options, solver), repeat),
        "geoplan_without_reductions": measure(lambda: optimize(problem, plain, solver), repeat),
        "spopt_full": measure(lambda: spopt_solve(spopt_model, full, radius_s), repeat),
        "spopt_reduced": measure(lambda: spopt_solve(spopt_model, reduced, radius_s), repeat),
    }
    ours, ours_plain = timings["geoplan"].result, timings["geoplan_without_reductions"].result
    objectives = {"geoplan": ours.main.objective, "geoplan_without_reductions": ours_plain.main.objective}
    sites = {"geoplan": sorted(map(str, problem.sites.index[ours.opened[spec.kind]]))}
    for name, inputs in (("spopt_full", full), ("spopt_reduced", reduced)):
        objectives[name], sites[name] = spopt_answer(timings[name].result, inputs, problem)
    reference = objectives["spopt_full"]
    same = all(v is not None and abs(v - reference) <= 1e-9 * max(1.0, abs(reference)) for v in objectives.values())
    g, s = timings["geoplan"], timings["spopt_full"]
    row = {
        "instance": label,
        "objective": objectives,
        "same_objective": bool(same),
        "same_sites_as_spopt_full": {k: v == sites["spopt_full"] for k, v in sites.items() if k != "spopt_full"},
        "status": {"geoplan": ours.main.status, "geoplan_without_reductions": ours_plain.main.status},
        "timings": {**{k: t.as_dict() for k, t in timings.items()}, "reduction_for_spopt": reduction.as_dict()},
        "speedup": {
            "spopt_full_vs_geoplan": speedup(s, g),
            "spopt_reduced_vs_geoplan": speedup(timings["spopt_reduced"], g),
            "spopt_full_vs_geoplan_without_reductions": speedup(s, timings["geoplan_without_reductions"]),
            "reductions_for_geoplan": speedup(timings["geoplan_without_reductions"], g),
            "reductions_for_spopt": speedup(s, timings["spopt_reduced"]),
        },
        "matrix": {"full": list(full.shape), "reduced": list(reduced.shape)},
        "geoplan_model": {"variables": ours.main.n_variables, "constraints": ours.main.n_constraints, "nonzeros": ours.main.n_nonzeros},
        "geoplan_model_without_reductions": {
            "variables": ours_plain.main.n_variables, "constraints": ours_plain.main.n_constraints, "nonzeros": ours_plain.main.n_nonzeros,
        },
        "spopt_model": {
            name: {"variables": len(timings[name].result.problem.variables()), "constraints": len(timings[name].result.problem.constraints)}
            for name in ("spopt_full", "spopt_reduced")
        },
        "reductions": ours.reductions[spec.kind],
    }
    log.info(
        "%s: medians geoplan %.3f s, no reductions %.3f s, spopt full %.2f s, spopt reduced %.3f s; same objective %s",
        label, *(timings[k].median_s for k in VARIANTS), same,
    )
    return row


def candidate_problem(region, reach, spec: KindSpec) -> Problem:
    sites = pd.DataFrame({"status": "candidate"}, index=reach.site_ids)
    return Problem.from_matrix(reach, region.demand[GROUPS], sites, specs=spec)


def pmedian_subinstance(region, reach30, spec: KindSpec) -> tuple[Problem, str]:
    """The cells within 20 min of the 8 candidates nearest the district's centre; unserved counts 20 min."""
    xy = region.candidates.geometry.get_coordinates().to_numpy()
    near = np.argsort(np.hypot(*(xy - xy.mean(axis=0)).T))[:8]
    times = reach30.limited(1200.0, near)
    rows = np.flatnonzero(times.getnnz(axis=1) > 0)
    people = region.demand.iloc[rows][GROUPS]
    sites = pd.DataFrame({"status": "candidate"}, index=reach30.site_ids[near])
    problem = Problem.from_matrix(times[rows], people, sites, specs=spec, cutoff_s=1200.0)
    return problem, f"{len(rows)} cells within 20 min of 8 central candidates, p = {spec.p}, unserved = 20 min"


# --------------------------------------------------------------------------- geoplan alone


def hongshan_config(tmp: Path) -> Path:
    text = (REPO / "data/regions/wuchang.toml").read_text()
    text = text.replace("420106", "420111").replace("武昌区", "洪山区").replace('"../', f'"{REPO}/data/')
    path = tmp / "hongshan.toml"
    path.write_text(text)
    return path


def largest(spacings, p: int, limit_s: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        region = geoplan.load_region(hongshan_config(Path(tmp)))
        load_s = time.perf_counter() - t
    solver = SolverOptions(time_limit_s=limit_s)
    runs = []
    for spacing in spacings:
        candidates = candidates_from_network(region.network, region.boundary, spacing_m=spacing)
        t = time.perf_counter()
        reach = region.reach(candidates)
        reach_s = time.perf_counter() - t
        problem = candidate_problem(region, reach, KindSpec(p=p, threshold_min=15))
        timing = measure(lambda: optimize(problem, ModelOptions("mclp"), solver), 1)
        out = timing.result
        run = {
            "spacing_m": spacing, "demand": int(reach.shape[0]), "candidates": int(reach.shape[1]), "reach_nonzeros": int(reach.times_s.nnz),
            "p": p, "seconds": timing.median_s, "timing": timing.as_dict(), "reach_s": reach_s, "status": out.main.status,
            "gap": out.main.gap, "objective": out.main.objective, "solve_s": out.main.solve_s, "reductions": out.reductions["station"],
            "model": {"variables": out.main.n_variables, "integer": out.main.n_integer, "constraints": out.main.n_constraints, "nonzeros": out.main.n_nonzeros},
        }
        runs.append(run)
        log.info("Hongshan %d x %d (spacing %g m, p=%d): %s in %.1f s", run["demand"], run["candidates"], spacing, p, out.main.status, run["seconds"])
    solved = [r for r in runs if r["status"] == "optimal" and r["seconds"] <= limit_s]
    best = max(solved, key=lambda r: r["demand"] * r["candidates"]) if solved else None
    return {"region": "Hongshan 洪山区", "load_s": load_s, "time_limit_s": limit_s, "runs": runs, "largest": best,
            "all_optimal_within_limit": len(solved) == len(runs)}


def wuchang_figures(time_limit_s: float) -> dict:
    figures = {}
    solver = SolverOptions(time_limit_s=time_limit_s)
    for label, facilities in (("no_existing", None), ("sample_facilities", SAMPLE_FACILITIES)):
        region = geoplan.load_region("wuchang", facilities=facilities, coord_system="gcj02" if facilities else None)
        plan = recommend(region, [KindSpec("station", p=5, threshold_min=15), KindSpec("canteen", p=3, threshold_min=10)])
        sites = [
            {"kind": row["kind"], "site_id": site_id, "name": row["name"], "lon": row["lon"], "lat": row["lat"], "phase": int(row["phase"]),
             "adds_pop_60": round(row["gain_pop_60"]), "adds_pop_80": round(row["gain_pop_80"])}
            for site_id, row in plan.new_sites.iterrows()
        ]
        coverage = {
            kind: {g: plan.coverage.loc[(kind, g, t), ["before_pct", "after_pct"]].round(2).to_dict() for g in ("pop_60", "pop_80")}
            for kind, t in (("station", 15.0), ("canteen", 10.0))
        }
        entry = {"existing": int(len(region.facilities)), "new_sites": sites, "coverage_pct": coverage, "status": plan.status, "solve_s": plan.solver.solve_s}
        # fewest stations for 80 % of 60+ within 15 min: the community candidates, then with junctions every 300 m as well
        targets = {}
        target = KindSpec("station", target_pct=80)
        try:
            plan80 = recommend(region, target, ModelOptions("target"), solver)
            targets["community_candidates"] = {"stations": len(plan80.new_sites), "status": plan80.status}
        except TargetUnreachable as exc:
            targets["community_candidates"] = {
                "reachable": False, "best_pct": round(float(exc.best_pct), 2),
                "stations_for_best": None if exc.plan is None else len(exc.plan.new_sites), "message": str(exc),
            }
        network = candidates_from_network(region.network, region.boundary, spacing_m=300)
        more = pd.concat([region.candidates, network])
        t = time.perf_counter()
        plan80 = recommend(region, target, ModelOptions("target"), solver, candidates=more)
        targets["community_and_300m_junctions"] = {
            "candidates": len(more), "stations": len(plan80.new_sites), "status": plan80.status, "gap": plan80.solver.gap,
            "bound": plan80.solver.bound, "seconds": time.perf_counter() - t,
            "after_pct_60": round(float(plan80.coverage.loc[("station", "pop_60", 15.0), "after_pct"]), 2),
        }
        entry["fewest_stations_80pct_60plus_15min"] = targets
        figures[label] = entry
        log.info("Wuchang (%s): %s", label, targets)
    return figures


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of every variant (geoplan and spopt alike); the median is reported")
    parser.add_argument("--p", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--spacings", type=float, nargs="+", default=[200.0, 150.0, 100.0])
    parser.add_argument("--limit-s", type=float, default=60.0, help="time limit of each Hongshan solve")
    parser.add_argument("--target-time-limit-s", type=float, default=300.0, help="time limit of the figures' target solves")
    parser.add_argument("--figures", action="store_true", help="also compute the figures for the Wuchang note (a few minutes)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, p = 5, spacing 200 m, no figures")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.p, args.spacings, args.figures = 1, [5], [200.0], False
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    record = machine("pulp", "highspy", "spopt", "scipy", "pandas")
    started = time.perf_counter()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("geoplan").setLevel(logging.WARNING)
    solver = SolverOptions()
    repeat = args.repeat

    sections = {}
    mark = time.perf_counter()

    def section(name: str) -> None:  # wall time of each part of the run, to keep `make bench` short
        nonlocal mark
        now = time.perf_counter()
        sections[name] = round(now - mark, 1)
        mark = now

    region = geoplan.load_region("wuchang")
    reach = region.reach(region.candidates)
    reach30 = region.reach(region.candidates, cutoff_min=30)

    # one untimed solve of each side first: imports (pulp, highspy, spopt) and first-call costs stay out of the figures
    warm = candidate_problem(region, reach, KindSpec(p=5, threshold_min=15))
    optimize(warm, ModelOptions("mclp"), solver)
    spopt_solve("mclp", mclp_inputs(warm, warm.specs[0], reduced=True), 900.0)
    section("inputs_and_warmup")

    mclp = []
    for p in args.p:
        problem = candidate_problem(region, reach, KindSpec(p=p, threshold_min=15))
        mclp.append({"p": p, **compare(f"MCLP p = {p}", problem, ModelOptions("mclp"), "mclp", mclp_inputs, radius_s=900.0, repeat=repeat, solver=solver)})
    section("mclp")

    region_fac = geoplan.load_region("wuchang", facilities=SAMPLE_FACILITIES, coord_system="gcj02")
    problem = build_problem(region_fac, specs=[KindSpec("station", p=5, threshold_min=15)])
    existing = {
        "existing_sites_serving_stations": int(len(problem.existing_for("station"))),
        **compare("MCLP p = 5, sample facilities existing", problem, ModelOptions("mclp"), "mclp", mclp_inputs,
                  radius_s=900.0, repeat=repeat, solver=solver),
    }
    section("mclp_with_existing")

    g = region.demand["pop_60"].to_numpy(dtype=float)
    coverable = reach.covered(900.0) & (g > 0)
    best_pct = 100 * g[coverable].sum() / g.sum()
    problem = candidate_problem(region, reach, KindSpec(target_pct=best_pct, threshold_min=15))
    lscp = {"coverable_pct_60": best_pct, **compare("LSCP / target (every coverable 60+)", problem, ModelOptions("target", refine=False),
                                                    "lscp", lscp_inputs, radius_s=900.0, repeat=repeat, solver=solver)}
    section("lscp")

    problem, label = pmedian_subinstance(region, reach30, KindSpec(p=3, threshold_min=15))
    pmedian = compare(label, problem, ModelOptions("pmedian", pmedian_cutoff_min=20), "pmedian", pmedian_inputs,
                      radius_s=None, repeat=repeat, solver=solver)
    whole = candidate_problem(region, reach30, KindSpec(p=10, threshold_min=15))
    timing = measure(lambda: optimize(whole, ModelOptions("pmedian", pmedian_cutoff_min=30), solver), 1)
    pmedian["whole_district_p10_30min"] = {
        "timing": timing.as_dict(), "status": timing.result.main.status, "objective": timing.result.main.objective,
        "reductions": timing.result.reductions["station"], "note": "geoplan alone (spopt's dense p-median is too slow here), one run",
    }
    section("pmedian")

    big = largest(args.spacings, p=20, limit_s=args.limit_s)
    section("hongshan")
    figures = wuchang_figures(args.target_time_limit_s) if args.figures else None
    if args.figures:
        section("figures")

    comparisons = [*mclp, existing, lscp, pmedian]
    headline = {
        name: sum(r["timings"]["spopt_full" if name == "vs_spopt_full" else "spopt_reduced"]["median_s"] for r in mclp)
        / sum(r["timings"]["geoplan"]["median_s"] for r in mclp)
        for name in ("vs_spopt_full", "vs_spopt_reduced")
    }
    best = big["largest"]
    payload = {
        "benchmark": "optimiser: geoplan vs spopt (same matrix, HiGHS via PuLP), with and without reductions; largest instance in 60 s",
        "goals": [
            goal("same_objective", all(r["same_objective"] for r in comparisons), True, op="==",
                 note="geoplan with and without reductions, spopt on the full and on the reduced matrix, every comparison"),
            goal("speedup_vs_spopt", headline["vs_spopt_full"], 1.0,
                 note="MCLP, sum over p of spopt (full matrix) medians / geoplan medians"),
            goal("speedup_vs_spopt_on_reduced_matrix", headline["vs_spopt_reduced"], 1.0,
                 note="MCLP, sum over p of spopt (given geoplan's reduced matrix) medians / geoplan medians"),
            goal("hongshan_all_optimal_within_limit", big["all_optimal_within_limit"], True, op="==",
                 note=f"MCLP p = 20 on Hongshan, spacings {args.spacings} m, proven optimal within {args.limit_s:g} s each"),
        ],
        "speedup_vs_spopt": headline["vs_spopt_full"],
        "speedup_vs_spopt_on_reduced_matrix": headline["vs_spopt_reduced"],
        "same_objective": all(r["same_objective"] for r in comparisons),
        "largest_optimal": None if best is None else {"demand": best["demand"], "candidates": best["candidates"], "seconds": round(best["seconds"], 2)},
        "statistic": (
            f"every variant (geoplan, geoplan without reductions, spopt on the full matrix, spopt on the reduced matrix): "
            f"{repeat} timed runs after one untimed warm-up solve of each side; median (min, max); speedups are ratios of medians"
        ),
        "details": {
            "wuchang_matrix": {"demand": int(reach.shape[0]), "candidates": int(reach.shape[1]), "nonzeros": int(reach.times_s.nnz), "cutoff_s": reach.cutoff_s},
            "mclp": mclp,
            "mclp_with_existing": existing,
            "lscp_vs_target": lscp,
            "pmedian": pmedian,
            "largest": big,
            "wuchang_figures": figures,
        },
        "machine": record,
        "args": vars(args),
        "total_runtime_s": time.perf_counter() - started,
        "sections_s": sections,
    }
    print_summary(payload)
    write_result("optimize", payload)
    return payload


def print_summary(payload: dict) -> None:
    d = payload["details"]

    def cell(t):
        return f"{t['median_s']:.3f} [{t['min_s']:.3f}-{t['max_s']:.3f}]"

    print(f"\ns, median [min-max]; {payload['statistic']}")
    header = f"{'instance':<42}{'geoplan':>25}{'geoplan no-red':>25}{'spopt full':>25}{'spopt reduced':>25} | {'full/gp':>8}{'red/gp':>8} | same"
    print(header)
    print("-" * len(header))
    for r in [*d["mclp"], d["mclp_with_existing"], d["lscp_vs_target"], d["pmedian"]]:
        t, s = r["timings"], r["speedup"]
        print(
            f"{r['instance'][:41]:<42}" + "".join(f"{cell(t[k]):>25}" for k in VARIANTS)
            + f" | {s['spopt_full_vs_geoplan']:>7.1f}x{s['spopt_reduced_vs_geoplan']:>7.1f}x | {r['same_objective']}"
        )
        print(f"{'':<42}matrix {r['matrix']['full'][0]} x {r['matrix']['full'][1]} -> reduced {r['matrix']['reduced'][0]} x {r['matrix']['reduced'][1]}"
              f" (reduction {1000 * t['reduction_for_spopt']['median_s']:.0f} ms); objective {r['objective']['geoplan']:.6g}")
    whole = d["pmedian"]["whole_district_p10_30min"]
    print(f"p-median, whole district (p = 10, 30 min): {whole['status']} in {whole['timing']['median_s']:.1f} s")
    for run in d["largest"]["runs"]:
        print(f"Hongshan {run['demand']} x {run['candidates']} (p = 20): {run['status']} in {run['seconds']:.1f} s; model "
              f"{run['reductions']['demand_after_merge']} rows x {run['reductions']['candidates_after_dominance']} candidates after reductions")
    figures = d["wuchang_figures"]
    if figures:
        for label, entry in figures.items():
            print(f"Wuchang, {label} ({entry['existing']} existing):")
            for site in entry["new_sites"]:
                print(f"  {site['phase']}. {site['kind']:<8} {site['site_id']:<8} {site['name']}: +{site['adds_pop_60']:,} aged 60+, +{site['adds_pop_80']:,} aged 80+")
            for key, value in entry["fewest_stations_80pct_60plus_15min"].items():
                print(f"  80 % of 60+ within 15 min, {key}: {({k: v for k, v in value.items() if k != 'message'})}")
    print(f"speedup_vs_spopt {payload['speedup_vs_spopt']:.1f}x (full matrix), {payload['speedup_vs_spopt_on_reduced_matrix']:.1f}x "
          f"(spopt given the reduced matrix); total {payload['total_runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
