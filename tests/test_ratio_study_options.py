"""Ratio-study options an assessor asks for: outlier methods (against assesspy), MKI and
interval verdicts, sale-price strata, time adjustment with the county's own index, the ZIP and
neighbourhood filters, and the count of sales each step excluded. Numbers are checked by
calling the statistics directly and the report's compute on a demo county in the database."""

from __future__ import annotations

import csv
import itertools
import warnings
from typing import Any

import assesspy
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from jobs.spec import BadInput, JobKind
from jobs.stats.ratio import (
    MKI_RANGE,
    iqr_trim_mask,
    price_strata,
    quantile_trim_mask,
    ratio_statistics,
)
from tests.builders import compute, load_small_county, ratio_study, result_text
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import TRANSPORT_WS, gql_data
from tests.test_job_flow import run_and_watch

TAX_YEAR = 2024


def sample(n: int, seed: int, spread: float = 0.15, regressive: float = 0.0) -> Any:
    rng = np.random.default_rng(seed)
    price = np.exp(rng.normal(12.3, 0.5, n))
    assessed = price * np.exp(rng.normal(0, spread, n)) * (price / price.mean()) ** -regressive
    return assessed, price


@pytest.mark.parametrize("seed", [1, 2])
def test_outlier_methods_equal_assesspys(seed: int) -> None:
    assessed, price = sample(500, seed, spread=0.3)
    ratio = assessed / price
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantile = assesspy.is_outlier(ratio.tolist(), method="quantile").to_numpy()
        iqr3 = assesspy.is_outlier(ratio.tolist(), method="iqr", mult=3.0).to_numpy()
    assert np.array_equal(quantile_trim_mask(ratio, (0.05, 0.95)), ~quantile)
    assert np.array_equal(iqr_trim_mask(ratio, 3.0), ~iqr3)
    stats = ratio_statistics(assessed, price, trim="quantile", bootstrap_reps=0)
    assert stats.count - stats.count_used == int(quantile.sum())


def test_mki_is_judged_and_each_standard_by_its_interval() -> None:
    fair = ratio_statistics(*sample(2000, 3, spread=0.1), bootstrap_reps=200)
    regressive = ratio_statistics(*sample(2000, 3, spread=0.1, regressive=0.2), bootstrap_reps=0)
    for stats in (fair, regressive):
        assert stats.mki is not None
        assert stats.standards["mki"] == assesspy.mki_met(stats.mki)
    assert fair.standards["mki"] and not regressive.standards["mki"]
    assert regressive.mki is not None and regressive.mki < MKI_RANGE[0]

    verdicts = {c.standard: c for c in fair.compliance}
    assert set(verdicts) == {"level", "cod", "prd", "prb", "mki"}
    assert verdicts["level"].with_confidence == "meets_with_confidence"
    assert verdicts["mki"].with_confidence is None  # no interval
    assert fair.meets_with_confidence is True

    # Level 0.92 from 12 sales: inside 0.90-1.10 by its value, but the interval reaches below.
    rng = np.random.default_rng(5)
    price = np.exp(rng.normal(12, 0.4, 12))
    few = ratio_statistics(price * 0.92 * np.exp(rng.normal(0, 0.1, 12)), price, trim="none")
    level = next(c for c in few.compliance if c.standard == "level")
    assert level.meets is (0.9 <= level.value <= 1.1)
    assert few.median_ratio_ci is not None and few.median_ratio_ci.lower < 0.9
    assert level.with_confidence == "inconclusive"
    assert few.meets_with_confidence is not True

    low = ratio_statistics(*sample(2000, 4, spread=0.05), bootstrap_reps=0)
    halved = ratio_statistics(
        *(lambda a, p: (a * 0.7, p))(*sample(2000, 4, spread=0.05)), bootstrap_reps=0
    )
    assert low.meets_with_confidence is None  # no COD/PRD intervals without a bootstrap
    level = next(c for c in halved.compliance if c.standard == "level")
    assert level.with_confidence == "fails_with_confidence"
    assert halved.meets_with_confidence is False


