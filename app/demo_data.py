"""A synthetic but plausible county, generated from a known price model.

Why synthetic data with a *known* model: the analytics jobs (ratio studies, market trends,
automated valuation) can then be checked against the truth, not just against themselves. A test
can fit a hedonic model to the demo sales and compare its coefficients with `HEDONIC_TRUTH`, or
compare a valuation with `true_value`.

The county, deterministic for a given seed (numpy ``default_rng``):

* Parcels are lot polygons in WGS84 around Tacoma, WA (`CENTRE_LON`, `CENTRE_LAT`): a jittered
  grid of street blocks, each block two rows of quadrilateral lots that share their lot lines.
  Blocks fill outwards from the centre, so the county is roughly round. About one lot in ten has
  its ring stored clockwise, as real county files do; the loader re-orients them.
* 12 neighborhoods (Voronoi cells around seeds placed from the core outwards: dense old core,
  newer low-density outskirts) and 6 zip codes (Voronoi cells of their own, so zips and
  neighborhoods overlap the way they do in life).
* Property classes by block zoning: ~80% residential, ~9% condo, ~6% commercial, ~5% vacant.
  Vacant lots have no building: year_built, living_area_sqft, bedrooms and bathrooms are NULL.
  Commercial parcels have no bedrooms/bathrooms (NULL). Every parcel has a lot size (its
  polygon's area).
* Sales over ``years`` calendar years from ``first_year``: ~30% of parcels sell, ~8% of those
  twice (at least 120 days apart), with a summer peak in volume. Prices follow the hedonic model
  with its monthly trend and lognormal noise; ~8% are non-arm's-length at a 15-50% discount.
* Assessments for every parcel and each of the same ``years`` tax years, valued as of January 1
  of the tax year, with lognormal error (COD ~10% against the truth, ~12% against sales) and
  mild regressivity: assessed = m * (true / m) ** 0.95 * noise, m being the county's median true
  value, so cheap parcels are over- and dear ones under-assessed (PRD > 1) while the median
  ratio stays near 1. Land + improvement = assessed; vacant land is all land.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy.ext.asyncio import AsyncEngine

from app.characteristics import EXTRA_CHARACTERISTICS
from app.importer import (
    DEFAULT_BATCH_SIZE,
    LOCATION_COLUMNS,
    ImportReport,
    Kind,
    ProgressCallback,
    RowBatch,
    check_county_id,
    copy_upsert,
    location_columns,
)
from app.wording import counted

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjectArray = npt.NDArray[np.object_]
DateArray = npt.NDArray[np.datetime64]
DateLike = dt.date | np.datetime64 | str | npt.ArrayLike

CENTRE_LON = -122.44
CENTRE_LAT = 47.24
DEFAULT_FIRST_YEAR = 2021
DEFAULT_YEARS = 4

PROPERTY_CLASSES = ("residential", "condo", "commercial", "vacant")
ZIP_CODES = ("98402", "98403", "98404", "98405", "98406", "98407")

DAYS_PER_MONTH = 365.2425 / 12
"""The trend's month: a twelfth of a Gregorian year, so the trend is smooth within a month."""


@dataclass(frozen=True)
class HedonicModel:
    """The price model the demo county is generated from.

    ``log(value) = intercept + class_effect[class] + neighborhood_effect[neighborhood]
    + log_living_area * log(living_area_sqft) + log_lot_size * log(lot_size_sqft)
    + age * (year(date) - year_built) + bathroom * bathrooms
    + monthly_trend * months(date - base_date)``

    A parcel without a building (vacant) contributes 0 for living area, age and bathrooms (its
    class effect absorbs that); a missing bathroom count (commercial) contributes 0. Months are
    ``DAYS_PER_MONTH`` days. A sale price is that value * exp(N(0, sale_sigma)), and for a
    non-arm's-length sale also * U(non_arms_length_discount).
    """

    base_date: dt.date
    intercept: float
    log_living_area: float
    log_lot_size: float
    age: float
    bathroom: float
    monthly_trend: float
    class_effect: Mapping[str, float]
    neighborhood_effect: Mapping[str, float]
    sale_sigma: float
    sale_share: float
    """Share of parcels that sell at least once over the period."""
    repeat_sale_share: float
    """Share of the selling parcels that sell twice."""
    non_arms_length_share: float
    non_arms_length_discount: tuple[float, float]
    """Price multiplier range of a non-arm's-length sale."""
    assessment_elasticity: float
    """assessed = m * (true / m) ** elasticity * noise; below 1 means regressive."""
    assessment_parcel_sigma: float
    """Log-scale error of a parcel's assessment that persists across tax years."""
    assessment_year_sigma: float
    """Log-scale error drawn afresh each tax year."""

    @property
    def annual_trend_percent(self) -> float:
        return float(np.expm1(12 * self.monthly_trend) * 100)

    @property
    def assessment_sigma(self) -> float:
        return float(np.hypot(self.assessment_parcel_sigma, self.assessment_year_sigma))


