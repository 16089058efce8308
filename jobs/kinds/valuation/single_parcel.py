"""Value one parcel: a hedonic estimate, or reconciled comparable sales."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jobs.context import RunContext
from jobs.files import write_csv
from jobs.kinds.valuation.data import (
    available_features,
    fit_model,
    load_parcels,
    load_sales,
    model_warnings,
    valuation_date,
)
from jobs.kinds.valuation.params import ValuationParams
from jobs.spec import JobFailure
from jobs.stats.boosting import fit_boosted
from jobs.stats.valuation import InsufficientSales, select_comparables

COMPARABLE_COLUMNS = ("parcel_id", "sale_date", "sale_price", "adjusted_price", "distance")


async def run(ctx: RunContext, params: ValuationParams) -> dict[str, Any]:
    parcel_id = ctx.columns["property_id"]
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        subject = await load_parcels(session, ctx.county_id, parcel_id)
        sales = await load_sales(session, ctx.county_id)
    if len(subject.parcel_id) != 1:
        raise JobFailure("UNKNOWN_PARCEL", f"parcel {parcel_id} is no longer in {ctx.county_id}")
    as_of, warnings = valuation_date(params, sales)
    await ctx.progress("fitting model", processed=len(sales.sale_price), percent=30)
    model = fit_model(sales, as_of, params=params)
    warnings += model_warnings(model, sales)
    await ctx.progress("valuing parcel", percent=70)
    result: dict[str, Any] = {
        "method": params.method,
        "valuation_date": as_of.isoformat(),
        "parcels_valued": 1,
        "model": model.summary(),
        "warnings": warnings,
    }
    if params.method == "hedonic":
        prediction = model.predict(subject.features)
        result.update(
            estimated_value=float(prediction.estimate[0]),
            interval={
                "lower": float(prediction.lower[0]),
                "upper": float(prediction.upper[0]),
                "level": prediction.level,
            },
        )
    elif params.method == "gradient_boosting":
        every = np.arange(len(sales.sale_price))
        features = list(params.features or available_features(sales, every))
        try:
            boosted = fit_boosted(
                sales.features, sales.sale_price, sales.sale_date, as_of, features
            )
        except ValueError as exc:
            raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None
        # One parcel has no holdout of its own to draw an interval from; the county-wide job
        # reports the method's accuracy on later sales.
        result.update(
            estimated_value=float(boosted.predict(subject.features)[0]),
            boosted_model=boosted.summary(),
            features=features,
        )
    else:
        try:
            chosen = select_comparables(
                subject.features,
                sales.features,
                sales.sale_price,
                sales.sale_date,
                k=params.k,
                valuation_date=as_of,
                model=model,
                exclude=sales.parcel_id == parcel_id,
            )
        except InsufficientSales as exc:
            # Typically a valuation date past the county's latest sales: only sales of the
            # 24 months before it count as comparables.
            raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None
        comparables = [
            {
                "parcel_id": str(sales.parcel_id[i]),
                "sale_date": str(sales.sale_date[i]),
                "sale_price": float(sales.sale_price[i]),
                "adjusted_price": float(adjusted),
                "distance": float(distance),
            }
            for i, adjusted, distance in zip(
                chosen.indices, chosen.adjusted_prices, chosen.distances, strict=True
            )
        ]
        result.update(
            estimated_value=chosen.estimate,
            interval=(
                None
                if math.isnan(chosen.lower)
                else {"lower": chosen.lower, "upper": chosen.upper, "level": chosen.level}
            ),
            comparables=comparables,
        )
    await ctx.progress("writing files", percent=90)
    path = ctx.new_file("valuation.csv")
    header = ["parcel_id", "valuation_date", "method", "estimated_value", "lower", "upper"]
    interval = result.get("interval") or {}
    rows = write_csv(
        path,
        header,
        [
            [
                parcel_id,
                as_of,
                params.method,
                result["estimated_value"],
                interval.get("lower"),
                interval.get("upper"),
            ]
        ],
    )
    files = [ctx.result_file(path, "text/csv", rows)]
    if params.method == "comparables":
        comp_path = ctx.new_file("comparables.csv")
        comp_rows = write_csv(
            comp_path,
            COMPARABLE_COLUMNS,
            ([c[key] for key in COMPARABLE_COLUMNS] for c in result["comparables"]),
        )
        files.append(ctx.result_file(comp_path, "text/csv", comp_rows))
    result["files"] = files
    result["summary"] = {"parcel_id": parcel_id, "sales_used": len(sales.sale_price)}
    return result
