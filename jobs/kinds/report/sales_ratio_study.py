"""Sales ratio study: IAAO level, uniformity and vertical-equity statistics of a tax year."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.context import RunContext
from jobs.county_data import require_tax_year
from jobs.kinds.report.html_report import CONTENT_TYPE, RatioStudyReport, write_ratio_study_html
from jobs.kinds.report.params import SalesRatioStudyParams
from jobs.kinds.report.ratio_sales import StudySales, load_study_sales
from jobs.kinds.report.sheets import ratio_study_sheets
from jobs.outputs import ResultFiles, csv_text, date_text
from jobs.sales_data import GROUP_COLUMNS, SalesColumns, load_sales
from jobs.spec import JobFailure
from jobs.stats.market import InsufficientSalesError, time_adjustment_factors
from jobs.stats.ratio import (
    RatioStatistics,
    cod_range,
    group_statistics,
    price_strata,
    ratio_statistics,
    statistics_json,
    trim_mask,
)

PRICE_STRATA = {"sale_price_quartile": 4, "sale_price_decile": 10}

BATCH = 5000
"""Sales rows per write (to each file asked for), and so per progress event."""

GROUP_BATCHES = 20
"""Progress events while groups are computed: about one per twentieth of the sales."""

SALES_HEADER = (
    "parcel_id",
    "sale_date",
    "sale_price",
    "assessed_value",
    "ratio",
    "group",
    "trimmed",
)


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


def trim_description(params: SalesRatioStudyParams) -> str:
    if params.trim == "iqr":
        return (
            f"ratio outliers beyond {params.iqr_factor:g} \u00d7 IQR of the quartiles "
            "(IAAO Standard on Ratio Studies, Appendix B)"
        )
    if params.trim == "quantile":
        return (
            f"ratios outside the {params.quantile_lower:.0%}\u2013{params.quantile_upper:.0%} "
            "quantiles (assesspy's quantile method)"
        )
    return "none (all sales used)"


def exclusions(tax_year: int, sales: StudySales) -> list[dict[str, Any]]:
    """How many of the sales recorded in the window each step of the selection left out, and
    why: a reader of the study must know what it does not cover. Counted from the flags the
    study's one query read with its sales (`load_study_sales`)."""
    return [
        {
            "step": "arms_length",
            "excluded": sales.recorded - sales.arms_length,
            "reason": "not arm's-length (the study uses arm's-length sales only)",
        },
        {
            "step": "assessment",
            "excluded": sales.arms_length - sales.assessed,
            "reason": f"no {tax_year} assessment of the parcel",
        },
        {
            "step": "filters",
            "excluded": sales.assessed - len(sales),
            "reason": "outside the property class, ZIP code or neighborhood filters",
        },
    ]


async def _selected_sales(
    session: AsyncSession,
    county_id: str,
    params: SalesRatioStudyParams,
    window: tuple[dt.date | None, dt.date | None],
    tax_year: int | None,
) -> SalesColumns:
    return await load_sales(
        session,
        county_id,
        date_from=window[0],
        date_to=window[1],
        property_class=params.sales.property_class,
        arms_length_only=params.sales.arms_length_only,
        tax_year=tax_year,
        zip_codes=params.sales.zip_codes,
        neighborhoods=params.sales.neighborhoods,
    )


