"""``geoplan rural``: the rural canteen network, rural homes and network coverage of a region, from the command line.

Registered on the main ``geoplan`` app by :func:`register` (one line at the end
of :mod:`geoplan.cli`), so this command lives with the library it shells.
"""

import dataclasses
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from geoplan.errors import InputError


def register(app: typer.Typer) -> None:
    """Add the ``rural`` command to ``app``."""
    from geoplan.cli import CacheOpt, CoordOpt, _friendly_errors, _progress, console

    @app.command("rural")
    @_friendly_errors
    def rural_command(
        region: Annotated[str, typer.Option("--region", "-r", help="A shipped region (huangpi_south) or a region .toml file.")] = "huangpi_south",
        preset: Annotated[Optional[str], typer.Option(help="A rural targets preset (rural_canteens) or your own .toml (default: the config's [rural] preset).")] = None,
        facilities: Annotated[Optional[Path], typer.Option(help="Facilities with their tier: district_centre (county kitchen), centre (town canteen), canteen (meal point), home (with beds and residents).")] = None,
        coord_system: CoordOpt = "wgs84",
        least_cost: Annotated[bool, typer.Option("--least-cost", help="Also find the cheapest new meal points, town canteens and kitchen that meet every target (exact).")] = False,
        delivery_min: Annotated[Optional[float], typer.Option(help="Minutes a delivery may take from a town canteen or the kitchen (default: the targets file's).")] = None,
        delivery_mode: Annotated[Optional[str], typer.Option(help="Travel mode of deliveries: ebike or car (default: the targets file's).")] = None,
        fallback: Annotated[str, typer.Option(help="'none': points no road reaches are not served; 'detour': straight line x 1.4 at the mode's speed, labelled.")] = "none",
        whole_district: Annotated[bool, typer.Option("--whole-district", help="Do not clip the region to the street network's extent (with --fallback detour for the rest).")] = False,
        time_limit: Annotated[float, typer.Option(help="--least-cost: solver time limit in seconds.")] = 60.0,
        out: Annotated[Optional[Path], typer.Option(help="Folder for the workbook, GeoJSON, JSON and map (default out/<region>).")] = None,
        cache_dir: CacheOpt = None,
    ) -> None:
        """Rural canteen network (county kitchen -> town canteen -> village meal point or delivery), home merges, and what the network covers."""
        from geoplan.config import load_config
        from geoplan.modes import get_mode
        from geoplan.region import load_region
        from geoplan.rural import load_rural_targets, rural_review

        if fallback not in ("none", "detour"):
            raise InputError(f"--fallback is 'none' or 'detour', got {fallback!r}.")
        config = load_config(region)
        if whole_district:
            if fallback == "none":
                raise InputError("--whole-district keeps the part of the district no street reaches; add --fallback detour to time it "
                                 "(straight line x detour, labelled), or bring the county's own streets in [network] path.")
            info = config.region
            config = dataclasses.replace(
                config, boundary=dataclasses.replace(config.boundary, clip_to_network=False),
                region=dataclasses.replace(info, name=f"{info.name}: whole district, straight-line fallback beyond the network",
                                           name_zh=f"{info.name_zh}(全区，路网外直线估算)"),
            )
        settings = config.rural
        targets = load_rural_targets(preset or (settings.preset if settings is not None else "rural_canteens"))
        changes = {k: v for k, v in (("delivery_min", delivery_min), ("delivery_mode", delivery_mode)) if v is not None}
        if changes:
            targets = targets.with_rules(**changes)
        get_mode(targets.rules.delivery_mode, config)  # an unknown mode is told before any work
        solver = None
        if least_cost:
            from geoplan.optimize import SolverOptions

            solver = SolverOptions(time_limit_s=time_limit)
        started = time.perf_counter()
        with _progress() as progress:
            step = progress.add_task("Loading region (network, population)", total=None)
            loaded = load_region(config, cache_dir=cache_dir, facilities=facilities, coord_system=coord_system if facilities else None)
            progress.update(step, completed=1, total=1)
            step = progress.add_task("Rural units, canteen network and homes", total=None)
            review = rural_review(loaded, targets, fallback=None if fallback == "none" else fallback)
            progress.update(step, completed=1, total=1)
            plan = None
            if least_cost:
                step = progress.add_task("Least-cost canteen network (exact)", total=None)
                plan = review.plan(solver=solver)
                progress.update(step, completed=1, total=1)
            step = progress.add_task("Writing the workbook, layers and map", total=None)
            written = review.write(out or Path("out") / loaded.key, plan=plan)
            progress.update(step, completed=1, total=1)
        _print(console, review, plan)
        console.print(escape(f"Files: {', '.join(sorted(str(p) for p in written.values()))}"), soft_wrap=True)
        console.print(f"Done in {time.perf_counter() - started:.1f} s.")


