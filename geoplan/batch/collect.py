"""The files across regions: the summary table (CSV, XLSX) and the review workbook, built from the tasks' files.

Both are rebuilt at the end of every run from the markers and partitions of
the batch's grid, in grid order, so a resumed run writes the same bytes as a
clean one. The summary has one row per region, scenario and threshold (one
row per region and scenario for a region skipped or failed, with the reason);
the coverage of the analysed part sits beside the people left out because the
street network does not reach them, and a coverage share of the whole
district counts those people as not covered.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoplan import _files
from geoplan.batch.task import BatchSettings, BatchTask, TaskOutcome, deterministic_xlsx, read_marker

#: Chinese beside the summary's column names in the workbooks.
_HEADERS_ZH = {
    "region": "区域", "name": "名称", "name_zh": "中文名称", "code": "代码", "scenario": "情景", "status": "状态",
    "threshold_min": "步行时间(分钟)", "area_km2": "面积(平方公里)", "analysed_pct": "分析面积占比(%)",
    "site_source": "设施来源", "sites": "设施数", "pop_60": "60岁以上(分析范围)", "covered_60": "覆盖60岁以上",
    "covered_60_pct": "60岁以上覆盖率(%)", "pop_80": "80岁以上(分析范围)", "covered_80": "覆盖80岁以上",
    "covered_80_pct": "80岁以上覆盖率(%)", "not_reachable_60": "无路可达60岁以上", "pop_60_outside_network": "路网范围外60岁以上",
    "pop_80_outside_network": "路网范围外80岁以上", "covered_60_pct_of_district": "60岁以上覆盖率(全区,%)",
    "covered_80_pct_of_district": "80岁以上覆盖率(全区,%)", "review": "规划目标评估", "targets_failed": "未达标指标",
    "plan_status": "优化状态", "reason": "原因", "origin": "配置来源", "warnings": "警告",
}


def write_summaries(tasks: list[BatchTask], outcomes: tuple[TaskOutcome, ...], settings: BatchSettings) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Write ``summary.csv``, ``summary.xlsx`` and (with a preset) ``review.xlsx`` into the batch folder; the summary table and the files."""
    out = settings.out_dir
    regions = list(dict.fromkeys(task.region.key for task in tasks))
    scenarios = list(dict.fromkeys(task.scenario.slug for task in tasks))
    pairs = sorted(zip(tasks, outcomes), key=lambda p: (regions.index(p[0].region.key), scenarios.index(p[0].scenario.slug)))
    records = [(task, outcome, read_marker(task) if outcome.status != "failed" else None) for task, outcome in pairs]
    table = summary_table(records, settings)
    written = {}
    path = out / "summary.csv"
    with _files.atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8-sig")
    written["summary_csv"] = path
    written["summary_xlsx"] = deterministic_xlsx(_files.write_workbook(out / "summary.xlsx", {
        "summary 摘要": _bilingual(table),
        "about 说明": _bilingual(_about(settings)),
    }))
    if settings.preset is not None:
        written["review_xlsx"] = deterministic_xlsx(_files.write_workbook(out / "review.xlsx", review_sheets(records, settings)))
    return table, written


