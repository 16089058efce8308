"""Market-trend numerics for assessors: period summaries, log-linear trends, time adjustment.

Why this module exists: an assessment is as of one valuation date, but the sales that support
it are spread over months or years. Before sales can be compared with each other or with
assessed values (ratio studies) their prices have to be brought to a common date. The IAAO
*Standard on Verification and Adjustment of Sales* (2020) calls this adjustment for time
("time adjustment" / "time trending") and lists, among the accepted ways to measure the rate of
market change, regression of price on time and comparison of price levels (e.g. medians) over
successive periods; the IAAO *Standard on Ratio Studies* (2013) likewise expects sale prices in a
ratio study to be adjusted to the assessment date when the market has moved. This module
implements both of those measurements, plus the period summaries (volume, mean, median,
median price per square foot) an assessor looks at before choosing one.

Everything is vectorised over sales with numpy: the only Python loops run over periods, groups
or months, never over individual sales, so a county's full sales file (10^6 rows) is summarised
in a fraction of a second.

Conventions shared by all functions:

* A sale is *usable* when its date is not NaT and its price is finite and positive. Zero or
  negative considerations are nominal/non-market transfers (the IAAO verification standard
  excludes them from market analysis), and the logarithm used by the trend methods needs
  positive prices. Unusable sales are silently dropped; callers wanting to report them can
  count them with :func:`usable_sales_mask`.
* Time is measured in days from the proleptic Gregorian calendar (``datetime64[D]``); a sale
  date stands for its day number. Years are mean Gregorian years of 365.2425 days.
* The *midpoint* of a calendar month is the mean of its first and last day numbers, i.e. the
  expected date of a sale when sales are spread evenly over the month (Jan 16, Feb 14.5 or 15,
  Apr 15.5, ...). Monthly indices are located at these midpoints.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

Period = Literal["month", "quarter", "year"]
AdjustmentMethod = Literal["loglinear", "monthly_median"]

DAYS_PER_YEAR = 365.2425
"""Mean length of a Gregorian year in days; converts day counts to fractional years."""

MISSING_GROUP = "(missing)"
"""Label given to sales whose group label is None, NaN or the empty string."""

_PERIODS: tuple[str, ...] = ("month", "quarter", "year")
_EPOCH = dt.date(1970, 1, 1)
_NONE = np.array(None, dtype=object)
_EXACT_T_MAX_DF = 300
"""Largest df for which the t quantile is computed from the exact CDF series."""


class InsufficientSalesError(ValueError):
    """Too few usable sales to measure a market trend (raised by time adjustment)."""


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """Summary of the usable sales of one period (and group, when grouping was requested)."""

    period: str
    group: str | None
    sales_volume: int
    average_price: float | None
    median_price: float | None
    median_price_per_sqft: float | None
    """Median of price / living area over sales with a finite, positive living area."""


@dataclass(frozen=True, slots=True)
class TrendFit:
    """Least-squares fit of ln(price) = intercept + slope_per_year * years_since(origin_date)."""

    n: int
    origin_date: dt.date
    """Date of the earliest usable sale; time zero of the regression."""
    intercept: float
    """Fitted ln(price) at ``origin_date``."""
    slope_per_year: float
    """Continuous growth rate of price, per year (log scale)."""
    slope_std_error: float
    annual_trend_pct: float
    """(exp(slope) - 1) * 100: compound percent change in price per year."""
    ci_low_pct: float
    ci_high_pct: float
    """Confidence interval of ``annual_trend_pct`` at ``level``, from slope +/- t * SE."""
    monthly_trend_pct: float
    """(exp(slope / 12) - 1) * 100: the same rate expressed per month, as assessors quote it."""
    r_squared: float | None
    """Coefficient of determination; None when every price is identical (no variance)."""
    level: float
    df: int
    t_quantile: float


@dataclass(frozen=True, slots=True)
class YearOverYearChange:
    """Change of a year's median price against the previous calendar year, same group."""

    year: str
    group: str | None
    median_price: float | None
    previous_median_price: float | None
    change_pct: float | None
    """None for the first year, after a year without sales, or without a previous median."""


