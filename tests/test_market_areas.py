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
import openpyxl
import pyogrio
import pytest
import shapely
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.demo_data import load_county
from app.importer import import_file
from jobs.spec import JobFailure, JobKind
from jobs.stats.market_areas import NeighborhoodMarket, cluster_markets, silhouette, standardise
from tests.builders import MARKET_GROUPS, compute, market_area_county, result_text
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import gql, gql_data, subscribe
from tests.test_bad_input import JOB_TABLES
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


def market_areas_input(**parameters: Any) -> dict[str, Any]:
    return {
        "county_id": COUNTY,
        "analysis_type": "comparable_market_area",
        "parameters": {"comparable_market_area": parameters},
    }


async def test_thin_neighborhoods_and_too_many_areas_are_said_in_warnings(
    engine: AsyncEngine, settings: Settings
) -> None:
    await load_county(engine, market_area_county(COUNTY, 3000))
    kind = JobKind.MARKET_ANALYSIS
    # North End, Firwood and Fern Hill have 21-24 usable sales (see market_area_county).
    thinned = await compute(
        engine, settings, kind, market_areas_input(min_sales_per_neighborhood=30)
    )
    areas = thinned["market_areas"]
    excluded = {e["neighborhood"]: e["sale_count"] for e in areas["excluded_neighborhoods"]}
    assert set(excluded) == {"North End", "Firwood", "Fern Hill"}
    assert all(count < 30 for count in excluded.values())
    assert any(
        w.startswith("3 neighborhoods with fewer than 30 sales left out: ")
        for w in thinned["warnings"]
    ), thinned["warnings"]
    kept = {frozenset(names - set(excluded)) for names in groups_as_sets()}
    assert {frozenset(a["neighborhoods"]) for a in areas["areas"]} == kept
    assert "North End" not in result_text(settings, thinned, "neighborhoods.csv")

    many = await compute(engine, settings, kind, market_areas_input(area_count=20))
    areas = many["market_areas"]
    assert areas["chosen_by"] == "neighborhood_count" and areas["area_count"] == 12
    assert [len(a["neighborhoods"]) for a in areas["areas"]] == [1] * 12
    assert (
        "20 areas were asked for, but only 12 neighborhoods have enough sales: "
        "each is a market area of its own"
    ) in many["warnings"]

    # Price level alone (trendWeight 0) cannot tell the steady group from the rising one.
    level_only = await compute(
        engine, settings, kind, market_areas_input(area_count=2, trend_weight=0)
    )
    value, rest = (frozenset(a["neighborhoods"]) for a in level_only["market_areas"]["areas"])
    assert value == set(MARKET_GROUPS["value"][2])
    assert rest == set(MARKET_GROUPS["steady"][2]) | set(MARKET_GROUPS["rising"][2])

    with pytest.raises(JobFailure) as failure:
        await compute(engine, settings, kind, market_areas_input(min_sales_per_neighborhood=500))
    assert failure.value.code == "INSUFFICIENT_SALES"
    assert "minSalesPerNeighborhood" in str(failure.value)


async def test_a_workbook_instead_of_the_csv_holds_every_table_as_numbers(
    engine: AsyncEngine, settings: Settings
) -> None:
    await load_county(engine, market_area_county(COUNTY, 3000))
    result = await compute(
        engine,
        settings,
        JobKind.MARKET_ANALYSIS,
        market_areas_input(output_formats=["xlsx"], min_sales_per_neighborhood=30),
    )
    # The GIS layer is the analysis itself: always written; the tables go where asked.
    assert [f["name"] for f in result["files"]] == ["market_areas.geojson", "market_areas.xlsx"]
    (file,) = [f for f in result["files"] if f["name"].endswith(".xlsx")]
    book = openpyxl.load_workbook(
        settings.resolved_results_dir / file["url"].removeprefix("/results/")
    )
    assert book.sheetnames == ["Neighborhoods", "Areas", "Excluded"]
    areas = result["market_areas"]
    hoods = list(book["Neighborhoods"].iter_rows(values_only=True))
    assert hoods[0] == (
        "neighborhood",
        "area_id",
        "sale_count",
        "median_price_per_sqft",
        "annual_trend_percent",
    )
    assert [row[:3] for row in hoods[1:]] == [
        (n["neighborhood"], n["area_id"], n["sale_count"]) for n in areas["neighborhoods"]
    ]
    assert all(isinstance(row[3], float) for row in hoods[1:])
    area_rows = list(book["Areas"].iter_rows(values_only=True))[1:]
    assert [(r[0], r[2], r[3]) for r in area_rows] == [
        (a["id"], "; ".join(a["neighborhoods"]), a["sale_count"]) for a in areas["areas"]
    ]
    excluded = list(book["Excluded"].iter_rows(values_only=True))[1:]
    assert excluded == [
        (e["neighborhood"], e["sale_count"]) for e in areas["excluded_neighborhoods"]
    ]
    assert len(excluded) == 3