def summary_table(records, settings: BatchSettings) -> pd.DataFrame:
    """One row per region, scenario and threshold (or per region and scenario with the reason when it did not run)."""
    rows = []
    for task, outcome, marker in records:
        marker = marker or {}
        config = task.region.config
        extent = marker.get("extent") or {}
        outside = extent.get("people_outside_network") or {}
        clipped = extent.get("clipped")
        review = marker.get("review") or {}
        plan = marker.get("plan") or {}
        status = marker.get("status", outcome.status) if outcome.status == "resumed" else outcome.status
        base = {
            "region": task.region.key, "name": config.region.name, "name_zh": config.region.name_zh, "code": task.region.code,
            "scenario": task.scenario.slug, "status": status,
            "area_km2": extent.get("area_km2"), "analysed_pct": extent.get("analysed_pct"),
            "site_source": marker.get("site_source"), "sites": marker.get("sites"),
            "pop_60_outside_network": outside.get("pop_60", 0.0 if clipped is False else None),
            "pop_80_outside_network": outside.get("pop_80", 0.0 if clipped is False else None),
            "review": _review_text(review) if status == "ok" else None,
            "targets_failed": ", ".join(review.get("failing", [])) or None,
            "plan_status": plan.get("status"),
            "reason": marker.get("reason") or outcome.reason,
            "origin": task.region.origin,
            "warnings": "; ".join(marker.get("warnings") or []) or None,
        }
        summary = _read_summary(task, settings) if status == "ok" else None
        if summary is None:
            rows.append({**base, "threshold_min": None})
            continue
        for threshold in settings.thresholds_min:
            row = {**base, "threshold_min": threshold}
            for group, short in (("pop_60", "60"), ("pop_80", "80")):
                if group not in summary.index.get_level_values("group"):
                    continue
                at = summary.loc[(group, threshold)]
                row[f"pop_{short}"] = round(float(at["population"]), 1)
                row[f"covered_{short}"] = round(float(at["covered"]), 1)
                row[f"covered_{short}_pct"] = _pct(at["covered"], at["population"])
                left_out = base[f"pop_{short}_outside_network"]
                row[f"covered_{short}_pct_of_district"] = (
                    _pct(at["covered"], at["population"] + left_out) if left_out is not None else None
                )
                if short == "60":
                    row["not_reachable_60"] = round(float(at["not_reachable_on_foot"]), 1)
            rows.append(row)
    columns = ["region", "name", "name_zh", "code", "scenario", "status", "threshold_min", "area_km2", "analysed_pct",
               "site_source", "sites", "pop_60", "covered_60", "covered_60_pct", "pop_80", "covered_80", "covered_80_pct",
               "not_reachable_60", "pop_60_outside_network", "pop_80_outside_network", "covered_60_pct_of_district",
               "covered_80_pct_of_district", "review", "targets_failed", "plan_status", "reason", "origin", "warnings"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    table["threshold_min"] = pd.Series([row["threshold_min"] for row in rows], dtype=object)
    table["sites"] = table["sites"].astype("Int64")
    return table


def review_sheets(records, settings: BatchSettings) -> dict[str, pd.DataFrame]:
    """The review workbook: every region against every target on one sheet, the long table, and what was not reviewed."""
    matrix, long_rows, not_reviewed = [], [], []
    order: list[str] = []
    for task, outcome, marker in records:
        marker = marker or {}
        review = marker.get("review") or {}
        status = marker.get("status", outcome.status) if outcome.status == "resumed" else outcome.status
        head = {"region": task.region.key, "name_zh": task.region.config.region.name_zh, "name": task.region.config.region.name,
                "scenario": task.scenario.slug}
        if status != "ok" or not review.get("reviewed"):
            reason = review.get("note") if status == "ok" else (marker.get("reason") or outcome.reason)
            not_reviewed.append({**head, "status": status if status != "ok" else "not reviewed", "reason": reason})
            continue
        targets = pd.read_parquet(settings.out_dir / task.partition("reviews") / "targets.parquet")
        row = {**head, "passed": _verdict(review.get("passed")), "targets_failed": ", ".join(review.get("failing", [])) or None,
               "units": review.get("units"), "site_source": marker.get("site_source"), "sites": marker.get("sites")}
        for target in targets.to_dict("records"):
            verdict = _verdict(_bool(target["pass"]))
            if target["id"] not in order:
                order.append(target["id"])
            row[target["id"]] = f"{_value_text(target['value'], target['unit'])} {verdict}"
            long_rows.append({
                **head, **{k: target.get(k) for k in ("id", "indicator_name", "value", "unit", "target")}, "pass": verdict,
                **{k: target.get(k) for k in ("status", "n_failing_units", "failing_units", "plan", "clause", "source")},
            })
        matrix.append(row)
    head_columns = ["region", "name_zh", "name", "scenario", "passed", "targets_failed", "units", "site_source", "sites"]
    districts = pd.DataFrame(matrix).reindex(columns=head_columns + order)
    if districts.empty:
        districts = pd.DataFrame({"note": ["no region was reviewed 无区域完成评估"]})
    longs = pd.DataFrame(long_rows)
    if longs.empty:
        longs = pd.DataFrame({"note": ["no region was reviewed 无区域完成评估"]})
    missing = pd.DataFrame(not_reviewed) if not_reviewed else pd.DataFrame({"note": ["every region was reviewed 全部区域已评估"]})
    return {
        "districts 区县": _bilingual(districts),
        "targets 指标": _bilingual(longs),
        "not reviewed 未评估": _bilingual(missing),
        "about 说明": _bilingual(_about(settings)),
    }


def _read_summary(task: BatchTask, settings: BatchSettings) -> pd.DataFrame | None:
    path = settings.out_dir / task.partition("summary") / "part.parquet"
    if not path.exists():
        return None
    return pd.read_parquet(path).set_index(["group", "threshold_min"]).sort_index()


def _about(settings: BatchSettings) -> pd.DataFrame:
    rows = [
        ("thresholds 步行时间", ", ".join(f"{t:g}" for t in settings.thresholds_min) + " min"),
        ("targets 规划目标", settings.preset or "none"),
        ("analysed part 分析范围",
         "each region is cut to the part its street network covers (the convex hull of the network's streets); the people outside "
         "are counted in pop_60_outside_network / pop_80_outside_network and as not covered in the *_pct_of_district columns"),
        ("skipped 跳过", f"a region whose network covers less than {100 * settings.min_network_share:g} % of its area is skipped, with the reason"),
        ("existing 现状",
         "the region's facility list; a region without one is analysed (and reviewed) with a station at every candidate site "
         "(site_source = candidates), the most a one-per-community plan can reach"),
        ("recommend 推荐", "new stations placed by the optimiser (p, model, walk) on top of the existing scenario's facilities"),
        ("files 文件", "layers per region and scenario: coverage/, gaps/, sites/, summary/, reviews/ (region=<key>/scenario=<slug>/), "
                       "extent/region=<key>/; the config each region ran: regions/<key>.toml"),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


def _review_text(review: dict[str, Any]) -> str | None:
    if not review:
        return None
    if not review.get("reviewed"):
        return f"not reviewed: {review.get('note')}"
    return {True: "pass", False: "fail", None: "not judged"}[review.get("passed")]


def _pct(part, whole) -> float | None:
    whole = float(whole)
    return round(100 * float(part) / whole, 3) if whole > 0 else None


def _bool(value) -> bool | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def _verdict(value: bool | None) -> str:
    return {True: "达标 pass", False: "未达标 fail", None: "无法判断 not judged"}[value]


def _value_text(value, unit) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:,.2f} {unit}" if unit else f"{value:,.2f}"


def _bilingual(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={c: _files.bilingual_header(str(c), _HEADERS_ZH) for c in frame.columns})
