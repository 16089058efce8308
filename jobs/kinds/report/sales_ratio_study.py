"""Sales ratio study: IAAO level, uniformity and vertical-equity statistics of a tax year."""

from __future__ import annotations

import csv
import datetime as dt
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from jobs.context import RunContext
from jobs.county_data import require_tax_year
from jobs.kinds.report.html_report import CONTENT_TYPE, RatioStudyReport, write_ratio_study_html
from jobs.kinds.report.params import SalesRatioStudyParams
from jobs.sales_data import load_sales
from jobs.spec import JobFailure
from jobs.stats.ratio import (
    RatioStatistics,
    cod_range,
    group_statistics,
    iqr_trim_mask,
    ratio_statistics,
    statistics_json,
)

BATCH = 5000
"""CSV rows per write, and so per progress event."""

GROUP_BATCHES = 20
"""Progress events while groups are computed: about one per twentieth of the sales."""

CSV_HEADER = ("parcel_id", "sale_date", "sale_price", "assessed_value", "ratio", "group", "trimmed")


def default_sale_window(tax_year: int) -> tuple[dt.date, dt.date]:
    """Sales of the calendar year before the tax year: those the assessments were set from."""
    return dt.date(tax_year - 1, 1, 1), dt.date(tax_year - 1, 12, 31)


ARMS_LENGTH = "arm's-length "


def group_batches(labels: npt.NDArray[np.object_], batches: int) -> list[npt.NDArray[np.intp]]:
    """Sale indices of runs of whole groups, in group-name order, about n / batches sales each.

    Why: `group_statistics` over all groups is one long call, and a county with hundreds of
    neighbourhoods would sit at one percentage for its whole duration. Each group's statistics
    depend only on its own sales (and a shared seed), so computing runs of groups one call at a
    time gives identical numbers while progress moves between runs. Names are ordered as
    `group_statistics` orders them (as strings), so the runs concatenate in its order.
    """
    names = labels.astype(np.str_)
    _, inverse = np.unique(names, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    ends = np.cumsum(np.bincount(inverse))
    targets = np.linspace(0, names.size, batches + 1)[1:]
    cuts = ends[np.unique(np.searchsorted(ends, targets, side="left"))]
    return np.split(order, cuts[:-1])


async def run(ctx: RunContext, params: SalesRatioStudyParams) -> dict[str, Any]:
    selection = params.sales
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        tax_year = await require_tax_year(session, ctx.county_id, params.tax_year)
        window_from, window_to = default_sale_window(tax_year)
        date_from = selection.sale_date_from or window_from
        date_to = selection.sale_date_to or window_to
        sales = await load_sales(
            session,
            ctx.county_id,
            date_from=date_from,
            date_to=date_to,
            property_class=selection.property_class,
            zip_codes=selection.zip_codes,
            neighborhoods=selection.neighborhoods,
            arms_length_only=selection.arms_length_only,
            tax_year=tax_year,
        )
    n = len(sales)
    if n == 0:
        raise JobFailure(
            "NO_SALES",
            f"no {ARMS_LENGTH if selection.arms_length_only else ''}sales with a {tax_year} "
            f"assessment between {date_from} and {date_to} in {ctx.county_id} "
            f"({selection.describe()})",
        )
    await ctx.progress("computing statistics", processed=0, total=n, percent=20)
    cod_hint = params.cod_standard or selection.property_class
    options: dict[str, Any] = {
        "trim": params.trim,
        "iqr_factor": params.iqr_factor,
        "property_class_hint": cod_hint,
    }
    assessed, price = sales.assessed_value, sales.sale_price
    overall = ratio_statistics(assessed, price, **options)
    await ctx.progress("computing statistics", processed=n, total=n, percent=40)
    groups: list[RatioStatistics] = []
    labels = None
    if params.group_by != "none":
        labels = sales.group(params.group_by)
        done = 0
        for index in group_batches(labels, GROUP_BATCHES):
            groups += group_statistics(assessed[index], price[index], labels[index], **options)
            done += index.size
            await ctx.progress(
                "computing group statistics", processed=done, total=n, percent=40 + 35 * done / n
            )

    await ctx.progress("writing files", processed=0, total=n, percent=78)
    ratio = assessed / price
    kept = iqr_trim_mask(ratio, params.iqr_factor) if params.trim == "iqr" else np.ones(n, bool)
    columns = (
        sales.parcel_id,
        sales.sale_date.astype(str),
        price,
        assessed,
        np.round(ratio, 6),
        labels if labels is not None else np.full(n, "", dtype=object),
        ~kept,
    )
    csv_path = ctx.new_file("ratio_study_sales.csv")
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            writer.writerows(zip(*(c[start:stop] for c in columns), strict=True))
            await ctx.progress("writing files", processed=stop, total=n, percent=78 + 14 * stop / n)

    county_slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", ctx.county_id)
    html_path = ctx.new_file(f"ratio_study_{county_slug}_{tax_year}.html")
    write_ratio_study_html(
        html_path,
        RatioStudyReport(
            county_id=ctx.county_id,
            tax_year=tax_year,
            sale_date_from=date_from,
            sale_date_to=date_to,
            trim=params.trim,
            iqr_factor=params.iqr_factor,
            group_by=None if params.group_by == "none" else params.group_by,
            property_class=selection.property_class,
            arms_length_only=selection.arms_length_only,
            generated_at=dt.datetime.now(dt.UTC),
            overall=overall,
            groups=groups,
            cod_range=cod_range(cod_hint),
            sale_price=price,
            ratio=ratio,
            trimmed=~kept,
        ),
    )
    await ctx.progress("writing files", processed=n, total=n, percent=96)
    return {
        "ratio_study": {
            "tax_year": tax_year,
            "sale_date_from": date_from.isoformat(),
            "sale_date_to": date_to.isoformat(),
            "trim": params.trim,
            "group_by": None if params.group_by == "none" else params.group_by,
            "overall": statistics_json(overall, cod_hint),
            "groups": [statistics_json(g, cod_hint) for g in groups],
        },
        "files": [
            ctx.result_file(csv_path, "text/csv", n),
            ctx.result_file(html_path, CONTENT_TYPE, n),
        ],
        "summary": {
            "sales": n,
            "sales_used": overall.count_used,
            "median_ratio": overall.median_ratio,
            "cod": overall.cod,
            "prd": overall.prd,
            "meets_standards": overall.meets_standards,
        },
    }
