"""The ``geoplan`` command line: a thin shell over the library.

Reads its options once, runs the library, prints a summary table and writes
layers and maps. A :class:`~geoplan.errors.GeoplanError` is printed as a plain
message with what to fix, never as a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from geoplan.errors import GeoplanError, InputError
from geoplan.tiers import SERVED_BY

app = typer.Typer(
    help="geoplan: 15-minute elderly-care circles, coverage gaps and care-site planning for Chinese cities.",
    no_args_is_help=True,
    add_completion=False,
)
# piped output (logs, CI) gets a wide page rather than rich's default of 80 columns
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

RegionArg = Annotated[str, typer.Option("--region", "-r", help="A shipped region (wuchang, jiangan) or a region .toml file.")]
CacheOpt = Annotated[Optional[Path], typer.Option(help="Where prepared networks are cached (default $GEOPLAN_CACHE_DIR or ~/.cache/geoplan).")]
FacilitiesOpt = Annotated[Optional[Path], typer.Option(help="Existing facilities: CSV or Excel (.xlsx/.xls) with lon/lat or 经度/纬度 columns, GeoJSON, GPKG or shapefile.")]
SheetOpt = Annotated[Optional[str], typer.Option(help="Excel facility list: the sheet's name or number (default: the first sheet).")]
CoordOpt = Annotated[str, typer.Option(help="Coordinates of the facility file: wgs84, gcj02 (Amap/Tencent) or bd09 (Baidu).")]
DropOutsideOpt = Annotated[bool, typer.Option("--drop-outside", help="Leave out facilities outside the region instead of stopping.")]


def _friendly_errors(command):
    """Print geoplan's own errors as one clear message and exit with status 2; show the library's warnings."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with _library_warnings():
                return command(*args, **kwargs)
        except GeoplanError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


@contextlib.contextmanager
def _library_warnings():
    """Show each ``UserWarning`` (the library's ``warnings.warn``) as it happens, once, as a plain line; others as Python would."""
    original, shown = warnings.showwarning, set()

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, UserWarning):
            return original(message, category, filename, lineno, file, line)
        if str(message) not in shown:
            shown.add(str(message))
            err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():  # restores showwarning afterwards
        warnings.showwarning = show
        yield


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@app.command()
@_friendly_errors
def regions() -> None:
    """List the regions shipped with geoplan."""
    from geoplan.config import available_regions, load_config

    table = Table(title="Regions")
    for column in ("key", "name", "city", "config"):
        table.add_column(column)
    for key in available_regions():
        config = load_config(key)
        table.add_row(key, escape(f"{config.region.name_zh} {config.region.name}".strip()), escape(config.region.city), escape(str(config.source)))
    console.print(table)


@app.command()
@_friendly_errors
def coverage(
    region: RegionArg = "wuchang",
    facilities: FacilitiesOpt = None,
    sheet: SheetOpt = None,
    coord_system: CoordOpt = "wgs84",
    drop_outside: DropOutsideOpt = False,
    out: Annotated[Optional[Path], typer.Option(help="Folder for GeoJSON/GPKG layers and tables (default out/<region>).")] = None,
    map_path: Annotated[Optional[Path], typer.Option("--map", help="Where to write the web map (default maps/<region>_coverage.html).")] = None,
    basemap: Annotated[str, typer.Option(help="'none' (works offline) or 'osm' (OpenStreetMap tiles, needs internet).")] = "none",
    circles: Annotated[bool, typer.Option(help="Draw care circles (isochrones) for every site.")] = True,
    kind: Annotated[str, typer.Option(help="Facilities counted: 'all' (every kind), 'station' (day care: stations and centres, as the targets review counts), 'canteen' (meals: canteens and centres), 'home'.")] = "all",
    cache_dir: CacheOpt = None,
) -> None:
    """Who lives within a 5/10/15-minute walk of care, in people, with gap layers and a web map."""
    from geoplan.analysis import analyse_coverage
    from geoplan.maps import coverage_map, save_map

    started = time.perf_counter()
    with _progress() as progress:
        loaded = _load_region(progress, region, facilities, coord_system, drop_outside, cache_dir, sheet=sheet)
        step = progress.add_task("Walking times, coverage and care circles", total=None)
        report = analyse_coverage(loaded, with_circles=circles, serving=None if kind.strip().lower() == "all" else kind.strip().lower())
        progress.update(step, completed=1, total=1)
        step = progress.add_task("Writing layers and map", total=None)
        out_dir = out or Path("out") / loaded.key
        written = report.write(out_dir)
        map_file = save_map(coverage_map(report, basemap=basemap), map_path or Path("maps") / f"{loaded.key}_coverage.html")
        progress.update(step, completed=1, total=1)

    _print_context(report)
    _print_summary(report)
    console.print(escape(f"Layers: {out_dir}/ ({', '.join(sorted(p.name for p in written.values()))})"))
    console.print(escape(f"Map:    {map_file}"))
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")


