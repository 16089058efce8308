"""Value one parcel: a hedonic estimate, or reconciled comparable sales."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from jobs.context import RunContext
from jobs.files import write_csv
from jobs.kinds.valuation.data import fit_model, load_parcels, load_sales
from jobs.kinds.valuation.params import ValuationParams
from jobs.spec import JobFailure
from jobs.stats.valuation import InsufficientSales, select_comparables

COMPARABLE_COLUMNS = ("parcel_id", "sale_date", "sale_price", "adjusted_price", "distance")


def valuation_date(params: ValuationParams) -> dt.date:
    return params.valuation_date or dt.date.today()


async def run(ctx: RunContext, params: ValuationParams) -> dict[str, Any]:
    parcel_id = ctx.columns["property_id"]
    as_of = valuation_date(params)
    await ctx.progress("loading sales", percent=5)
    async with ctx.sessions() as session:
        subject = await load_parcels(session, ctx.county_id, parcel_id)
        sales = await load_sales(session, ctx.county_id)
    if len(subject.parcel_id) != 1:
        raise JobFailure("UNKNOWN_PARCEL", f"parcel {parcel_id} is no longer in {ctx.county_id}")
    await ctx.progress("fitting model", processed=len(sales.sale_price), percent=30)
    model = fit_model(sales, as_of)
    await ctx.progress("valuing parcel", percent=70)
    result: dict[str, Any] = {
        "method": params.method,
        "valuation_date": as_of.isoformat(),
        "parcels_valued": 1,
        "model": model.summary(),
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