HEDONIC_TRUTH = HedonicModel(
    base_date=dt.date(2020, 1, 1),
    intercept=7.93,
    log_living_area=0.55,
    log_lot_size=0.12,
    age=-0.003,
    bathroom=0.04,
    monthly_trend=0.005,
    class_effect=MappingProxyType(
        {"residential": 0.0, "condo": 0.03, "commercial": 0.44, "vacant": 2.69}
    ),
    neighborhood_effect=MappingProxyType(
        {
            "Downtown": 0.10,
            "Stadium": 0.28,
            "Hilltop": -0.12,
            "North End": 0.32,
            "Proctor": 0.22,
            "Lincoln": -0.08,
            "Eastside": -0.20,
            "South End": -0.22,
            "Fern Hill": -0.15,
            "Westgate": 0.05,
            "Oakland Heights": 0.12,
            "Firwood": 0.18,
        }
    ),
    sale_sigma=0.09,
    sale_share=0.30,
    repeat_sale_share=0.08,
    non_arms_length_share=0.08,
    non_arms_length_discount=(0.50, 0.85),
    assessment_elasticity=0.95,
    assessment_parcel_sigma=0.11,
    assessment_year_sigma=0.05,
)


@dataclass(frozen=True)
class _Neighborhood:
    """Layout facts, ordered from the core outwards: density, building era, zoning tier."""

    name: str
    lots_across: int
    era: float
    era_sd: float
    tier: int


_NEIGHBORHOODS = (
    _Neighborhood("Downtown", 10, 1925, 25, 0),
    _Neighborhood("Stadium", 10, 1915, 20, 0),
    _Neighborhood("Hilltop", 8, 1920, 20, 0),
    _Neighborhood("North End", 8, 1930, 20, 1),
    _Neighborhood("Proctor", 8, 1940, 18, 1),
    _Neighborhood("Lincoln", 8, 1945, 20, 1),
    _Neighborhood("Eastside", 6, 1955, 20, 1),
    _Neighborhood("South End", 6, 1960, 18, 2),
    _Neighborhood("Fern Hill", 6, 1955, 15, 2),
    _Neighborhood("Westgate", 6, 1975, 15, 2),
    _Neighborhood("Oakland Heights", 5, 1988, 12, 3),
    _Neighborhood("Firwood", 5, 2003, 10, 3),
)
NEIGHBORHOODS = tuple(n.name for n in _NEIGHBORHOODS)

# Block zoning by tier (residential, condo, commercial block), then lot classes per block type
# (residential, condo, commercial, vacant).
_BLOCK_ZONING = np.array(
    [[0.66, 0.21, 0.13], [0.86, 0.08, 0.06], [0.93, 0.04, 0.03], [0.95, 0.0, 0.05]]
)
_LOT_CLASSES = np.array([[0.96, 0, 0, 0.04], [0.08, 0.9, 0, 0.02], [0.10, 0, 0.75, 0.15]])

# Street grid in metres: a block cell, and the street taking part of it.
_CELL_W, _CELL_H, _STREET = 150.0, 80.0, 14.0
_BLOCK_W, _BLOCK_H = _CELL_W - _STREET, _CELL_H - _STREET
_METRES_PER_DEGREE_LAT = 111_132.0
_SQFT_PER_M2 = 10.763_910_4