@app.command()
@_friendly_errors
def recommend(
    region: RegionArg = "wuchang",
    facilities: FacilitiesOpt = None,
    sheet: SheetOpt = None,
    coord_system: CoordOpt = "wgs84",
    drop_outside: DropOutsideOpt = False,
    model: Annotated[str, typer.Option(help="mclp (most people for N sites), target (fewest sites for --target %), pmedian (shortest walks), consolidate (close under-used sites).")] = "mclp",
    stations: Annotated[Optional[int], typer.Option(help="New community care stations to place (mclp, pmedian: default 5; target: a cap, default none; consolidate: new sites it may open, default 5).")] = None,
    canteens: Annotated[int, typer.Option(help="Plan elderly canteens too, at most this many new ones (every model; target and consolidate use the same --target/--min-catchment).")] = 0,
    threshold: Annotated[Optional[float], typer.Option(help="Station walk in minutes (default 15).")] = None,
    canteen_threshold: Annotated[Optional[float], typer.Option(help="Canteen walk in minutes (default 10; with --canteens).")] = None,
    target: Annotated[Optional[float], typer.Option(help="target model: % of --group to bring within the walk, e.g. 80.")] = None,
    group: Annotated[str, typer.Option(help="Group the target and catchments count: pop_60, pop_65, pop_80, pop_total.")] = "pop_60",
    min_catchment: Annotated[Optional[float], typer.Option(help="consolidate: existing sites with fewer --group people within the walk may close.")] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds; a plan found by then is returned, labelled with its gap.")] = 60.0,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the plan (XLSX, GPKG, GeoJSON; default out/<region>).")] = None,
    map_path: Annotated[Optional[Path], typer.Option("--map", help="Where to write the before/after map (default maps/<region>_plan.html).")] = None,
    basemap: Annotated[str, typer.Option(help="'none' (works offline) or 'osm' (OpenStreetMap tiles).")] = "none",
    cache_dir: CacheOpt = None,
) -> None:
    """Where new care stations (and canteens) should go: exact optimisation, phased by what each site adds."""
    from geoplan.maps import coverage_map, save_map
    from geoplan.scenario import Scenario, run

    options = _recommend_options(model, stations=stations, canteens=canteens, threshold=threshold,
                                 canteen_threshold=canteen_threshold, target=target, group=group,
                                 min_catchment=min_catchment, time_limit=time_limit)
    started = time.perf_counter()
    with _progress() as progress:
        loaded = _load_region(progress, region, facilities, coord_system, drop_outside, cache_dir, sheet=sheet)
        step = progress.add_task(f"Optimising ({model}) and analysing the plan", total=None)
        result = run(loaded, Scenario(name=f"{model} plan", recommend=options))
        progress.update(step, completed=1, total=1)
        step = progress.add_task("Writing the plan and the before/after map", total=None)
        plan = result.plan
        out_dir = out or Path("out") / loaded.key
        stem = f"{loaded.key}_plan"
        written = [plan.to_xlsx(out_dir / f"{stem}.xlsx"), plan.to_gpkg(out_dir / f"{stem}.gpkg"), plan.to_geojson(out_dir / f"{stem}_sites.geojson")]
        map_file = save_map(
            coverage_map(result.report, basemap=basemap, newly_covered=plan.newly_covered),
            map_path or Path("maps") / f"{stem}.html",
        )
        progress.update(step, completed=1, total=1)

    _print_plan(plan, result)
    console.print(escape(f"Plan:   {', '.join(str(p) for p in written)}"))
    console.print(escape(f"Map:    {map_file}"))
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")