@dataclass(frozen=True)
class TimeAdjustment:
    """Monthly time-adjustment factors to a valuation date, and the adjusted sale prices.

    ``months[i]`` ("YYYY-MM") has market index ``index[i]`` (price level at the month
    midpoint) and factor ``factors[i] = valuation_index / index[i]``, so that
    ``price * factors[i]`` is the price of a sale made in that month, brought to the valuation
    date. The table runs without gaps from the earlier of the first sale month and the
    valuation month to the later of the last sale month and the valuation month.
    """

    method: AdjustmentMethod
    valuation_date: dt.date
    valuation_month: str
    valuation_index: float
    """Market index at the valuation date itself (not at the valuation month's midpoint)."""
    months: tuple[str, ...]
    index: tuple[float, ...]
    factors: tuple[float, ...]
    sales_count: tuple[int, ...]
    """Usable sales per month of the table."""
    observed: tuple[bool, ...]
    """Whether the month's index comes from its own sales (monthly median) rather than from
    interpolation/extrapolation; for the log-linear method, whether the month has sales."""
    n_sales: int
    adjusted_prices: npt.NDArray[np.float64] = field(compare=False, repr=False)
    """Time-adjusted price of every input sale, in input order; NaN for unusable sales."""
    adjusted_median_price: float | None
    trend: TrendFit | None = None
    """The fitted trend behind the factors (log-linear method only)."""


# --------------------------------------------------------------------------------------------
# Input handling


def _as_dates(sale_date: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    dates = np.asarray(sale_date)
    if dates.ndim != 1:
        raise ValueError("sale_date must be one-dimensional")
    if dates.dtype.kind != "M":
        dates = dates.astype("datetime64[D]")
    return dates.astype("datetime64[D]", copy=False)


def _as_floats(values: npt.ArrayLike, name: str, n: int) -> npt.NDArray[np.float64]:
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"{name} must be one-dimensional with {n} elements, got {out.shape}")
    return out


def _as_day(value: np.datetime64 | dt.date | str) -> np.datetime64:
    day = cast(np.datetime64, np.asarray(value).astype("datetime64[D]")[()])
    if np.isnat(day):
        raise ValueError("valuation_date must be a date, not NaT")
    return day


def _to_date(day: np.datetime64) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(day.astype("datetime64[D]").astype(np.int64)))


def _check_period(period: str) -> None:
    if period not in _PERIODS:
        raise ValueError(f"period must be one of {_PERIODS}, got {period!r}")


