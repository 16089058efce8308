"""ValuationJob and its results."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from schema.job import Interval, Job, JobControls, ResultFile
from schema.statistics import RatioStatistics


@strawberry.type
class Comparable:
    parcel_id: str
    sale_date: dt.date
    sale_price: float
    adjusted_price: float
    distance: float


@strawberry.type
class ValuationResult:
    method: str
    valuation_date: dt.date | None = None
    estimated_value: float | None = None
    interval: Interval | None = None
    comparables: list[Comparable] | None = None
    parcels_valued: int | None = None
    holdout: RatioStatistics | None = None
    model: JSON | None = strawberry.field(default=None, description="fit statistics")
    files: list[ResultFile]
    summary: JSON | None = None


@strawberry.type
class ValuationJob(Job):
    property_id: str | None
    valuation_method: str
    result: ValuationResult | None


@strawberry.input
class RunValuationInput(JobControls):
    county_id: str
    property_id: str | None = strawberry.field(
        default=None, description="one parcel; null values every parcel of the county"
    )
    parameters: JSON | None = strawberry.field(
        default=None, description='{"method": "hedonic"|"comparables", "valuation_date", "k"}'
    )