#: Library option names as the CLI spells them, for refusals that name an option.
_FLAGS = {"target_pct": "--target", "min_catchment": "--min-catchment", "target_group": "--group"}


def _recommend_options(model: str, *, stations, canteens, threshold, canteen_threshold, target, group, min_catchment, time_limit):
    """The CLI's options as a :class:`geoplan.optimize.PlanRequest`; an option the model does not use is refused."""
    from geoplan.optimize import KindSpec, ModelOptions, PlanRequest, SolverOptions

    if (stations is not None and stations < 0) or canteens < 0:
        raise InputError("--stations and --canteens count sites: give 0 or more.")
    if canteen_threshold is not None and not canteens:
        raise InputError("--canteen-threshold is the canteens' walk; it is used only with --canteens N (N > 0).")
    if model in ("mclp", "pmedian", "consolidate") and stations is None:
        stations = 5
    if model == "target" and target is None:
        raise InputError("The target model needs --target, the % of --group to reach (e.g. --target 80).")
    if model == "consolidate" and min_catchment is None:
        raise InputError("The consolidate model needs --min-catchment, the fewest people a site must serve to stay open.")
    shared = {"target_pct": target, "min_catchment": min_catchment, "target_group": group}
    kinds = [KindSpec("station", p=stations, threshold_min=threshold if threshold is not None else 15.0, **shared)]
    if canteens:
        kinds.append(KindSpec("canteen", p=canteens, threshold_min=canteen_threshold if canteen_threshold is not None else 10.0, **shared))
    try:
        return PlanRequest(kinds=tuple(kinds), options=ModelOptions(model), solver=SolverOptions(time_limit_s=time_limit))
    except InputError as exc:  # name the CLI's flag, not the library's argument
        message = str(exc)
        for name, flag in _FLAGS.items():
            message = message.replace(f"{name} of the", f"{flag} ({name}) of the")
        raise InputError(message) from None


def _print_plan(plan, result) -> None:
    stats = plan.solver
    optimal = "proven optimal" if plan.optimal else f"NOT proven optimal (status {stats.status}, gap {stats.gap})"
    console.print(f"Model {plan.model}, solved by {stats.solver}: {optimal}; objective {stats.objective:,.1f}, bound {stats.bound:,.1f}, {stats.solve_s:.2f} s.", highlight=False)
    new = plan.new_sites
    table = Table(title="Recommended new sites, in build order 推荐新建站点(按建设顺序)")
    for column in ("phase", "site", "kind", "lon", "lat", "adds 60+", "adds 80+"):
        table.add_column(column, justify="right" if column not in ("site", "kind") else "left", no_wrap=True)
    for site_id, row in new.iterrows():
        table.add_row(
            f"{int(row['phase'])}", escape(str(site_id)), escape(str(row["kind"])), f"{row['lon']:.5f}", f"{row['lat']:.5f}",
            f"{row.get('gain_pop_60', float('nan')):,.0f}", f"{row.get('gain_pop_80', float('nan')):,.0f}",
        )
    console.print(table)
    closed = plan.closed_sites
    if len(closed):
        console.print(escape(f"To close: {', '.join(f'{i} ({r})' for i, r in zip(closed.index, closed.get('reason', [''] * len(closed))))}"), highlight=False)
    change = result.change()
    table = Table(title="Within a walk of care, before and after the plan (people)")
    for column in ("group", "min", "before", "after", "change"):
        table.add_column(column, justify="right" if column != "group" else "left", no_wrap=True)
    for (group, threshold), row in change.iterrows():
        table.add_row(str(row["label"]), f"{threshold:g}", f"{row['covered_before']:,.0f} {row['covered_pct_before']:5.1f}%",
                      f"{row['covered_after']:,.0f} {row['covered_pct_after']:5.1f}%", f"{row['change']:+,.0f}")
    console.print(table)


def _load_region(progress: Progress, region: str, facilities: Path | None, coord_system: str, drop_outside: bool,
                 cache_dir: Path | None, *, sheet: str | None = None):
    """Load the region as a progress step (the coordinate system and sheet apply only to a facility file)."""
    from geoplan.region import load_region

    if sheet is not None and facilities is None:
        raise InputError("--sheet chooses the sheet of an Excel facility list; give the list with --facilities FILE.xlsx too.")
    step = progress.add_task("Loading region (network, population, sites)", total=None)
    loaded = load_region(
        region, cache_dir=cache_dir, facilities=facilities, coord_system=coord_system if facilities else None,
        drop_outside=drop_outside, sheet=sheet,
    )
    progress.update(step, description=f"Loaded {loaded.config.region.name}", completed=1, total=1)
    return loaded


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=False)