@dataclass(frozen=True)
class DemoParcels:
    """Parcel columns; NaN in a numeric column means NULL (no such attribute)."""

    parcel_id: ObjectArray
    address: ObjectArray
    zip_code: ObjectArray
    neighborhood: ObjectArray
    property_class: ObjectArray
    year_built: FloatArray
    living_area_sqft: FloatArray
    lot_size_sqft: FloatArray
    bedrooms: FloatArray
    bathrooms: FloatArray
    geometry: ObjectArray
    """shapely Polygons in WGS84 lon/lat."""
    extra: Mapping[str, FloatArray] = field(default_factory=dict)
    """Optional characteristics (app/characteristics.py) by name; NaN = NULL."""

    def __len__(self) -> int:
        return int(self.parcel_id.size)


@dataclass(frozen=True)
class DemoSales:
    parcel_index: IntArray
    """Row of the sold parcel in `DemoParcels`."""
    parcel_id: ObjectArray
    sale_date: DateArray
    sale_price: FloatArray
    arms_length: BoolArray
    true_value: FloatArray
    """The model value on the sale date, before noise and discount."""

    def __len__(self) -> int:
        return int(self.parcel_id.size)


@dataclass(frozen=True)
class DemoAssessments:
    parcel_index: IntArray
    parcel_id: ObjectArray
    tax_year: IntArray
    land_value: FloatArray
    improvement_value: FloatArray
    assessed_value: FloatArray
    true_value: FloatArray
    """The model value on the valuation date (January 1 of the tax year)."""

    def __len__(self) -> int:
        return int(self.parcel_id.size)


@dataclass(frozen=True)
class DemoCounty:
    county_id: str
    seed: int
    first_year: int
    years: int
    parcels: DemoParcels
    sales: DemoSales
    assessments: DemoAssessments

    @property
    def tax_years(self) -> list[int]:
        return list(range(self.first_year, self.first_year + self.years))

    def true_values(self, date: DateLike) -> FloatArray:
        """Model value of every parcel on ``date``."""
        return true_value(self.parcels, date)


@dataclass(frozen=True)
class DemoLoadReport:
    county_id: str
    parcels: ImportReport
    sales: ImportReport
    assessments: ImportReport

    @property
    def rows(self) -> int:
        return self.parcels.rows + self.sales.rows + self.assessments.rows

    def __str__(self) -> str:
        return (
            f"{counted(self.parcels.rows, 'parcel')}, {counted(self.sales.rows, 'sale')}, "
            f"{counted(self.assessments.rows, 'assessment')}"
        )


def valuation_date(tax_year: int) -> dt.date:
    """The date a tax year's assessments value the market at."""
    return dt.date(tax_year, 1, 1)


# ---------------------------------------------------------------------------------------------
# The model


def true_value(
    parcels: Mapping[str, npt.ArrayLike] | DemoParcels,
    date: DateLike,
    *,
    model: HedonicModel = HEDONIC_TRUTH,
) -> FloatArray:
    """Model (noise-free) market value of parcels on a date.

    ``parcels`` gives arrays (a mapping, e.g. columns read back from the database, or
    `DemoParcels`) named ``property_class``, ``neighborhood``, ``living_area_sqft``,
    ``lot_size_sqft``, ``year_built`` and ``bathrooms``; None/NaN are missing attributes.
    ``date`` is one date or an array of dates broadcasting against the parcels.
    """

    def column(name: str) -> npt.ArrayLike:
        if isinstance(parcels, Mapping):
            return parcels[name]
        value: npt.ArrayLike = getattr(parcels, name)
        return value

    classes = np.asarray(column("property_class"), dtype=object)
    neighborhoods = np.asarray(column("neighborhood"), dtype=object)
    living = _floats(column("living_area_sqft"))
    lot = _floats(column("lot_size_sqft"))
    built = _floats(column("year_built"))
    baths = _floats(column("bathrooms"))
    days = np.asarray(date, dtype="datetime64[D]")

    log_value = (
        model.intercept
        + _lookup(model.class_effect, classes, "property_class")
        + _lookup(model.neighborhood_effect, neighborhoods, "neighborhood")
        + model.log_living_area * np.log(np.where(living > 0, living, 1.0))
        + model.log_lot_size * np.log(np.where(lot > 0, lot, 1.0))
        + model.bathroom * np.nan_to_num(baths)
    )
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    age = np.where(np.isnan(built), 0.0, np.clip(year - np.nan_to_num(built), 0, None))
    months = (days - np.datetime64(model.base_date, "D")).astype(np.float64) / DAYS_PER_MONTH
    result: FloatArray = np.exp(log_value + model.age * age + model.monthly_trend * months)
    return result


