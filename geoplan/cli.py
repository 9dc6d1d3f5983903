"""The ``geoplan`` command line: a thin shell over the library.

Reads its options once, runs the library, prints a summary table and writes
layers and maps. A :class:`~geoplan.errors.GeoplanError` is printed as a plain
message with what to fix, never as a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from geoplan.errors import GeoplanError

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


def _friendly_errors(command):
    """Print geoplan's own errors as one clear message and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GeoplanError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper


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
        table.add_row(key, f"{config.region.name_zh} {config.region.name}", config.region.city, str(config.source))
    console.print(table)


@app.command()
@_friendly_errors
def coverage(
    region: RegionArg = "wuchang",
    facilities: Annotated[Optional[Path], typer.Option(help="Existing facilities: CSV (lon/lat columns), GeoJSON or GPKG.")] = None,
    coord_system: Annotated[str, typer.Option(help="Coordinates of the facility file: wgs84, gcj02 (Amap/Tencent) or bd09 (Baidu).")] = "wgs84",
    drop_outside: Annotated[bool, typer.Option("--drop-outside", help="Leave out facilities outside the region instead of stopping.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Folder for GeoJSON/GPKG layers and tables (default out/<region>).")] = None,
    map_path: Annotated[Optional[Path], typer.Option("--map", help="Where to write the web map (default maps/<region>_coverage.html).")] = None,
    basemap: Annotated[str, typer.Option(help="'none' (works offline) or 'osm' (OpenStreetMap tiles, needs internet).")] = "none",
    circles: Annotated[bool, typer.Option(help="Draw care circles (isochrones) for every site.")] = True,
    cache_dir: CacheOpt = None,
) -> None:
    """Who lives within a 5/10/15-minute walk of care, in people, with gap layers and a web map."""
    from geoplan.analysis import analyse_coverage
    from geoplan.maps import coverage_map, save_map
    from geoplan.region import load_region

    started = time.perf_counter()
    with _progress() as progress:
        step = progress.add_task("Loading region (network, population, sites)", total=None)
        loaded = load_region(
            region, cache_dir=cache_dir, facilities=facilities,
            coord_system=coord_system if facilities else None, drop_outside=drop_outside,
        )
        progress.update(step, description=f"Loaded {loaded.config.region.name}", completed=1, total=1)
        step = progress.add_task("Walking times, coverage and care circles", total=None)
        report = analyse_coverage(loaded, with_circles=circles)
        progress.update(step, completed=1, total=1)
        step = progress.add_task("Writing layers and map", total=None)
        out_dir = out or Path("out") / loaded.key
        written = report.write(out_dir)
        map_file = save_map(coverage_map(report, basemap=basemap), map_path or Path("maps") / f"{loaded.key}_coverage.html")
        progress.update(step, completed=1, total=1)

    _print_context(report)
    _print_summary(report)
    console.print(f"Layers: {out_dir}/ ({', '.join(sorted(p.name for p in written.values()))})")
    console.print(f"Map:    {map_file}")
    console.print(f"Done in {time.perf_counter() - started:.1f} s.")


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=False)


def _print_context(report) -> None:
    region = report.region
    name = f"{region.config.region.name_zh} {region.config.region.name}"
    if report.site_source == "candidates":
        console.print(
            f"[yellow]No list of existing care facilities is known for {name}.[/] Coverage below is for a station at "
            f"every one of the {len(report.sites)} candidate sites (one per community unit): the most a "
            "one-station-per-community plan could reach. Give your facilities with --facilities FILE.",
            highlight=False,
        )
    else:
        console.print(f"{name}: {len(report.sites)} existing facilities.", highlight=False)
    if region.census_factors:
        factors = ", ".join(f"{g} x{f:.2f}" for g, f in region.census_factors.items())
        console.print(f"Population scaled to the 2020 census totals ({factors}).", highlight=False)
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


if __name__ == "__main__":  # python -m geoplan.cli
    app()