def _print_context(report) -> None:
    region = report.region
    name = escape(f"{region.config.region.name_zh} {region.config.region.name}".strip())
    if report.site_source == "candidates":
        where, reach = _candidate_origin(region.candidates)
        console.print(
            f"[yellow]No list of existing care facilities is known for {name}.[/] Coverage below is for a station at "
            f"every one of the {len(report.sites)} candidate sites ({where}): the most {reach} could reach. "
            "Give your facilities with --facilities FILE.",
            highlight=False,
        )
    else:
        kinds = report.sites["kind"].value_counts().items() if "kind" in report.sites else [("station", len(report.sites))]
        counted = ", ".join(f"{k} {n}" for k, n in kinds)
        left = len(region.facilities) - len(report.sites) if report.site_source == "facilities" else 0
        mixed = "kind" in report.sites and not report.sites["kind"].isin(SERVED_BY["station"]).all()
        note = f"; {left} of other kinds not counted (--kind all counts them)" if left > 0 else (
            "; every kind counts (--kind station counts day care only, as `geoplan targets` does)" if mixed else "")
        console.print(f"{name}: {len(report.sites)} existing facilities counted ({counted}){note}.", highlight=False)
    if region.census_factors:
        factors = ", ".join(f"{g} x{f:.2f}" for g, f in region.census_factors.items())
        census = region.config.census
        to = "the totals given in [census]" if census is not None and census.totals else "the 2020 census totals"
        kept = [g for g in region.groups if g not in region.census_factors]
        left = f"; {', '.join(kept)} keep the raster's counts" if kept else ""
        console.print(escape(f"Population scaled to {to} ({factors}){left}."), highlight=False)
    elif region.config.population is not None:
        console.print(escape(
            "Population as the raster counts it: no census totals in the config ([census] code or totals rescales it; "
            "WorldPop holds 60-74 % of the 2020 census 60+ in Wuhan's old central districts)."), highlight=False,
        )
    demand = region.demand
    detached = demand["component"] > 0
    if detached.any():
        console.print(
            f"{demand.loc[detached, 'pop_60'].sum():,.0f} people aged 60+ live by streets detached from the main "
            "network: they are counted, and reach only sites on their own piece.", highlight=False,
        )
    if "unit_id" in demand:
        outside_units = demand["unit_id"] < 0
        console.print(
            f"{demand.loc[outside_units, 'pop_60'].sum():,.0f} people aged 60+ live outside every community unit "
            "(the units do not cover the whole district).", highlight=False,
        )


def _candidate_origin(candidates) -> tuple[str, str]:
    """Where a region's candidate sites came from, and the plan 'every candidate open' stands for."""
    source = candidates.attrs.get("source")
    if source == "communities":
        return "one per community unit, on a street inside it", "a one-station-per-community plan"
    if source == "network":
        spacing = candidates.attrs.get("spacing_m")
        return f"street junctions, about one per {spacing:g} m square" if spacing else "street junctions", "stations that close together"
    if source == "file":
        return escape(f"listed in {Path(candidates.attrs.get('path', 'a file')).name}"), "a plan opening all of them"
    return "candidate sites", "a plan opening all of them"


def _print_summary(report) -> None:
    summary = report.summary
    thresholds = sorted(summary.index.get_level_values("threshold_min").unique())
    table = Table(title="Within a walk of care 步行可达养老服务 (people, % of group)")
    table.add_column("group 年龄组", no_wrap=True)
    table.add_column("people 人口", justify="right", no_wrap=True)
    for threshold in thresholds:
        table.add_column(f"≤ {threshold:g} min", justify="right", no_wrap=True)
    table.add_column(f"> {max(thresholds):g} min", justify="right", no_wrap=True)
    table.add_column("no street near 无路可达", justify="right", no_wrap=True)
    for group in summary.index.get_level_values("group").unique():
        rows = summary.loc[group]
        cells = [f"{rows.loc[t, 'covered']:,.0f} {rows.loc[t, 'covered_pct']:5.1f}%" for t in thresholds]
        last = rows.loc[max(thresholds)]
        table.add_row(
            str(last["label"]), f"{last['population']:,.0f}", *cells,
            f"{last['not_covered']:,.0f}", f"{last['not_reachable_on_foot']:,.0f}",
        )
    console.print(table)


