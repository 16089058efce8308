"""ValuationJob: market value of one parcel, or of every parcel of a county."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from app.config import Settings
from jobs.context import RunContext
from jobs.county_data import require_county, require_parcel
from jobs.kinds.valuation import county, single_parcel
from jobs.kinds.valuation.data import sales_profile
from jobs.kinds.valuation.params import ValuationParams
from jobs.kinds.valuation.table import ValuationJobRow
from jobs.params import parse_params
from jobs.spec import BadInput, JobKind, KindSpec, ValidatedInput
from jobs.stats.valuation import minimum_sales
from jobs.validation_reads import ValidationReads


async def validate(
    reads: ValidationReads, raw: Mapping[str, Any], settings: Settings
) -> ValidatedInput:
    params = parse_params(
        ValuationParams, raw.get("parameters"), max_bytes=settings.max_parameters_bytes
    )
    county_id = raw["county_id"]
    await require_county(reads, county_id)
    property_id = raw.get("property_id")
    if property_id is not None:
        await require_parcel(reads, county_id, property_id)
    elif params.method == "comparables":
        raise BadInput(
            "parameters.method",
            "comparables values one parcel: give propertyId, or use hedonic for a whole county",
        )
    sales, classes, neighborhoods = await sales_profile(await reads.session(), county_id)
    # Design columns: 7 dense terms plus one dummy per class and neighbourhood but the first.
    needed = minimum_sales(7 + max(classes - 1, 0) + max(neighborhoods - 1, 0))
    if property_id is None:
        # A county-wide job fits on the sales left after its holdout.
        needed = math.ceil(needed / (1 - params.holdout_fraction))
    if sales < needed:
        raise BadInput(
            "countyId",
            f"{county_id} has {sales} arm's-length sales; "
            f"a valuation model needs at least {needed}",
        )
    return ValidatedInput(
        county_id=county_id,
        parameters=params.model_dump(mode="json"),
        columns={"property_id": property_id, "valuation_method": params.method},
    )


async def compute(ctx: RunContext) -> dict[str, Any]:
    params = ValuationParams(**ctx.parameters)
    if ctx.columns["property_id"] is None:
        return await county.run(ctx, params)
    return await single_parcel.run(ctx, params)


def result_columns(result: dict[str, Any]) -> dict[str, Any]:
    return {"estimated_value": result.get("estimated_value")}


SPEC = KindSpec(
    kind=JobKind.VALUATION,
    model=ValuationJobRow,
    metric_prefix="valuation",
    type_label="valuation_method",
    validate=validate,
    compute=compute,
    result_columns=result_columns,
)