def _floats(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(np.asarray(values, dtype=object).astype(np.float64))


def _lookup(effects: Mapping[str, float], keys: ObjectArray, name: str) -> FloatArray:
    unknown = set(np.unique(keys).tolist()) - set(effects)
    if unknown:
        raise ValueError(f"{name} not in the model: {', '.join(map(str, sorted(unknown)))}")
    return np.fromiter(map(effects.__getitem__, keys), dtype=np.float64, count=keys.size).reshape(
        keys.shape
    )


# ---------------------------------------------------------------------------------------------
# Generation


def recent_first_year(today: dt.date | None = None) -> int:
    """The first year of a demo whose sales end last year, as an office's data would.

    Valuations default to today, and comparables look back 24 months from the valuation date,
    so a quick-start county must reach up to the recent past to be valued as of now.
    """
    return (today or dt.date.today()).year - DEFAULT_YEARS


def generate_county(
    county_id: str,
    n_parcels: int,
    *,
    seed: int = 42,
    first_year: int = DEFAULT_FIRST_YEAR,
    years: int = DEFAULT_YEARS,
) -> DemoCounty:
    """Generate a county; the same arguments always give identical data."""
    check_county_id(county_id)
    if n_parcels < 1:
        raise ValueError("n_parcels must be at least 1")
    if years < 1:
        raise ValueError("years must be at least 1")
    rng = np.random.default_rng(seed)
    parcels = _generate_parcels(rng, n_parcels, first_year)
    sales = _generate_sales(rng, parcels, first_year, years)
    assessments = _generate_assessments(rng, parcels, first_year, years)
    return DemoCounty(county_id, seed, first_year, years, parcels, sales, assessments)


def _voronoi(
    x: npt.NDArray[Any], y: npt.NDArray[Any], seeds_x: npt.NDArray[Any], seeds_y: npt.NDArray[Any]
) -> IntArray:
    distance = np.hypot(x[:, None] - seeds_x[None, :], y[:, None] - seeds_y[None, :])
    return np.argmin(distance, axis=1)


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def _generate_parcels(rng: np.random.Generator, n: int, first_year: int) -> DemoParcels:
    # Street blocks: cells of a grid, filled from the centre out until there are n lots.
    average_lots = 14.0
    radius = float(np.sqrt(n / average_lots * _CELL_W * _CELL_H / np.pi))
    reach = radius * 1.6 + _CELL_W
    cols = np.arange(-int(reach // _CELL_W) - 1, int(reach // _CELL_W) + 2)
    rows = np.arange(-int(reach // _CELL_H) - 1, int(reach // _CELL_H) + 2)
    grid_col, grid_row = (a.ravel() for a in np.meshgrid(cols, rows))
    cell_x, cell_y = grid_col * _CELL_W, grid_row * _CELL_H
    park = rng.random(cell_x.size) < 0.05
    order = np.argsort(np.hypot(cell_x, cell_y) + rng.uniform(0, 30, cell_x.size), kind="stable")
    order = order[~park[order]]

    # Neighborhoods: seeds from the core outwards, in table order; zips: seeds anywhere.
    count = len(_NEIGHBORHOODS)
    ring = 0.85 * radius * np.sqrt((np.arange(count) + rng.uniform(0.2, 0.8, count)) / count)
    angle = rng.uniform(0, 2 * np.pi, count)
    block_hood = _voronoi(cell_x, cell_y, ring * np.cos(angle), ring * np.sin(angle))
    zip_ring = 0.8 * radius * np.sqrt(rng.random(len(ZIP_CODES)))
    zip_angle = rng.uniform(0, 2 * np.pi, len(ZIP_CODES))
    block_zip = _voronoi(cell_x, cell_y, zip_ring * np.cos(zip_angle), zip_ring * np.sin(zip_angle))

    lots_across = np.array([h.lots_across for h in _NEIGHBORHOODS])[block_hood]
    block_lots = 2 * lots_across[order]
    filled = np.searchsorted(np.cumsum(block_lots), n) + 1
    if filled > order.size:
        raise RuntimeError("the street grid is too small for the parcels asked for")
    blocks = order[:filled]
    lots_per_block = 2 * lots_across[blocks]

    # Lots: block, row (0 front, 1 back) and position along the block of each.
    block_of = np.repeat(np.arange(blocks.size), lots_per_block)[:n]
    first_lot = np.concatenate(([0], np.cumsum(lots_per_block)[:-1]))
    within = np.arange(n) - first_lot[block_of]
    k = lots_across[blocks][block_of]
    row, j = within // k, within % k
    cell = blocks[block_of]

    # Shared lot lines, jittered where they meet the street (front/back) and each other (mid).
    bounds_count = int(lots_across.max()) + 1
    jitter = rng.uniform(-1.5, 1.5, (blocks.size, bounds_count, 4))
    jitter[:, 0, :3] = 0.0
    jitter[np.arange(blocks.size), lots_across[blocks], :3] = 0.0
    b = np.arange(blocks.size)[block_of]
    mid = _BLOCK_H / 2

    def corner(edge: IntArray, level: IntArray) -> FloatArray:
        """Where lot line ``edge`` meets the front street (0), the mid line (1), the back (2)."""
        x = _BLOCK_W * edge / k + jitter[b, edge, level]
        y = np.where(level == 0, 0.0, np.where(level == 1, mid + jitter[b, edge, 3], _BLOCK_H))
        return np.stack([x, y], axis=-1)

    low, high = row, row + 1
    left, right = j, j + 1
    corners = [corner(left, low), corner(right, low), corner(right, high), corner(left, high)]
    local = np.stack(corners, axis=1)  # (n, 4, 2), counter-clockwise
    shifted = np.roll(local, -1, axis=1)
    area_m2 = 0.5 * np.abs(
        np.sum(local[:, :, 0] * shifted[:, :, 1] - shifted[:, :, 0] * local[:, :, 1], axis=1)
    )

    # Place each block: small shift and turn, then metres to degrees around the centre.
    turn = np.radians(np.clip(rng.normal(0, 1.5, blocks.size), -3, 3))[block_of]
    shift = rng.uniform(-3, 3, (blocks.size, 2))[block_of]
    centred = local - np.array([_BLOCK_W / 2, _BLOCK_H / 2])
    cos, sin = np.cos(turn)[:, None], np.sin(turn)[:, None]
    east = centred[:, :, 0] * cos - centred[:, :, 1] * sin + (cell_x[cell] + shift[:, 0])[:, None]
    north = centred[:, :, 0] * sin + centred[:, :, 1] * cos + (cell_y[cell] + shift[:, 1])[:, None]
    metres_per_degree_lon = _METRES_PER_DEGREE_LAT * np.cos(np.radians(CENTRE_LAT))
    ring_coords = np.stack(
        [CENTRE_LON + east / metres_per_degree_lon, CENTRE_LAT + north / _METRES_PER_DEGREE_LAT],
        axis=-1,
    )
    ring_coords = np.concatenate([ring_coords, ring_coords[:, :1]], axis=1)
    clockwise = rng.random(n) < 0.1
    ring_coords[clockwise] = ring_coords[clockwise, ::-1]
    geometry = shapely.polygons(ring_coords)

    hood_index = block_hood[cell]
    neighborhood = np.array(NEIGHBORHOODS, dtype=object)[hood_index]
    zip_code = np.array(ZIP_CODES, dtype=object)[block_zip[cell]]

    # Zoning per block, then a class per lot.
    tier = np.array([h.tier for h in _NEIGHBORHOODS])[block_hood[blocks]]
    zoning = _choose(rng, _BLOCK_ZONING[tier])[block_of]
    property_class = np.array(PROPERTY_CLASSES, dtype=object)[_choose(rng, _LOT_CLASSES[zoning])]
    residential = property_class == "residential"
    condo = property_class == "condo"
    commercial = property_class == "commercial"
    vacant = property_class == "vacant"

    lot_size = np.round(area_m2 * _SQFT_PER_M2)
    era = np.array([h.era for h in _NEIGHBORHOODS])[hood_index]
    era_sd = np.array([h.era_sd for h in _NEIGHBORHOODS])[hood_index]
    built = era + era_sd * rng.standard_normal(n) + np.where(condo, 25, np.where(commercial, 10, 0))
    year_built = np.clip(np.round(built), 1890, first_year - 1)

    noise = rng.standard_normal((3, n))
    living = np.where(
        residential,
        np.clip(
            1750
            * (lot_size / 7000) ** 0.25
            * np.exp(0.0025 * (year_built - 1960) + 0.25 * noise[0]),
            600,
            6500,
        ),
        np.where(
            condo,
            np.clip(950 * np.exp(0.3 * noise[0]), 400, 3000),
            np.clip(5500 * np.exp(0.5 * noise[0]), 1200, 60_000),
        ),
    )
    living = np.round(living, -1)
    bedrooms = np.where(
        residential,
        np.clip(np.round(living / 550 + 0.6 * noise[1]), 1, 7),
        np.clip(np.round(living / 600 + 0.4 * noise[1]), 0, 4),
    )
    bathrooms = np.where(
        residential,
        np.clip(np.round(2 * (0.5 + 0.45 * bedrooms + 0.35 * noise[2])) / 2, 1, 5),
        np.clip(np.round(2 * (0.6 + 0.4 * bedrooms + 0.3 * noise[2])) / 2, 1, 3),
    )
    building = ~vacant
    has_rooms = residential | condo

    # Addresses: front rows face the street south of the block (even numbers), back rows the
    # street north of it (odd numbers); numbers run 100 per block eastwards.
    street = grid_row[cell] + row
    house = 100 * (grid_col[cell] - cols[0] + 1) + 2 * j + row
    address = np.array(
        [
            f"{h} {'N' if s > 0 else 'S'} {_ordinal(abs(s) + (s <= 0))} St"
            for h, s in zip(house.tolist(), street.tolist(), strict=True)
        ],
        dtype=object,
    )
    parcel_id = np.array(
        [
            f"{bk + 1:06d}{w + 1:04d}"
            for bk, w in zip(block_of.tolist(), within.tolist(), strict=True)
        ],
        dtype=object,
    )
    nan = np.nan
    return DemoParcels(
        parcel_id=parcel_id,
        address=address,
        zip_code=zip_code,
        neighborhood=neighborhood,
        property_class=property_class,
        year_built=np.where(building, year_built, nan),
        living_area_sqft=np.where(building, living, nan),
        lot_size_sqft=lot_size,
        bedrooms=np.where(has_rooms, bedrooms, nan),
        bathrooms=np.where(has_rooms, bathrooms, nan),
        geometry=geometry,
    )


def _choose(rng: np.random.Generator, probabilities: FloatArray) -> IntArray:
    """One categorical draw per row of a (n, k) probability table, vectorised."""
    cumulative: FloatArray = np.cumsum(probabilities, axis=1)
    cumulative = cumulative / cumulative[:, -1:]
    draws = rng.random((probabilities.shape[0], 1))
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def _generate_sales(
    rng: np.random.Generator, parcels: DemoParcels, first_year: int, years: int
) -> DemoSales:
    truth = HEDONIC_TRUTH
    start = np.datetime64(dt.date(first_year, 1, 1), "D")
    days = int((np.datetime64(dt.date(first_year + years, 1, 1), "D") - start).astype(int))
    calendar = start + np.arange(days)
    day_of_year = (calendar - calendar.astype("datetime64[Y]")).astype(np.float64)
    season = 1 + 0.35 * np.sin(2 * np.pi * (day_of_year - 80) / 365.2425)
    season /= season.sum()

    n = len(parcels)
    sells = np.flatnonzero(rng.random(n) < truth.sale_share)
    twice = sells[rng.random(sells.size) < truth.repeat_sale_share]
    first_day = rng.choice(days, size=sells.size, p=season)
    second_day = rng.choice(days, size=twice.size, p=season)
    earlier = first_day[np.searchsorted(sells, twice)]
    # Repeat sales at least 120 days apart (never on the same day: that is the natural key).
    # The period is at least a year, so moving a too-close one 120+ days on (circularly) works.
    close = np.abs(second_day - earlier) < 120
    second_day[close] = (earlier[close] + 120 + rng.integers(0, days - 239, close.sum())) % days
    parcel_index = np.concatenate([sells, twice])
    day = np.concatenate([first_day, second_day])
    order = np.lexsort((parcel_index, day))
    parcel_index, day = parcel_index[order], day[order]
    sale_date = calendar[day]

    value = true_value(_subset(parcels, parcel_index), sale_date)
    price = value * np.exp(truth.sale_sigma * rng.standard_normal(value.size))
    arms_length = rng.random(value.size) >= truth.non_arms_length_share
    low, high = truth.non_arms_length_discount
    price = np.where(arms_length, price, price * rng.uniform(low, high, value.size))
    return DemoSales(
        parcel_index=parcel_index,
        parcel_id=parcels.parcel_id[parcel_index],
        sale_date=sale_date,
        sale_price=np.maximum(np.round(price, -2), 1000.0),
        arms_length=arms_length,
        true_value=value,
    )


def _subset(parcels: DemoParcels, index: IntArray) -> dict[str, Any]:
    return {
        name: getattr(parcels, name)[index]
        for name in (
            "property_class",
            "neighborhood",
            "living_area_sqft",
            "lot_size_sqft",
            "year_built",
            "bathrooms",
        )
    }


def _generate_assessments(
    rng: np.random.Generator, parcels: DemoParcels, first_year: int, years: int
) -> DemoAssessments:
    truth = HEDONIC_TRUTH
    n = len(parcels)
    persistent = truth.assessment_parcel_sigma * rng.standard_normal(n)
    vacant = parcels.property_class == "vacant"
    residential = parcels.property_class == "residential"
    condo = parcels.property_class == "condo"
    land_share = np.where(
        vacant,
        1.0,
        np.where(
            residential,
            np.clip(
                0.3 + 0.1 * np.log(parcels.lot_size_sqft / 7000) + 0.04 * rng.standard_normal(n),
                0.12,
                0.7,
            ),
            np.where(
                condo,
                np.clip(0.15 + 0.03 * rng.standard_normal(n), 0.05, 0.3),
                np.clip(0.30 + 0.06 * rng.standard_normal(n), 0.1, 0.6),
            ),
        ),
    )
    tables: list[dict[str, Any]] = []
    for tax_year in range(first_year, first_year + years):
        value = true_value(parcels, valuation_date(tax_year))
        pivot = float(np.median(value))
        noise = persistent + truth.assessment_year_sigma * rng.standard_normal(n)
        assessed = np.round(
            pivot * (value / pivot) ** truth.assessment_elasticity * np.exp(noise), -3
        )
        land = np.minimum(np.round(assessed * land_share, -2), assessed)
        tables.append(
            {
                "parcel_index": np.arange(n),
                "tax_year": np.full(n, tax_year, dtype=np.int64),
                "land_value": land,
                "improvement_value": assessed - land,
                "assessed_value": assessed,
                "true_value": value,
            }
        )
    columns = {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
    return DemoAssessments(parcel_id=parcels.parcel_id[columns["parcel_index"]], **columns)


# ---------------------------------------------------------------------------------------------
# Loading


async def load_demo_county(
    engine: AsyncEngine,
    county_id: str,
    n_parcels: int,
    seed: int = 42,
    progress: ProgressCallback | None = None,
    *,
    first_year: int = DEFAULT_FIRST_YEAR,
) -> DemoLoadReport:
    """Generate a county and load it through the importer's COPY + upsert path.

    All three tables in one transaction: a demo county is there whole or not at all. Like a
    file import this upserts, so loading again with the same seed changes nothing (and a
    smaller county leaves the earlier extra parcels in place). ``progress`` gets rows done of
    all three tables against their sum.
    """
    county = await asyncio.to_thread(
        generate_county, county_id, n_parcels, seed=seed, first_year=first_year
    )
    return await load_county(engine, county, progress=progress)


async def load_county(
    engine: AsyncEngine, county: DemoCounty, *, progress: ProgressCallback | None = None
) -> DemoLoadReport:
    """Load an already generated `DemoCounty` (e.g. one a test also inspects)."""
    tables = await asyncio.to_thread(_columns_for_copy, county)
    total = sum(len(positions) for positions, _ in tables.values())
    done = 0
    reports: dict[Kind, ImportReport] = {}
    async with engine.begin() as conn:
        for kind, (positions, columns) in tables.items():
            offset = done

            def step(rows: int, _total: int | None, offset: int = offset) -> None:
                if progress is not None:
                    progress(offset + rows, total)

            reports[kind] = await copy_upsert(
                conn,
                kind,
                county.county_id,
                _batches(positions, columns),
                columns=columns.keys(),
                source=f"demo county {county.county_id}",
                describe=_row_namer(kind),
                progress=step,
            )
            done += len(positions)
    return DemoLoadReport(
        county.county_id, reports["parcels"], reports["sales"], reports["assessments"]
    )


def _row_namer(kind: Kind) -> Callable[[int], str]:
    def name(position: int) -> str:
        return f"{kind}[{position}]"

    return name


def _batches(
    positions: IntArray, columns: dict[str, list[Any]], size: int = DEFAULT_BATCH_SIZE
) -> Iterator[RowBatch]:
    for start in range(0, positions.size, size):
        stop = start + size
        yield RowBatch(
            positions=positions[start:stop],
            columns={name: values[start:stop] for name, values in columns.items()},
        )


def _nullable(values: FloatArray, *, integer: bool = False) -> list[Any]:
    missing = np.isnan(values)
    objects = (np.where(missing, 0, values).astype(np.int64) if integer else values).astype(object)
    objects[missing] = None
    result: list[Any] = objects.tolist()
    return result


def _columns_for_copy(county: DemoCounty) -> dict[Kind, tuple[IntArray, dict[str, list[Any]]]]:
    p, s, a = county.parcels, county.sales, county.assessments
    parcels: dict[str, list[Any]] = {
        "parcel_id": p.parcel_id.tolist(),
        "address": p.address.tolist(),
        "zip_code": p.zip_code.tolist(),
        "neighborhood": p.neighborhood.tolist(),
        "property_class": p.property_class.tolist(),
        "year_built": _nullable(p.year_built, integer=True),
        "living_area_sqft": _nullable(p.living_area_sqft),
        "lot_size_sqft": _nullable(p.lot_size_sqft),
        "bedrooms": _nullable(p.bedrooms, integer=True),
        "bathrooms": _nullable(p.bathrooms),
    }
    integers = {c.name for c in EXTRA_CHARACTERISTICS if c.integer}
    for name, values in p.extra.items():
        parcels[name] = _nullable(values, integer=name in integers)
    parcels.update(location_columns(p.geometry))
    assert set(LOCATION_COLUMNS) <= parcels.keys()
    sales: dict[str, list[Any]] = {
        "parcel_id": s.parcel_id.tolist(),
        "sale_date": s.sale_date.tolist(),
        "sale_price": s.sale_price.tolist(),
        "arms_length": s.arms_length.tolist(),
    }
    assessments: dict[str, list[Any]] = {
        "parcel_id": a.parcel_id.tolist(),
        "tax_year": a.tax_year.tolist(),
        "land_value": a.land_value.tolist(),
        "improvement_value": a.improvement_value.tolist(),
        "assessed_value": a.assessed_value.tolist(),
    }
    return {
        "parcels": (np.arange(len(p)), parcels),
        "sales": (np.arange(len(s)), sales),
        "assessments": (np.arange(len(a)), assessments),
    }


__all__ = [
    "CENTRE_LAT",
    "CENTRE_LON",
    "HEDONIC_TRUTH",
    "NEIGHBORHOODS",
    "PROPERTY_CLASSES",
    "ZIP_CODES",
    "DemoAssessments",
    "DemoCounty",
    "DemoLoadReport",
    "DemoParcels",
    "DemoSales",
    "HedonicModel",
    "generate_county",
    "load_county",
    "load_demo_county",
    "true_value",
    "valuation_date",
]