@app.command("targets")
@_friendly_errors
def targets_command(
    region: RegionArg = "wuchang",
    preset: Annotated[str, typer.Option(help="A shipped targets preset (shuimogou, yunfu, baodi, xinjiang, chaoyang) or your own targets .toml file.")] = "shuimogou",
    facilities: Annotated[Optional[Path], typer.Option(help="Existing facilities with their tier (kind) and, where known, floor area, land, beds, nursing beds, meals per day, unit codes.")] = None,
    sheet: SheetOpt = None,
    coord_system: CoordOpt = "wgs84",
    drop_outside: DropOutsideOpt = False,
    household_size: Annotated[Optional[float], typer.Option(help="People per household (户规模) for the floor-space standard (default: the 2020 census figure).")] = None,
    min_catchment: Annotated[Optional[float], typer.Option(help="Review consolidation: stations/canteens with fewer 60+ within their walk are under-used.")] = None,
    least_cost: Annotated[bool, typer.Option("--least-cost", help="Also find the fewest new facilities that make every failing target pass (exact, with the greedy plan beside it).")] = False,
    spacing: Annotated[float, typer.Option(help="--least-cost: street-junction candidates about this many metres apart (plus one per community unit).")] = 300.0,
    time_limit: Annotated[float, typer.Option(help="--least-cost: solver time limit in seconds.")] = 60.0,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the review workbook, GeoJSON/GPKG and JSON (default out/<region>).")] = None,
    map_path: Annotated[Optional[Path], typer.Option("--map", help="Where to write the review map (default maps/<region>_<preset>_review.html).")] = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Review the district against a plan's targets: which streets (or zones) and communities pass, and the least cost to pass."""
    from geoplan.maps import save_map
    from geoplan.targets import ConsolidationOptions, load_targets, targets
    from geoplan.targets.review_map import review_map

    target_set = load_targets(Path(preset) if preset.endswith(".toml") else preset)
    # the options first, so a bad value is told before minutes of work
    consolidation = ConsolidationOptions(min_catchment=min_catchment)
    if household_size is not None and not household_size > 0:
        raise InputError(f"--household-size is people per household (户规模), a positive number; got {household_size:g}.")
    if least_cost:
        from geoplan.optimize import SolverOptions

        solver = SolverOptions(time_limit_s=time_limit)
        if not spacing > 0:
            raise InputError(f"--spacing is metres between candidate junctions, a positive number; got {spacing:g}.")
    started = time.perf_counter()
    with _progress() as progress:
        loaded = _load_region(progress, region, facilities, coord_system, drop_outside, cache_dir, sheet=sheet)
        step = progress.add_task(f"Planning units and the review against {target_set.name}", total=None)
        review = targets(loaded, target_set, household_size=household_size, consolidation=consolidation)
        progress.update(step, completed=1, total=1)
        passing = None
        if least_cost:
            from geoplan.targets.to_pass import least_cost_to_pass

            step = progress.add_task("Least cost to pass (exact)", total=None)
            passing = least_cost_to_pass(review, spacing_m=spacing, solver=solver)
            progress.update(step, completed=1, total=1)
        step = progress.add_task("Writing the workbook, layers and map", total=None)
        out_dir = out or Path("out") / loaded.key
        written = review.write(out_dir)
        if passing is not None:
            stem = f"{review.key}_least_cost"
            written["least_cost_xlsx"] = passing.to_xlsx(out_dir / f"{stem}.xlsx")
            written["least_cost_sites"] = passing.to_geojson(out_dir / f"{stem}_sites.geojson")
        map_file = save_map(review_map(review), map_path or Path("maps") / f"{review.key}_review.html")
        progress.update(step, completed=1, total=1)

    _print_review(review)
    if passing is not None:
        _print_pass_plan(passing)
    console.print(escape(f"Review: {out_dir}/ ({', '.join(sorted(p.name for p in written.values()))})"))
    console.print(escape(f"Map:    {map_file}"))
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")


def _print_review(review) -> None:
    info = review.region.config.region
    counts = ", ".join(f"{k} {int((review.facilities['kind'] == k).sum())}" for k in ("station", "canteen", "centre", "district_centre", "home"))
    console.print(escape(f"{info.name_zh} {info.name}".strip() + f" against {review.targets.name}: {len(review.facilities)} facilities ({counts})."), highlight=False)
    console.print(escape(f"Units: {review.units_source}."), highlight=False)
    if review.missing_attributes:
        console.print(escape(f"The facility list has no column for {', '.join(review.missing_attributes)}: indicators that need them say 'no data'."), highlight=False)
    table = Table(title="Targets 规划目标 (value, target, pass)")
    for column in ("id", "indicator", "value", "target", "pass", "detail"):
        table.add_column(column, justify="right" if column == "value" else "left", overflow="fold")
    verdict = {True: "[green]pass 达标[/]", False: "[red]fail 未达标[/]"}
    for target_id, row in review.summary.iterrows():
        value = row["value"]
        shown = "–" if value is None or value != value else (
            f"{value:.1f} %" if row["unit"] == "%" else f"{value:,.0f}" if row["unit"] == "facilities" else f"{value:,.2f} {row['unit']}"
        )
        status = verdict.get(row["pass"], escape(str(row["status"])) if row["status"] not in ("ok", "ok (reported)") else "–")
        table.add_row(escape(str(target_id)), escape(str(row["indicator"])), escape(shown), escape(str(row["target"])), status, escape(str(row["detail"])))
    console.print(table)
    for level, label in (("street", review.street_label), ("community", "社区 community")):
        failing = review.failing_units(level)
        units = review.streets if level == "street" else review.communities
        judged = units["passes"].map(lambda v: v is not None).sum()
        names = ", ".join(f"{c} {n}" if isinstance(n, str) and not n.startswith("社区单元") else str(c) for c, n in zip(failing.index, failing["name"]))
        console.print(escape(f"{label}: {len(failing)} of {judged} fail a target" + (f": {names}" if len(failing) else ".")), highlight=False, soft_wrap=True)
    if len(review.consolidation):
        merges = review.consolidation
        console.print(escape(f"Consolidation: {len(merges)} under-used facilities, {int(merges['can_merge'].sum())} could merge: ")
                      + escape("; ".join(f"{i} -> {r['merge_into'] if isinstance(r['merge_into'], str) else 'none'} ({r['reason']})"
                                         for i, r in merges.iterrows())), highlight=False, soft_wrap=True)


def _print_pass_plan(passing) -> None:
    plan = passing.plan
    stats = plan.solver
    optimal = "proven optimal" if plan.optimal else f"NOT proven optimal (status {stats.status}, gap {stats.gap})"
    by_kind = ", ".join(f"{k} {len(v)}" for k, v in plan.opened.items())
    console.print(
        f"Least cost to pass: {passing.new_sites.shape[0]} new facilities ({by_kind}) from {passing.n_candidates:,} candidates, "
        f"cost {plan.cost:,.3f} (greedy {plan.greedy_cost if plan.greedy_cost is None else f'{plan.greedy_cost:,.3f}'}), {optimal}, {stats.solve_s:.2f} s.",
        highlight=False,
    )
    table = Table(title="Requirements before and after the plan 规划前后")
    for column in ("id", "description", "before", "after", "passed"):
        table.add_column(column, justify="right" if column in ("before", "after") else "left", overflow="fold")
    for rid, row in passing.requirement_table.iterrows():
        table.add_row(escape(str(rid)), escape(str(row["description"])), f"{row['before']:g}", f"{row['after']:g}", "yes" if row["passed"] else "no")
    console.print(table)
    if len(passing.skipped):
        console.print(escape("Not planned: " + "; ".join(f"{i} ({r})" for i, r in passing.skipped["reason"].items())), highlight=False, soft_wrap=True)
    sites = passing.new_sites
    table = Table(title="New facilities in build order 新建设施(按建设顺序)")
    for column in ("phase", "site", "kind", "street/zone", "community", "lon", "lat"):
        table.add_column(column, no_wrap=True)
    for site_id, row in sites.head(30).iterrows():
        table.add_row(f"{int(row['phase'])}", escape(str(site_id)), escape(str(row["kind"])), escape(str(row["street_code"])),
                      escape(str(row["community_code"])), f"{row['lon']:.5f}", f"{row['lat']:.5f}")
    console.print(table)
    if len(sites) > 30:
        console.print(f"... and {len(sites) - 30} more (see the workbook).")


@app.command("batch", context_settings={"allow_extra_args": True})
@_friendly_errors
def batch_command(
    ctx: typer.Context,
    districts: Annotated[Optional[str], typer.Option(help="Districts made from --template's boundary file: 'all', or codes or keys, comma-separated (420115,jiangxia).")] = None,
    template: Annotated[str, typer.Option(help="The region config each district is made from (a shipped name or a .toml file).")] = "wuchang",
    region: Annotated[Optional[list[str]], typer.Option("--region", "-r", help="A region config run as it is (a shipped name or a .toml file); repeat for more.")] = None,
    scenario: Annotated[Optional[list[str]], typer.Option(help='"existing" (the facilities, else a station at every candidate site) or "recommend p=N" (N new stations; model=pmedian, threshold=MIN); repeat for a grid. Default: existing.')] = None,
    thresholds: Annotated[Optional[list[str]], typer.Option(help="Walks in minutes: --thresholds 10,15 (or --thresholds 10 --thresholds 15). Default: 5,10,15.")] = None,
    preset: Annotated[str, typer.Option(help="Plan targets each result is reviewed against (shipped preset or .toml file); 'none': no review.")] = "shuimogou",
    workers: Annotated[int, typer.Option(help="Local Dask worker processes (one thread each).")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="A running Dask scheduler (tcp://host:8786) instead of local workers; its workers need geoplan, the data and --out at the same paths.")] = None,
    out: Annotated[Path, typer.Option(help="The batch folder: layers, summary.csv/.xlsx, review.xlsx; run it again to resume.")] = Path("out/batch"),
    min_network_share: Annotated[float, typer.Option(help="Skip a region whose street network covers less than this % of its area.")] = 1.0,
    time_limit: Annotated[float, typer.Option(help="Solver time limit per recommended plan, in seconds.")] = 60.0,
    cache_dir: CacheOpt = None,
) -> None:
    """Coverage (and reviews) of many regions at once, on Dask: every district of a city under a grid of scenarios and thresholds."""
    from rich.progress import BarColumn, MofNCompleteColumn

    from geoplan.batch import ScenarioSpec, check_batch_folder, configured_region, district_regions, run_batch
    from geoplan.targets import load_targets

    if ctx.args:
        numbers = all(a.replace(".", "", 1).isdigit() for a in ctx.args)
        raise InputError(
            f"Unexpected {'numbers' if numbers else 'arguments'} {' '.join(ctx.args)}: "
            + ("give the thresholds as --thresholds 10,15 (or --thresholds 10 --thresholds 15)." if numbers else "see geoplan batch --help.")
        )
    if districts is None and not region:
        raise InputError("Say which regions to run: --districts all (every district of --template's boundary file), or --region NAME (repeatable).")
    if not 0 <= min_network_share < 100:
        raise InputError(f"--min-network-share is a percentage of a region's area, 0 to 100; got {min_network_share:g}.")
    values = [v.strip() for item in (thresholds or ["5,10,15"]) for v in item.replace(" ", ",").split(",") if v.strip()]
    try:
        minutes = [float(v) for v in values]
    except ValueError:
        raise InputError(f"--thresholds takes minutes, e.g. --thresholds 10,15; got {', '.join(values)}.") from None
    grid = [ScenarioSpec.parse(s) for s in scenario or ["existing"]]  # the options first, so a bad value is told before any work
    if preset.lower() != "none":
        load_targets(Path(preset) if preset.endswith(".toml") else preset)
    check_batch_folder(out)
    regions_dir = out.resolve() / "regions"
    chosen = []
    if districts is not None:
        codes = None if districts.strip().lower() == "all" else [c for c in districts.split(",") if c.strip()]
        chosen += district_regions(Path(template) if template.endswith(".toml") else template, codes, directory=regions_dir,
                                   cache_dir=cache_dir)
    chosen += [configured_region(Path(r) if r.endswith(".toml") else r, directory=regions_dir, cache_dir=cache_dir) for r in region or []]

    started = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=False) as progress:
        bar = progress.add_task(f"Batch: {len(chosen)} regions x {len(grid)} scenarios", total=len(chosen) * len(grid))

        def advance(outcome, done, total):
            progress.update(bar, completed=done, description=f"Batch: {outcome.region}/{outcome.scenario} {outcome.status}")

        result = run_batch(
            chosen, grid, out_dir=out, thresholds_min=minutes, preset=None if preset.lower() == "none" else preset,
            workers=workers, scheduler=scheduler, cache_dir=cache_dir, min_network_share=min_network_share / 100,
            time_limit_s=time_limit, progress=advance,
        )
    _print_batch(result)
    counts = {s: len(result.by_status(s)) for s in ("ok", "resumed", "skipped", "failed")}
    console.print(escape(f"Batch folder: {result.out_dir}/ (summary.csv, summary.xlsx{', review.xlsx' if 'review_xlsx' in result.files else ''}; "
                         f"layers coverage/, gaps/, sites/, extent/; timings in {result.log_path.relative_to(result.out_dir)})"))
    console.print(f"Done in {time.perf_counter() - started:.1f} s. Tasks (region x scenario): {counts['ok']} ran, {counts['resumed']} resumed "
                  f"(done before), {counts['skipped']} skipped, {counts['failed']} failed; workers: {result.workers or result.scheduler}.", highlight=False)
    if counts["failed"]:
        raise typer.Exit(code=1)


