"""Time adjustment: monthly factors that bring sale prices to a valuation date."""

from __future__ import annotations

from typing import Any

import numpy as np

from jobs.context import RunContext
from jobs.kinds.market_analysis.params import TimeAdjustmentParams
from jobs.kinds.market_analysis.selection import load_selected_sales
from jobs.outputs import ResultFiles
from jobs.spec import JobFailure
from jobs.stats.market import InsufficientSalesError, time_adjustment_factors

FACTORS_HEADER = ("month", "index", "factor", "sales_volume")
ADJUSTMENT_HEADER = (
    "valuation_date",
    "method",
    "median_sale_price",
    "adjusted_median_sale_price",
    "sales_count",
    "annual_trend_percent",
    "annual_trend_ci_lower",
    "annual_trend_ci_upper",
    "annual_trend_ci_level",
)


async def run(ctx: RunContext, params: TimeAdjustmentParams) -> dict[str, Any]:
    sales = await load_selected_sales(ctx, params.sales)
    # Without a date asked for, adjust to the latest sale: the market the data can speak for.
    valuation_date = params.valuation_date or sales.sale_date.max().astype(object)
    await ctx.progress("computing factors", processed=0, total=len(sales), percent=45)
    try:
        adjustment = time_adjustment_factors(
            sales.sale_date, sales.sale_price, valuation_date, params.method
        )
    except InsufficientSalesError as exc:
        raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None
    await ctx.progress("computing factors", processed=len(sales), total=len(sales), percent=70)
    months = len(adjustment.months)
    await ctx.progress("writing files", processed=0, total=months, percent=80)
    factors = [
        {"month": m, "index": i, "factor": f, "sales_volume": c}
        for m, i, f, c in zip(
            adjustment.months,
            adjustment.index,
            adjustment.factors,
            adjustment.sales_count,
            strict=True,
        )
    ]
    trend = adjustment.trend
    result: dict[str, Any] = {
        "trends": [],
        "annual_trend_percent": trend.annual_trend_pct if trend else None,
        "annual_trend_ci": (
            {"lower": trend.ci_low_pct, "upper": trend.ci_high_pct, "level": trend.level}
            if trend
            else None
        ),
        "time_adjustment": {
            "valuation_date": adjustment.valuation_date.isoformat(),
            "method": adjustment.method,
            "factors": factors,
            "median_sale_price": float(np.median(sales.sale_price)),
            "adjusted_median_sale_price": adjustment.adjusted_median_price,
            "sales_count": adjustment.n_sales,
        },
    }
    adjusted = result["time_adjustment"]
    ci = result["annual_trend_ci"] or {}
    async with ResultFiles(ctx, params.output_formats, "time_adjustment.xlsx") as out:
        written = await out.main_table("time_adjustment.csv", "Factors", FACTORS_HEADER).write(
            [[f[key] for key in FACTORS_HEADER] for f in factors]
        )
        out.table(
            "Adjustment",
            ADJUSTMENT_HEADER,
            [
                [
                    adjustment.valuation_date,
                    adjustment.method,
                    adjusted["median_sale_price"],
                    adjusted["adjusted_median_sale_price"],
                    adjusted["sales_count"],
                    result["annual_trend_percent"],
                    ci.get("lower"),
                    ci.get("upper"),
                    ci.get("level"),
                ]
            ],
        )
    await ctx.progress("writing files", processed=written, total=months, percent=95)
    return {
        **result,
        "files": out.files,
        "summary": {"sales": len(sales), "valuation_month": adjustment.valuation_month},
    }
