"""Parcel characteristics and arm's-length sales of a county, as valuation features, and the
hedonic fit on them that both the county-wide and the single-parcel valuation use."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.characteristics import EXTRA_NAMES
from app.models import Parcel, Sale
from jobs.kinds.valuation.params import ValuationParams
from jobs.spec import JobFailure
from jobs.stats.valuation import (
    NUMERIC_FIELDS,
    Features,
    HedonicModel,
    InsufficientSales,
    SingularDesign,
    fit_hedonic,
)

#: The label a missing class or neighbourhood gets: the fit treats it as a level of its own.
NO_LEVEL = "(none)"
#: Characteristics that only count as known when positive (jobs.stats.valuation's rule).
_POSITIVE_FIELDS = frozenset({"living_area_sqft", "lot_size_sqft", "year_built"})

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
    *(getattr(Parcel, name) for name in EXTRA_NAMES),
)
_CORE = 10
"""FEATURE_COLUMNS before the optional characteristics."""


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
        # numpy reads None as NaN when asked for floats: NaN is "missing" to the model.
        return np.array(values, dtype=np.float64)

    def labels(values: tuple[object, ...]) -> npt.NDArray[np.str_]:
        return np.array([NO_LEVEL if v is None else v for v in values], dtype=str)

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
        extra={name: floats(cols[_CORE + i]) for i, name in enumerate(EXTRA_NAMES)},
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
    """(arm's-length sales, property classes, neighbourhoods) among sold parcels.

    A missing class or neighbourhood is counted as a level, because the fit gives it a
    dummy column of its own: counting it too keeps the minimum-sales check in step with it.
    """
    row = (
        await session.execute(
            select(
                func.count(Sale.id),
                func.count(func.coalesce(Parcel.property_class, NO_LEVEL).distinct()),
                func.count(func.coalesce(Parcel.neighborhood, NO_LEVEL).distinct()),
            )
            .select_from(Sale)
            .join(
                Parcel, and_(Sale.county_id == Parcel.county_id, Sale.parcel_id == Parcel.parcel_id)
            )
            .where(Sale.county_id == county_id, Sale.arms_length.is_(True), Sale.sale_price > 0)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def hedonic_terms(params: ValuationParams) -> tuple[tuple[str, ...], bool]:
    """(optional characteristics, location surface?) the hedonic design adds for ``features``."""
    chosen = params.features or ()
    return tuple(f for f in chosen if f in EXTRA_NAMES), "location" in chosen


def available_features(sales: SaleSet, rows: npt.NDArray[np.intp]) -> list[str]:
    """Every characteristic some of these sales have, plus location: the default features."""
    features = sales.features
    names = [n for n in NUMERIC_FIELDS if _known(n, getattr(features, n)[rows]).any()]
    names += [n for n in EXTRA_NAMES if np.isfinite(features.extra[n][rows]).any()]
    if features.lon is not None and np.isfinite(features.lon[rows]).any():
        names.append("location")
    return names


def fit_model(
    sales: SaleSet,
    as_of: dt.date,
    rows: npt.NDArray[np.intp] | None = None,
    params: ValuationParams | None = None,
) -> HedonicModel:
    """The hedonic model of the sales (those at `rows`, e.g. a training split), at `as_of`.

    What stops a fit is the county's data, not the server: too few sales, a characteristic
    no sale has (parcels imported without that column), or terms the sales cannot tell apart
    (a class sold in one neighbourhood only). Each ends the job FAILED with a code and a
    reason the office can act on, never as an unexplained INTERNAL_ERROR.
    """
    if rows is None:
        rows = np.arange(len(sales.sale_price))
    features = sales.features.take(rows)
    absent = [name for name in NUMERIC_FIELDS if not _known(name, getattr(features, name)).any()]
    if absent:
        raise JobFailure(
            "MISSING_CHARACTERISTICS",
            f"no sold parcel has a usable value for {', '.join(absent)}; the hedonic model "
            "needs living area, lot size, year built, bedrooms and bathrooms for some sales "
            "(import the parcels with those columns)",
        )
    extra, location = hedonic_terms(params) if params is not None else ((), False)
    absent = [name for name in extra if not np.isfinite(features.extra[name]).any()]
    if absent:
        raise JobFailure(
            "MISSING_CHARACTERISTICS",
            f"no sold parcel has a value for {', '.join(absent)}: drop it from features or "
            "import the parcels with that column",
        )
    try:
        return fit_hedonic(
            features,
            sales.sale_price[rows],
            sales.sale_date[rows],
            as_of,
            extra=extra,
            location=location,
        )
    except InsufficientSales as exc:
        raise JobFailure("INSUFFICIENT_SALES", str(exc)) from None
    except SingularDesign as exc:
        raise JobFailure("SINGULAR_DESIGN", str(exc)) from None


EXTRAPOLATION_WARNING_DAYS = 365
"""A valuation date further than this beyond the last sale gets a warning in the result."""


def valuation_date(params: ValuationParams, sales: SaleSet) -> tuple[dt.date, list[str]]:
    """The date values hold at, and warnings about it.

    Why the last sale by default, not today: a county whose sales end years ago (an archive, a
    published sample) would otherwise be valued with its market trend extrapolated over every
    year since, silently. A date the caller chose is used as given, but a trend carried more
    than a year beyond the data is said out loud.
    """
    if len(sales.sale_date) == 0:
        raise JobFailure("INSUFFICIENT_SALES", "the county has no arm's-length sales to value from")
    last_sale = sales.sale_date.max().astype(dt.date)
    as_of = params.valuation_date or last_sale
    warnings = []
    beyond = (as_of - last_sale).days
    if beyond > EXTRAPOLATION_WARNING_DAYS:
        warnings.append(
            f"valuation date {as_of} is {beyond / 365.2425:.1f} years after the last sale "
            f"({last_sale}): the market trend is extrapolated over that time"
        )
    return as_of, warnings


def model_warnings(model: HedonicModel, sales: SaleSet) -> list[str]:
    """What the result must say about the fit itself."""
    if model.time_term:
        return []
    date = sales.sale_date.max().astype(dt.date)
    return [
        f"all {model.n} sales are dated {date}: no market trend can be estimated from them, "
        "so the model has no time term and values are as of that date"
    ]


def _known(name: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    in_range = values > 0 if name in _POSITIVE_FIELDS else values >= 0
    return np.isfinite(values) & in_range
