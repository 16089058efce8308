"""A demo county whose prices follow a known *non-linear* model of rich CAMA characteristics.

Why: the gradient-boosting valuation claims to find shapes a log-linear hedonic model cannot
(steps, thresholds, interactions, a local premium). Checking that claim needs a market whose
truth has such shapes and is known. This county is `app.demo_data`'s (same lots, classes,
neighbourhoods, sale dates and trend) with the optional characteristics of
app/characteristics.py added to every building, and its sale prices drawn from
:func:`nonlinear_value`: the demo hedonic value times

* a quality premium that steps up convexly with the grade (1..6), :data:`QUALITY_EFFECT`;
* a condition discount only below grade 3 (a threshold), :data:`POOR_CONDITION`;
* a garage premium only on houses over 2,000 sq ft (an interaction), :data:`GARAGE_PER_SPACE`;
* central air worth more in post-1960 houses, :data:`CENTRAL_AIR`;
* a "view" premium peaking at one spot and fading within a kilometre, :data:`VIEW_PREMIUM`,
  not aligned with any neighbourhood boundary;

and lognormal noise of :data:`SALE_SIGMA`. Deterministic for a seed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import shapely
from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo_data import (
    CENTRE_LAT,
    CENTRE_LON,
    HEDONIC_TRUTH,
    DemoCounty,
    DemoLoadReport,
    DemoParcels,
    FloatArray,
    generate_county,
    load_county,
    true_value,
)

QUALITY_EFFECT = np.array([-0.45, -0.25, 0.0, 0.10, 0.35, 0.70])
"""Log-price effect of quality grades 1..6."""
POOR_CONDITION = -0.35
"""Log-price effect of condition grade 1 or 2 (none from 3 up)."""
GARAGE_PER_SPACE = 0.08
"""Per garage space (up to two), on houses over 2,000 sq ft only."""
CENTRAL_AIR = (0.02, 0.12)
"""Central air in a house built before 1960, and from 1960 on."""
VIEW_PREMIUM = 0.45
VIEW_RADIUS_KM = 0.6
VIEW_SPOT = (CENTRE_LON + 0.012, CENTRE_LAT - 0.008)
"""Where the view premium peaks; it falls as exp(-(d / radius)^2)."""
SALE_SIGMA = 0.06


def nonlinear_value(parcels: DemoParcels, date: np.ndarray) -> FloatArray:
    """The model value of parcels on dates (see the module docstring); NaN characteristics
    (no building) take no effect."""
    extra = parcels.extra
    quality = np.nan_to_num(extra["quality"], nan=3).astype(int)
    condition = np.nan_to_num(extra["condition"], nan=3)
    garage = np.minimum(np.nan_to_num(extra["garage_spaces"]), 2)
    air = np.nan_to_num(extra["central_air"])
    built = np.nan_to_num(parcels.year_built, nan=1900)
    large = np.nan_to_num(parcels.living_area_sqft) > 2000
    centre = shapely.centroid(parcels.geometry)
    km_lon = 111.195 * math.cos(math.radians(CENTRE_LAT))
    east = (shapely.get_x(centre) - VIEW_SPOT[0]) * km_lon
    north = (shapely.get_y(centre) - VIEW_SPOT[1]) * 111.195
    log_effect = (
        QUALITY_EFFECT[np.clip(quality, 1, 6) - 1]
        + np.where(condition <= 2, POOR_CONDITION, 0.0)
        + GARAGE_PER_SPACE * garage * large
        + air * np.where(built >= 1960, CENTRAL_AIR[1], CENTRAL_AIR[0])
        + VIEW_PREMIUM * np.exp(-(east**2 + north**2) / VIEW_RADIUS_KM**2)
    )
    base = true_value(parcels, date)
    result: FloatArray = base * np.exp(log_effect)
    return result


def _characteristics(rng: np.random.Generator, parcels: DemoParcels) -> dict[str, FloatArray]:
    n = len(parcels)
    building = ~np.isnan(parcels.living_area_sqft)
    nan = np.full(n, np.nan)

    def where_built(values: FloatArray) -> FloatArray:
        return np.where(building, values, nan)

    return {
        "garage_spaces": where_built(rng.choice([0, 1, 2, 3], n, p=[0.2, 0.35, 0.4, 0.05])),
        "basement_sqft": where_built(np.where(rng.random(n) < 0.5, rng.uniform(300, 1500, n), 0)),
        "fireplaces": where_built(rng.choice([0, 1, 2], n, p=[0.5, 0.4, 0.1])),
        "central_air": where_built((rng.random(n) < 0.6).astype(float)),
        "quality": where_built(
            rng.choice(np.arange(1, 7), n, p=[0.05, 0.15, 0.35, 0.25, 0.15, 0.05])
        ),
        "condition": where_built(
            rng.choice(np.arange(1, 7), n, p=[0.05, 0.1, 0.4, 0.3, 0.1, 0.05])
        ),
        "stories": where_built(rng.choice([1.0, 1.5, 2.0], n, p=[0.5, 0.2, 0.3])),
        "remodel_year": where_built(
            np.where(rng.random(n) < 0.3, np.round(rng.uniform(1990, 2020, n)), np.nan)
        ),
    }


def generate_nonlinear_county(county_id: str, n_parcels: int, *, seed: int = 42) -> DemoCounty:
    """The demo county of ``seed`` with characteristics and non-linear sale prices."""
    county = generate_county(county_id, n_parcels, seed=seed)
    rng = np.random.default_rng([seed, 15])
    parcels = dataclasses.replace(county.parcels, extra=_characteristics(rng, county.parcels))
    sales = county.sales
    sold = _rows(parcels, sales.parcel_index)
    value = nonlinear_value(sold, sales.sale_date)
    price = value * np.exp(SALE_SIGMA * rng.standard_normal(value.size))
    low, high = HEDONIC_TRUTH.non_arms_length_discount
    price = np.where(sales.arms_length, price, price * rng.uniform(low, high, value.size))
    sales = dataclasses.replace(
        sales, sale_price=np.maximum(np.round(price, -2), 1000.0), true_value=value
    )
    return dataclasses.replace(county, parcels=parcels, sales=sales)


def _rows(parcels: DemoParcels, index: np.ndarray) -> DemoParcels:
    """`parcels` at `index` (for the sold parcels: one row per sale)."""
    return DemoParcels(
        **{
            f.name: getattr(parcels, f.name)[index]
            for f in dataclasses.fields(parcels)
            if f.name != "extra"
        },
        extra={name: values[index] for name, values in parcels.extra.items()},
    )


async def load_nonlinear_county(
    engine: AsyncEngine, county_id: str, n_parcels: int, *, seed: int = 42
) -> tuple[DemoCounty, DemoLoadReport]:
    county = generate_nonlinear_county(county_id, n_parcels, seed=seed)
    return county, await load_county(engine, county)