def test_price_strata_are_ordered_quantile_groups() -> None:
    price = np.r_[np.full(10, 100_000.0), np.linspace(150_000, 900_000, 190)]
    labels = price_strata(price, 4)
    names = sorted(set(labels))
    assert [n.split(" ")[0] for n in names] == ["Q1", "Q2", "Q3", "Q4"]
    ranges = [(price[labels == n].min(), price[labels == n].max()) for n in names]
    assert all(hi < lo for (_, hi), (lo, _) in itertools.pairwise(ranges))
    assert len(set(labels[price == 100_000.0])) == 1  # equal prices share a stratum
    deciles = sorted(set(price_strata(price, 10)))
    assert [n.split(" ")[0] for n in deciles] == [f"D{k:02d}" for k in range(1, 11)]


async def study(engine: AsyncEngine, settings: Settings, **parameters: Any) -> dict[str, Any]:
    return await ratio_study(engine, settings, "TESTCO", tax_year=TAX_YEAR, **parameters)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


SALES_IN_WINDOW = """
FROM sales s JOIN parcels p USING (county_id, parcel_id)
LEFT JOIN assessments a ON a.county_id = s.county_id AND a.parcel_id = s.parcel_id
  AND a.tax_year = 2024
WHERE s.county_id = 'TESTCO' AND s.sale_price > 0
  AND s.sale_date BETWEEN '2023-01-01' AND '2023-12-31'
"""


async def test_filters_and_the_exclusions_each_step_made(
    engine: AsyncEngine, settings: Settings
) -> None:
    await load_small_county(engine, parcels=1500)
    kept = ["Downtown", "Hilltop", "North End"]
    result = await study(engine, settings, sales={"neighborhoods": kept}, group_by="neighborhood")
    ratio_study = result["ratio_study"]
    assert ratio_study["neighborhoods"] == kept
    assert {g["group"] for g in ratio_study["groups"]} <= set(kept)
    expected = await scalar(
        engine,
        f"SELECT count(*) {SALES_IN_WINDOW} AND s.arms_length AND a.parcel_id IS NOT NULL "
        "AND p.neighborhood = ANY(:n)",
        n=kept,
    )
    overall = ratio_study["overall"]
    assert overall["count"] == expected > 5
    steps = {e["step"]: e["excluded"] for e in ratio_study["exclusions"]}
    assert steps["arms_length"] == await scalar(
        engine, f"SELECT count(*) {SALES_IN_WINDOW} AND NOT s.arms_length"
    )
    assert steps["assessment"] == await scalar(
        engine, f"SELECT count(*) {SALES_IN_WINDOW} AND s.arms_length AND a.parcel_id IS NULL"
    )
    recorded = await scalar(engine, f"SELECT count(*) {SALES_IN_WINDOW}")
    assert steps["arms_length"] + steps["assessment"] + steps["filters"] + expected == recorded
    assert steps["trim"] == overall["count"] - overall["count_used"]

    zips = await study(engine, settings, sales={"zip_codes": ["98402", "98403"]})
    expected_zip = await scalar(
        engine,
        f"SELECT count(*) {SALES_IN_WINDOW} AND s.arms_length AND a.parcel_id IS NOT NULL "
        "AND p.zip_code IN ('98402', '98403')",
    )
    assert zips["ratio_study"]["overall"]["count"] == expected_zip

    trend = await compute(
        engine,
        settings,
        JobKind.MARKET_ANALYSIS,
        {
            "county_id": "TESTCO",
            "analysis_type": "price_trend",
            "parameters": {"price_trend": {"sales": {"neighborhoods": kept}, "period": "year"}},
        },
    )
    assert sum(p["sales_volume"] for p in trend["trends"]) == await scalar(
        engine,
        "SELECT count(*) FROM sales s JOIN parcels p USING (county_id, parcel_id) "
        "WHERE s.county_id = 'TESTCO' AND s.arms_length AND s.sale_price > 0 "
        "AND p.neighborhood = ANY(:n)",
        n=kept,
    )

    page = html(settings, result)
    assert "Sales excluded" in page and "not arm&#x27;s-length" in page
    assert "1.5 \u00d7 IQR" in page and "Appendix B" in page
    assert "Downtown, Hilltop, North End" in page


