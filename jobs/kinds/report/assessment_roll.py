"""Assessment roll: every parcel's values for a tax year, with totals by class and area."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import and_, bindparam, func, select, tuple_

from app.models import Assessment, Parcel
from jobs.context import RunContext
from jobs.county_data import require_tax_year
from jobs.kinds.report.params import AssessmentRollParams
from jobs.kinds.report.sheets import assessment_roll_sheets
from jobs.outputs import ResultFiles

BATCH = 5000
COLUMNS = (
    "parcel_id",
    "address",
    "zip_code",
    "neighborhood",
    "property_class",
    "land_value",
    "improvement_value",
    "assessed_value",
)


def _join(tax_year: Any) -> Any:
    return and_(
        Assessment.county_id == Parcel.county_id,
        Assessment.parcel_id == Parcel.parcel_id,
        Assessment.tax_year == tax_year,
    )


def _totals_query(county_id: Any, tax_year: Any) -> Any:
    """Counts, sums and medians of the county, of each class and of each neighbourhood.

    One statement (three grouping sets) rather than one per breakdown: for a small county
    the roll is a trivial job, and its round trips are most of what it costs.
    """
    by_class = func.coalesce(Parcel.property_class, "(none)")
    by_neighborhood = func.coalesce(Parcel.neighborhood, "(none)")
    return (
        select(
            func.grouping(by_class, by_neighborhood).label("level"),
            by_class,
            by_neighborhood,
            func.count(Parcel.id),
            func.count(Assessment.id),
            func.coalesce(func.sum(Assessment.land_value), 0.0),
            func.coalesce(func.sum(Assessment.improvement_value), 0.0),
            func.coalesce(func.sum(Assessment.assessed_value), 0.0),
            func.percentile_cont(0.5).within_group(Assessment.assessed_value),
        )
        .select_from(Parcel)
        .outerjoin(Assessment, _join(tax_year))
        .where(Parcel.county_id == county_id)
        .group_by(func.grouping_sets(by_class, by_neighborhood, tuple_()))
        .order_by("level", by_class, by_neighborhood)
    )


BY_CLASS, BY_NEIGHBORHOOD, COUNTY = 1, 2, 3
"""`grouping(class, neighborhood)` of each grouping set's rows."""


def _group(name: str, row: Any) -> dict[str, Any]:
    _, _, _, count, _, land, improvement, assessed, median = row
    return {
        "group": name,
        "parcel_count": count,
        "total_land_value": land,
        "total_improvement_value": improvement,
        "total_assessed_value": assessed,
        "median_assessed_value": median,
    }


def _roll_page(county_id: Any, tax_year: Any, after: Any) -> Any:
    """Up to BATCH roll rows after parcel `after`: keyset pages, so a county that fits in
    one page is read by one statement, with no cursor (and no transaction) around it."""
    query = (
        select(
            Parcel.parcel_id,
            Parcel.address,
            Parcel.zip_code,
            Parcel.neighborhood,
            Parcel.property_class,
            Assessment.land_value,
            Assessment.improvement_value,
            Assessment.assessed_value,
        )
        .outerjoin(Assessment, _join(tax_year))
        .where(Parcel.county_id == county_id)
        .order_by(Parcel.parcel_id)
        .limit(BATCH)
    )
    return query if after is None else query.where(Parcel.parcel_id > after)


@functools.cache
def _statements() -> tuple[Any, Any, Any]:
    """The totals, the first page and a later page, for `:county_id`, `:tax_year` (and
    `:after`): built once, as building them cost more than running them for a small county."""
    county_id: Any = bindparam("county_id")
    tax_year: Any = bindparam("tax_year")
    return (
        _totals_query(county_id, tax_year),
        _roll_page(county_id, tax_year, None),
        _roll_page(county_id, tax_year, bindparam("after")),
    )


async def run(ctx: RunContext, params: AssessmentRollParams) -> dict[str, Any]:
    await ctx.progress("loading roll", percent=2)
    totals_query, first_page, next_page = _statements()
    # Every read a kept statement on the run's row reader: for a small county the roll is a
    # trivial job, and a session's overhead around each read was most of its CPU.
    tax_year = await require_tax_year(ctx.rows, ctx.county_id, params.tax_year)
    where = {"county_id": ctx.county_id, "tax_year": tax_year}
    totals = await ctx.rows.all(totals_query, where)
    by_class = [_group(row[1], row) for row in totals if row.level == BY_CLASS]
    by_neighborhood = [_group(row[2], row) for row in totals if row.level == BY_NEIGHBORHOOD]
    county = [row for row in totals if row.level == COUNTY]
    total, assessed, land_total, improvement_total, assessed_total = (
        county[0][3:8] if county else (0, 0, 0.0, 0.0, 0.0)
    )
    roll = {
        "tax_year": tax_year,
        "assessed_parcel_count": assessed,
        "total_land_value": land_total,
        "total_improvement_value": improvement_total,
        "total_assessed_value": assessed_total,
        "by_property_class": by_class,
        "by_neighborhood": by_neighborhood,
    }
    written = 0
    async with ResultFiles(ctx, params.output_formats, f"assessment_roll_{tax_year}.xlsx") as out:
        roll_table = out.main_table(f"assessment_roll_{tax_year}.csv", "Roll", COLUMNS)
        after: str | None = None
        while True:
            if after is None:
                rows = await ctx.rows.all(first_page, where)
            else:
                rows = await ctx.rows.all(next_page, {**where, "after": after})
            if not rows:
                break
            written += await roll_table.write(rows)
            await ctx.progress(
                "writing roll",
                processed=written,
                total=total,
                percent=5 + 80 * written / max(total, 1),
            )
            if len(rows) < BATCH:
                break
            after = rows[-1].parcel_id
        await ctx.progress("totals", processed=written, total=total, percent=90)
        roll["parcel_count"] = written
        assessment_roll_sheets(out, roll)
    return {
        "assessment_roll": roll,
        "files": out.files,
        "summary": {
            "tax_year": tax_year,
            "parcels": written,
            "assessed_parcels": roll["assessed_parcel_count"],
        },
    }
