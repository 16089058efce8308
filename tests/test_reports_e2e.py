"""Reports and market analyses end to end, each figure checked against its own computation.

Every job runs through the real path (GraphQL mutation, arq worker, websocket subscription);
the expected numbers come from SQL on the same tables or from plain numpy on rows the test
fetches itself, never from the modules under test. One unit test guards the batching of
group statistics that lets the ratio study's progress move.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from jobs.kinds.report.sales_ratio_study import group_batches
from jobs.stats.ratio import group_statistics
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import TRANSPORT_WS, gql_data, subscribe
from tests.test_job_flow import assert_lifecycle, download, mutation, run_and_watch

REL = 1e-9

SELECTED_SALES = """
    FROM sales s
    JOIN parcels p ON p.county_id = s.county_id AND p.parcel_id = s.parcel_id
    WHERE s.county_id = :county AND s.arms_length AND s.sale_price > 0
"""
"""The sales an analysis reads by default: arm's-length, positive price, known parcel."""

RATIO_STUDY = """
query($id: ID!) { reportJob(id: $id) { status reportType
  parameters {
    salesRatioStudy { taxYear groupBy trim iqrFactor codStandard
                      sales { saleDateFrom saleDateTo propertyClass zipCodes armsLengthOnly } }
    assessmentRoll { taxYear } }
  result {
    ratioStudy { taxYear saleDateFrom saleDateTo trim groupBy
                 overall { ...stats } groups { ...stats } }
    files { name url contentType sizeBytes rowCount } } } }
fragment stats on RatioStatistics {
  group count countUsed medianRatio meanRatio weightedMeanRatio cod prd prb mki note meetsStandards
  standards { standard statistic value lower upper passes } }
"""

ROLL = """
query($id: ID!) { reportJob(id: $id) { result {
  assessmentRoll { taxYear parcelCount assessedParcelCount totalLandValue
                   totalImprovementValue totalAssessedValue
                   byPropertyClass { group parcelCount totalLandValue totalImprovementValue
                                     totalAssessedValue medianAssessedValue } }
  files { name url contentType sizeBytes rowCount } } } }
"""

MARKET = """
query($id: ID!) { marketAnalysisJob(id: $id) { result {
  trends { period group salesVolume averagePrice medianPrice }
  annualTrendPercent
  timeAdjustment { valuationDate method medianSalePrice adjustedMedianSalePrice salesCount
                   factors { month index factor salesVolume } }
  files { name url sizeBytes rowCount } } } }
"""

WAIT = "subscription($id: ID!) { jobUpdated(id: $id) { status error { code message } } }"


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def details(app: RunningApp, query: str, job_id: str) -> dict[str, Any]:
    data = await gql_data(app.url, query, {"id": job_id})
    job: dict[str, Any] = next(iter(data.values()))
    return job


async def run_more(app: RunningApp, name: str, input: dict[str, Any]) -> dict[str, Any]:
    """Another job on the worker a previous `run_and_watch` started; its final update."""
    job = (await gql_data(app.url, mutation(name), {"input": input}))[name]
    async with subscribe(app.ws_url, WAIT, {"id": job["id"]}) as sub:
        updates = await sub.collect(timeout=120)
    final: dict[str, Any] = {"id": job["id"], **updates[-1]["data"]["jobUpdated"]}
    return final


def graphql_stat(name: str) -> str:
    return {"median_ratio": "medianRatio"}.get(name, name)


def running_steps(updates: list[dict[str, Any]], step: str) -> list[dict[str, Any]]:
    return [
        u["progress"] for u in updates if u["status"] == "RUNNING" and u["progress"]["step"] == step
    ]


# ---------------------------------------------------------------------------------------------
# Sales ratio study


