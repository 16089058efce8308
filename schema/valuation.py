"""ValuationJob and its results."""

from __future__ import annotations

import datetime as dt
from typing import Any, Self

import strawberry
from strawberry.scalars import JSON

from jobs.kinds.valuation.params import ValuationMethod as ValuationMethodLiteral
from jobs.kinds.valuation.params import ValuationParams
from schema.inputs import input_type, output_type, schema_enum
from schema.job import Interval, Job, JobControls, ResultFile
from schema.statistics import RatioStatistics

ValuationMethod = schema_enum(ValuationMethodLiteral)
ValuationParameters = input_type(ValuationParams)
ValuationParametersOutput = output_type(ValuationParams)


@strawberry.type
class Comparable:
    parcel_id: str
    sale_date: dt.date
    sale_price: float
    adjusted_price: float
    distance: float


@strawberry.type(description="One coefficient of the log-price model, with its standard error.")
class Coefficient:
    name: str
    estimate: float
    standard_error: float
    t: float | None = strawberry.field(default=None, description="estimate / standard error")


@strawberry.type(description="A missing parcel attribute filled in before the fit.")
class ImputedAttribute:
    attribute: str
    value: float = strawberry.field(description="the value used for a missing one")
    count: int = strawberry.field(description="sales whose value was missing")


@strawberry.type(description="The level each factor's dummies are measured against.")
class ReferenceLevels:
    property_class: str | None = None
    neighborhood: str | None = None


@strawberry.type(description="Fit of the hedonic (log-price regression) model.")
class ModelFit:
    n: int = strawberry.field(description="sales the model was fitted on")
    k: int = strawberry.field(description="columns of the design, intercept included")
    df: int = strawberry.field(description="residual degrees of freedom, n - k")
    r2: float = strawberry.field(description="R², on log prices")
    adj_r2: float | None = strawberry.field(default=None, description="adjusted R²")
    sigma: float = strawberry.field(description="sigma, the residual standard error of log price")
    smearing_factor: float | None = strawberry.field(
        default=None, description="Duan's smearing factor, mean(exp(residual))"
    )
    valuation_date: dt.date | None = None
    time_trend_pct_per_month: float | None = None
    time_trend_pct_per_month_se: float | None = None
    reference_levels: ReferenceLevels | None = None
    imputed: list[ImputedAttribute]
    coefficients: list[Coefficient]


def model_fit(stored: dict[str, Any]) -> dict[str, Any]:
    """The fit as the engine stores it (maps by name) in the shape of `ModelFit` (lists)."""
    counts = stored.get("imputed_counts") or {}
    return {
        **stored,
        "imputed": [
            {"attribute": name, "value": value, "count": counts.get(name, 0)}
            for name, value in (stored.get("imputation") or {}).items()
        ],
        "coefficients": [
            {"name": name, "estimate": c["estimate"], "standard_error": c["se"], "t": c.get("t")}
            for name, c in (stored.get("coefficients") or {}).items()
        ],
    }


@strawberry.type(description="A characteristic's share of the trees' total split gain.")
class FeatureImportance:
    feature: str
    share: float


@strawberry.type(description="Fit of the gradient-boosted trees (LightGBM).")
class BoostedModelFit:
    n: int = strawberry.field(description="sales the trees were grown on")
    rounds: int = strawberry.field(description="boosting rounds")
    features: list[str] = strawberry.field(description="the characteristics used")
    smearing_factor: float = strawberry.field(description="Duan's smearing factor")
    valuation_date: dt.date | None = None
    importance: list[FeatureImportance]


def boosted_fit(stored: dict[str, Any]) -> dict[str, Any]:
    """The trees' summary as stored (importance by name) in the shape of `BoostedModelFit`."""
    return {
        **stored,
        "importance": [
            {"feature": name, "share": share}
            for name, share in (stored.get("importance") or {}).items()
        ],
    }


@strawberry.type
class ValuationResult:
    method: str
    valuation_date: dt.date | None = None
    estimated_value: float | None = None
    interval: Interval | None = None
    comparables: list[Comparable] | None = None
    parcels_valued: int | None = None
    holdout: RatioStatistics | None = strawberry.field(
        default=None,
        description="the method's ratio statistics on held-out sales (gradient_boosting: "
        "the latest sales, a time-ordered holdout)",
    )
    hedonic_holdout: RatioStatistics | None = strawberry.field(
        default=None,
        description="gradient_boosting only: the hedonic model's statistics on the same holdout",
    )
    features: list[str] | None = strawberry.field(
        default=None, description="gradient_boosting: the characteristics the trees used"
    )
    model: ModelFit | None = strawberry.field(
        default=None,
        description="the hedonic model's fit (for gradient_boosting: the comparison model's)",
    )
    boosted_model: BoostedModelFit | None = strawberry.field(
        default=None, description="gradient_boosting: the trees' fit"
    )
    warnings: list[str] = strawberry.field(
        default_factory=list,
        description="what the values rest on that an assessor must know (e.g. an extrapolated "
        "market trend, a model without a time term)",
    )
    files: list[ResultFile]
    summary: JSON | None = None


@strawberry.type
class ValuationJob(Job):
    property_id: str | None
    valuation_method: ValuationMethod  # type: ignore[valid-type]
    parameters: ValuationParametersOutput  # type: ignore[valid-type]
    result: ValuationResult | None

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Self:
        result = snap["result"]
        if result is not None and result.get("model") is not None:
            result = {**result, "model": model_fit(result["model"])}
        if result is not None and result.get("boosted_model") is not None:
            result = {**result, "boosted_model": boosted_fit(result["boosted_model"])}
        return super().from_snapshot({**snap, "result": result})


@strawberry.input
class RunValuationInput(JobControls):
    county_id: str
    property_id: str | None = strawberry.field(
        default=None, description="one parcel; null values every parcel of the county"
    )
    parameters: ValuationParameters | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="optional: the defaults of each parameter"
    )
