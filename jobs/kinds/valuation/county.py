"""Value every parcel of a county with one hedonic fit, checked on held-out sales."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete

from jobs.context import RunContext
from jobs.kinds.valuation.data import (
    SaleSet,
    available_features,
    fit_model,
    load_parcels,
    load_sales,
    model_warnings,
    valuation_date,
)
from jobs.kinds.valuation.params import ValuationParams
from jobs.kinds.valuation.table import ParcelValuation
from jobs.spec import JobFailure
from jobs.stats.boosting import fit_boosted, time_ordered_split
from jobs.stats.ratio import RatioStatistics, ratio_statistics, statistics_json
from jobs.stats.valuation import Features, evaluate, holdout_split

BATCH = 10_000
VALUATION_COLUMNS = ["job_id", "county_id", "parcel_id", "estimated_value", "lower", "upper"]


Valuer = Callable[[Features], tuple[npt.NDArray[np.float64], ...]]
"""Values a batch of parcels at the valuation date: (estimate, lower, upper)."""


@dataclass(frozen=True)
class Fitted:
    valuer: Valuer
    holdout: RatioStatistics
    accuracy: dict[str, Any]
    train: int
    test: int
    result: dict[str, Any]
    """What the method adds to the result (its model summary, a comparison)."""


def _hedonic(
    sales: SaleSet, as_of: dt.date, params: ValuationParams, warnings: list[str]
) -> Fitted:
    train, test = holdout_split(len(sales.sale_price), params.holdout_fraction, seed=0)
    model = fit_model(sales, as_of, train, params)
    warnings += model_warnings(model, sales)
    # Held-out sales are valued at their own sale dates, so the check does not mix model
    # error with the market's movement since.
    held = model.predict(sales.features.take(test), as_of=sales.sale_date[test])
    price = sales.sale_price[test]

    def value(features: Features) -> tuple[npt.NDArray[np.float64], ...]:
        prediction = model.predict(features)
        return prediction.estimate, prediction.lower, prediction.upper

    return Fitted(
        valuer=value,
        holdout=ratio_statistics(held.estimate, price, group="holdout", trim="none"),
        accuracy=evaluate(held.estimate, price),
        train=len(train),
        test=len(test),
        result={"model": model.summary()},
    )


def _boosted(
    sales: SaleSet, as_of: dt.date, params: ValuationParams, warnings: list[str]
) -> Fitted:
    """LightGBM checked on the latest sales, next to the hedonic model on the very same ones;
    the parcels are then valued by a model of all the sales."""
    train, test = time_ordered_split(sales.sale_date, params.holdout_fraction)
    features = list(params.features or available_features(sales, train))
    price, dates = sales.sale_price, sales.sale_date
    try:
        checked = fit_boosted(
            sales.features.take(train), price[train], dates[train], as_of, features
        )
    except ValueError as exc:
        raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None
    held = checked.predict(sales.features.take(test), as_of=dates[test])
    same_terms = params.model_copy(update={"features": features})
    hedonic = fit_model(sales, as_of, train, same_terms)
    warnings += model_warnings(hedonic, sales)
    hedonic_held = hedonic.predict(sales.features.take(test), as_of=dates[test]).estimate
    final = fit_boosted(sales.features, price, dates, as_of, features)
    # An interval from the holdout's own errors: the 2.5 % and 97.5 % quantiles of
    # ln(price / estimate), the spread a value of the model has shown on unseen later sales.
    low, high = np.quantile(np.log(price[test] / held), [0.025, 0.975])

    def value(parcels: Features) -> tuple[npt.NDArray[np.float64], ...]:
        estimate = final.predict(parcels)
        return estimate, estimate * math.exp(low), estimate * math.exp(high)

    return Fitted(
        valuer=value,
        holdout=ratio_statistics(held, price[test], group="holdout", trim="none"),
        accuracy=evaluate(held, price[test]),
        train=len(train),
        test=len(test),
        result={
            "model": hedonic.summary(),
            "boosted_model": final.summary(),
            "features": features,
            "hedonic_holdout": statistics_json(
                ratio_statistics(hedonic_held, price[test], group="hedonic holdout", trim="none")
            ),
        },
    )


async def run(ctx: RunContext, params: ValuationParams) -> dict[str, Any]:
    await ctx.progress("loading data", percent=2)
    async with ctx.sessions() as session:
        sales = await load_sales(session, ctx.county_id)
        parcels = await load_parcels(session, ctx.county_id)
    as_of, warnings = valuation_date(params, sales)
    n_sales = len(sales.sale_price)
    await ctx.progress("fitting model", processed=0, total=n_sales, percent=15)
    fit = _boosted if params.method == "gradient_boosting" else _hedonic
    fitted = await asyncio.to_thread(fit, sales, as_of, params, warnings)
    await ctx.progress("holdout check", processed=fitted.test, total=n_sales, percent=30)
    total = len(parcels.parcel_id)
    path = ctx.new_file("valuations.csv")
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        # The csv module quotes a parcel id holding a comma or quote, as imported ids may.
        out = csv.writer(handle)
        out.writerow(["parcel_id", "estimated_value", "lower", "upper"])
        async with ctx.sessions.begin() as session:
            # A re-run of the same job replaces its values instead of adding to them.
            await session.execute(
                delete(ParcelValuation).where(ParcelValuation.job_id == ctx.job_id)
            )
            # COPY, not an ORM bulk insert: the insert was 5.5 s of 6.5 s for 200k parcels.
            raw = await (await session.connection()).get_raw_connection()
            copy = raw.driver_connection
            for start in range(0, total, BATCH):
                part = slice(start, min(start + BATCH, total))
                estimate, lower, upper = fitted.valuer(
                    parcels.features.take(range(start, part.stop))
                )
                # Cents, in the table and in the file alike, so the two agree to the digit.
                rows = list(
                    zip(
                        parcels.parcel_id[part].tolist(),
                        estimate.round(2).tolist(),
                        lower.round(2).tolist(),
                        upper.round(2).tolist(),
                        strict=True,
                    )
                )
                await copy.copy_records_to_table(  # type: ignore[union-attr]
                    ParcelValuation.__tablename__,
                    records=[(ctx.job_id, ctx.county_id, *row) for row in rows],
                    columns=VALUATION_COLUMNS,
                )
                out.writerows(rows)
                written += len(rows)
                await ctx.progress(
                    "valuing parcels",
                    processed=written,
                    total=total,
                    percent=35 + 60 * written / max(total, 1),
                )
    return {
        "method": params.method,
        "valuation_date": as_of.isoformat(),
        "parcels_valued": written,
        "holdout": statistics_json(fitted.holdout),
        **fitted.result,
        "warnings": warnings,
        "files": [ctx.result_file(path, "text/csv", written)],
        "summary": {
            "holdout_sales": fitted.test,
            "training_sales": fitted.train,
            "mape": fitted.accuracy["mape"],
            "r2": fitted.accuracy["r2"],
        },
    }
