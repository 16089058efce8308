"""The synthetic demo county: deterministic, plausible, true to its own model, and loadable."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
import shapely
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo_data import (
    CENTRE_LAT,
    CENTRE_LON,
    HEDONIC_TRUTH,
    NEIGHBORHOODS,
    DemoCounty,
    generate_county,
    load_county,
    load_demo_county,
    true_value,
    valuation_date,
)
from app.models import Assessment, Parcel, Sale

N = 5_000


@pytest.fixture(scope="module")
def county() -> DemoCounty:
    return generate_county("DEMO", N, seed=7)


def ratio_stats(assessed: np.ndarray, value: np.ndarray) -> tuple[float, float, float]:
    """Median ratio, COD (%) and PRD, as a ratio study computes them."""
    ratio = assessed / value
    median = float(np.median(ratio))
    cod = float(100 * np.mean(np.abs(ratio - median)) / median)
    prd = float(np.mean(ratio) / (assessed.sum() / value.sum()))
    return median, cod, prd


def test_same_seed_same_county_other_seed_other_county(county: DemoCounty):
    again = generate_county("DEMO", N, seed=7)
    for table in ("parcels", "sales", "assessments"):
        mine, theirs = getattr(county, table), getattr(again, table)
        for column in dataclasses.fields(mine):
            a, b = getattr(mine, column.name), getattr(theirs, column.name)
            if column.name == "geometry":
                assert shapely.equals_exact(a, b, tolerance=0).all()
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"{table}.{column.name}")
    other = generate_county("DEMO", N, seed=8)
    assert not np.array_equal(other.sales.sale_price[:50], county.sales.sale_price[:50])


def test_parcels_are_plausible(county: DemoCounty):
    p = county.parcels
    assert len(p) == N
    assert len(set(p.parcel_id.tolist())) == N
    assert len(set(p.zip_code.tolist())) >= 5
    assert len(set(p.neighborhood.tolist())) >= 10
    assert set(p.neighborhood.tolist()) <= set(NEIGHBORHOODS)

    classes = {c: float(np.mean(p.property_class == c)) for c in set(p.property_class.tolist())}
    assert set(classes) == {"residential", "condo", "commercial", "vacant"}
    assert 0.7 <= classes["residential"] <= 0.9
    assert all(0.02 <= classes[c] <= 0.15 for c in ("condo", "commercial", "vacant"))

    vacant = p.property_class == "vacant"
    for column in (p.year_built, p.living_area_sqft, p.bedrooms, p.bathrooms):
        assert np.isnan(column[vacant]).all()
    homes = (p.property_class == "residential") | (p.property_class == "condo")
    assert not np.isnan(p.bedrooms[homes]).any() and not np.isnan(p.bathrooms[homes]).any()
    assert np.isnan(p.bedrooms[p.property_class == "commercial"]).all()
    assert not np.isnan(p.lot_size_sqft).any()
    residential = p.property_class == "residential"
    assert 1_200 <= np.median(p.living_area_sqft[residential]) <= 2_600
    assert 3_000 <= np.median(p.lot_size_sqft[residential]) <= 15_000
    assert (p.year_built[~vacant] <= county.first_year - 1).all()
    assert (p.year_built[~vacant] >= 1890).all()


def test_lots_are_valid_polygons_in_lon_lat(county: DemoCounty):
    g = county.parcels.geometry
    assert (shapely.get_type_id(g) == 3).all()  # Polygon
    assert shapely.is_valid(g).all()
    bounds = shapely.bounds(g)
    assert (np.abs(bounds[:, [0, 2]] - CENTRE_LON) < 0.2).all()
    assert (np.abs(bounds[:, [1, 3]] - CENTRE_LAT) < 0.2).all()
    # Lot sizes are the polygons' areas (at this latitude one degree² is about 8.4e9 m²).
    metres2 = shapely.area(g) * 111_132.0**2 * np.cos(np.radians(CENTRE_LAT))
    np.testing.assert_allclose(metres2 * 10.7639, county.parcels.lot_size_sqft, rtol=0.01)
    # Lots do not overlap each other.
    tree = shapely.STRtree(g)
    assert tree.query(g, predicate="overlaps").shape[1] == 0
    # Both ring orientations occur, as in real county files.
    ccw = shapely.is_ccw(shapely.get_exterior_ring(g))
    assert 0.03 < 1 - ccw.mean() < 0.2


def test_neighborhoods_are_spatial_clusters(county: DemoCounty):
    centroids = shapely.centroid(county.parcels.geometry)
    x, y = shapely.get_x(centroids), shapely.get_y(centroids)
    hoods = county.parcels.neighborhood
    spread_within = np.mean(
        [np.std(x[hoods == h]) + np.std(y[hoods == h]) for h in set(hoods.tolist())]
    )
    assert spread_within < 0.5 * (np.std(x) + np.std(y))


def test_sales_span_years_with_repeat_and_non_arms_length(county: DemoCounty):
    s = county.sales
    span = (s.sale_date.max() - s.sale_date.min()).astype(int)
    assert span >= 3 * 365
    assert s.sale_date.min() >= np.datetime64(f"{county.first_year}-01-01")
    assert s.sale_date.max() < np.datetime64(f"{county.first_year + county.years}-01-01")
    sold, times = np.unique(s.parcel_id, return_counts=True)
    assert 0.25 <= sold.size / N <= 0.35
    assert 0.04 <= np.mean(times == 2) <= 0.12
    keys = set(zip(s.parcel_id.tolist(), s.sale_date.tolist(), strict=True))
    assert len(keys) == len(s)  # natural key unique
    for parcel in sold[times == 2][:20]:
        dates = np.sort(s.sale_date[s.parcel_id == parcel])
        assert (dates[1] - dates[0]).astype(int) >= 120
    assert 0.05 <= 1 - s.arms_length.mean() <= 0.11
    assert np.all(s.sale_price > 0)


def test_prices_follow_the_hedonic_truth(county: DemoCounty):
    s = county.sales
    recomputed = true_value(
        {
            name: getattr(county.parcels, name)[s.parcel_index]
            for name in (
                "property_class",
                "neighborhood",
                "living_area_sqft",
                "lot_size_sqft",
                "year_built",
                "bathrooms",
            )
        },
        s.sale_date,
    )
    np.testing.assert_allclose(recomputed, s.true_value)
    residual = np.log(s.sale_price / s.true_value)
    arms = residual[s.arms_length]
    assert abs(np.mean(arms)) < 0.01
    assert abs(np.std(arms) - HEDONIC_TRUTH.sale_sigma) < 0.01
    low, high = HEDONIC_TRUTH.non_arms_length_discount
    discounted = np.exp(residual[~s.arms_length])
    assert low * 0.7 < np.median(discounted) < high
    assert np.median(discounted) < 0.8

    # The monthly trend is recoverable: regress log(price / value at the base date) on months.
    base = true_value(
        {
            name: getattr(county.parcels, name)[s.parcel_index]
            for name in (
                "property_class",
                "neighborhood",
                "living_area_sqft",
                "lot_size_sqft",
                "year_built",
                "bathrooms",
            )
        },
        HEDONIC_TRUTH.base_date,
    )
    months = (s.sale_date - np.datetime64(HEDONIC_TRUTH.base_date)).astype(float) / (365.2425 / 12)
    slope = np.polyfit(months[s.arms_length], np.log(s.sale_price / base)[s.arms_length], 1)[0]
    # The age term moves with the sale date too, so allow for it.
    assert abs(slope - HEDONIC_TRUTH.monthly_trend) < 0.001


def test_true_value_by_hand():
    parcels = {
        "property_class": ["residential", "vacant"],
        "neighborhood": ["Proctor", "Firwood"],
        "living_area_sqft": [2000.0, None],
        "lot_size_sqft": [6000.0, 9000.0],
        "year_built": [1990.0, float("nan")],
        "bathrooms": [2.0, None],
    }
    t = HEDONIC_TRUTH
    at_base = true_value(parcels, t.base_date)
    expected_home = np.exp(
        t.intercept
        + t.class_effect["residential"]
        + t.neighborhood_effect["Proctor"]
        + t.log_living_area * np.log(2000)
        + t.log_lot_size * np.log(6000)
        + t.age * (2020 - 1990)
        + t.bathroom * 2
    )
    expected_lot = np.exp(
        t.intercept
        + t.class_effect["vacant"]
        + t.neighborhood_effect["Firwood"]
        + t.log_lot_size * np.log(9000)
    )
    np.testing.assert_allclose(at_base, [expected_home, expected_lot])
    assert 300_000 < expected_home < 900_000
    assert 50_000 < expected_lot < 300_000
    # The vacant lot has no age, so a year later only the trend moves it.
    year_later = true_value(parcels, dt.date(2021, 1, 1))
    growth = np.exp(HEDONIC_TRUTH.monthly_trend * 366 / (365.2425 / 12))
    assert year_later[1] / at_base[1] == pytest.approx(growth)
    with pytest.raises(ValueError, match="neighborhood not in the model: Atlantis"):
        true_value(parcels | {"neighborhood": ["Atlantis", "Firwood"]}, t.base_date)


def test_assessments_ratio_statistics(county: DemoCounty):
    a, s = county.assessments, county.sales
    assert len(a) == N * county.years
    assert sorted(set(a.tax_year.tolist())) == county.tax_years
    np.testing.assert_array_equal(a.land_value + a.improvement_value, a.assessed_value)
    assert (a.land_value >= 0).all() and (a.improvement_value >= 0).all()
    vacant = county.parcels.property_class[a.parcel_index] == "vacant"
    assert (a.improvement_value[vacant] == 0).all()

    for year in county.tax_years:
        this = a.tax_year == year
        median, cod, prd = ratio_stats(a.assessed_value[this], a.true_value[this])
        assert 0.97 <= median <= 1.03, year
        assert 7 <= cod <= 14, year
        assert 1.0 < prd < 1.05, year  # mildly regressive

        # Against arm's-length sales within half a year of the valuation date.
        when = np.datetime64(valuation_date(year))
        near = s.arms_length & (np.abs((s.sale_date - when).astype(int)) <= 182)
        assessed = a.assessed_value[this][s.parcel_index[near]]
        median, cod, _ = ratio_stats(assessed, s.sale_price[near])
        assert 0.93 <= median <= 1.07, year
        assert 9 <= cod <= 18, year

    # Regressivity: cheap parcels are over-assessed relative to dear ones.
    this = a.tax_year == county.tax_years[0]
    ratio = a.assessed_value[this] / a.true_value[this]
    cheap = a.true_value[this] < np.quantile(a.true_value[this], 0.2)
    dear = a.true_value[this] > np.quantile(a.true_value[this], 0.8)
    assert np.median(ratio[cheap]) > np.median(ratio[dear])


async def table_counts(engine: AsyncEngine, county_id: str) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        counts = []
        for model in (Parcel, Sale, Assessment):
            counts.append(
                int(
                    await conn.scalar(
                        select(func.count()).select_from(model).where(model.county_id == county_id)
                    )
                    or 0
                )
            )
    return counts[0], counts[1], counts[2]


async def test_load_county_fills_the_tables(engine: AsyncEngine, county: DemoCounty):
    seen: list[tuple[int, int | None]] = []
    report = await load_county(engine, county, progress=lambda d, t: seen.append((d, t)))

    expected = (len(county.parcels), len(county.sales), len(county.assessments))
    assert await table_counts(engine, "DEMO") == expected
    assert (report.parcels.inserted, report.sales.inserted, report.assessments.inserted) == expected
    assert seen[-1] == (sum(expected), sum(expected))
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Parcel.__table__).where(Parcel.parcel_id == county.parcels.parcel_id[0])
            )
        ).one()
        sale = (
            await conn.execute(
                select(Sale.__table__).order_by(Sale.sale_date, Sale.parcel_id).limit(1)
            )
        ).one()
    geometry = shapely.geometry.shape(row.geometry)
    assert shapely.equals(geometry, county.parcels.geometry[0])
    assert geometry.exterior.is_ccw  # stored per RFC 7946 whatever the generated orientation
    assert (row.min_lon, row.min_lat, row.max_lon, row.max_lat) == pytest.approx(
        shapely.bounds(county.parcels.geometry[0]).tolist()
    )
    assert row.property_class == county.parcels.property_class[0]
    assert (sale.parcel_id, sale.sale_price) == (
        county.sales.parcel_id[0],
        county.sales.sale_price[0],
    )

    again = await load_county(engine, county)
    assert (again.parcels.unchanged, again.sales.unchanged, again.assessments.unchanged) == expected
    assert await table_counts(engine, "DEMO") == expected


async def test_load_demo_county_20k(engine: AsyncEngine):
    """Its speed is bench/bench_import.py's to measure, not a timed test's."""
    report = await load_demo_county(engine, "BIG", 20_000, seed=3)

    generated = generate_county("BIG", 20_000, seed=3)
    expected = (20_000, len(generated.sales), 20_000 * generated.years)
    assert await table_counts(engine, "BIG") == expected
    assert (report.parcels.rows, report.sales.rows, report.assessments.rows) == expected
    assert str(report).startswith("20,000 parcels, ")
