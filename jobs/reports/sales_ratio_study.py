"""Sales ratio study: IAAO level, uniformity and vertical-equity statistics of a tax year."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.context import RunContext
from jobs.county_data import require_tax_year
from jobs.files import write_csv
from jobs.sales_data import load_sales
from jobs.spec import JobFailure
from jobs.stats.ratio import group_statistics, iqr_trim_mask, ratio_statistics

if TYPE_CHECKING:
    from jobs.kinds.report import SalesRatioStudyParams


def default_sale_window(tax_year: int) -> tuple[dt.date, dt.date]:
    """Sales of the calendar year before the tax year: those the assessments were set from."""
    return dt.date(tax_year - 1, 1, 1), dt.date(tax_year - 1, 12, 31)


ARMS_LENGTH = "arm's-length "


async def run(ctx: RunContext, params: SalesRatioStudyParams) -> dict[str, Any]:
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        tax_year = await require_tax_year(session, ctx.county_id, params.tax_year)
        window_from, window_to = default_sale_window(tax_year)
        date_from = params.sale_date_from or window_from
        date_to = params.sale_date_to or window_to
        sales = await load_sales(
            session,
            ctx.county_id,
            date_from=date_from,
            date_to=date_to,
            property_class=params.property_class,
            arms_length_only=params.arms_length_only,
            tax_year=tax_year,
        )
    n = len(sales)
    if n == 0:
        raise JobFailure(
            "NO_SALES",
            f"no {ARMS_LENGTH if params.arms_length_only else ''}sales with a {tax_year} "
            f"assessment between {date_from} and {date_to} in {ctx.county_id}",
        )
    await ctx.progress("computing statistics", processed=0, total=n, percent=25)
    options: dict[str, Any] = {
        "trim": params.trim,
        "iqr_factor": params.iqr_factor,
        "property_class_hint": params.property_class,
    }
    overall = ratio_statistics(sales.assessed_value, sales.sale_price, **options)
    groups = []
    labels = None
    if params.group_by != "none":
        await ctx.progress("computing group statistics", processed=n, total=n, percent=55)
        labels = sales.group(params.group_by)
        groups = group_statistics(sales.assessed_value, sales.sale_price, labels, **options)
    await ctx.progress("writing files", processed=n, total=n, percent=80)
    ratio = sales.assessed_value / sales.sale_price
    kept = iqr_trim_mask(ratio, params.iqr_factor) if params.trim == "iqr" else np.ones(n, bool)
    path = ctx.new_file("ratio_study_sales.csv")
    rows = write_csv(
        path,
        ["parcel_id", "sale_date", "sale_price", "assessed_value", "ratio", "group", "trimmed"],
        zip(
            sales.parcel_id,
            sales.sale_date.astype(str),
            sales.sale_price,
            sales.assessed_value,
            np.round(ratio, 6),
            labels if labels is not None else [""] * n,
            ~kept,
            strict=True,
        ),
    )
    return {
        "ratio_study": {
            "tax_year": tax_year,
            "sale_date_from": date_from.isoformat(),
            "sale_date_to": date_to.isoformat(),
            "trim": params.trim,
            "group_by": None if params.group_by == "none" else params.group_by,
            "overall": dataclasses.asdict(overall),
            "groups": [dataclasses.asdict(g) for g in groups],
        },
        "files": [ctx.result_file(path, "text/csv", rows)],
        "summary": {
            "sales": n,
            "sales_used": overall.count_used,
            "median_ratio": overall.median_ratio,
            "cod": overall.cod,
            "prd": overall.prd,
            "meets_standards": overall.meets_standards,
        },
    }