async def test_grouped_ratio_study_matches_numpy_on_the_same_sales(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    window = {"saleDateFrom": "2021-01-01", "saleDateTo": "2024-12-31"}
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {
            "reportType": "SALES_RATIO_STUDY",
            "countyId": county,
            "parameters": {
                "salesRatioStudy": {
                    "taxYear": 2024,
                    "groupBy": "NEIGHBORHOOD",
                    "trim": "NONE",
                    "sales": window,
                }
            },
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    job = await details(app_server, RATIO_STUDY, updates[-1]["id"])
    study = job["result"]["ratioStudy"]
    assert (study["taxYear"], study["trim"], study["groupBy"]) == (2024, "none", "neighborhood")
    # The job shows what it ran with, typed: what was given, and each default filled in.
    assert job["reportType"] == "SALES_RATIO_STUDY"
    assert job["parameters"] == {
        "salesRatioStudy": {
            "taxYear": 2024,
            "groupBy": "NEIGHBORHOOD",
            "trim": "NONE",
            "iqrFactor": 1.5,
            "codStandard": None,
            "sales": {
                **window,
                "propertyClass": None,
                "zipCodes": None,
                "armsLengthOnly": True,
            },
        },
        "assessmentRoll": None,
    }
    overall = study["overall"]
    checks = {c["statistic"]: c for c in overall["standards"]}
    assert set(checks) == {"median_ratio", "cod", "prd", "prb", "mki"}
    for name, check in checks.items():
        assert check["value"] == pytest.approx(overall[graphql_stat(name)], rel=REL)
        assert check["passes"] is (check["lower"] <= check["value"] <= check["upper"]), check
    assert (checks["median_ratio"]["lower"], checks["median_ratio"]["upper"]) == (0.90, 1.10)
    assert (checks["cod"]["lower"], checks["cod"]["upper"]) == (5.0, 15.0)  # residential
    assert (checks["mki"]["lower"], checks["mki"]["upper"]) == (0.95, 1.05)
    # The verdict is IAAO's four; MKI is judged beside them.
    iaao = [c["passes"] for name, c in checks.items() if name != "mki"]
    assert overall["meetsStandards"] is all(iaao)

    fetched = await rows(
        engine,
        """SELECT s.parcel_id, s.sale_date, s.sale_price, a.assessed_value,
                  coalesce(p.neighborhood, '(none)')
           FROM sales s
           JOIN parcels p ON p.county_id = s.county_id AND p.parcel_id = s.parcel_id
           JOIN assessments a
             ON a.county_id = s.county_id AND a.parcel_id = s.parcel_id AND a.tax_year = 2024
           WHERE s.county_id = :county AND s.arms_length AND s.sale_price > 0
             AND s.sale_date BETWEEN :start AND :end""",
        county=county,
        start=dt.date(2021, 1, 1),
        end=dt.date(2024, 12, 31),
    )
    n = len(fetched)
    assert n > 50
    price = np.array([r[2] for r in fetched], dtype=float)
    assessed = np.array([r[3] for r in fetched], dtype=float)
    hood = np.array([r[4] for r in fetched], dtype=object)

    def expected(mask: np.ndarray) -> dict[str, float]:
        r = assessed[mask] / price[mask]
        median = float(np.median(r))
        mean = float(r.mean())
        weighted = float(assessed[mask].sum() / price[mask].sum())
        return {
            "medianRatio": median,
            "meanRatio": mean,
            "weightedMeanRatio": weighted,
            "cod": 100.0 / median * float(np.mean(np.abs(r - median))),
            "prd": mean / weighted,
        }

    overall = study["overall"]
    assert overall["count"] == overall["countUsed"] == n
    for key, value in expected(np.ones(n, bool)).items():
        assert overall[key] == pytest.approx(value, rel=REL), key

    names = sorted(set(hood))
    assert [g["group"] for g in study["groups"]] == names
    judged = 0
    for group in study["groups"]:
        mask = hood == group["group"]
        count = int(mask.sum())
        assert group["count"] == group["countUsed"] == count
        if count < 5:
            assert group["medianRatio"] is None
            assert "sample too small" in group["note"]
            continue
        judged += 1
        for key, value in expected(mask).items():
            assert group[key] == pytest.approx(value, rel=REL), (group["group"], key)
    assert judged >= 5

    progress = running_steps(updates, "computing group statistics")
    done = [p["processed"] for p in progress]
    assert len(done) >= 2 and done == sorted(set(done)), done
    assert done[-1] == progress[-1]["total"] == n
    assert {p["total"] for p in running_steps(updates, "writing files")} == {n}

    csv_file, html_file = job["result"]["files"]
    assert csv_file["contentType"] == "text/csv"
    body = await download(app_server, csv_file["url"])
    assert len(body) == csv_file["sizeBytes"]
    table = list(csv.reader(io.StringIO(body.decode())))
    assert len(table) == csv_file["rowCount"] + 1 == n + 1
    assert {(r[0], r[1], r[5]) for r in table[1:]} == {
        (r[0], r[1].isoformat(), r[4]) for r in fetched
    }

    assert html_file["name"] == f"ratio_study_{county}_2024.html"
    assert html_file["contentType"] == "text/html; charset=utf-8"
    assert html_file["rowCount"] == n
    async with httpx.AsyncClient(base_url=app_server.url) as client:
        response = await client.get(html_file["url"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert len(response.content) == html_file["sizeBytes"]
    page = response.text
    assert "<svg" in page and county in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    for name in names:
        assert f'<th scope="row">{name}</th>' in page, name


def test_group_batches_give_the_statistics_of_one_call() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    price = rng.lognormal(12.5, 0.5, n)
    assessed = price * rng.lognormal(-0.03, 0.15, n)
    names = np.array([f"N{i}" for i in range(37)] + ["(none)", "b", "B"], dtype=object)
    labels = names[rng.integers(0, names.size, n)]
    batches = group_batches(labels, 7)
    assert 1 < len(batches) <= 7
    covered = np.concatenate(batches)
    assert np.array_equal(np.sort(covered), np.arange(n))
    batched = [
        stats
        for index in batches
        for stats in group_statistics(assessed[index], price[index], labels[index])
    ]
    assert batched == group_statistics(assessed, price, labels)


# ---------------------------------------------------------------------------------------------
# Assessment roll


async def test_assessment_roll_totals_match_sql(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {"reportType": "ASSESSMENT_ROLL", "countyId": county},
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    result = (await details(app_server, ROLL, updates[-1]["id"]))["result"]
    roll = result["assessmentRoll"]
    [(latest,)] = await rows(
        engine, "SELECT max(tax_year) FROM assessments WHERE county_id = :c", c=county
    )
    assert roll["taxYear"] == latest
    [(parcels, assessed_parcels, land, improvement, assessed)] = await rows(
        engine,
        """SELECT count(DISTINCT p.parcel_id), count(a.id), sum(a.land_value),
                  sum(a.improvement_value), sum(a.assessed_value)
           FROM parcels p LEFT JOIN assessments a
             ON a.county_id = p.county_id AND a.parcel_id = p.parcel_id AND a.tax_year = :y
           WHERE p.county_id = :c""",
        c=county,
        y=latest,
    )
    assert roll["parcelCount"] == parcels == 400
    assert roll["assessedParcelCount"] == assessed_parcels
    assert roll["totalLandValue"] == pytest.approx(land, rel=REL)
    assert roll["totalImprovementValue"] == pytest.approx(improvement, rel=REL)
    assert roll["totalAssessedValue"] == pytest.approx(assessed, rel=REL)

    by_class = await rows(
        engine,
        """SELECT coalesce(p.property_class, '(none)'), count(*), sum(a.land_value),
                  sum(a.improvement_value), sum(a.assessed_value),
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY a.assessed_value)
           FROM parcels p LEFT JOIN assessments a
             ON a.county_id = p.county_id AND a.parcel_id = p.parcel_id AND a.tax_year = :y
           WHERE p.county_id = :c GROUP BY 1 ORDER BY 1""",
        c=county,
        y=latest,
    )
    got = {g["group"]: g for g in roll["byPropertyClass"]}
    assert sorted(got) == [r[0] for r in by_class]
    for name, count, g_land, g_improvement, g_assessed, g_median in by_class:
        group = got[name]
        assert group["parcelCount"] == count
        assert group["totalLandValue"] == pytest.approx(g_land, rel=REL)
        assert group["totalImprovementValue"] == pytest.approx(g_improvement, rel=REL)
        assert group["totalAssessedValue"] == pytest.approx(g_assessed, rel=REL)
        assert group["medianAssessedValue"] == pytest.approx(g_median, rel=REL)
    assert sum(g["parcelCount"] for g in roll["byPropertyClass"]) == parcels

    (roll_file,) = result["files"]
    body = await download(app_server, roll_file["url"])
    assert len(body) == roll_file["sizeBytes"]
    table = list(csv.reader(io.StringIO(body.decode())))
    assert len(table) == parcels + 1
    assert roll_file["rowCount"] == parcels
    assert table[0][0] == "parcel_id"
    assert {r[0] for r in table[1:]} == {
        r[0]
        for r in await rows(engine, "SELECT parcel_id FROM parcels WHERE county_id = :c", c=county)
    }


# ---------------------------------------------------------------------------------------------
# Price trend


QUARTERS = f"""
    SELECT extract(year FROM s.sale_date)::int || '-Q' || extract(quarter FROM s.sale_date)::int,
           {{group}} count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY s.sale_price),
           avg(s.sale_price)
    {SELECTED_SALES}
    GROUP BY 1 {{group_by}} ORDER BY 1 {{group_by}}
"""


async def test_price_trend_quarters_match_sql_and_groups_add_up(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runMarketAnalysis",
        {
            "analysisType": "PRICE_TREND",
            "countyId": county,
            "parameters": {"priceTrend": {"period": "QUARTER"}},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    trends = (await details(app_server, MARKET, updates[-1]["id"]))["result"]["trends"]
    expected = await rows(engine, QUARTERS.format(group="", group_by=""), county=county)
    assert len(expected) >= 12  # four years of sales
    assert [t["period"] for t in trends] == [r[0] for r in expected]
    for point, (period, count, median, mean) in zip(trends, expected, strict=True):
        assert point["group"] is None
        assert point["salesVolume"] == count, period
        assert point["medianPrice"] == pytest.approx(median, rel=REL), period
        assert point["averagePrice"] == pytest.approx(mean, rel=REL), period
    progress = running_steps(updates, "computing trends")
    assert [p["processed"] for p in progress] == [0, sum(r[1] for r in expected)]

    grouped = await run_more(
        app_server,
        "runMarketAnalysis",
        {
            "analysisType": "PRICE_TREND",
            "countyId": county,
            "parameters": {"priceTrend": {"period": "QUARTER", "groupBy": "ZIP_CODE"}},
        },
    )
    assert grouped["status"] == "COMPLETED", grouped
    by_zip = (await details(app_server, MARKET, grouped["id"]))["result"]["trends"]
    sums: dict[str, int] = {}
    for point in by_zip:
        sums[point["period"]] = sums.get(point["period"], 0) + point["salesVolume"]
    assert sums == {t["period"]: t["salesVolume"] for t in trends}
    expected_zip = await rows(
        engine,
        QUARTERS.format(group="coalesce(p.zip_code, '(none)'), ", group_by=", 2"),
        county=county,
    )
    assert [(t["period"], t["group"], t["salesVolume"]) for t in by_zip] == [
        (r[0], r[1], r[2]) for r in expected_zip
    ]
    for point, row in zip(by_zip, expected_zip, strict=True):
        assert point["medianPrice"] == pytest.approx(row[3], rel=REL)
        assert point["averagePrice"] == pytest.approx(row[4], rel=REL)


async def test_sales_filter_reads_only_the_zip_codes_and_neighborhoods_asked_for(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    (zip_code, neighborhood), *_ = await rows(
        engine,
        f"SELECT p.zip_code, p.neighborhood {SELECTED_SALES} AND p.zip_code IS NOT NULL"
        " AND p.neighborhood IS NOT NULL GROUP BY 1, 2 ORDER BY count(*) DESC",
        county=county,
    )
    selection = {"zipCodes": [zip_code], "neighborhoods": [neighborhood]}
    updates = await run_and_watch(
        app_server,
        worker,
        "runMarketAnalysis",
        {
            "analysisType": "PRICE_TREND",
            "countyId": county,
            "parameters": {"priceTrend": {"period": "QUARTER", "sales": selection}},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    trends = (await details(app_server, MARKET, updates[-1]["id"]))["result"]["trends"]
    sql = QUARTERS.format(group="", group_by="").replace(
        "GROUP BY", "AND p.zip_code = :zip AND p.neighborhood = :hood GROUP BY"
    )
    expected = await rows(engine, sql, county=county, zip=zip_code, hood=neighborhood)
    everything = await rows(engine, f"SELECT count(*) {SELECTED_SALES}", county=county)
    assert 0 < sum(r[1] for r in expected) < everything[0][0]
    assert [(t["period"], t["salesVolume"]) for t in trends] == [(r[0], r[1]) for r in expected]


# ---------------------------------------------------------------------------------------------
# Time adjustment


def month_midpoint_days(month: str) -> float:
    start = np.datetime64(month, "M")
    first = start.astype("datetime64[D]").astype(np.int64)
    last = (start + 1).astype("datetime64[D]").astype(np.int64) - 1
    return (first + last) / 2.0


async def test_time_adjustment_brings_a_rising_market_to_the_valuation_date(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    sales = await rows(engine, f"SELECT s.sale_date, s.sale_price {SELECTED_SALES}", county=county)
    days = np.array([d.toordinal() for d, _ in sales], dtype=float)
    price = np.array([p for _, p in sales], dtype=float)
    slope, _ = np.polyfit(days / 365.2425, np.log(price), 1)
    assert slope > 0, "the demo county's market rises; the checks below rely on it"
    last_sale = max(d for d, _ in sales)

    updates = await run_and_watch(
        app_server,
        worker,
        "runMarketAnalysis",
        {
            "analysisType": "TIME_ADJUSTMENT",
            "countyId": county,
            "parameters": {
                "timeAdjustment": {"method": "LOGLINEAR", "valuationDate": last_sale.isoformat()}
            },
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    result = (await details(app_server, MARKET, updates[-1]["id"]))["result"]
    adjustment = result["timeAdjustment"]
    assert adjustment["valuationDate"] == last_sale.isoformat()
    assert adjustment["salesCount"] == len(sales)
    assert result["annualTrendPercent"] == pytest.approx(np.expm1(slope) * 100, rel=1e-6)

    first_sale = min(d for d, _ in sales)
    months = np.arange(np.datetime64(first_sale, "M"), np.datetime64(last_sale, "M") + 1).astype(
        str
    )
    factors = adjustment["factors"]
    assert [f["month"] for f in factors] == list(months)
    counts = Counter(d.isoformat()[:7] for d, _ in sales)
    assert [f["salesVolume"] for f in factors] == [counts[m] for m in months]

    valuation_day = float(np.datetime64(last_sale, "D").astype(np.int64))
    for f in factors:
        expected = np.exp(slope * (valuation_day - month_midpoint_days(f["month"])) / 365.2425)
        assert f["factor"] == pytest.approx(expected, rel=1e-6), f["month"]
    at_valuation = factors[-1]
    assert at_valuation["month"] == last_sale.isoformat()[:7]
    assert abs(at_valuation["factor"] - 1) < 0.005
    assert all(f["factor"] > 1 for f in factors[:-1])
    assert adjustment["medianSalePrice"] == pytest.approx(float(np.median(price)), rel=REL)
    assert adjustment["adjustedMedianSalePrice"] > adjustment["medianSalePrice"]
    (factor_file,) = result["files"]
    assert factor_file["rowCount"] == len(months)


# ---------------------------------------------------------------------------------------------
# Nothing to analyse


@pytest.mark.parametrize(
    ("mutation_name", "input"),
    [
        ("runReport", {"reportType": "SALES_RATIO_STUDY"}),
        ("runMarketAnalysis", {"analysisType": "PRICE_TREND"}),
        ("runMarketAnalysis", {"analysisType": "TIME_ADJUSTMENT"}),
    ],
)
async def test_an_empty_sale_window_fails_with_no_sales(
    app_server: RunningApp,
    worker: WorkerControl,
    county: str,
    settings: Settings,
    mutation_name: str,
    input: dict[str, Any],
) -> None:
    empty = {"sales": {"saleDateFrom": "1990-01-01", "saleDateTo": "1990-12-31"}}
    variant = next(iter(input.values())).lower()
    branch = "".join(p if i == 0 else p.title() for i, p in enumerate(variant.split("_")))
    job = (
        await gql_data(
            app_server.url,
            mutation(mutation_name),
            {"input": {**input, "countyId": county, "parameters": {branch: empty}}},
        )
    )[mutation_name]
    async with subscribe(app_server.ws_url, WAIT, {"id": job["id"]}) as sub:
        await worker.start()
        updates = [p["data"]["jobUpdated"] for p in await sub.collect(timeout=120)]
    final = updates[-1]
    assert final["status"] == "FAILED", updates
    assert final["error"]["code"] == "NO_SALES"
    message = final["error"]["message"]
    assert county in message and "1990" in message
    assert "Traceback" not in message
    assert not (settings.resolved_results_dir / job["id"]).exists()