def usable_sales_mask(sale_date: npt.ArrayLike, sale_price: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Boolean mask of sales with a date and a finite, positive price (see module docstring)."""
    dates = _as_dates(sale_date)
    prices = _as_floats(sale_price, "sale_price", dates.size)
    with np.errstate(invalid="ignore"):
        return ~np.isnat(dates) & np.isfinite(prices) & (prices > 0)


# --------------------------------------------------------------------------------------------
# Periods


def period_codes(sale_date: npt.ArrayLike, period: Period) -> npt.NDArray[np.int64]:
    """Integer period number per sale (months/quarters/years since 1970) for sorting/grouping.

    Codes increase chronologically, so they are the sort key behind :func:`period_labels`.
    NaT dates give an undefined code; mask them with ``np.isnat`` first.
    """
    _check_period(period)
    dates = _as_dates(sale_date)
    if period == "year":
        return dates.astype("datetime64[Y]").astype(np.int64)
    months = dates.astype("datetime64[M]").astype(np.int64)
    return months if period == "month" else months // 3


def period_code_label(code: int, period: Period) -> str:
    """Label of one period code: "2024-03" (month), "2024-Q1" (quarter), "2024" (year).

    Years are zero-padded to four digits, so labels of years 1000-9999 sort chronologically as
    plain strings (month and quarter labels share the "YYYY-" prefix).
    """
    _check_period(period)
    if period == "year":
        return f"{1970 + code:04d}"
    if period == "quarter":
        year, quarter = divmod(code, 4)
        return f"{1970 + year:04d}-Q{quarter + 1}"
    year, month = divmod(code, 12)
    return f"{1970 + year:04d}-{month + 1:02d}"


def _factorize_ints(
    codes: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """Sorted unique values and inverse indices, like ``np.unique(return_inverse=True)``.

    Date-derived codes span a small range, so a counting pass (O(n)) replaces the sort that
    np.unique would do; wide ranges fall back to np.unique.
    """
    if codes.size == 0:
        return codes.astype(np.int64), np.zeros(0, dtype=np.intp)
    low = int(codes.min())
    span = int(codes.max()) - low + 1
    if span > max(4 * codes.size, 1 << 16):
        uniques, inverse = np.unique(codes, return_inverse=True)
        return uniques.astype(np.int64), inverse.reshape(-1).astype(np.intp)
    offset = codes - low
    present = np.bincount(offset, minlength=span) > 0
    uniques = np.flatnonzero(present).astype(np.int64) + low
    lookup = np.cumsum(present, dtype=np.intp) - 1
    return uniques, lookup[offset]


def period_labels(sale_date: npt.ArrayLike, period: Period) -> npt.NDArray[np.str_]:
    """Period label of every sale ("2024-03", "2024-Q1" or "2024"); "" for NaT dates.

    Labels are formatted once per distinct period and broadcast, so the cost is one pass over
    the dates. Sorting the labels as strings sorts them chronologically (years 1000-9999).
    """
    dates = _as_dates(sale_date)
    codes = period_codes(dates, period)
    known = ~np.isnat(dates)
    uniques, inverse = _factorize_ints(codes[known])
    names = np.array([period_code_label(int(c), period) for c in uniques] or [""])
    out = np.full(dates.size, "", dtype=names.dtype)
    out[known] = names[inverse]
    return out


# --------------------------------------------------------------------------------------------
# Grouped statistics


def _factorize_labels(groups: npt.NDArray[np.generic]) -> tuple[list[str], npt.NDArray[np.intp]]:
    """Sorted distinct group labels (as str) and each sale's index into them.

    Strings are factorised through a 64-bit FNV-1a hash of their code points, which needs an
    integer sort instead of a (several times slower) string sort; the hash result is checked
    against the labels and a collision falls back to np.unique on the strings.
    """
    if groups.dtype.kind not in "OUS":
        uniques, inverse = np.unique(groups, return_inverse=True)
        return [str(u) for u in uniques.tolist()], inverse.reshape(-1).astype(np.intp)
    if groups.dtype.kind == "O":
        missing = np.equal(groups, _NONE) | (groups != groups) | (groups == "")
        if missing.any():
            groups = groups.copy()
            groups[missing] = MISSING_GROUP
        strings = groups.astype(str)
    elif groups.dtype.kind == "S":
        strings = np.char.decode(np.asarray(groups, dtype=np.bytes_), "utf-8")
    else:
        strings = groups
    strings = np.where(strings == "", MISSING_GROUP, strings) if (strings == "").any() else strings
    if strings.size == 0:
        return [], np.zeros(0, dtype=np.intp)
    width = strings.dtype.itemsize // 4
    chars = np.ascontiguousarray(strings).view(np.uint32).reshape(strings.size, width)
    digest = np.full(strings.size, 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    for column in range(width):
        digest ^= chars[:, column].astype(np.uint64)
        digest *= prime
    _, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    names = strings[first]
    if not np.array_equal(names[inverse], strings):
        names, inverse = np.unique(strings, return_inverse=True)
        return [str(s) for s in names.tolist()], inverse.reshape(-1).astype(np.intp)
    order = np.argsort(names, kind="stable")
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    return [str(s) for s in names[order].tolist()], rank[inverse]


def _small_key(key: npt.NDArray[np.intp], size: int) -> npt.NDArray[np.integer]:
    """Narrowest unsigned dtype for a key: numpy's stable sort is a radix sort up to 16 bits."""
    if size <= 1 << 8:
        return key.astype(np.uint8)
    if size <= 1 << 16:
        return key.astype(np.uint16)
    return key


def _grouped_medians(
    key: npt.NDArray[np.intp], values: npt.NDArray[np.float64], size: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Count and median of ``values`` per key in [0, size); median NaN for empty keys.

    A stable sort on the key (a radix sort for up to 65,536 keys) makes every key's values
    contiguous; each segment is then sorted in place (one loop step per group, never per
    sale), and the medians are read at fixed offsets, averaging the two middle values for even
    counts. Sorting small segments is several times faster than one global value sort.
    """
    counts = np.bincount(key, minlength=size).astype(np.int64)
    medians = np.full(size, np.nan)
    if key.size == 0:
        return counts, medians
    ordered = values[np.argsort(_small_key(key, size), kind="stable")]
    ends = np.cumsum(counts)
    starts = ends - counts
    has = counts > 0
    for start, end in zip(starts[counts > 1].tolist(), ends[counts > 1].tolist(), strict=True):
        ordered[start:end].sort()
    low = starts[has] + (counts[has] - 1) // 2
    high = starts[has] + counts[has] // 2
    medians[has] = 0.5 * (ordered[low] + ordered[high])
    return counts, medians


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def trend_points(
    sale_date: npt.ArrayLike,
    sale_price: npt.ArrayLike,
    living_area_sqft: npt.ArrayLike,
    *,
    period: Period,
    groups: npt.ArrayLike | None = None,
) -> list[TrendPoint]:
    """Volume, mean, median and median price/sqft of usable sales per period (and group).

    Why: volume and central tendency by period are the first look at market movement that the
    IAAO verification standard asks for before any time adjustment; the median is preferred
    over the mean because it resists outlying sales, and price per square foot controls for
    the size mix of what sold in each period. Sales with missing or non-positive living area
    are left out of the price-per-sqft median only.

    Returns one point per (period, group) with at least one usable sale, sorted by period
    (chronologically) and then by group label. ``group`` is None when ``groups`` is None;
    missing group labels (None, NaN, "") are reported as :data:`MISSING_GROUP`.
    """
    _check_period(period)
    dates = _as_dates(sale_date)
    n = dates.size
    prices = _as_floats(sale_price, "sale_price", n)
    areas = _as_floats(living_area_sqft, "living_area_sqft", n)
    labels_in = None if groups is None else np.asarray(groups)
    if labels_in is not None and labels_in.shape != (n,):
        raise ValueError(f"groups must be one-dimensional with {n} elements")
    usable = usable_sales_mask(dates, prices)
    if not usable.any():
        return []
    if not usable.all():
        dates, prices, areas = dates[usable], prices[usable], areas[usable]
        labels_in = None if labels_in is None else labels_in[usable]

    period_values, period_index = _factorize_ints(period_codes(dates, period))
    if labels_in is None:
        group_names: list[str | None] = [None]
        key = period_index
    else:
        names, group_index = _factorize_labels(labels_in)
        group_names = list(names)
        key = period_index * len(group_names) + group_index
    size = period_values.size * len(group_names)

    counts, median_price = _grouped_medians(key, prices, size)
    sums = np.bincount(key, weights=prices, minlength=size)
    with np.errstate(invalid="ignore"):
        has_area = np.isfinite(areas) & (areas > 0)
    _, median_ppsf = _grouped_medians(key[has_area], prices[has_area] / areas[has_area], size)

    points: list[TrendPoint] = []
    period_names = [period_code_label(int(c), period) for c in period_values]
    for k in np.flatnonzero(counts).tolist():
        p, g = divmod(k, len(group_names))
        points.append(
            TrendPoint(
                period=period_names[p],
                group=group_names[g],
                sales_volume=int(counts[k]),
                average_price=float(sums[k] / counts[k]),
                median_price=_none_if_nan(median_price[k]),
                median_price_per_sqft=_none_if_nan(median_ppsf[k]),
            )
        )
    return points


def year_over_year(points: Sequence[TrendPoint]) -> list[YearOverYearChange]:
    """Percent change of each year's median price from the previous calendar year.

    Why: assessors summarise market movement for boards and taxpayers as "median sale price
    rose x% over last year". The comparison is only made between consecutive calendar years of
    the same group; a year that follows a year without sales gets no change (None) rather
    than a change silently spanning two or more years.

    ``points`` must come from :func:`trend_points` with ``period="year"``; the result has one
    entry per point, in the same order.
    """
    medians: dict[tuple[str | None, int], float | None] = {}
    for point in points:
        if len(point.period) != 4 or not point.period.isdigit():
            raise ValueError(f"year_over_year needs yearly points, got period {point.period!r}")
        medians[(point.group, int(point.period))] = point.median_price
    changes: list[YearOverYearChange] = []
    for point in points:
        previous = medians.get((point.group, int(point.period) - 1))
        change = None
        if previous is not None and previous > 0 and point.median_price is not None:
            change = (point.median_price / previous - 1.0) * 100.0
        changes.append(
            YearOverYearChange(
                year=point.period,
                group=point.group,
                median_price=point.median_price,
                previous_median_price=previous,
                change_pct=change,
            )
        )
    return changes


# --------------------------------------------------------------------------------------------
# Student t quantile


def _t_two_sided_mass(theta: float, df: int) -> float:
    """P(|T| < sqrt(df) * tan(theta)) for Student's t, exact (Abramowitz & Stegun 26.7.3-4)."""
    cos2 = math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term = total = math.cos(theta)
        for k in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + math.sin(theta) * total)
    term = total = 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def student_t_quantile(q: float, df: int) -> float:
    """Quantile of Student's t distribution with integer ``df`` degrees of freedom.

    Why not the normal quantile: a trend fitted on a handful of sales (a thin neighbourhood)
    would get a confidence interval far too narrow. Without scipy the quantile is computed as:

    * ``df <= 300``: the exact CDF as a finite trigonometric series in theta, where
      t = sqrt(df) * tan(theta) (Abramowitz & Stegun, *Handbook of Mathematical Functions*,
      26.7.3 and 26.7.4), inverted by bisection on theta to machine precision;
    * ``df > 300``: the Cornish-Fisher expansion of t around the normal quantile
      (A&S 26.7.5, terms to df**-4), whose error is below 1e-10 there.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -student_t_quantile(1.0 - q, df)
    if df > _EXACT_T_MAX_DF:
        x = NormalDist().inv_cdf(q)
        g1 = (x**3 + x) / 4
        g2 = (5 * x**5 + 16 * x**3 + 3 * x) / 96
        g3 = (3 * x**7 + 19 * x**5 + 17 * x**3 - 15 * x) / 384
        g4 = (79 * x**9 + 776 * x**7 + 1482 * x**5 - 1920 * x**3 - 945 * x) / 92160
        return x + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    target = 2.0 * q - 1.0
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if _t_two_sided_mass(mid, df) < target:
            low = mid
        else:
            high = mid
    return math.sqrt(df) * math.tan(0.5 * (low + high))


# --------------------------------------------------------------------------------------------
# Log-linear trend


def _years_since(days: npt.NDArray[np.float64], origin: np.datetime64) -> npt.NDArray[np.float64]:
    return (days - float(origin.astype(np.int64))) / DAYS_PER_YEAR


def log_linear_trend(
    sale_date: npt.ArrayLike, sale_price: npt.ArrayLike, level: float = 0.95
) -> TrendFit | None:
    """Fit ln(price) = a + b * t by ordinary least squares, t in years since the first sale.

    Why this model: regressing log price on time is the standard mass-appraisal measure of a
    market's rate of change (IAAO verification standard, time adjustment by regression;
    Gloudemans & Almy, *Fundamentals of Mass Appraisal*, 2011). On the log scale the slope is
    a constant *percentage* change per unit time, which is how markets compound, and it is not
    dominated by expensive sales. exp(b) - 1 is the annual rate; its confidence interval is
    the slope's t interval, b +/- t(1 - (1 - level)/2, n - 2) * SE(b), transformed the same way
    (the transform is monotone, so coverage is kept). The t quantile is computed as in
    :func:`student_t_quantile`.

    Returns None when fewer than 3 usable sales remain (no residual degrees of freedom for a
    standard error) or when all sales share one date (no time spread, slope undefined).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    dates = _as_dates(sale_date)
    prices = _as_floats(sale_price, "sale_price", dates.size)
    usable = usable_sales_mask(dates, prices)
    n = int(usable.sum())
    if n < 3:
        return None
    dates_u = dates[usable]
    origin = dates_u.min()
    t = _years_since(dates_u.astype(np.int64).astype(np.float64), origin)
    y = np.log(prices[usable])
    t_mean = t.mean()
    y_mean = y.mean()
    t_dev = t - t_mean
    y_dev = y - y_mean
    sxx = float(t_dev @ t_dev)
    if sxx <= 0.0:
        return None
    slope = float(t_dev @ y_dev) / sxx
    intercept = float(y_mean - slope * t_mean)
    residuals = y_dev - slope * t_dev
    sse = float(residuals @ residuals)
    sst = float(y_dev @ y_dev)
    df = n - 2
    std_error = math.sqrt(sse / df / sxx)
    t_q = student_t_quantile(0.5 + level / 2.0, df)
    return TrendFit(
        n=n,
        origin_date=_to_date(origin),
        intercept=intercept,
        slope_per_year=slope,
        slope_std_error=std_error,
        annual_trend_pct=math.expm1(slope) * 100.0,
        ci_low_pct=math.expm1(slope - t_q * std_error) * 100.0,
        ci_high_pct=math.expm1(slope + t_q * std_error) * 100.0,
        monthly_trend_pct=math.expm1(slope / 12.0) * 100.0,
        r_squared=(1.0 - sse / sst) if sst > 0.0 else None,
        level=level,
        df=df,
        t_quantile=t_q,
    )


