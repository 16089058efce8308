"""Parcel characteristics and arm's-length sales of a county, as valuation features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Parcel, Sale
from jobs.stats.valuation import Features

FEATURE_COLUMNS = (
    Parcel.parcel_id,
    Parcel.living_area_sqft,
    Parcel.lot_size_sqft,
    Parcel.year_built,
    Parcel.bedrooms,
    Parcel.bathrooms,
    Parcel.property_class,
    Parcel.neighborhood,
    Parcel.centroid_lon,
    Parcel.centroid_lat,
)


@dataclass(frozen=True)
class ParcelSet:
    parcel_id: npt.NDArray[np.object_]
    features: Features


@dataclass(frozen=True)
class SaleSet:
    parcel_id: npt.NDArray[np.object_]
    features: Features
    sale_date: npt.NDArray[np.datetime64]
    sale_price: npt.NDArray[np.float64]


def _features(cols: list[tuple[object, ...]]) -> Features:
    def floats(values: tuple[object, ...]) -> npt.NDArray[np.float64]:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    def labels(values: tuple[object, ...]) -> npt.NDArray[np.str_]:
        return np.array(["(none)" if v is None else v for v in values], dtype=str)

    return Features(
        living_area_sqft=floats(cols[1]),
        lot_size_sqft=floats(cols[2]),
        year_built=floats(cols[3]),
        bedrooms=floats(cols[4]),
        bathrooms=floats(cols[5]),
        property_class=labels(cols[6]),
        neighborhood=labels(cols[7]),
        lon=floats(cols[8]),
        lat=floats(cols[9]),
    )


def _columns(rows: list[tuple[object, ...]], width: int) -> list[tuple[object, ...]]:
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


async def load_parcels(
    session: AsyncSession, county_id: str, parcel_id: str | None = None
) -> ParcelSet:
    query = select(*FEATURE_COLUMNS).where(Parcel.county_id == county_id)
    if parcel_id is not None:
        query = query.where(Parcel.parcel_id == parcel_id)
    rows = [tuple(r) for r in (await session.execute(query.order_by(Parcel.parcel_id))).all()]
    cols = _columns(rows, len(FEATURE_COLUMNS))
    return ParcelSet(np.array(cols[0], dtype=object), _features(cols))


async def load_sales(session: AsyncSession, county_id: str) -> SaleSet:
    """Arm's-length sales with the sold parcel's characteristics."""
    query = (
        select(*FEATURE_COLUMNS, Sale.sale_date, Sale.sale_price)
        .join(Sale, and_(Sale.county_id == Parcel.county_id, Sale.parcel_id == Parcel.parcel_id))
        .where(Parcel.county_id == county_id, Sale.arms_length.is_(True), Sale.sale_price > 0)
        .order_by(Sale.sale_date, Parcel.parcel_id)
    )
    rows = [tuple(r) for r in (await session.execute(query)).all()]
    width = len(FEATURE_COLUMNS) + 2
    cols = _columns(rows, width)
    return SaleSet(
        parcel_id=np.array(cols[0], dtype=object),
        features=_features(cols[: len(FEATURE_COLUMNS)]),
        sale_date=np.array(cols[-2], dtype="datetime64[D]"),
        sale_price=np.array(cols[-1], dtype=np.float64),
    )


async def sales_profile(session: AsyncSession, county_id: str) -> tuple[int, int, int]:
    """(arm's-length sales, property classes, neighbourhoods) among sold parcels."""
    row = (
        await session.execute(
            select(
                func.count(Sale.id),
                func.count(Parcel.property_class.distinct()),
                func.count(Parcel.neighborhood.distinct()),
            )
            .select_from(Sale)
            .join(
                Parcel, and_(Sale.county_id == Parcel.county_id, Sale.parcel_id == Parcel.parcel_id)
            )
            .where(Sale.county_id == county_id, Sale.arms_length.is_(True), Sale.sale_price > 0)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])
