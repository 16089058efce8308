"""Sales of a county as numpy columns, with the parcel (and assessment) facts jobs need.

One query per job, fetched once into arrays, so every statistic after it is vectorised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Assessment, Parcel, Sale

GROUP_COLUMNS = ("property_class", "neighborhood", "zip_code")
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class SalesColumns:
    parcel_id: npt.NDArray[np.object_]
    sale_date: npt.NDArray[np.datetime64]
    sale_price: npt.NDArray[np.float64]
    arms_length: npt.NDArray[np.bool_]
    living_area_sqft: npt.NDArray[np.float64]
    property_class: npt.NDArray[np.object_]
    neighborhood: npt.NDArray[np.object_]
    zip_code: npt.NDArray[np.object_]
    assessed_value: npt.NDArray[np.float64]
    """NaN where no assessment was joined (no tax year asked for)."""

    def __len__(self) -> int:
        return int(self.sale_price.size)

    def group(self, name: str) -> npt.NDArray[np.object_]:
        if name not in GROUP_COLUMNS:
            raise ValueError(f"cannot group by {name!r}")
        values: npt.NDArray[np.object_] = getattr(self, name)
        return np.where(values == None, "(none)", values)  # noqa: E711


async def load_sales(
    session: AsyncSession,
    county_id: str,
    *,
    date_from: dt.date | None,
    date_to: dt.date | None,
    property_class: str | None = None,
    zip_codes: Sequence[str] | None = None,
    neighborhoods: Sequence[str] | None = None,
    arms_length_only: bool = True,
    tax_year: int | None = None,
) -> SalesColumns:
    """Valid sales (positive price, known parcel); with `tax_year`, only assessed ones."""
    columns = [
        Sale.parcel_id,
        # Days since 1970 as an integer: numpy reads it as datetime64[D] directly, where
        # converting a million `date` objects took 1.5 s (BENCHMARKS.md, finding 2).
        (Sale.sale_date - EPOCH).label("sale_day"),
        Sale.sale_price,
        Sale.arms_length,
        Parcel.living_area_sqft,
        Parcel.property_class,
        Parcel.neighborhood,
        Parcel.zip_code,
    ]
    query = select(*columns).join(
        Parcel, and_(Parcel.county_id == Sale.county_id, Parcel.parcel_id == Sale.parcel_id)
    )
    if tax_year is not None:
        query = query.add_columns(Assessment.assessed_value).join(
            Assessment,
            and_(
                Assessment.county_id == Sale.county_id,
                Assessment.parcel_id == Sale.parcel_id,
                Assessment.tax_year == tax_year,
            ),
        )
    query = query.where(Sale.county_id == county_id, Sale.sale_price > 0)
    if date_from is not None:
        query = query.where(Sale.sale_date >= date_from)
    if date_to is not None:
        query = query.where(Sale.sale_date <= date_to)
    if property_class is not None:
        query = query.where(Parcel.property_class == property_class)
    if zip_codes:
        query = query.where(Parcel.zip_code.in_(zip_codes))
    if neighborhoods:
        query = query.where(Parcel.neighborhood.in_(neighborhoods))
    if arms_length_only:
        query = query.where(Sale.arms_length.is_(True))
    query = query.order_by(Sale.sale_date, Sale.parcel_id)
    # Core execution on the session's connection: rows need no ORM processing.
    rows = (await (await session.connection()).execute(query)).all()
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(columns) + 1)]

    def floats(values: tuple[object, ...]) -> npt.NDArray[np.float64]:
        # numpy reads None as NaN in a float array.
        return np.array(values, dtype=np.float64)

    def objects(values: tuple[object, ...]) -> npt.NDArray[np.object_]:
        return np.array(values, dtype=object)

    n = len(rows)
    return SalesColumns(
        parcel_id=objects(cols[0]),
        sale_date=np.array(cols[1], dtype=np.int64).astype("datetime64[D]"),
        sale_price=floats(cols[2]),
        arms_length=np.array(cols[3], dtype=bool),
        living_area_sqft=floats(cols[4]),
        property_class=objects(cols[5]),
        neighborhood=objects(cols[6]),
        zip_code=objects(cols[7]),
        assessed_value=floats(cols[8]) if tax_year is not None else np.full(n, np.nan),
    )
