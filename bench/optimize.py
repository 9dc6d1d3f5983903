"""Benchmark of geoplan's optimiser, in one run (``python bench/optimize.py`` from the repository root).

1. geoplan vs spopt on Wuchang's reach matrix (7,909 demand cells x 124
   community candidates, 15-minute walk), same solver (HiGHS through PuLP):
   MCLP for p = 5, 10, 20; the LSCP against geoplan's target model; the
   p-median on a sub-instance (spopt's dense assignment model is too slow for
   the whole district). Objectives must be identical; the ratio of build +
   solve times is ``speedup_vs_spopt``. spopt gets its dense matrix ready-made
   (the conversion is not timed).
2. The largest instance solved to proven optimality within 60 s: MCLP
   (p = 20) on Hongshan district (洪山区: 45,500 populated 100 m cells) with
   street-junction candidates every 200, 150 and 100 m.
3. The figures for the note on Wuchang: the 5 best new stations and 3
   canteens, and the fewest stations for 80 % of 60+ within 15 minutes,
   without and with the sample facility list.

Writes ``bench/results/optimize.json``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, machine, versions, write_json  # noqa: E402

import geoplan  # noqa: E402
from geoplan.optimize import KindSpec, Problem, TargetUnreachable, optimize, priority_weights, recommend  # noqa: E402
from geoplan.sites import candidates_from_network  # noqa: E402

GROUPS = ["pop_total", "pop_60", "pop_65", "pop_80"]
SAMPLE_FACILITIES = REPO / "data/facilities/wuchang_sample_gcj02.csv"
log = logging.getLogger("bench.optimize")


def dense(times, cutoff_s: float, fill: float = np.inf) -> np.ndarray:
    coo = times.tocoo()
    keep = coo.data <= cutoff_s
    out = np.full(times.shape, fill)
    out[coo.row[keep], coo.col[keep]] = coo.data[keep]
    return out


def timed(fn, repeat: int = 1):
    best, result = np.inf, None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def compare_mclp(region, reach, p_values) -> list[dict]:
    import pulp
    from spopt.locate import MCLP

    w = priority_weights(region.demand).to_numpy()
    matrix = dense(reach.times_s, 900.0)
    sites = pd.DataFrame({"status": "candidate"}, index=reach.site_ids)
    rows = []
    for p in p_values:
        def ours():
            problem = Problem.from_matrix(reach.times_s, region.demand[GROUPS], sites, specs=KindSpec(p=p, threshold_min=15), cutoff_s=reach.cutoff_s)
            return optimize(problem, model="mclp")

        def theirs():
            model = MCLP.from_cost_matrix(matrix, w, service_radius=900.0, p_facilities=p)
            return model.solve(pulp.HiGHS(msg=False), results=False)

        t_ours, out = timed(ours, repeat=3)
        t_plain, plain = timed(lambda: optimize(
            Problem.from_matrix(reach.times_s, region.demand[GROUPS], sites, specs=KindSpec(p=p, threshold_min=15), cutoff_s=reach.cutoff_s),
            model="mclp", reduce=False,
        ), repeat=3)
        t_theirs, model = timed(theirs)
        objective = pulp.value(model.problem.objective)
        spopt_sites = sorted(reach.site_ids[j] for j, v in enumerate(model.fac_vars) if v.value() > 0.5)
        our_sites = sorted(reach.site_ids[out.opened["station"]])
        rows.append({
            "p": p,
            "geoplan_objective": out.main.objective,
            "spopt_objective": objective,
            "same_objective": bool(abs(out.main.objective - objective) <= 1e-9 * max(1.0, abs(objective))),
            "same_sites": our_sites == spopt_sites,
            "geoplan_s": t_ours,
            "geoplan_solve_s": out.main.solve_s,
            "geoplan_without_reductions_s": t_plain,
            "geoplan_without_reductions_objective": plain.main.objective,
            "spopt_s": t_theirs,
            "speedup": t_theirs / t_ours,
            "geoplan_model": {"variables": out.main.n_variables, "constraints": out.main.n_constraints, "nonzeros": out.main.n_nonzeros},
            "spopt_model": {"variables": len(model.problem.variables()), "constraints": len(model.problem.constraints)},
            "reductions": out.reductions["station"],
        })
        log.info("MCLP p=%d: geoplan %.3f s, spopt %.2f s (x%.0f), objectives %.3f / %.3f", p, t_ours, t_theirs, t_theirs / t_ours, out.main.objective, objective)
    return rows


def compare_lscp(region, reach) -> dict:
    import pulp
    from spopt.locate import LSCP

    matrix = dense(reach.times_s, 900.0)
    g = region.demand["pop_60"].to_numpy()
    coverable = (matrix <= 900).any(axis=1) & (g > 0)
    best_pct = 100 * g[coverable].sum() / g.sum()
    sites = pd.DataFrame({"status": "candidate"}, index=reach.site_ids)

    def ours():
        problem = Problem.from_matrix(reach.times_s, region.demand[GROUPS], sites, specs=KindSpec(target_pct=best_pct, threshold_min=15), cutoff_s=reach.cutoff_s)
        return optimize(problem, model="target", refine=False)

    def theirs():
        return LSCP.from_cost_matrix(matrix[coverable], service_radius=900.0).solve(pulp.HiGHS(msg=False), results=False)

    t_ours, out = timed(ours, repeat=3)
    t_theirs, model = timed(theirs)
    objective = pulp.value(model.problem.objective)
    log.info("LSCP: geoplan %.3f s, spopt %.2f s, %s / %s sites", t_ours, t_theirs, out.main.objective, objective)
    return {
        "coverable_pct_60": best_pct, "geoplan_objective": out.main.objective, "spopt_objective": objective,
        "same_objective": bool(abs(out.main.objective - objective) < 1e-6), "geoplan_s": t_ours, "spopt_s": t_theirs,
        "speedup": t_theirs / t_ours,
    }


def compare_pmedian(region, reach30) -> dict:
    import pulp
    from spopt.locate import PMedian

    xy = region.candidates.geometry.get_coordinates().to_numpy()
    near = np.argsort(np.hypot(*(xy - xy.mean(axis=0)).T))[:8]
    matrix = dense(reach30.times_s.tocsr()[:, near], 1200.0)
    rows = np.flatnonzero(np.isfinite(matrix).any(axis=1))
    matrix = matrix[rows]
    people = region.demand.iloc[rows][GROUPS]
    w = priority_weights(people).to_numpy()
    sites = pd.DataFrame({"status": "candidate"}, index=reach30.site_ids[near])

    def ours():
        problem = Problem.from_matrix(matrix, people, sites, specs=KindSpec(p=3, threshold_min=15), cutoff_s=1200)
        return optimize(problem, model="pmedian")

    def theirs():
        model = PMedian.from_cost_matrix(np.where(np.isfinite(matrix), matrix, 1200.0), w, p_facilities=3)
        return model.solve(pulp.HiGHS(msg=False), results=False)

    t_ours, out = timed(ours, repeat=3)
    t_theirs, model = timed(theirs)
    objective = pulp.value(model.problem.objective)
    log.info("p-median: geoplan %.3f s, spopt %.2f s", t_ours, t_theirs)
    full_problem = Problem.from_matrix(
        reach30.times_s, region.demand[GROUPS], pd.DataFrame({"status": "candidate"}, index=reach30.site_ids),
        specs=KindSpec(p=10, threshold_min=15), cutoff_s=reach30.cutoff_s,
    )
    t_full, full = timed(lambda: optimize(full_problem, model="pmedian"))
    return {
        "instance": f"{len(rows)} cells within 20 min of 8 central candidates, p = 3, unserved = 20 min",
        "geoplan_objective": out.main.objective, "spopt_objective": objective,
        "same_objective": bool(abs(out.main.objective - objective) <= 1e-9 * abs(objective)),
        "geoplan_s": t_ours, "spopt_s": t_theirs, "speedup": t_theirs / t_ours,
        "whole_district_p10_30min": {
            "seconds": t_full, "status": full.main.status, "objective": full.main.objective, "reductions": full.reductions["station"],
        },
    }


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
    runs = []
    for spacing in spacings:
        candidates = candidates_from_network(region.network, region.boundary, spacing_m=spacing)
        t = time.perf_counter()
        reach = region.reach(candidates)
        reach_s = time.perf_counter() - t
        sites = pd.DataFrame({"status": "candidate"}, index=reach.site_ids)
        gc.collect()
        t = time.perf_counter()
        problem = Problem.from_matrix(reach.times_s, region.demand[GROUPS], sites, specs=KindSpec(p=p, threshold_min=15), cutoff_s=reach.cutoff_s)
        out = optimize(problem, model="mclp", time_limit_s=limit_s)
        seconds = time.perf_counter() - t
        run = {
            "spacing_m": spacing, "demand": int(reach.shape[0]), "candidates": int(reach.shape[1]), "reach_nonzeros": int(reach.times_s.nnz),
            "p": p, "seconds": seconds, "reach_s": reach_s, "status": out.main.status, "gap": out.main.gap,
            "objective": out.main.objective, "solve_s": out.main.solve_s, "reductions": out.reductions["station"],
            "model": {"variables": out.main.n_variables, "integer": out.main.n_integer, "constraints": out.main.n_constraints, "nonzeros": out.main.n_nonzeros},
        }
        runs.append(run)
        log.info("Hongshan %d x %d (spacing %g m, p=%d): %s in %.1f s", run["demand"], run["candidates"], spacing, p, out.main.status, seconds)
    solved = [r for r in runs if r["status"] == "optimal" and r["seconds"] <= limit_s]
    best = max(solved, key=lambda r: r["demand"] * r["candidates"]) if solved else None
    return {"region": "Hongshan 洪山区", "load_s": load_s, "runs": runs, "largest": best}


def wuchang_figures(time_limit_s: float) -> dict:
    figures = {}
    for label, facilities in (("no_existing", None), ("sample_facilities", SAMPLE_FACILITIES)):
        region = geoplan.load_region("wuchang", facilities=facilities, coord_system="gcj02" if facilities else None)
        plan = recommend(region, kinds=[KindSpec("station", p=5, threshold_min=15), KindSpec("canteen", p=3, threshold_min=10)])
        new = plan.new_sites
        sites = [
            {"kind": row["kind"], "site_id": site_id, "name": row["name"], "lon": row["lon"], "lat": row["lat"], "phase": int(row["phase"]),
             "adds_pop_60": round(row["gain_pop_60"]), "adds_pop_80": round(row["gain_pop_80"])}
            for site_id, row in new.iterrows()
        ]
        coverage = {
            kind: {g: plan.coverage.loc[(kind, g, t), ["before_pct", "after_pct"]].round(2).to_dict() for g in ("pop_60", "pop_80")}
            for kind, t in (("station", 15.0), ("canteen", 10.0))
        }
        entry = {"existing": int(len(region.facilities)), "new_sites": sites, "coverage_pct": coverage, "status": plan.status, "solve_s": plan.solver.solve_s}
        # fewest stations for 80 % of 60+ within 15 min: the community candidates, then with junctions every 300 m as well
        targets = {}
        try:
            plan80 = recommend(region, model="target", target_pct=80, time_limit_s=time_limit_s)
            targets["community_candidates"] = {"stations": len(plan80.new_sites), "status": plan80.status}
        except TargetUnreachable as exc:
            targets["community_candidates"] = {
                "reachable": False, "best_pct": round(float(exc.best_pct), 2),
                "stations_for_best": None if exc.plan is None else len(exc.plan.new_sites), "message": str(exc),
            }
        network = candidates_from_network(region.network, region.boundary, spacing_m=300)
        more = pd.concat([region.candidates, network])
        t = time.perf_counter()
        plan80 = recommend(region, model="target", target_pct=80, candidates=more, time_limit_s=time_limit_s)
        targets["community_and_300m_junctions"] = {
            "candidates": len(more), "stations": len(plan80.new_sites), "status": plan80.status, "gap": plan80.solver.gap,
            "bound": plan80.solver.bound, "seconds": time.perf_counter() - t,
            "after_pct_60": round(float(plan80.coverage.loc[("station", "pop_60", 15.0), "after_pct"]), 2),
        }
        entry["fewest_stations_80pct_60plus_15min"] = targets
        figures[label] = entry
        log.info("Wuchang (%s): %s", label, targets)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--spacings", type=float, nargs="+", default=[200.0, 150.0, 100.0])
    parser.add_argument("--limit-s", type=float, default=60.0)
    parser.add_argument("--target-time-limit-s", type=float, default=300.0)
    parser.add_argument("--skip-figures", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("geoplan").setLevel(logging.WARNING)

    region = geoplan.load_region("wuchang")
    reach = region.reach(region.candidates)
    reach30 = region.reach(region.candidates, cutoff_min=30)
    mclp = compare_mclp(region, reach, args.p)
    lscp = compare_lscp(region, reach)
    pmedian = compare_pmedian(region, reach30)
    big = largest(args.spacings, p=20, limit_s=args.limit_s)
    figures = None if args.skip_figures else wuchang_figures(args.target_time_limit_s)

    total_spopt = sum(r["spopt_s"] for r in mclp)
    total_ours = sum(r["geoplan_s"] for r in mclp)
    best = big["largest"]
    payload = {
        "speedup_vs_spopt": total_spopt / total_ours,
        "same_objective": all(r["same_objective"] for r in mclp) and lscp["same_objective"] and pmedian["same_objective"],
        "largest_optimal": None if best is None else {"demand": best["demand"], "candidates": best["candidates"], "seconds": round(best["seconds"], 2)},
        "details": {
            "speedup_definition": "sum over p of spopt MCLP build+solve time / geoplan build+solve time (best of 3), same matrix, HiGHS via PuLP",
            "wuchang_matrix": {"demand": int(reach.shape[0]), "candidates": int(reach.shape[1]), "nonzeros": int(reach.times_s.nnz), "cutoff_s": reach.cutoff_s},
            "mclp": mclp,
            "lscp_vs_target": lscp,
            "pmedian": pmedian,
            "largest": big,
            "wuchang_figures": figures,
            "versions": versions("geoplan", "pulp", "highspy", "spopt", "numpy", "scipy", "pandas"),
            "machine": machine(),
        },
    }
    write_json(RESULTS / "optimize.json", payload)
    print(f"speedup_vs_spopt {payload['speedup_vs_spopt']:.1f}x, same_objective {payload['same_objective']}, largest_optimal {payload['largest_optimal']}")
    for row in mclp:
        print(f"  MCLP p={row['p']:>2}: geoplan {row['geoplan_s']:.3f} s (no reductions {row['geoplan_without_reductions_s']:.3f} s), spopt {row['spopt_s']:.2f} s (x{row['speedup']:.0f}), same objective {row['same_objective']}, same sites {row['same_sites']}")
    print(f"  LSCP: {lscp['geoplan_objective']:.0f} = {lscp['spopt_objective']:.0f} sites, x{lscp['speedup']:.0f}; p-median x{pmedian['speedup']:.0f}")
    whole = pmedian["whole_district_p10_30min"]
    print(f"  p-median, whole district (7,909 x 124, p=10, 30 min): {whole['status']} in {whole['seconds']:.1f} s")
    for run in big["runs"]:
        print(f"  Hongshan {run['demand']} x {run['candidates']} (p=20): {run['status']} in {run['seconds']:.1f} s; model {run['reductions']['demand_after_merge']} rows x {run['reductions']['candidates_after_dominance']} candidates after reductions")
    if figures:
        for label, entry in figures.items():
            print(f"Wuchang, {label} ({entry['existing']} existing):")
            for site in entry["new_sites"]:
                print(f"  {site['phase']}. {site['kind']:<8} {site['site_id']:<8} {site['name']}: +{site['adds_pop_60']:,} aged 60+, +{site['adds_pop_80']:,} aged 80+")
            for key, value in entry["fewest_stations_80pct_60plus_15min"].items():
                print(f"  80 % of 60+ within 15 min, {key}: {({k: v for k, v in value.items() if k != 'message'})}")


if __name__ == "__main__":
    main()