# --------------------------------------------------------------------------------------------
# Time adjustment


def _month_midpoints(month_codes: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Day number of each month's midpoint: mean of its first and last day numbers."""
    first = month_codes.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    following = (month_codes + 1).astype("datetime64[M]").astype("datetime64[D]")
    last = following.astype(np.int64) - 1
    return 0.5 * (first + last).astype(np.float64)


def time_adjustment_factors(
    sale_date: npt.ArrayLike,
    sale_price: npt.ArrayLike,
    valuation_date: np.datetime64 | dt.date | str,
    method: AdjustmentMethod,
    *,
    min_sales_per_month: int = 1,
) -> TimeAdjustment:
    """Monthly factors bringing sale prices to the valuation date, and the adjusted prices.

    Why: IAAO's verification standard requires sale prices used in valuation models and ratio
    studies to be adjusted for market changes between the sale date and the valuation date;
    assessors apply such adjustments as a per-month factor table. With a market index I(t),
    factor(m) = I(valuation_date) / I(midpoint of m), so ``price * factor(sale month)`` is the
    price at the valuation date. Locating each month at its midpoint makes the adjustment
    unbiased for sales spread evenly over the month. Consequently the valuation month's own
    factor is exactly 1 only when the valuation date is that month's midpoint; for, say, a
    January 1 valuation date in a rising market, January sales (made after the date) get a
    factor slightly below 1, and December sales one slightly above 1.

    Methods:

    * ``"loglinear"``: I(t) = exp(a + b t) from :func:`log_linear_trend`, so
      factor(m) = exp(b * (valuation_date - midpoint(m)) in years). The fitted trend is
      extended to any month and valuation date outside the sales period (a constant-rate
      market is the model's assumption).
    * ``"monthly_median"``: I(midpoint(m)) = median price of month m's usable sales (months
      with fewer than ``min_sales_per_month`` sales count as empty). Between observed months
      ln I is interpolated linearly in time, i.e. empty months and the valuation date get the
      geometric interpolation of the neighbouring medians, matching the constant-rate
      behaviour of markets over short gaps. Beyond the first/last observed month the index is
      held at that month's median (no extrapolation): without sales there is no evidence of
      further movement, and projecting one noisy monthly median's slope would be guesswork;
      choose ``"loglinear"`` to carry a trend beyond the data.

    Raises InsufficientSalesError when the method has no trend to measure (log-linear fit
    impossible, or no month with enough sales).
    """
    dates = _as_dates(sale_date)
    prices = _as_floats(sale_price, "sale_price", dates.size)
    valuation_day = _as_day(valuation_date)
    if method not in ("loglinear", "monthly_median"):
        raise ValueError(f"method must be 'loglinear' or 'monthly_median', got {method!r}")
    if min_sales_per_month < 1:
        raise ValueError("min_sales_per_month must be at least 1")
    usable = usable_sales_mask(dates, prices)
    if not usable.any():
        raise InsufficientSalesError("no usable sales to measure a time trend")
    sale_months = dates[usable].astype("datetime64[M]").astype(np.int64)
    valuation_month = int(valuation_day.astype("datetime64[M]").astype(np.int64))
    first_month = min(int(sale_months.min()), valuation_month)
    last_month = max(int(sale_months.max()), valuation_month)
    table = np.arange(first_month, last_month + 1, dtype=np.int64)
    midpoints = _month_midpoints(table)
    month_index = (sale_months - first_month).astype(np.intp)
    counts = np.bincount(month_index, minlength=table.size)
    valuation_days = float(valuation_day.astype(np.int64))

    trend: TrendFit | None = None
    if method == "loglinear":
        trend = log_linear_trend(dates, prices)
        if trend is None:
            raise InsufficientSalesError(
                "log-linear trend needs at least 3 usable sales on at least 2 dates"
            )
        origin = np.datetime64(trend.origin_date, "D")
        log_index = trend.intercept + trend.slope_per_year * _years_since(midpoints, origin)
        log_valuation = trend.intercept + trend.slope_per_year * float(
            _years_since(np.array([valuation_days]), origin)[0]
        )
        log_factors = trend.slope_per_year * (valuation_days - midpoints) / DAYS_PER_YEAR
        observed = counts > 0
    else:
        _, medians = _grouped_medians(month_index, prices[usable], table.size)
        observed = counts >= min_sales_per_month
        if not observed.any():
            raise InsufficientSalesError(
                f"no month has at least {min_sales_per_month} usable sales"
            )
        known_t = midpoints[observed]
        known_log = np.log(medians[observed])
        log_index = np.interp(midpoints, known_t, known_log)
        log_valuation = float(np.interp(valuation_days, known_t, known_log))
        log_factors = log_valuation - log_index

    factors = np.exp(log_factors)
    adjustment = TimeAdjustment(
        method=method,
        valuation_date=_to_date(valuation_day),
        valuation_month=period_code_label(valuation_month, "month"),
        valuation_index=math.exp(log_valuation),
        months=tuple(period_code_label(int(c), "month") for c in table),
        index=tuple(np.exp(log_index).tolist()),
        factors=tuple(factors.tolist()),
        sales_count=tuple(int(c) for c in counts),
        observed=tuple(bool(o) for o in observed),
        n_sales=int(usable.sum()),
        adjusted_prices=np.zeros(0),
        adjusted_median_price=None,
        trend=trend,
    )
    adjusted = adjust_prices(dates, prices, adjustment)
    adjusted[~usable] = np.nan
    return replace(
        adjustment,
        adjusted_prices=adjusted,
        adjusted_median_price=float(np.median(adjusted[usable])),
    )


def adjust_prices(
    sale_date: npt.ArrayLike, sale_price: npt.ArrayLike, adjustment: TimeAdjustment
) -> npt.NDArray[np.float64]:
    """Time-adjusted prices: each price times the factor of its sale month.

    Why a table lookup: the factor table is what the assessor reviews and publishes, so the
    adjusted prices must be reproducible from it. Sales dated outside the table's months (or
    NaT) get NaN rather than a clamped factor, because an adjustment for a month that was not
    analysed would be unsupported.
    """
    dates = _as_dates(sale_date)
    prices = _as_floats(sale_price, "sale_price", dates.size)
    factors = np.asarray(adjustment.factors, dtype=np.float64)
    start = np.datetime64(adjustment.months[0], "M").astype(np.int64)
    offsets = dates.astype("datetime64[M]").astype(np.int64) - start
    inside = ~np.isnat(dates) & (offsets >= 0) & (offsets < factors.size)
    adjusted = np.full(dates.size, np.nan)
    adjusted[inside] = prices[inside] * factors[offsets[inside]]
    return adjusted
