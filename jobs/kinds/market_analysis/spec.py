"""MarketAnalysisJob: price trends, time-adjustment factors and comparable market areas from a
county's sales."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.config import Settings
from jobs.county_data import require_county
from jobs.kinds.market_analysis import comparable_market_area, price_trend, time_adjustment
from jobs.kinds.market_analysis.params import (
    ComparableMarketAreaParams,
    PriceTrendParams,
    TimeAdjustmentParams,
)
from jobs.kinds.market_analysis.table import MarketAnalysisJobRow
from jobs.spec import JobKind, KindSpec, ValidatedInput
from jobs.validation_reads import ValidationReads
from jobs.variants import Variant, Variants

ANALYSIS_TYPES = Variants(
    field="analysisType",
    column="analysis_type",
    choices={
        "price_trend": Variant(PriceTrendParams, price_trend.run),
        "time_adjustment": Variant(TimeAdjustmentParams, time_adjustment.run),
        "comparable_market_area": Variant(ComparableMarketAreaParams, comparable_market_area.run),
    },
)


async def validate(
    reads: ValidationReads, raw: Mapping[str, Any], settings: Settings
) -> ValidatedInput:
    analysis_type, params = ANALYSIS_TYPES.parse(raw, settings)
    await require_county(reads, raw["county_id"])
    return ValidatedInput(
        county_id=raw["county_id"],
        parameters=params.model_dump(mode="json"),
        columns={"analysis_type": analysis_type},
    )


SPEC = KindSpec(
    kind=JobKind.MARKET_ANALYSIS,
    model=MarketAnalysisJobRow,
    metric_prefix="market_analysis",
    type_label="analysis_type",
    validate=validate,
    compute=ANALYSIS_TYPES.compute,
)
