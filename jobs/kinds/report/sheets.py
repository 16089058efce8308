"""The report tables beside the main one, as workbook sheets.

Each sheet is built from the result the job returns (the dict GraphQL serves), not from the
arrays behind it, so a number in the workbook is the number the API shows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jobs.outputs import ResultFiles

INTERVAL_STATISTICS = ("median_ratio", "cod", "prd", "prb")
STATISTICS_HEADER = (
    "scope",
    "group",
    "count",
    "count_used",
    *(
        column
        for name in ("median_ratio", "mean_ratio", "weighted_mean_ratio", "cod", "prd", "prb")
        for column in (
            (name, f"{name}_ci_lower", f"{name}_ci_upper")
            if name in INTERVAL_STATISTICS
            else (name,)
        )
    ),
    "ki",
    "mki",
    "meets_standards",
    "meets_with_confidence",
    "sales_chased",
    "note",
)
STANDARDS_HEADER = (
    "scope",
    "group",
    "standard",
    "statistic",
    "value",
    "lower",
    "upper",
    "passes",
    "with_confidence",
)
EXCLUSIONS_HEADER = ("step", "excluded", "reason")
ROLL_TOTALS_HEADER = (
    "tax_year",
    "parcel_count",
    "assessed_parcel_count",
    "total_land_value",
    "total_improvement_value",
    "total_assessed_value",
)
ROLL_GROUP_HEADER = (
    "group",
    "parcel_count",
    "total_land_value",
    "total_improvement_value",
    "total_assessed_value",
    "median_assessed_value",
)


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _statistics_row(scope: str, stats: Mapping[str, Any]) -> list[Any]:
    row: list[Any] = [scope, stats["group"], stats["count"], stats["count_used"]]
    for column in STATISTICS_HEADER[4:]:
        name, _, bound = column.rpartition("_ci_")
        if name:
            interval = stats.get(f"{name}_ci")
            row.append(interval[bound] if interval else None)
        elif column == "sales_chased":
            chasing = stats.get("sales_chasing")
            row.append(chasing["flagged"] if chasing else None)
        else:
            row.append(stats.get(column))
    return row


def ratio_study_sheets(out: ResultFiles, county_id: str, study: Mapping[str, Any]) -> None:
    """Study (what was run), Statistics (the whole sample, then each group), Standards (each
    IAAO check of each sample) and Exclusions; the sales follow as the main table."""
    adjustment = study["time_adjustment"] or {}
    settings: list[tuple[str, Any]] = [
        ("county_id", county_id),
        ("tax_year", study["tax_year"]),
        ("sale_date_from", _date(study["sale_date_from"])),
        ("sale_date_to", _date(study["sale_date_to"])),
        ("trim", study["trim"]),
        ("iqr_factor", study["iqr_factor"]),
        ("quantile_lower", (study["quantiles"] or [None, None])[0]),
        ("quantile_upper", (study["quantiles"] or [None, None])[1]),
        ("group_by", study["group_by"]),
        ("zip_codes", ", ".join(study["zip_codes"] or []) or None),
        ("neighborhoods", ", ".join(study["neighborhoods"] or []) or None),
        ("time_adjustment", adjustment.get("method")),
        ("time_adjusted_to", _date(adjustment.get("adjusted_to"))),
        ("annual_trend_percent", adjustment.get("annual_trend_percent")),
    ]
    out.table("Study", ("setting", "value"), settings)
    scope = study["group_by"] or "group"
    samples = [("overall", study["overall"]), *((scope, g) for g in study["groups"])]
    out.table("Statistics", STATISTICS_HEADER, [_statistics_row(s, g) for s, g in samples])
    out.table(
        "Standards",
        STANDARDS_HEADER,
        [
            [s, g["group"], *(check[key] for key in STANDARDS_HEADER[2:])]
            for s, g in samples
            for check in g["standards"]
        ],
    )
    out.records("Exclusions", EXCLUSIONS_HEADER, study["exclusions"])


def assessment_roll_sheets(out: ResultFiles, roll: Mapping[str, Any]) -> None:
    """Totals, By property class and By neighborhood, after the roll itself."""
    out.records("Totals", ROLL_TOTALS_HEADER, [roll])
    out.records("By property class", ROLL_GROUP_HEADER, roll["by_property_class"])
    out.records("By neighborhood", ROLL_GROUP_HEADER, roll["by_neighborhood"])