def _print(console, review, plan) -> None:
    info = review.region.config.region
    console.print(escape(f"{info.name_zh} {info.name}: {review.extent.text()}"), highlight=False, soft_wrap=True)
    for item, text in review.units.about():
        console.print(escape(f"{item}: {text}"), highlight=False, soft_wrap=True)
    console.print(escape(f"Modes: {'; '.join(review.modes_used())}" + ("; straight line x detour where no road reaches (fallback)" if review.fallback else "")),
                  highlight=False, soft_wrap=True)
    table = Table(title=f"{review.targets.name}: 农村助餐网络 canteen network")
    for column in ("target", "value", "figure", "pass", "mode", "detail"):
        table.add_column(column, overflow="fold")
    figures = review.summary if plan is None else plan.after.summary
    before = review.summary
    for target_id, row in figures.iterrows():
        value = "no data" if row["value"] is None else f"{row['value']:.1f}" + (" %" if row["unit"] == "%" else "")
        if plan is not None and before.at[target_id, "value"] is not None:
            value = f"{before.at[target_id, 'value']:.1f} -> {value}"
        verdict = {True: "yes", False: "no", None: "-"}[row["pass"]]
        table.add_row(escape(str(target_id)), value, escape(str(row["target"])), verdict, escape(str(row["mode"])), escape(str(row["detail"])))
    console.print(table)
    gaps = review.figures.gaps
    if len(gaps):
        table = Table(title="Unserved villages, most older people first 未覆盖村(按60+与80+加权)")
        for column in ("rank", "village", "town", "60+", "80+", "nearest delivery (min)"):
            table.add_column(column, no_wrap=True)
        for code, row in gaps.head(10).iterrows():
            table.add_row(str(row["rank"]), escape(str(code)), escape(str(row["town_code"])), f"{row.get('pop_60', 0):,.0f}",
                          f"{row.get('pop_80', 0):,.0f}", "-" if not row["delivery_min"] < 1e9 else f"{row['delivery_min']:.1f}")
        console.print(table)
    if review.homes is not None:
        summary = review.homes.summary()
        console.print(escape(f"Rural homes: {summary['homes']} reviewed, {summary['merge_candidates']} merge candidates, {summary['merges']} merges "
                             f"({summary['residents_moved']:,.0f} residents moved, every one to a spare bed; drive by {summary['mode']})."),
                      highlight=False, soft_wrap=True)
        for site_id, row in review.homes.proposals.iterrows():
            console.print(escape(f"  {site_id} -> {row['merge_into']}: {row['residents']:,.0f} residents, {row['drive_min']:.1f} min by {row['mode']}, "
                                 f"remoteness {row['remote_min']:.1f} -> {row['remote_after_min']:.1f} min"), highlight=False, soft_wrap=True)
    if plan is not None:
        summary = plan.summary()
        console.print(escape(f"Least-cost plan: {summary['new_sites']} new sites ({', '.join(f'{k} {v}' for k, v in summary['new_by_tier'].items())}) from "
                             f"{summary['candidates']} candidates, cost {summary['cost']:g} (greedy {summary['greedy_cost']}), {summary['status']}, "
                             f"solved in {summary['solve_s']:.2f} s."), highlight=False, soft_wrap=True)
        table = Table(title="New sites in build order 新建设施(按建设顺序)")
        for column in ("phase", "site", "tier", "mode", "town", "village", "lon", "lat"):
            table.add_column(column, no_wrap=True)
        for site_id, row in plan.new_sites.head(30).iterrows():
            village = row["village_code"] if isinstance(row["village_code"], str) else "-"
            table.add_row(f"{int(row['phase'])}", escape(str(site_id)), escape(str(row["tier"])), escape(str(row["mode"])), escape(str(row["town_code"])),
                          escape(village), f"{row['lon']:.5f}", f"{row['lat']:.5f}")
        console.print(table)
        late = plan.supply[~plan.supply["within_supply_drive"].astype(bool)] if len(plan.supply) else plan.supply
        if len(late):
            console.print(escape(f"{len(late)} town canteens lie beyond the kitchen's {review.targets.rules.supply_drive_min:g}-minute supply drive: "
                                 + ", ".join(map(str, late.index))), highlight=False, soft_wrap=True)
