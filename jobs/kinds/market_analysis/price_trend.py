"""Price trend: sales volume and prices per period (and group), and the annual trend."""

from __future__ import annotations

import dataclasses
from typing import Any

from jobs.context import RunContext
from jobs.files import write_csv
from jobs.kinds.market_analysis.params import PriceTrendParams
from jobs.kinds.market_analysis.selection import load_selected_sales
from jobs.stats.market import log_linear_trend, trend_points, year_over_year


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
    path = ctx.new_file("price_trend.csv")
    rows = write_csv(
        path,
        [
            "period",
            "group",
            "sales_volume",
            "average_price",
            "median_price",
            "median_price_per_sqft",
        ],
        (dataclasses.astuple(p) for p in points),
    )
    await ctx.progress("writing files", processed=rows, total=len(points), percent=95)
    return {
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
        "files": [ctx.result_file(path, "text/csv", rows)],
        "summary": {
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
        },
    }
