"""GRADIENT_BOOSTING valuation on a county whose prices follow a known non-linear model of
rich characteristics (app/demo_nonlinear.py): it must beat the hedonic model on the same
time-ordered holdout, and both must be in the result. Also: the optional characteristics are
imported from a parcels file and feed the models."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.characteristics import EXTRA_NAMES
from app.config import Settings
from app.demo_nonlinear import SALE_SIGMA, load_nonlinear_county, nonlinear_value
from app.importer import import_file
from jobs.kinds.valuation.params import FEATURE_NAMES
from jobs.spec import JobKind
from jobs.stats.valuation import NUMERIC_FIELDS
from tests.builders import compute
from tests.conftest import RunningApp, WorkerControl
from tests.test_valuation_e2e import completed, run_valuations

COUNTY = "NONLIN"
PARCELS = 4000

WATCH = """
subscription($id: ID!) {
  jobUpdated(id: $id) {
    id status error { code message }
    ... on ValuationJob { result {
        method valuationDate parcelsValued features warnings
        holdout { count cod prd prb mki medianRatio }
        hedonicHoldout { count cod prd prb mki medianRatio } } }
  }
}
"""


def test_the_feature_names_are_the_characteristics() -> None:
    assert (*NUMERIC_FIELDS, *EXTRA_NAMES, "location") == FEATURE_NAMES


async def test_gradient_boosting_beats_hedonic_on_a_non_linear_market(
    app_server: RunningApp, worker: WorkerControl, engine: AsyncEngine
) -> None:
    county, _ = await load_nonlinear_county(engine, COUNTY, PARCELS, seed=3)
    (job,) = await run_valuations(
        app_server,
        worker,
        [{"countyId": COUNTY, "parameters": {"method": "GRADIENT_BOOSTING"}}],
        WATCH,
    )
    result = completed(job)
    assert result["method"] == "gradient_boosting"
    assert result["parcelsValued"] == PARCELS
    # Default features: every characteristic the county's sales have, and location.
    assert result["features"] == [*NUMERIC_FIELDS, *EXTRA_NAMES, "location"]
    boosted, hedonic = result["holdout"], result["hedonicHoldout"]
    assert boosted["count"] == hedonic["count"] > 200
    noise_cod = 100 * SALE_SIGMA * math.sqrt(2 / math.pi)
    # The hedonic model, given the same characteristics as linear terms and a location
    # surface, misses the steps, thresholds, interactions and the view; the trees do not.
    assert boosted["cod"] < 0.85 * hedonic["cod"], (boosted, hedonic)
    assert noise_cod < boosted["cod"] < 2 * noise_cod, (boosted, noise_cod)
    assert 0.95 < boosted["medianRatio"] < 1.05 and 0.97 < boosted["prd"] < 1.04

    # Values of every parcel, against the generating model at the valuation date.
    async with engine.connect() as conn:
        stored = dict(
            (
                await conn.execute(
                    text("SELECT parcel_id, estimated_value FROM valuations WHERE job_id = :j"),
                    {"j": job["id"]},
                )
            ).all()
        )
    parcels = county.parcels
    houses = np.flatnonzero(parcels.property_class == "residential")
    as_of = np.datetime64(dt.date.fromisoformat(result["valuationDate"]), "D")
    truth = nonlinear_value(parcels, np.full(len(parcels), as_of))[houses]
    values = np.array([stored[pid] for pid in parcels.parcel_id[houses]])
    error = np.abs(np.log(values / truth))
    assert float(np.median(error)) < 0.08


async def test_hedonic_takes_features_and_location_and_one_parcel_by_boosting(
    engine: AsyncEngine, settings: Settings
) -> None:
    await load_nonlinear_county(engine, COUNTY, 1500, seed=4)
    async with engine.connect() as conn:
        parcel = (
            await conn.execute(
                text(
                    "SELECT parcel_id FROM parcels WHERE county_id = :c "
                    "AND property_class = 'residential' ORDER BY parcel_id LIMIT 1"
                ),
                {"c": COUNTY},
            )
        ).scalar_one()

    async def value(**parameters: Any) -> dict[str, Any]:
        return await compute(
            engine,
            settings,
            JobKind.VALUATION,
            {"county_id": COUNTY, "property_id": parcel, "parameters": parameters},
        )

    richer = await value(features=["quality", "garage_spaces", "location"])
    coefficients = richer["model"]["coefficients"]
    assert {"quality", "garage_spaces", "east_km", "north_km_sq"} <= set(coefficients)
    # Quality raises prices in this market: the linear term finds it.
    assert coefficients["quality"]["estimate"] > 0.05
    plain = await value()
    assert "quality" not in plain["model"]["coefficients"]
    boosted = await value(method="gradient_boosting")
    assert boosted["method"] == "gradient_boosting" and boosted["estimated_value"] > 0
    assert boosted["boosted_model"]["importance"]["quality"] > 0


async def test_optional_characteristics_are_imported(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "parcels.csv"
    path.write_text(
        "parcel_id,lon,lat,garage_spaces,basement_sqft,fireplaces,central_air,quality,"
        "condition,stories,remodel_year\n"
        "R1,-122.44,47.24,2,850.5,1,1,4,3,1.5,2004\n"
        "R2,-122.45,47.25,,,,,,,,\n"
    )
    await import_file(engine, "parcels", path, "RICHCO")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT parcel_id, {', '.join(EXTRA_NAMES)} FROM parcels "
                    "WHERE county_id = 'RICHCO' ORDER BY parcel_id"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("R1", 2, 850.5, 1, 1, 4, 3, 1.5, 2004),
        ("R2", *([None] * len(EXTRA_NAMES))),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("parcel_id,lon,lat,central_air\nR3,-122.44,47.24,2\n")
    with pytest.raises(ValueError, match="central_air"):
        await import_file(engine, "parcels", bad, "RICHCO")
