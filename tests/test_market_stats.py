"""Tests for jobs.stats.market: hand-computable cases with exact expected values."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import numpy.typing as npt
import pytest

from jobs.stats.market import (
    DAYS_PER_YEAR,
    MISSING_GROUP,
    InsufficientSalesError,
    TrendPoint,
    adjust_prices,
    log_linear_trend,
    period_codes,
    period_labels,
    student_t_quantile,
    time_adjustment_factors,
    trend_points,
    year_over_year,
)

GROWTH = math.log(1.06)
"""Continuous yearly rate of a market rising 6 % per year."""


def days(*values: str) -> npt.NDArray[np.datetime64]:
    return np.array(values, dtype="datetime64[D]")


# --------------------------------------------------------------------------------------------
# Period labels


BOUNDARY_DATES = days(
    "2023-12-31", "2024-01-01", "2024-02-29", "2024-03-01", "2024-09-30", "2024-10-01"
)


def test_month_labels_at_year_boundary_and_leap_day() -> None:
    assert period_labels(BOUNDARY_DATES, "month").tolist() == [
        "2023-12",
        "2024-01",
        "2024-02",
        "2024-03",
        "2024-09",
        "2024-10",
    ]


def test_quarter_labels_at_q4_to_q1_and_quarter_edges() -> None:
    assert period_labels(BOUNDARY_DATES, "quarter").tolist() == [
        "2023-Q4",
        "2024-Q1",
        "2024-Q1",
        "2024-Q1",
        "2024-Q3",
        "2024-Q4",
    ]


def test_year_labels() -> None:
    dates = days("1999-12-31", "2000-01-01", "2024-02-29")
    assert period_labels(dates, "year").tolist() == ["1999", "2000", "2024"]


def test_labels_and_codes_sort_chronologically() -> None:
    rng = np.random.default_rng(7)
    dates = np.datetime64("1998-06-01") + rng.integers(0, 12_000, 500).astype("timedelta64[D]")
    chronological = np.sort(dates)
    for period in ("month", "quarter", "year"):
        labels = period_labels(dates, period)
        assert np.sort(labels).tolist() == period_labels(chronological, period).tolist()
        codes = period_codes(dates, period)
        assert np.array_equal(np.sort(codes), period_codes(chronological, period))


def test_nat_gets_empty_label() -> None:
    dates = np.array(["2024-05-05", "NaT"], dtype="datetime64[D]")
    assert period_labels(dates, "quarter").tolist() == ["2024-Q2", ""]


def test_unknown_period_is_rejected() -> None:
    with pytest.raises(ValueError, match="period"):
        period_labels(BOUNDARY_DATES, "week")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Trend points

SALE_DATES = days(
    "2024-01-05",
    "2024-02-10",
    "2024-03-31",
    "2024-04-01",
    "2023-12-31",
    "2024-03-15",
    "2024-02-20",
    "NaT",
)
SALE_PRICES = np.array(
    [100_000.0, 200_000.0, 300_000.0, 400_000.0, 150_000.0, 120_000.0, np.nan, 999_000.0]
)
LIVING_AREA = np.array([1000.0, 2000.0, np.nan, 0.0, 1500.0, 1000.0, 1000.0, 1000.0])
GROUPS = np.array(["A", "B", "A", "A", "B", "A", "B", "A"], dtype=object)


def test_quarterly_trend_points() -> None:
    points = trend_points(SALE_DATES, SALE_PRICES, LIVING_AREA, period="quarter")
    assert points == [
        TrendPoint("2023-Q4", None, 1, 150_000.0, 150_000.0, 100.0),
        TrendPoint("2024-Q1", None, 4, 180_000.0, 160_000.0, 100.0),
        TrendPoint("2024-Q2", None, 1, 400_000.0, 400_000.0, None),
    ]


def test_quarterly_trend_points_by_group() -> None:
    points = trend_points(SALE_DATES, SALE_PRICES, LIVING_AREA, period="quarter", groups=GROUPS)
    assert [(p.period, p.group, p.sales_volume) for p in points] == [
        ("2023-Q4", "B", 1),
        ("2024-Q1", "A", 3),
        ("2024-Q1", "B", 1),
        ("2024-Q2", "A", 1),
    ]
    q1_a = points[1]
    assert q1_a.average_price == pytest.approx(520_000.0 / 3)
    assert q1_a.median_price == 120_000.0
    assert q1_a.median_price_per_sqft == 110.0
    assert points[2].median_price_per_sqft == 100.0
    assert points[3].median_price_per_sqft is None


def test_monthly_and_yearly_trend_points() -> None:
    monthly = trend_points(SALE_DATES, SALE_PRICES, LIVING_AREA, period="month")
    assert [(p.period, p.sales_volume, p.median_price) for p in monthly] == [
        ("2023-12", 1, 150_000.0),
        ("2024-01", 1, 100_000.0),
        ("2024-02", 1, 200_000.0),
        ("2024-03", 2, 210_000.0),
        ("2024-04", 1, 400_000.0),
    ]
    yearly = trend_points(SALE_DATES, SALE_PRICES, LIVING_AREA, period="year")
    assert [(p.period, p.sales_volume, p.median_price) for p in yearly] == [
        ("2023", 1, 150_000.0),
        ("2024", 5, 200_000.0),
    ]
    assert yearly[1].median_price_per_sqft == 100.0


def test_missing_group_labels_are_pooled() -> None:
    dates = days("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04")
    groups = np.array(["N1", None, "", float("nan")], dtype=object)
    points = trend_points(
        dates, np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), period="month", groups=groups
    )
    assert [(p.group, p.sales_volume, p.median_price) for p in points] == [
        (MISSING_GROUP, 3, 3.0),
        ("N1", 1, 1.0),
    ]


def test_trend_points_match_naive_computation() -> None:
    rng = np.random.default_rng(11)
    n = 5_000
    dates = np.datetime64("2020-01-01") + rng.integers(0, 1_500, n).astype("timedelta64[D]")
    prices = rng.lognormal(12.0, 0.5, n)
    areas = rng.uniform(600.0, 4_000.0, n)
    areas[rng.random(n) < 0.1] = np.nan
    groups = np.array(["north", "south", "east"])[rng.integers(0, 3, n)]
    labels = period_labels(dates, "quarter")
    points = trend_points(dates, prices, areas, period="quarter", groups=groups)
    assert len(points) == len(set(zip(labels.tolist(), groups.tolist(), strict=True)))
    for point in points:
        chosen = (labels == point.period) & (groups == point.group)
        with_area = chosen & np.isfinite(areas)
        assert point.sales_volume == int(chosen.sum())
        assert point.average_price == pytest.approx(prices[chosen].mean(), rel=1e-12)
        assert point.median_price == np.median(prices[chosen])
        assert point.median_price_per_sqft == np.median(prices[with_area] / areas[with_area])


def test_trend_points_with_no_usable_sales_is_empty() -> None:
    dates = days("2024-01-01", "2024-01-02")
    assert trend_points(dates, np.array([0.0, np.nan]), np.ones(2), period="year") == []


def test_trend_points_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="sale_price"):
        trend_points(days("2024-01-01"), np.array([1.0, 2.0]), np.ones(1), period="year")


# --------------------------------------------------------------------------------------------
# Year over year


def test_year_over_year_change_of_median() -> None:
    dates = days(
        "2021-03-01", "2021-06-01", "2021-09-01", "2022-05-05", "2024-07-07",
        "2022-02-02", "2023-02-02",
    )  # fmt: skip
    prices = np.array([100.0, 200.0, 300.0, 220.0, 250.0, 400.0, 300.0]) * 1_000
    groups = np.array(["A", "A", "A", "A", "A", "B", "B"])
    points = trend_points(dates, prices, np.ones(7), period="year", groups=groups)
    changes = year_over_year(points)
    assert [(c.year, c.group, c.previous_median_price) for c in changes] == [
        ("2021", "A", None),
        ("2022", "A", 200_000.0),
        ("2022", "B", None),
        ("2023", "B", 400_000.0),
        ("2024", "A", None),
    ]
    assert changes[0].change_pct is None
    assert changes[1].change_pct == pytest.approx(10.0)
    assert changes[3].change_pct == pytest.approx(-25.0)
    assert changes[4].change_pct is None


def test_year_over_year_requires_yearly_points() -> None:
    points = trend_points(SALE_DATES, SALE_PRICES, LIVING_AREA, period="quarter")
    with pytest.raises(ValueError, match="yearly"):
        year_over_year(points)


# --------------------------------------------------------------------------------------------
# Student t quantile


@pytest.mark.parametrize(
    ("q", "df", "expected"),
    [
        (0.975, 1, 12.706204736),
        (0.975, 2, 4.302652730),
        (0.975, 3, 3.182446305),
        (0.95, 4, 2.131846786),
        (0.995, 5, 4.032142984),
        (0.975, 10, 2.228138852),
        (0.975, 30, 2.042272456),
        (0.975, 120, 1.979930405),
        (0.975, 1000, 1.962339081),
        (0.025, 10, -2.228138852),
    ],
)
def test_student_t_quantile_matches_tables(q: float, df: int, expected: float) -> None:
    assert student_t_quantile(q, df) == pytest.approx(expected, abs=1e-8)


def test_student_t_quantile_is_continuous_where_the_method_switches() -> None:
    exact = student_t_quantile(0.975, 300)
    expansion = student_t_quantile(0.975, 301)
    assert 0 < exact - expansion < 1e-4


# --------------------------------------------------------------------------------------------
# Log-linear trend


def exponential_market(
    dates: npt.NDArray[np.datetime64], start_price: float, rate: float
) -> npt.NDArray[np.float64]:
    """Noiseless prices compounding at continuous ``rate`` per year from the first date."""
    years: npt.NDArray[np.float64] = (dates - dates.min()).astype(np.float64) / DAYS_PER_YEAR
    prices: npt.NDArray[np.float64] = start_price * np.exp(rate * years)
    return prices


def test_log_linear_trend_is_exact_without_noise() -> None:
    dates = np.datetime64("2021-01-01") + np.arange(0, 1_000, 9).astype("timedelta64[D]")
    fit = log_linear_trend(dates, exponential_market(dates, 300_000.0, GROWTH))
    assert fit is not None
    assert fit.slope_per_year == pytest.approx(GROWTH, abs=1e-12)
    assert fit.annual_trend_pct == pytest.approx(6.0, abs=1e-9)
    assert fit.monthly_trend_pct == pytest.approx((1.06 ** (1 / 12) - 1) * 100, abs=1e-9)
    assert fit.intercept == pytest.approx(math.log(300_000.0), abs=1e-12)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    assert fit.origin_date == dt.date(2021, 1, 1)
    assert fit.ci_high_pct - fit.ci_low_pct < 1e-6


def test_log_linear_trend_recovers_noisy_growth() -> None:
    rng = np.random.default_rng(2024)
    n = 400
    dates = np.datetime64("2021-01-01") + rng.integers(0, 1_095, n).astype("timedelta64[D]")
    prices = exponential_market(dates, 300_000.0, GROWTH) * np.exp(rng.normal(0.0, 0.03, n))
    fit = log_linear_trend(dates, prices)
    assert fit is not None
    assert fit.n == n and fit.df == n - 2
    assert fit.annual_trend_pct == pytest.approx(6.0, abs=0.5)
    assert fit.ci_low_pct < 6.0 < fit.ci_high_pct
    assert fit.ci_low_pct < fit.annual_trend_pct < fit.ci_high_pct
    assert fit.ci_high_pct - fit.ci_low_pct < 1.5
    assert fit.r_squared is not None and fit.r_squared > 0.6


def test_log_linear_confidence_interval_has_nominal_coverage_for_small_samples() -> None:
    """With 6 sales (4 df) a normal quantile would cover only ~88 %; t gives 95 %."""
    rng = np.random.default_rng(99)
    dates = days("2022-01-10", "2022-04-02", "2022-07-19", "2022-11-30", "2023-03-03", "2023-08-08")
    trend = exponential_market(dates, 200_000.0, GROWTH)
    trials = 2_000
    covered = 0
    for _ in range(trials):
        fit = log_linear_trend(dates, trend * np.exp(rng.normal(0.0, 0.05, dates.size)))
        assert fit is not None
        covered += fit.ci_low_pct < 6.0 < fit.ci_high_pct
    assert 0.93 < covered / trials < 0.97


def test_log_linear_trend_needs_three_sales_and_time_spread() -> None:
    assert log_linear_trend(days("2024-01-01", "2024-06-01"), np.array([1.0, 2.0])) is None
    same_day = days("2024-01-01", "2024-01-01", "2024-01-01")
    assert log_linear_trend(same_day, np.array([1.0, 2.0, 3.0])) is None
    with_invalid = days("2024-01-01", "2024-02-01", "2024-03-01")
    assert log_linear_trend(with_invalid, np.array([1.0, 0.0, 3.0])) is None


def test_log_linear_trend_rejects_bad_level() -> None:
    with pytest.raises(ValueError, match="level"):
        log_linear_trend(BOUNDARY_DATES, np.arange(1.0, 7.0), level=1.5)


# --------------------------------------------------------------------------------------------
# Time adjustment

MIDPOINT_DATES = np.array(
    [f"{year}-{month:02d}-16" for year in (2022, 2023) for month in (1, 3, 5, 7, 8, 10, 12)],
    dtype="datetime64[D]",
)
"""The 16th is the midpoint of every 31-day month (mean of day 1 and day 31)."""


def test_loglinear_factors_on_a_noiseless_exponential_market() -> None:
    prices = exponential_market(MIDPOINT_DATES, 250_000.0, GROWTH)
    valuation = np.datetime64("2024-01-16")
    result = time_adjustment_factors(MIDPOINT_DATES, prices, valuation, "loglinear")
    assert result.months[0] == "2022-01" and result.months[-1] == "2024-01"
    assert len(result.months) == 25
    assert result.valuation_month == "2024-01"
    factors = np.array(result.factors)
    assert factors[-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(factors[:-1] > 1.0)
    assert np.all(np.diff(factors) < 0)
    at_valuation = 250_000.0 * math.exp(
        GROWTH * (valuation - MIDPOINT_DATES.min()).astype(int) / DAYS_PER_YEAR
    )
    assert result.adjusted_prices == pytest.approx(np.full(14, at_valuation), rel=1e-10)
    assert result.adjusted_median_price == pytest.approx(at_valuation, rel=1e-10)
    assert result.valuation_index == pytest.approx(at_valuation, rel=1e-10)
    assert result.trend is not None
    assert result.trend.annual_trend_pct == pytest.approx(6.0, abs=1e-9)
    february_midpoint = 31 + 13.5  # 2022-02-14 noon, days after 2022-01-01
    years_back = (
        (valuation - np.datetime64("2022-01-01")).astype(int) - february_midpoint
    ) / DAYS_PER_YEAR
    assert result.factors[1] == pytest.approx(math.exp(GROWTH * years_back), rel=1e-12)
    assert result.sales_count[:3] == (1, 0, 1)
    assert result.observed[:3] == (True, False, True)


def test_loglinear_valuation_month_factor_reflects_the_day_within_the_month() -> None:
    prices = exponential_market(MIDPOINT_DATES, 250_000.0, GROWTH)
    result = time_adjustment_factors(MIDPOINT_DATES, prices, "2024-01-01", "loglinear")
    assert result.valuation_date == dt.date(2024, 1, 1)
    assert result.factors[-1] == pytest.approx(math.exp(-GROWTH * 15 / DAYS_PER_YEAR))
    assert result.factors[-1] < 1.0 < result.factors[-2]


MEDIAN_DATES = days(
    "2023-01-05", "2023-01-20", "2023-01-31",
    "2023-03-01", "2023-03-10", "2023-03-20", "2023-03-31",
    "2023-04-15",
)  # fmt: skip
MEDIAN_PRICES = np.array([90, 100, 130, 390, 400, 400, 410, 800], dtype=np.float64) * 1_000


def test_monthly_median_index_interpolates_gaps_and_holds_the_last_month() -> None:
    result = time_adjustment_factors(MEDIAN_DATES, MEDIAN_PRICES, "2023-05-16", "monthly_median")
    assert result.months == ("2023-01", "2023-02", "2023-03", "2023-04", "2023-05")
    assert result.index == pytest.approx([100_000, 200_000, 400_000, 800_000, 800_000], rel=1e-12)
    assert result.factors == pytest.approx([8.0, 4.0, 2.0, 1.0, 1.0], rel=1e-12)
    assert result.observed == (True, False, True, True, False)
    assert result.sales_count == (3, 0, 4, 1, 0)
    assert result.valuation_index == pytest.approx(800_000.0, rel=1e-12)
    expected = np.array([720, 800, 1040, 780, 800, 800, 820, 800], dtype=np.float64) * 1_000
    assert result.adjusted_prices == pytest.approx(expected, rel=1e-12)
    assert result.adjusted_median_price == pytest.approx(800_000.0, rel=1e-12)
    assert result.trend is None


def test_monthly_median_minimum_sales_treats_thin_months_as_empty() -> None:
    result = time_adjustment_factors(
        MEDIAN_DATES, MEDIAN_PRICES, "2023-05-16", "monthly_median", min_sales_per_month=2
    )
    assert result.index == pytest.approx([100_000, 200_000, 400_000, 400_000, 400_000], rel=1e-12)
    assert result.factors == pytest.approx([4.0, 2.0, 1.0, 1.0, 1.0], rel=1e-12)
    assert result.observed == (True, False, True, False, False)


def test_monthly_median_valuation_before_the_sales_holds_the_first_month() -> None:
    result = time_adjustment_factors(MEDIAN_DATES, MEDIAN_PRICES, "2022-12-16", "monthly_median")
    assert result.months[0] == "2022-12" and result.months[-1] == "2023-04"
    assert result.factors == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.125], rel=1e-12)


def test_adjust_prices_looks_up_the_month_factor() -> None:
    table = time_adjustment_factors(MEDIAN_DATES, MEDIAN_PRICES, "2023-05-16", "monthly_median")
    dates = np.array(
        ["2023-02-28", "2023-05-31", "2022-12-31", "2023-06-01", "NaT"], "datetime64[D]"
    )
    adjusted = adjust_prices(dates, np.full(5, 1_000.0), table)
    assert adjusted[:2].tolist() == pytest.approx([4_000.0, 1_000.0])
    assert np.isnan(adjusted[2:]).all()


def test_time_adjustment_marks_unusable_sales_as_nan() -> None:
    dates = np.concatenate([MEDIAN_DATES, days("2023-03-05")])
    prices = np.concatenate([MEDIAN_PRICES, [0.0]])
    result = time_adjustment_factors(dates, prices, "2023-05-16", "monthly_median")
    assert result.n_sales == 8
    assert np.isnan(result.adjusted_prices[-1])
    assert result.adjusted_median_price == pytest.approx(800_000.0)


def test_time_adjustment_without_a_measurable_trend_raises() -> None:
    with pytest.raises(InsufficientSalesError):
        time_adjustment_factors(days("2024-01-01"), np.array([1.0]), "2024-06-01", "loglinear")
    with pytest.raises(InsufficientSalesError):
        time_adjustment_factors(
            days("2024-01-01"), np.array([np.nan]), "2024-06-01", "monthly_median"
        )
    with pytest.raises(InsufficientSalesError):
        time_adjustment_factors(
            days("2024-01-01"), np.array([5.0]), "2024-06-01", "monthly_median",
            min_sales_per_month=2,
        )  # fmt: skip
