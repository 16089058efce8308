"""Sales-chasing detection against assesspy (the Cook County Assessor's package) on the same
ratios: constructed samples with a known share of copied prices, and real Cook County sales
imported like any county's."""

from __future__ import annotations

import csv
import datetime as dt
import warnings
from pathlib import Path

import assesspy
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from statsmodels.distributions.empirical_distribution import ECDF

from app.config import Settings
from app.importer import import_file
from jobs.stats.ratio import iqr_trim_mask, ratio_statistics
from jobs.stats.sales_chasing import BOUNDS, GAP, detect_sales_chasing
from tests.builders import ratio_study, result_text

MONTE_CARLO_SE = 0.005
"""assesspy's normal share comes from 10,000 random draws: its standard error is at most
sqrt(0.25 / 10000) = 0.005, so our exact share must lie within 4 of them of its estimate."""


def chased_sample(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(assessed, price): lognormal ratios around 0.97 (sd 0.15), with `share` of the sold
    parcels' assessments copied from their sale price (ratio exactly 1)."""
    rng = np.random.default_rng(seed)
    price = np.round(np.exp(rng.normal(12.3, 0.5, n)), -2)
    assessed = np.round(price * 0.97 * np.exp(rng.normal(0, 0.15, n)), -2)
    copied = rng.choice(n, round(share * n), replace=False)
    assessed[copied] = price[copied]
    return assessed, price


def assesspy_screens(ratio: np.ndarray, seed: int = 0) -> tuple[bool, bool, float]:
    """assesspy's cdf and dist verdicts (its random draws seeded) and its largest CDF step,
    computed as assesspy's _cdf_sales_chased does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cdf = assesspy.is_sales_chased(ratio.tolist(), method="cdf")
        np.random.seed(seed)
        dist = assesspy.is_sales_chased(ratio.tolist(), method="dist")
    ordered = pd.Series(ratio).sort_values()
    step = float(pd.Series(ECDF(ordered)(ordered)).diff().dropna().max())
    return cdf, dist, step


def assert_same_as_assesspy(ratio: np.ndarray) -> None:
    ours = detect_sales_chasing(ratio)
    assert ours is not None
    cdf, dist, step = assesspy_screens(ratio)
    assert ours.cdf_largest_step == pytest.approx(step, abs=1e-12)
    assert ours.cdf_flagged == cdf
    np.random.seed(0)
    draws = np.random.normal(np.mean(ratio), np.std(ratio), 10000)
    estimate = float(np.mean((draws >= BOUNDS[0]) & (draws <= BOUNDS[1])))
    assert abs(ours.normal_share_in_bounds - estimate) < 4 * MONTE_CARLO_SE
    if abs(abs(ours.share_in_bounds - ours.normal_share_in_bounds) - GAP) > 4 * MONTE_CARLO_SE:
        assert ours.distribution_flagged == dist
    assert ours.flagged == (ours.cdf_flagged and ours.distribution_flagged)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.15, 0.3])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_screens_equal_assesspys_on_the_same_ratios(share: float, seed: int) -> None:
    assessed, price = chased_sample(1000, share, seed)
    assert_same_as_assesspy(assessed / price)


def test_a_county_with_15_percent_copied_prices_is_flagged_even_after_trimming() -> None:
    assessed, price = chased_sample(1000, 0.15, seed=4)
    stats = ratio_statistics(assessed, price, trim="iqr", iqr_factor=1.5, bootstrap_reps=0)
    assert stats.count_used < stats.count  # trimming did remove sales
    chasing = stats.sales_chasing
    assert chasing is not None and chasing.flagged
    assert chasing.cdf_step_at == 1.0 and chasing.cdf_largest_step >= 0.15
    assert chasing.count == stats.count_used
    ratio = assessed / price
    assert_same_as_assesspy(ratio[iqr_trim_mask(ratio, 1.5)])

    honest = ratio_statistics(*chased_sample(1000, 0.0, seed=4), bootstrap_reps=0)
    assert honest.sales_chasing is not None and not honest.sales_chasing.flagged


def test_ties_and_degenerate_samples() -> None:
    """A step into the smallest ratio is not counted (as in assesspy); equal ratios have no
    spread, so all of them fall inside the band or none does."""
    assert detect_sales_chasing(np.array([1.0, 1.1])) is None
    low = np.r_[np.full(200, 0.5), np.linspace(0.8, 1.2, 800)]
    assert_same_as_assesspy(low)
    flat = detect_sales_chasing(np.full(40, 1.0))
    assert flat is not None and flat.normal_share_in_bounds == 1.0
    few = detect_sales_chasing(np.linspace(0.8, 1.2, 10))
    assert few is not None and few.note is not None and "30" in few.note


def write_cook_county(folder: Path, chased_share: float) -> dict[str, Path]:
    """assesspy's ccao_sample (979 real Cook County sales: estimate, sale price, township) as
    the county files `terrafusion import` reads, with `chased_share` of the estimates
    replaced by their sale price. Sale dates are spread over 2019 (the sample has none) and
    every parcel gets the township's location, which the import requires."""
    data = assesspy.ccao_sample()
    n = len(data)
    estimate = data["estimate"].to_numpy().copy()
    price = data["sale_price"].to_numpy()
    copied = np.random.default_rng(9).choice(n, round(chased_share * n), replace=False)
    estimate[copied] = price[copied]
    ids = [f"CC{i:04d}" for i in range(n)]
    day = dt.date(2019, 1, 1)
    paths = {k: folder / f"{k}.csv" for k in ("parcels", "sales", "assessments")}
    with paths["parcels"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["parcel_id", "neighborhood", "lon", "lat"])
        out.writerows(
            [pid, town, -87.7, 41.9] for pid, town in zip(ids, data["township_name"], strict=True)
        )
    with paths["sales"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["parcel_id", "sale_date", "sale_price"])
        out.writerows(
            [pid, (day + dt.timedelta(days=i % 365)).isoformat(), repr(float(p))]
            for i, (pid, p) in enumerate(zip(ids, price, strict=True))
        )
    with paths["assessments"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["parcel_id", "tax_year", "assessed_value"])
        out.writerows([pid, 2020, repr(float(e))] for pid, e in zip(ids, estimate, strict=True))
    return paths


@pytest.mark.parametrize("chased_share", [0.0, 0.15])
async def test_real_cook_county_sales_get_assesspys_verdicts(
    engine: AsyncEngine, settings: Settings, tmp_path: Path, chased_share: float
) -> None:
    """979 real sales imported like any county, studied overall and by township: every
    sample's screens are assesspy's on the same ratios; with 15 % of the estimates copied from
    the price the county is flagged, and the page says so."""
    county = f"COOK{int(chased_share * 100)}"
    for kind, path in write_cook_county(tmp_path, chased_share).items():
        await import_file(engine, kind, path, county)  # type: ignore[arg-type]
    result = await ratio_study(engine, settings, county, group_by="neighborhood", trim="none")
    study = result["ratio_study"]
    ratios = await _ratios_by_group(engine, county)
    assert ratios[None].size == 979
    for stats in [study["overall"], *study["groups"]]:
        ratio = ratios[stats["group"]]
        assert stats["count"] == ratio.size
        chasing = stats["sales_chasing"]
        cdf, dist, step = assesspy_screens(ratio)
        assert chasing["cdf_largest_step"] == pytest.approx(step, abs=1e-12)
        assert chasing["cdf_flagged"] == cdf, stats["group"]
        margin = abs(chasing["share_in_bounds"] - chasing["normal_share_in_bounds"]) - GAP
        if abs(margin) > 4 * MONTE_CARLO_SE:
            assert chasing["distribution_flagged"] == dist, stats["group"]
    assert study["overall"]["sales_chasing"]["flagged"] is (chased_share > 0)
    assert result["summary"]["sales_chased"] is (chased_share > 0)
    page = result_text(settings, result, ".html")
    verdict = page.split("Sales chasing indicated (both screens)</th>", 1)[1].split("</tr>")[0]
    assert ("\u26a0 flagged" in verdict) is (chased_share > 0), verdict
    assert ("\u2713 not indicated" in verdict) is (chased_share == 0), verdict


async def _ratios_by_group(engine: AsyncEngine, county: str) -> dict[str | None, np.ndarray]:
    """The study's ratios read back from the database, overall (None) and by neighbourhood."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """SELECT p.neighborhood, a.assessed_value / s.sale_price AS ratio
                       FROM sales s JOIN parcels p USING (county_id, parcel_id)
                       JOIN assessments a USING (county_id, parcel_id)
                       WHERE s.county_id = :c AND a.tax_year = 2020"""
                ),
                {"c": county},
            )
        ).all()
    by: dict[str | None, list[float]] = {None: []}
    for group, ratio in rows:
        by[None].append(float(ratio))
        by.setdefault(group, []).append(float(ratio))
    return {k: np.array(v) for k, v in by.items()}
