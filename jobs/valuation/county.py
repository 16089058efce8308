"""Value every parcel of a county with one hedonic fit, checked on held-out sales."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, insert

from jobs.context import RunContext
from jobs.spec import JobFailure
from jobs.stats.ratio import ratio_statistics
from jobs.stats.valuation import InsufficientSales, evaluate, fit_hedonic, holdout_split
from jobs.valuation.data import load_parcels, load_sales
from jobs.valuation.single_parcel import valuation_date

if TYPE_CHECKING:
    from jobs.kinds.valuation import ValuationParams

BATCH = 10_000


async def run(ctx: RunContext, params: ValuationParams) -> dict[str, Any]:
    from jobs.kinds.valuation import ParcelValuation

    as_of = valuation_date(params)
    await ctx.progress("loading data", percent=2)
    async with ctx.sessions() as session:
        sales = await load_sales(session, ctx.county_id)
        parcels = await load_parcels(session, ctx.county_id)
    n_sales = len(sales.sale_price)
    train, test = holdout_split(n_sales, params.holdout_fraction, seed=0)
    await ctx.progress("fitting model", processed=len(train), total=n_sales, percent=15)
    try:
        model = fit_hedonic(
            sales.features.take(train), sales.sale_price[train], sales.sale_date[train], as_of
        )
    except InsufficientSales as exc:
        raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None
    await ctx.progress("holdout check", processed=len(test), total=n_sales, percent=30)
    # Held-out sales are valued at their own sale dates, so the check does not mix model
    # error with the market's movement since.
    held = model.predict(sales.features.take(test), as_of=sales.sale_date[test])
    accuracy = evaluate(held.estimate, sales.sale_price[test])
    holdout = ratio_statistics(held.estimate, sales.sale_price[test], group="holdout", trim="none")
    total = len(parcels.parcel_id)
    path = ctx.new_file("valuations.csv")
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        handle.write("parcel_id,estimated_value,lower,upper\n")
        async with ctx.sessions.begin() as session:
            # A re-run of the same job replaces its values instead of adding to them.
            await session.execute(
                delete(ParcelValuation).where(ParcelValuation.job_id == ctx.job_id)
            )
            for start in range(0, total, BATCH):
                part = slice(start, min(start + BATCH, total))
                prediction = model.predict(parcels.features.take(np.arange(total)[part]))
                ids = parcels.parcel_id[part]
                rows = list(
                    zip(ids, prediction.estimate, prediction.lower, prediction.upper, strict=True)
                )
                await session.execute(
                    insert(ParcelValuation),
                    [
                        {
                            "job_id": ctx.job_id,
                            "county_id": ctx.county_id,
                            "parcel_id": pid,
                            "estimated_value": float(value),
                            "lower": float(lower),
                            "upper": float(upper),
                        }
                        for pid, value, lower, upper in rows
                    ],
                )
                handle.writelines(f"{p},{v:.2f},{lo:.2f},{hi:.2f}\n" for p, v, lo, hi in rows)
                written += len(rows)
                await ctx.progress(
                    "valuing parcels",
                    processed=written,
                    total=total,
                    percent=35 + 60 * written / max(total, 1),
                )
    return {
        "method": "hedonic",
        "valuation_date": as_of.isoformat(),
        "parcels_valued": written,
        "holdout": dataclasses.asdict(holdout),
        "model": model.summary(),
        "files": [ctx.result_file(path, "text/csv", written)],
        "summary": {
            "holdout_sales": len(test),
            "training_sales": len(train),
            "mape": accuracy["mape"],
            "r2": accuracy["r2"],
        },
    }
