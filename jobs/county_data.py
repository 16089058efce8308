"""Reads of the county tables that validation and the `counties` query share."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import ARRAY, Integer, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import RowReader
from app.models import Assessment, Parcel, Sale
from jobs.spec import BadInput
from jobs.validation_reads import ValidationReads


@dataclass(frozen=True)
class CountySummary:
    county_id: str
    parcel_count: int
    sale_count: int
    first_sale_date: dt.date | None
    last_sale_date: dt.date | None
    tax_years: list[int]


async def county_summaries(session: AsyncSession) -> list[CountySummary]:
    parcels = dict(
        (
            await session.execute(select(Parcel.county_id, func.count()).group_by(Parcel.county_id))
        ).all()
    )
    sales = {
        county: (count, first, last)
        for county, count, first, last in (
            await session.execute(
                select(
                    Sale.county_id, func.count(), func.min(Sale.sale_date), func.max(Sale.sale_date)
                ).group_by(Sale.county_id)
            )
        ).all()
    }
    years: dict[str, list[int]] = {}
    for county, year in (
        await session.execute(
            select(Assessment.county_id, Assessment.tax_year)
            .distinct()
            .order_by(Assessment.county_id, Assessment.tax_year)
        )
    ).all():
        years.setdefault(county, []).append(year)
    summaries = []
    for county in sorted(set(parcels) | set(sales) | set(years)):
        count, first, last = sales.get(county, (0, None, None))
        summaries.append(
            CountySummary(county, parcels.get(county, 0), count, first, last, years.get(county, []))
        )
    return summaries


@functools.cache
def _one_parcel() -> Select[Any]:
    """Any parcel of `:county_id`. Built once: validation runs on every submission, and
    building a statement (and its cache key) costs more than running it."""
    return select(Parcel.id).where(Parcel.county_id == bindparam("county_id")).limit(1)


@functools.cache
def _tax_years() -> Select[Any]:
    """The assessed tax years of `:county_id`, built once (see `_one_parcel`)."""
    return (
        select(Assessment.tax_year)
        .where(Assessment.county_id == bindparam("county_id"))
        .distinct()
        .order_by(Assessment.tax_year)
    )


@functools.cache
def _county_check() -> Select[Any]:
    """`_one_parcel` and `_tax_years` of `:county_id` as one statement (one row: `parcel`,
    None without any, and `years`, an array): what a kind that reads assessments checks on
    every submission, in one round trip instead of two."""
    return select(
        _one_parcel().scalar_subquery().label("parcel"),
        func.array(_tax_years().scalar_subquery(), type_=ARRAY(Integer)).label("years"),
    )


async def require_county(reads: ValidationReads, county_id: str, field: str = "countyId") -> None:
    """Reject a county with no parcels, listing the counties that have data."""
    if not await reads.scalars(_one_parcel(), {"county_id": county_id}):
        await _unknown_county(reads, county_id, field)


async def require_county_and_tax_year(
    reads: ValidationReads, county_id: str, tax_year: int | None, field: str
) -> int:
    """`require_county` then `require_tax_year`: the same refusals in the same order, from
    one read."""
    row = await reads.one(_county_check(), {"county_id": county_id})
    if row.parcel is None:
        await _unknown_county(reads, county_id, "countyId")
    return _chosen_tax_year(county_id, list(row.years), tax_year, field)


async def _unknown_county(reads: ValidationReads, county_id: str, field: str) -> NoReturn:
    session = await reads.session()
    known = (
        await session.scalars(select(Parcel.county_id).distinct().order_by(Parcel.county_id))
    ).all()
    listed = ", ".join(known) if known else "none (import data with `terrafusion import`)"
    raise BadInput(field, f"unknown county {county_id!r}; counties with data: {listed}")


async def require_tax_year(
    rows: RowReader, county_id: str, tax_year: int | None, field: str = "parameters.taxYear"
) -> int:
    """The tax year asked for, or the latest assessed one; it must have assessments.

    On a run's row reader (`RunContext.rows`), not its session: a kept statement there is
    one round trip on asyncpg's pool, without the session's checkout and execution around it,
    which for a small county cost more than the read.
    """
    years = [row[0] for row in await rows.all(_tax_years(), {"county_id": county_id})]
    return _chosen_tax_year(county_id, years, tax_year, field)


def _chosen_tax_year(county_id: str, years: list[int], tax_year: int | None, field: str) -> int:
    if not years:
        raise BadInput("countyId", f"county {county_id!r} has no assessments; import some first")
    if tax_year is None:
        return int(years[-1])
    if tax_year not in years:
        raise BadInput(
            field,
            f"no assessments for tax year {tax_year} in {county_id}; tax years: "
            + ", ".join(map(str, years)),
        )
    return tax_year


async def require_parcel(
    reads: ValidationReads, county_id: str, parcel_id: str, field: str = "propertyId"
) -> None:
    session = await reads.session()
    found = await session.scalar(
        select(Parcel.id).where(Parcel.county_id == county_id, Parcel.parcel_id == parcel_id)
    )
    if found is None:
        raise BadInput(field, f"no parcel {parcel_id!r} in county {county_id!r}")
