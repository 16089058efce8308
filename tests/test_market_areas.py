"""COMPARABLE_MARKET_AREA: a county built from three known market groups (two sharing a price
level, two sharing a trend) is recovered as those areas, through GraphQL and a real worker; the
GeoJSON layer reads back (json, GDAL via pyogrio, ogrinfo); thin data and bad input are handled
as the README says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo_data import load_county
from jobs.stats.market_areas import silhouette, standardise
from tests.builders import MARKET_GROUPS, market_area_county
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import gql_data, subscribe
from tests.test_job_flow import download, mutation

COUNTY = "MKTAREA"

WATCH = """
subscription($id: ID!) {
  jobUpdated(id: $id) {
    id status error { code message }
    ... on MarketAnalysisJob { analysisType result {
        warnings annualTrendPercent
        marketAreas {
          valuationDate timeAdjustmentMethod areaCount chosenBy silhouette
          areas { id name neighborhoods saleCount parcelCount medianPricePerSqft
                  medianSalePrice annualTrendPercent annualTrendCi { lower upper level } }
          neighborhoods { neighborhood areaId saleCount medianPricePerSqft annualTrendPercent }
          excludedNeighborhoods { neighborhood saleCount }
        }
        files { name url contentType rowCount sizeBytes } } }
  }
}
"""


async def run_market_areas(
    app: RunningApp, worker: WorkerControl, parameters: dict[str, Any]
) -> dict[str, Any]:
    job = await gql_data(
        app.url,
        mutation("runMarketAnalysis"),
        {
            "input": {
                "countyId": COUNTY,
                "analysisType": "COMPARABLE_MARKET_AREA",
                "parameters": {"comparableMarketArea": parameters},
            }
        },
    )
    async with subscribe(app.ws_url, WATCH, {"id": job["runMarketAnalysis"]["id"]}) as sub:
        await worker.start()
        final: dict[str, Any] = (await sub.collect(timeout=120))[-1]["data"]["jobUpdated"]
    assert final["status"] == "COMPLETED", final
    assert final["analysisType"] == "COMPARABLE_MARKET_AREA"
    return final


def groups_as_sets() -> set[frozenset[str]]:
    return {frozenset(names) for _, _, names in MARKET_GROUPS.values()}


async def parcel_centroids(engine: AsyncEngine, county: str) -> dict[str, list[shapely.Point]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT neighborhood, centroid_lon, centroid_lat FROM parcels "
                    "WHERE county_id = :c"
                ),
                {"c": county},
            )
        ).all()
    by_hood: dict[str, list[shapely.Point]] = {}
    for hood, lon, lat in rows:
        by_hood.setdefault(hood, []).append(shapely.Point(lon, lat))
    return by_hood


async def test_known_market_groups_are_recovered_with_a_gis_layer(
    app_server: RunningApp, worker: WorkerControl, engine: AsyncEngine, tmp_path: Path
) -> None:
    await load_county(engine, market_area_county(COUNTY, 3000))
    final = await run_market_areas(app_server, worker, {})
    result = final["result"]
    areas = result["marketAreas"]
    assert areas["chosenBy"] == "SILHOUETTE" and areas["areaCount"] == 3
    assert areas["silhouette"] > 0.7
    assert {frozenset(a["neighborhoods"]) for a in areas["areas"]} == groups_as_sets()
    assert areas["excludedNeighborhoods"] == []
    # The demo's vacant lots have no living area: said, and nothing else.
    (warning,) = result["warnings"]
    assert re.fullmatch(r"\d+ sales without a living area left out", warning), warning
    by_group = {
        name: next(a for a in areas["areas"] if set(a["neighborhoods"]) == set(hoods))
        for name, (_, _, hoods) in MARKET_GROUPS.items()
    }
    # Ids follow the price level; each area's trend is its group's, within 3 standard errors
    # (the 95 % interval's half-width is 1.96 of them).
    assert by_group["value"]["id"] == "MA-1"
    for name, (_, trend, _) in MARKET_GROUPS.items():
        area = by_group[name]
        ci = area["annualTrendCi"]
        half_width = (ci["upper"] - ci["lower"]) / 2
        assert abs(area["annualTrendPercent"] - 100 * np.expm1(trend)) < 1.53 * half_width, area
    # The county's one index adjusts both groups priced alike at mid-period alike: the steady
    # and the rising group are told apart by their trends alone.
    steady, rising = by_group["steady"], by_group["rising"]
    assert by_group["value"]["medianPricePerSqft"] < 0.7 * steady["medianPricePerSqft"]
    assert abs(np.log(rising["medianPricePerSqft"] / steady["medianPricePerSqft"])) < 0.05
    assert sum(a["saleCount"] for a in areas["areas"]) == sum(
        n["saleCount"] for n in areas["neighborhoods"]
    )
    assert {n["areaId"] for n in areas["neighborhoods"]} == {"MA-1", "MA-2", "MA-3"}

    files = {f["name"]: f for f in result["files"]}
    layer = files["market_areas.geojson"]
    assert layer["contentType"] == "application/geo+json" and layer["rowCount"] == 3
    body = await download(app_server, layer["url"])
    assert len(body) == layer["sizeBytes"]
    collection = json.loads(body)
    centroids = await parcel_centroids(engine, COUNTY)
    for feature in collection["features"]:
        props = feature["properties"]
        area = next(a for a in areas["areas"] if a["id"] == props["id"])
        assert props["neighborhoods"] == "; ".join(area["neighborhoods"])
        assert props["sale_count"] == area["saleCount"]
        outline = shapely.geometry.shape(feature["geometry"])
        assert outline.geom_type in ("Polygon", "MultiPolygon") and outline.is_valid
        inside = [p for hood in area["neighborhoods"] for p in centroids[hood]]
        assert props["parcel_count"] == area["parcelCount"] == len(inside)
        assert all(outline.contains(p) for p in inside)
        others = [
            p for hood, ps in centroids.items() if hood not in area["neighborhoods"] for p in ps
        ]
        assert not any(outline.contains(p) for p in others)

    path = tmp_path / "market_areas.geojson"
    path.write_bytes(body)
    frame = pyogrio.read_info(str(path))
    assert frame["features"] == 3 and frame["geometry_type"] in ("Polygon", "MultiPolygon")
    assert {"id", "name", "neighborhoods", "sale_count", "median_price_per_sqft"} <= set(
        frame["fields"]
    )
    if shutil.which("ogrinfo") is not None:
        info = subprocess.run(
            ["ogrinfo", "-ro", "-al", "-so", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert "Feature Count: 3" in info and "median_price_per_sqft: Real" in info, info

    table = files["market_area_neighborhoods.csv"]
    assert table["rowCount"] == 12
    csv_text = (await download(app_server, table["url"])).decode()
    assert csv_text.splitlines()[0].startswith("neighborhood,area_id,sale_count")


def test_silhouette_of_a_hand_computed_partition() -> None:
    # Points 0, 1 on a line (cluster a) and 4 (cluster b): a(0)=1, b(0)=4 -> 0.75;
    # a(1)=1, b(1)=3 -> 2/3; point 4 alone -> 0.
    features = np.array([[0.0], [1.0], [4.0]])
    width = silhouette(features, np.array([0, 0, 1]))
    assert width == pytest.approx((0.75 + 2 / 3 + 0) / 3)
    assert standardise(np.array([[1.0, 5.0], [3.0, 5.0]])).tolist() == [[-1.0, 0.0], [1.0, 0.0]]