def _print_batch(result) -> None:
    """One row per region and scenario at the largest threshold, then why any region was skipped or failed."""
    summary = result.summary
    thresholds = [t for t in summary["threshold_min"].dropna().unique()]
    top = max(thresholds) if thresholds else None
    table = Table(title=f"Older people within {top:g} min of care, in the analysed part and in the whole district "
                        "(people outside the street network counted as not covered)" if top else "Batch")
    for column in ("region", "scenario", "status", "sites", "area", f"60+ ≤{top:g}" if top else "60+", "60+ all", f"80+ ≤{top:g}" if top else "80+",
                   "60+ left out", "review"):
        table.add_column(column, justify="left" if column in ("region", "scenario", "status", "sites", "review") else "right", no_wrap=True)
    shown = summary[(summary["threshold_min"] == top) | summary["threshold_min"].isna()] if top else summary
    pct = lambda v: "–" if v is None or v != v else f"{v:.1f} %"
    people = lambda v: "–" if v is None or v != v else f"{v:,.0f}"
    style = {"ok": "green", "skipped": "yellow", "failed": "red"}
    source = {"candidates": "cand.", "facilities": "fac.", "scenario": "plan"}
    for row in shown.to_dict("records"):
        status = row["status"]
        review = row["review"] if isinstance(row["review"], str) else "–"
        sites = f"{row['sites']:,} {source.get(row['site_source'], '')}".strip() if row["sites"] is not None and row["sites"] == row["sites"] else "–"
        table.add_row(
            escape(f"{row['name_zh']} {row['region']}"), escape(str(row["scenario"])), f"[{style.get(status, 'white')}]{status}[/]",
            escape(sites), pct(row["analysed_pct"]), pct(row.get("covered_60_pct")), pct(row.get("covered_60_pct_of_district")),
            pct(row.get("covered_80_pct")), people(row["pop_60_outside_network"]),
            escape("not reviewed" if review.startswith("not reviewed") else review),
        )
    console.print(table)
    console.print("sites: cand. = a station at every candidate site (no facility list), plan = after the recommended plan; area = the share "
                  "the street network covers. Why a region was not reviewed: review.xlsx.", highlight=False, soft_wrap=True)
    for row in shown.to_dict("records"):
        if row["status"] in ("skipped", "failed"):
            console.print(escape(f"{row['status']}: {row['region']}/{row['scenario']}: {row['reason']}"), highlight=False, soft_wrap=True)
    for outcome in result.outcomes:
        for message in outcome.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(f'{outcome.region}/{outcome.scenario}: {message}')}", highlight=False, soft_wrap=True)


# `geoplan rural`: outer and rural districts (geoplan.rural)
from geoplan.rural.cli import register as _register_rural  # noqa: E402

_register_rural(app)


if __name__ == "__main__":  # python -m geoplan.cli
    app()
