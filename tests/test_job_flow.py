"""A job end to end: mutation over HTTP, a real arq worker, a websocket subscriber."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import numpy as np
import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS, gql_data, subscribe

JOB_FIELDS = """
  id kind status version changeCursor message attempts countyId
  progress { percent step processed total }
  error { code message }
"""

WATCH = f"""
subscription($id: ID!) {{
  jobUpdated(id: $id) {{
    {JOB_FIELDS}
    ... on ReportJob {{ result {{
        ratioStudy {{ taxYear saleDateFrom saleDateTo
                      overall {{ count countUsed medianRatio cod prd }} }}
        assessmentRoll {{ parcelCount totalAssessedValue }}
        files {{ name url sizeBytes rowCount contentType }} }} }}
    ... on MarketAnalysisJob {{ result {{
        trends {{ period salesVolume medianPrice averagePrice }}
        annualTrendPercent files {{ name url sizeBytes rowCount }} }} }}
    ... on GisExportJob {{ result {{
        recordCount bbox crs file {{ name url sizeBytes rowCount contentType }} }} }}
    ... on ValuationJob {{ result {{
        method estimatedValue interval {{ lower upper level }} parcelsValued
        comparables {{ parcelId salePrice adjustedPrice distance }}
        files {{ name url sizeBytes rowCount }} }} }}
  }}
}}
"""

BBOX_KEYS = ("minLon", "minLat", "maxLon", "maxLat")

MUTATIONS = {
    "runReport": "RunReportInput",
    "runMarketAnalysis": "RunMarketAnalysisInput",
    "runGisExport": "RunGisExportInput",
    "runValuation": "RunValuationInput",
}


def mutation(name: str) -> str:
    return f"mutation($input: {MUTATIONS[name]}!) {{ {name}(input: $input) {{ {JOB_FIELDS} }} }}"


async def run_and_watch(
    app: RunningApp, worker: WorkerControl, name: str, input: dict[str, Any], protocol: str
) -> list[dict[str, Any]]:
    """Submit with no worker running, subscribe, then start the worker and watch to the end."""
    job = (await gql_data(app.url, mutation(name), {"input": input}))[name]
    assert job["status"] == "PENDING"
    async with subscribe(app.ws_url, WATCH, {"id": job["id"]}, protocol=protocol) as sub:
        first = await sub.next()
        await worker.start()
        rest = await sub.collect(timeout=120)
    updates = [p["data"]["jobUpdated"] for p in [first, *(rest)]]
    assert all(u["id"] == job["id"] for u in updates)
    return updates


def assert_lifecycle(updates: list[dict[str, Any]]) -> None:
    statuses = [u["status"] for u in updates]
    assert statuses[0] == "PENDING", statuses
    assert statuses[-1] == "COMPLETED", updates[-1]
    assert statuses[1] == "RUNNING", statuses
    running = [u for u in updates if u["status"] == "RUNNING"]
    steps = {u["progress"]["step"] for u in running}
    assert len(steps) >= 3, steps  # "starting" plus at least two progress steps of the work
    percents = [u["progress"]["percent"] for u in running]
    assert 0 < max(percents) < 100
    every = [u["progress"]["percent"] for u in updates]
    assert every == sorted(every), every  # never goes back, up to the 100 of COMPLETED
    versions = [u["version"] for u in updates]
    assert versions == sorted(set(versions)), versions
    done = updates[-1]["progress"]
    assert done["percent"] == 100
    assert done["processed"] == done["total"], done  # the last step's count, complete
    assert updates[-1]["attempts"] == 1


async def download(app: RunningApp, url: str) -> bytes:
    async with httpx.AsyncClient(base_url=app.url) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.content


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_ratio_study_runs_and_streams_every_change(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine, protocol: str
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {
            "reportType": "SALES_RATIO_STUDY",
            "countyId": county,
            "parameters": {"salesRatioStudy": {"trim": "NONE"}},
        },
        protocol,
    )
    assert_lifecycle(updates)
    study = updates[-1]["result"]["ratioStudy"]
    expected = await scalar(
        engine,
        """SELECT count(*) FROM sales s JOIN assessments a
             ON a.county_id = s.county_id AND a.parcel_id = s.parcel_id AND a.tax_year = :year
           JOIN parcels p ON p.county_id = s.county_id AND p.parcel_id = s.parcel_id
           WHERE s.county_id = :county AND s.arms_length AND s.sale_price > 0
             AND s.sale_date BETWEEN :start AND :end""",
        year=study["taxYear"],
        county=county,
        start=dt.date.fromisoformat(study["saleDateFrom"]),
        end=dt.date.fromisoformat(study["saleDateTo"]),
    )
    assert study["overall"]["count"] == expected > 0
    assert study["overall"]["countUsed"] == expected
    median = await scalar(
        engine,
        """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.assessed_value / s.sale_price)
           FROM sales s JOIN assessments a
             ON a.county_id = s.county_id AND a.parcel_id = s.parcel_id AND a.tax_year = :year
           WHERE s.county_id = :county AND s.arms_length AND s.sale_price > 0
             AND s.sale_date BETWEEN :start AND :end""",
        year=study["taxYear"],
        county=county,
        start=dt.date.fromisoformat(study["saleDateFrom"]),
        end=dt.date.fromisoformat(study["saleDateTo"]),
    )
    assert study["overall"]["medianRatio"] == pytest.approx(median, rel=1e-9)
    (csv_file,) = [f for f in updates[-1]["result"]["files"] if f["name"].endswith(".csv")]
    body = await download(app_server, csv_file["url"])
    assert len(body) == csv_file["sizeBytes"]
    assert body.decode().count("\n") == csv_file["rowCount"] + 1


async def test_price_trend_counts_every_sale_once(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runMarketAnalysis",
        {
            "analysisType": "PRICE_TREND",
            "countyId": county,
            "parameters": {"priceTrend": {"period": "YEAR"}},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    trends = updates[-1]["result"]["trends"]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """SELECT extract(year FROM sale_date)::int, count(*),
                              percentile_cont(0.5) WITHIN GROUP (ORDER BY sale_price)
                       FROM sales WHERE county_id = :county AND arms_length
                       GROUP BY 1 ORDER BY 1"""
                ),
                {"county": county},
            )
        ).all()
    by_year = {int(year): (count, median) for year, count, median in rows}
    assert [int(t["period"]) for t in trends] == sorted(by_year)
    for point in trends:
        count, median = by_year[int(point["period"])]
        assert point["salesVolume"] == count
        assert point["medianPrice"] == pytest.approx(median, rel=1e-9)


async def test_gis_export_holds_the_parcels_of_the_area(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT parcel_id, geometry::text FROM parcels WHERE county_id = :c"),
                {"c": county},
            )
        ).all()
    geoms = shapely.from_geojson(np.array([r[1] for r in rows], dtype=object))
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    box = [minx, miny, (minx + maxx) / 2, (miny + maxy) / 2]
    inside = shapely.intersects(geoms, shapely.box(*box))
    updates = await run_and_watch(
        app_server,
        worker,
        "runGisExport",
        {
            "exportFormat": "GEOJSON",
            "countyId": county,
            "layers": ["PARCELS"],
            "areaOfInterest": {"bbox": dict(zip(BBOX_KEYS, box, strict=True))},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    result = updates[-1]["result"]
    assert result["recordCount"] == int(inside.sum()) > 0
    body = await download(app_server, result["file"]["url"])
    assert len(body) == result["file"]["sizeBytes"]
    features = json.loads(body)["features"]
    expected_ids = {rows[i][0] for i in np.flatnonzero(inside)}
    assert {f["properties"]["parcel_id"] for f in features} == expected_ids


async def test_single_parcel_valuation_lists_comparables(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    parcel = await scalar(
        engine,
        """SELECT parcel_id FROM parcels WHERE county_id = :c AND living_area_sqft > 0
           ORDER BY parcel_id LIMIT 1""",
        c=county,
    )
    last_sale = await scalar(
        engine, "SELECT max(sale_date) FROM sales WHERE county_id = :c", c=county
    )
    updates = await run_and_watch(
        app_server,
        worker,
        "runValuation",
        {
            "countyId": county,
            "propertyId": parcel,
            "parameters": {"method": "COMPARABLES", "k": 5, "valuationDate": str(last_sale)},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    result = updates[-1]["result"]
    assert len(result["comparables"]) == 5
    distances = [c["distance"] for c in result["comparables"]]
    assert distances == sorted(distances)
    prices = [c["adjustedPrice"] for c in result["comparables"]]
    assert min(prices) <= result["estimatedValue"] <= max(prices)