def html(settings: Settings, result: dict[str, Any]) -> str:
    return result_text(settings, result, ".html")


def sales_file(settings: Settings, result: dict[str, Any]) -> list[dict[str, str]]:
    (table,) = [f for f in result["files"] if f["name"].endswith(".csv")]
    path = settings.resolved_results_dir / table["url"].removeprefix("/results/")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


async def test_time_adjusted_study_uses_the_countys_own_index(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Sales of 2023 against assessments as of 2024-01-01 in a market rising ~6 % a year:
    adjusted to the assessment date with the factors the TIME_ADJUSTMENT analysis of the same
    selection gives (all its sales, of any date), the prices rise and the ratios fall by
    about half a year's trend."""
    await load_small_county(engine, parcels=1500)
    houses = {"trim": "none", "sales": {"property_class": "residential"}}
    plain = await study(engine, settings, **houses)
    adjusted = await study(engine, settings, **houses, time_adjustment="loglinear")
    index = await compute(
        engine,
        settings,
        JobKind.MARKET_ANALYSIS,
        {
            "county_id": "TESTCO",
            "analysis_type": "time_adjustment",
            "parameters": {
                "time_adjustment": {
                    "sales": {"property_class": "residential"},
                    "valuation_date": f"{TAX_YEAR}-01-01",
                    "method": "loglinear",
                }
            },
        },
    )
    factor = {f["month"]: f["factor"] for f in index["time_adjustment"]["factors"]}
    rows = sales_file(settings, adjusted)
    assert len(rows) == adjusted["ratio_study"]["overall"]["count"]
    for row in rows:
        expected = float(row["sale_price"]) * factor[row["sale_date"][:7]]
        assert float(row["time_adjusted_price"]) == pytest.approx(expected, abs=0.006)
        assert float(row["ratio"]) == pytest.approx(
            float(row["assessed_value"]) / expected, rel=1e-5
        )
    applied = adjusted["ratio_study"]["time_adjustment"]
    assert applied["adjusted_to"] == f"{TAX_YEAR}-01-01"
    assert applied["annual_trend_percent"] == pytest.approx(index["annual_trend_percent"])
    assert 2 < applied["annual_trend_percent"] < 11
    shift = (
        adjusted["ratio_study"]["overall"]["median_ratio"]
        / (plain["ratio_study"]["overall"]["median_ratio"])
    )
    assert 0.93 < shift < 1.0
    assert "with the county&#x27;s loglinear index" in html(settings, adjusted)


async def test_vertical_equity_strata(engine: AsyncEngine, settings: Settings) -> None:
    await load_small_county(engine, parcels=1500)
    result = await study(engine, settings, group_by="sale_price_quartile")
    groups = result["ratio_study"]["groups"]
    assert [g["group"][:2] for g in groups] == ["Q1", "Q2", "Q3", "Q4"]
    n = result["ratio_study"]["overall"]["count"]
    assert sum(g["count"] for g in groups) == n
    assert all(abs(g["count"] - n / 4) <= 2 for g in groups)
    page = html(settings, result)
    assert "Statistics by sale price quartile" in page and "MKI 0.95 \u2013 1.05" in page


async def test_bad_options_name_their_field(engine: AsyncEngine, settings: Settings) -> None:
    await load_small_county(engine, parcels=400)
    for parameters, field in (
        ({"trim": "median"}, "parameters.salesRatioStudy.trim"),
        ({"quantile_lower": 0.6}, "parameters.salesRatioStudy.quantileLower"),
        ({"quantile_upper": 0.4}, "parameters.salesRatioStudy.quantileUpper"),
        ({"time_adjustment": "hedonic"}, "parameters.salesRatioStudy.timeAdjustment"),
        ({"group_by": "sale_price_tercile"}, "parameters.salesRatioStudy.groupBy"),
    ):
        with pytest.raises(BadInput) as caught:
            await study(engine, settings, **parameters)
        assert caught.value.field == field, (parameters, caught.value.field)


TYPED_STUDY = """
query($id: ID!) { reportJob(id: $id) { status
  parameters { salesRatioStudy { trim quantileLower quantileUpper groupBy timeAdjustment
                                 sales { neighborhoods } } }
  result { ratioStudy {
    trim quantiles groupBy neighborhoods
    timeAdjustment { method adjustedTo annualTrendPercent }
    exclusions { step excluded reason }
    overall { count countUsed mki meetsWithConfidence
              standards { statistic passes withConfidence }
              salesChasing { flagged cdfFlagged cdfLargestStep cdfStepAt distributionFlagged
                             shareInBounds normalShareInBounds } }
    groups { group count } } } } }
"""


async def test_the_typed_api_takes_and_returns_every_option(
    app_server: RunningApp, worker: WorkerControl, engine: AsyncEngine
) -> None:
    """The new options as GraphQL enums and typed fields, through the real job path."""
    await load_small_county(engine, parcels=1500)
    kept = ["Downtown", "Hilltop", "North End", "Stadium", "Proctor"]
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {
            "reportType": "SALES_RATIO_STUDY",
            "countyId": "TESTCO",
            "parameters": {
                "salesRatioStudy": {
                    "taxYear": TAX_YEAR,
                    "trim": "QUANTILE",
                    "quantileLower": 0.1,
                    "groupBy": "SALE_PRICE_QUARTILE",
                    "timeAdjustment": "LOGLINEAR",
                    "sales": {"neighborhoods": kept},
                }
            },
        },
        TRANSPORT_WS,
    )
    job = await gql_data(app_server.url, TYPED_STUDY, {"id": updates[-1]["id"]})
    report = job["reportJob"]
    assert report["status"] == "COMPLETED"
    assert report["parameters"]["salesRatioStudy"] == {
        "trim": "QUANTILE",
        "quantileLower": 0.1,
        "quantileUpper": 0.95,
        "groupBy": "SALE_PRICE_QUARTILE",
        "timeAdjustment": "LOGLINEAR",
        "sales": {"neighborhoods": kept},
    }
    study = report["result"]["ratioStudy"]
    assert study["trim"] == "quantile" and study["quantiles"] == [0.1, 0.95]
    assert study["neighborhoods"] == kept
    assert study["timeAdjustment"]["method"] == "loglinear"
    assert study["timeAdjustment"]["adjustedTo"] == f"{TAX_YEAR}-01-01"
    assert [e["step"] for e in study["exclusions"]] == [
        "arms_length",
        "assessment",
        "filters",
        "trim",
    ]
    overall = study["overall"]
    assert study["exclusions"][-1]["excluded"] == overall["count"] - overall["countUsed"] > 0
    statistics = {s["statistic"]: s for s in overall["standards"]}
    assert set(statistics) == {"median_ratio", "cod", "prd", "prb", "mki"}
    assert statistics["mki"]["withConfidence"] is None
    assert statistics["median_ratio"]["withConfidence"] in (
        "MEETS_WITH_CONFIDENCE",
        "FAILS_WITH_CONFIDENCE",
        "INCONCLUSIVE",
    )
    chasing = overall["salesChasing"]
    assert chasing["flagged"] == (chasing["cdfFlagged"] and chasing["distributionFlagged"])
    assert [g["group"][:2] for g in study["groups"]] == ["Q1", "Q2", "Q3", "Q4"]


async def test_the_csv_alone_has_the_bytes_of_the_csv_beside_a_workbook(
    engine: AsyncEngine, settings: Settings
) -> None:
    """Asked for alone, the sales CSV is written from ready-made text columns
    (`MainTable.write_fields`); beside a workbook, by `csv.writer` from the typed rows. Both
    are one file, byte for byte: group labels and time-adjusted prices (with cents) included."""
    await load_small_county(engine, parcels=1500)
    for extra in ({}, {"time_adjustment": "monthly_median"}, {"group_by": "neighborhood"}):
        alone = await study(engine, settings, output_formats=["csv"], **extra)
        beside = await study(engine, settings, output_formats=["xlsx", "csv"], **extra)
        text_alone = result_text(settings, alone, ".csv")
        assert text_alone == result_text(settings, beside, ".csv")
        rows = list(csv.reader(text_alone.splitlines()))
        assert len(rows) == alone["ratio_study"]["overall"]["count"] + 1 > 100
        assert any(row[2].endswith(".0") for row in rows[1:])
