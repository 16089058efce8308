"""Price trend: sales volume and prices per period (and group), and the annual trend."""

from __future__ import annotations

import dataclasses
from typing import Any

from jobs.context import RunContext
from jobs.kinds.market_analysis.params import PriceTrendParams
from jobs.kinds.market_analysis.selection import load_selected_sales
from jobs.outputs import ResultFiles
from jobs.stats.market import log_linear_trend, trend_points, year_over_year

TRENDS_HEADER = (
    "period",
    "group",
    "sales_volume",
    "average_price",
    "median_price",
    "median_price_per_sqft",
)
YEAR_OVER_YEAR_HEADER = ("year", "median_price", "change_percent")
TREND_FIT_HEADER = (
    "annual_trend_percent",
    "annual_trend_ci_lower",
    "annual_trend_ci_upper",
    "annual_trend_ci_level",
    "monthly_trend_percent",
    "r_squared",
    "fit_sales",
    "sales",
    "first_sale",
    "last_sale",
)


async def run(ctx: RunContext, params: PriceTrendParams) -> dict[str, Any]:
    sales = await load_selected_sales(ctx, params.sales)
    n = len(sales)
    await ctx.progress("computing trends", processed=0, total=n, percent=45)
    groups = None if params.group_by == "none" else sales.group(params.group_by)
    points = trend_points(
        sales.sale_date,
        sales.sale_price,
        sales.living_area_sqft,
        period=params.period,
        groups=groups,
    )
    await ctx.progress("computing trends", processed=n, total=n, percent=60)
    fit = log_linear_trend(sales.sale_date, sales.sale_price)
    yearly = year_over_year(
        trend_points(sales.sale_date, sales.sale_price, sales.living_area_sqft, period="year")
    )
    await ctx.progress("writing files", processed=0, total=len(points), percent=80)
    result: dict[str, Any] = {
        "trends": [dataclasses.asdict(p) for p in points],
        "annual_trend_percent": fit.annual_trend_pct if fit else None,
        "annual_trend_ci": (
            {"lower": fit.ci_low_pct, "upper": fit.ci_high_pct, "level": fit.level} if fit else None
        ),
        "year_over_year": [
            {"year": int(y.year), "median_price": y.median_price, "change_percent": y.change_pct}
            for y in yearly
            if y.median_price is not None
        ],
    }
    summary = {
        "sales": n,
        "period": params.period,
        "group_by": params.group_by,
        "first_sale": str(sales.sale_date.min()),
        "last_sale": str(sales.sale_date.max()),
        "trend_fit": (
            {
                "monthly_trend_percent": fit.monthly_trend_pct,
                "r_squared": fit.r_squared,
                "n": fit.n,
            }
            if fit
            else None
        ),
    }
    async with ResultFiles(ctx, params.output_formats, "price_trend.xlsx") as out:
        written = await out.main_table("price_trend.csv", "Trends", TRENDS_HEADER).write(
            [dataclasses.astuple(p) for p in points]
        )
        out.records("Year over year", YEAR_OVER_YEAR_HEADER, result["year_over_year"])
        ci = result["annual_trend_ci"] or {}
        out.table(
            "Trend fit",
            TREND_FIT_HEADER,
            [
                [
                    result["annual_trend_percent"],
                    ci.get("lower"),
                    ci.get("upper"),
                    ci.get("level"),
                    *((fit.monthly_trend_pct, fit.r_squared, fit.n) if fit else (None, None, None)),
                    n,
                    sales.sale_date.min().tolist(),
                    sales.sale_date.max().tolist(),
                ]
            ],
        )
    await ctx.progress("writing files", processed=written, total=len(points), percent=95)
    return {**result, "files": out.files, "summary": summary}
