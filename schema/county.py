"""What data each county has, so a GraphiQL user can find valid job inputs."""

from __future__ import annotations

import datetime as dt

import strawberry


@strawberry.type
class County:
    county_id: str
    parcel_count: int
    sale_count: int
    first_sale_date: dt.date | None
    last_sale_date: dt.date | None
    tax_years: list[int]