async def test_point_parcels_sold_on_one_day_give_hulls_and_a_warning(
    engine: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    # Three neighborhoods of five parcels imported by lon,lat; two priced at $100/sqft, one at
    # $300/sqft, every sale on one day (a cross-sectional sample).
    hoods = {"A": (-122.50, 100.0), "B": (-122.40, 100.0), "C": (-122.30, 300.0)}
    parcels = ["parcel_id,neighborhood,living_area_sqft,lon,lat"]
    sales = ["parcel_id,sale_date,sale_price"]
    for hood, (lon, ppsf) in hoods.items():
        for i in range(5):
            area = 1000 + 100 * i
            parcels.append(f"{hood}{i},{hood},{area},{lon + 0.01 * (i % 3)},{47.2 + 0.01 * i}")
            sales.append(f"{hood}{i},2024-05-01,{ppsf * area * (1 + 0.01 * (i - 2))}")
    (tmp_path / "parcels.csv").write_text("\n".join(parcels) + "\n")
    (tmp_path / "sales.csv").write_text("\n".join(sales) + "\n")
    await import_file(engine, "parcels", tmp_path / "parcels.csv", COUNTY)
    await import_file(engine, "sales", tmp_path / "sales.csv", COUNTY)

    result = await compute(
        engine, settings, JobKind.MARKET_ANALYSIS, market_areas_input(min_sales_per_neighborhood=3)
    )
    areas = result["market_areas"]
    assert areas["chosen_by"] == "silhouette"
    assert [a["neighborhoods"] for a in areas["areas"]] == [["A", "B"], ["C"]]
    assert all(a["annual_trend_percent"] is None for a in areas["areas"])
    assert result["warnings"] == [
        "every sale is dated 2024-05-01: prices are not time-adjusted and neighborhoods are "
        "compared on price level alone"
    ]
    layer = json.loads(result_text(settings, result, ".geojson"))
    outlines = [shapely.geometry.shape(f["geometry"]) for f in layer["features"]]
    assert [o.geom_type for o in outlines] == ["Polygon", "Polygon"]
    assert outlines[0].area > 0 and outlines[0].exterior.is_ccw  # RFC 7946 right-hand rule
    # Points A0 and B2: corners of the hull of A and B.
    corners = [shapely.Point(-122.50, 47.2), shapely.Point(-122.38, 47.22)]
    assert all(outlines[0].distance(p) < 1e-9 for p in corners), outlines
    assert outlines[1].distance(corners[1]) > 0.05


BAD_PARAMETERS = [
    ({"areaCount": 0}, "parameters.comparableMarketArea.areaCount"),
    ({"maxAreas": 1}, "parameters.comparableMarketArea.maxAreas"),
    ({"minSalesPerNeighborhood": 2}, "parameters.comparableMarketArea.minSalesPerNeighborhood"),
    ({"trendWeight": -1}, "parameters.comparableMarketArea.trendWeight"),
    ({"timeAdjustment": "SOMETIMES"}, "parameters.comparableMarketArea.timeAdjustment"),
]


@pytest.mark.parametrize(
    ("parameters", "field"), BAD_PARAMETERS, ids=[f for _, f in BAD_PARAMETERS]
)
async def test_bad_parameters_name_their_graphql_path_and_leave_nothing(
    app_server: RunningApp,
    engine: AsyncEngine,
    redis: Redis,
    settings: Settings,
    county: str,
    parameters: dict[str, Any],
    field: str,
) -> None:
    body = await gql(
        app_server.url,
        mutation("runMarketAnalysis"),
        {
            "input": {
                "countyId": county,
                "analysisType": "COMPARABLE_MARKET_AREA",
                "parameters": {"comparableMarketArea": parameters},
            }
        },
    )
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert field in error["message"], error["message"]
    async with engine.connect() as conn:
        for table in JOB_TABLES:
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
    assert await redis.zcard(settings.queue_name) == 0


def test_area_counts_at_the_edges() -> None:
    def markets(*levels: float) -> list[NeighborhoodMarket]:
        return [NeighborhoodMarket(f"N{i}", 10, level, None) for i, level in enumerate(levels)]

    def cut(levels: tuple[float, ...], area_count: int | None) -> tuple[list[int], str, Any]:
        c = cluster_markets(
            markets(*levels), area_count=area_count, max_areas=8, trend_weight=1, fallback_slope=0
        )
        return c.labels.tolist(), c.chosen_by, c.silhouette

    # Two neighborhoods: no count can be chosen, so each is its own area (the cheaper first).
    assert cut((300, 100), None) == ([1, 0], "neighborhood_count", None)
    assert cut((300, 100), 2) == ([1, 0], "area_count", None)
    assert cut((100, 110, 300, 310), 1) == ([0, 0, 0, 0], "area_count", None)
    labels, chosen_by, width = cut((100, 110, 300, 310, 305), None)
    assert (labels, chosen_by) == ([0, 0, 1, 1, 1], "silhouette") and width > 0.9