async def run(ctx: RunContext, params: SalesRatioStudyParams) -> dict[str, Any]:
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        tax_year = await require_tax_year(ctx.rows, ctx.county_id, params.tax_year)
        window_from, window_to = default_sale_window(tax_year)
        date_from = params.sales.sale_date_from or window_from
        date_to = params.sales.sale_date_to or window_to
        sales = await load_study_sales(
            session,
            ctx.county_id,
            date_from=date_from,
            date_to=date_to,
            tax_year=tax_year,
            group_column=params.group_by if params.group_by in GROUP_COLUMNS else None,
            property_class=params.sales.property_class,
            zip_codes=params.sales.zip_codes,
            neighborhoods=params.sales.neighborhoods,
            arms_length_only=params.sales.arms_length_only,
        )
        excluded = exclusions(tax_year, sales)
        # The county's own index: every sale the selection admits, of any date, as the
        # TIME_ADJUSTMENT analysis of the same selection measures it; a year's sales alone
        # would give a trend too noisy to adjust by.
        index_sales = (
            await _selected_sales(session, ctx.county_id, params, (None, None), None)
            if params.time_adjustment != "none"
            else None
        )
    n = len(sales)
    if n == 0:
        raise JobFailure(
            "NO_SALES",
            f"no {ARMS_LENGTH if params.sales.arms_length_only else ''}sales with a {tax_year} "
            f"assessment between {date_from} and {date_to} in {ctx.county_id} "
            f"({params.sales.describe()})",
        )
    await ctx.progress("computing statistics", processed=0, total=n, percent=20)
    quantiles = (params.quantile_lower, params.quantile_upper)
    options: dict[str, Any] = {
        "trim": params.trim,
        "iqr_factor": params.iqr_factor,
        "quantiles": quantiles,
        "property_class_hint": params.cod_standard or params.sales.property_class,
    }
    assessed, price = sales.assessed_value, sales.sale_price
    adjusted_to = dt.date(tax_year, 1, 1)
    time_adjustment: dict[str, Any] | None = None
    if index_sales is not None and params.time_adjustment != "none":
        try:
            adjustment = time_adjustment_factors(
                index_sales.sale_date, index_sales.sale_price, adjusted_to, params.time_adjustment
            )
        except InsufficientSalesError as exc:
            raise JobFailure("INSUFFICIENT_SALES", f"cannot time-adjust: {exc}") from None
        months = np.array(adjustment.months, dtype="datetime64[M]")
        month = sales.sale_date.astype("datetime64[M]")
        price = price * np.asarray(adjustment.factors)[np.searchsorted(months, month)]
        time_adjustment = {
            "method": params.time_adjustment,
            "adjusted_to": adjusted_to.isoformat(),
            "annual_trend_percent": (
                adjustment.trend.annual_trend_pct if adjustment.trend is not None else None
            ),
        }
    overall = ratio_statistics(assessed, price, **options)
    excluded.append(
        {
            "step": "trim",
            "excluded": overall.count - overall.count_used,
            "reason": f"outliers: {trim_description(params)}",
        }
    )
    await ctx.progress("computing statistics", processed=n, total=n, percent=40)
    groups: list[RatioStatistics] = []
    labels = None
    if params.group_by in PRICE_STRATA:
        labels = price_strata(price, PRICE_STRATA[params.group_by])
    elif params.group_by != "none":
        labels = sales.group()
    if labels is not None:
        done = 0
        for index in group_batches(labels, GROUP_BATCHES):
            groups += group_statistics(assessed[index], price[index], labels[index], **options)
            done += index.size
            await ctx.progress(
                "computing group statistics", processed=done, total=n, percent=40 + 35 * done / n
            )

    await ctx.progress("writing files", processed=0, total=n, percent=78)
    ratio = assessed / price
    kept = trim_mask(ratio, params.trim, params.iqr_factor, quantiles)
    trimmed = ~kept

    def batch_rows(start: int, stop: int) -> list[tuple[Any, ...]]:
        """One batch of the sales table's rows, its columns made for that batch only: whole
        rounded or listed copies of a million-sale column would add to the job's peak memory."""
        columns: list[list[Any]] = [
            sales.parcel_id[start:stop].tolist(),
            sales.sale_date[start:stop].tolist(),
            sales.sale_price[start:stop].tolist(),
            assessed[start:stop].tolist(),
            np.round(ratio[start:stop], 6).tolist(),
            labels[start:stop].tolist() if labels is not None else [None] * (stop - start),
            trimmed[start:stop].tolist(),
        ]
        if time_adjustment is not None:
            # The ratio is taken against the adjusted price, so the file shows it too.
            columns.append(np.round(price[start:stop], 2).tolist())
        return list(zip(*columns, strict=True))

    def batch_fields(start: int, stop: int) -> list[list[str]]:
        """The same batch as the CSV's text, column by column (`MainTable.write_fields`):
        numpy's date text (`date_text`) and Python's float `repr` are exactly what
        `csv.writer` writes."""
        count = stop - start
        columns = [
            csv_text(sales.parcel_id[start:stop].tolist()),
            date_text(sales.sale_date[start:stop]),
            list(map(repr, sales.sale_price[start:stop].tolist())),
            list(map(repr, assessed[start:stop].tolist())),
            list(map(repr, np.round(ratio[start:stop], 6).tolist())),
            csv_text(map(str, labels[start:stop].tolist())) if labels is not None else [""] * count,
            np.where(trimmed[start:stop], "True", "False").tolist(),
        ]
        if time_adjustment is not None:
            columns.append(list(map(repr, np.round(price[start:stop], 2).tolist())))
        return columns

    header: tuple[str, ...] = SALES_HEADER
    if time_adjustment is not None:
        header += ("time_adjusted_price",)
    study = {
        "tax_year": tax_year,
        "sale_date_from": date_from.isoformat(),
        "sale_date_to": date_to.isoformat(),
        "trim": params.trim,
        "iqr_factor": params.iqr_factor if params.trim == "iqr" else None,
        "quantiles": list(quantiles) if params.trim == "quantile" else None,
        "group_by": None if params.group_by == "none" else params.group_by,
        "zip_codes": params.sales.zip_codes,
        "neighborhoods": params.sales.neighborhoods,
        "time_adjustment": time_adjustment,
        "exclusions": excluded,
        "overall": statistics_json(overall),
        "groups": [statistics_json(g) for g in groups],
    }
    county_slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", ctx.county_id)
    stem = f"ratio_study_{county_slug}_{tax_year}"
    async with ResultFiles(ctx, params.output_formats, f"{stem}.xlsx") as out:
        ratio_study_sheets(out, ctx.county_id, study)
        table = out.main_table("ratio_study_sales.csv", "Sales", header)
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            if table.csv_only:
                table.write_fields(batch_fields(start, stop))
            else:
                await table.write(batch_rows(start, stop))
            await ctx.progress("writing files", processed=stop, total=n, percent=78 + 14 * stop / n)
        if out.wants("html"):
            html_path = ctx.new_file(f"{stem}.html")
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
                    property_class=params.sales.property_class,
                    trim_text=trim_description(params),
                    exclusions=excluded,
                    zip_codes=params.sales.zip_codes,
                    neighborhoods=params.sales.neighborhoods,
                    time_adjustment=time_adjustment,
                    arms_length_only=params.sales.arms_length_only,
                    generated_at=dt.datetime.now(dt.UTC),
                    overall=overall,
                    groups=groups,
                    cod_range=cod_range(params.cod_standard or params.sales.property_class),
                    sale_price=price,
                    ratio=ratio,
                    trimmed=trimmed,
                ),
            )
            out.add("html", html_path, CONTENT_TYPE, n)
    await ctx.progress("writing files", processed=n, total=n, percent=96)
    return {
        "ratio_study": study,
        "files": out.files,
        "summary": {
            "sales": n,
            "sales_used": overall.count_used,
            "median_ratio": overall.median_ratio,
            "cod": overall.cod,
            "prd": overall.prd,
            "meets_standards": overall.meets_standards,
            "sales_chased": overall.sales_chasing.flagged if overall.sales_chasing else None,
        },
    }
