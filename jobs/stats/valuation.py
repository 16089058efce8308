"""Hedonic regression and sales-comparison valuation of parcels, in pure numpy.

County assessors must value every parcel, sold or not, from the arm's-length sales of the
recent past. The IAAO *Standard on Mass Appraisal of Real Property* (2017, sections 4-5) and
the IAAO *Standard on Automated Valuation Models* (2018) describe the two workhorse approaches
implemented here:

* a **hedonic model** (multiple regression of log sale price on property characteristics,
  a market time trend and location/class fixed effects), which values all parcels at once at
  a common valuation date; and
* the **sales comparison approach**, which picks the most similar recent sales for one
  subject parcel, adjusts their prices for differences (here with the hedonic coefficients)
  and reconciles them into one value.

Both feed ratio studies (IAAO *Standard on Ratio Studies*, 2013), so :func:`evaluate` returns
the assessment-ratio vector predicted / actual and :func:`holdout_split` gives a reproducible
holdout sample.

Conventions used throughout (and relied on by the tests):

* Dates are ``datetime64[D]``. A date's decimal year is ``1970 + days_since_epoch / 365.2425``;
  a month is ``365.2425 / 12`` days.
* Age of a building at a date is ``decimal_year(date) - year_built`` (not clipped: a sale of
  a house finished later in the year gives a slightly negative age, which the linear model
  handles without special cases).
* Missing numeric characteristics are imputed with the median of the *training sales*; the
  medians are recorded on the model (``HedonicModel.imputation``) and re-used at prediction,
  and every prediction carries a per-parcel ``imputed`` flag. A value is missing when it is
  not finite, or when it is ``<= 0`` for living area, lot size and year built (logs need
  positive values, and 0 is the usual "unknown" code for year built in CAMA extracts), or
  ``< 0`` for bedrooms and bathrooms.
* Categorical levels are compared as ``str``.

References:
    IAAO (2017). Standard on Mass Appraisal of Real Property. International Association of
    Assessing Officers.
    IAAO (2018). Standard on Automated Valuation Models (AVMs). IAAO.
    IAAO (2013). Standard on Ratio Studies. IAAO.
    Duan, N. (1983). Smearing estimate: a nonparametric retransformation method.
    Journal of the American Statistical Association 78(383), 605-610.
    Abramowitz, M. and Stegun, I. (1964). Handbook of Mathematical Functions, 26.7.5
    (Cornish-Fisher expansion of Student's t quantiles).
    Press, W. et al. (2007). Numerical Recipes, 3rd ed., section 6.4 (incomplete beta by
    Lentz's continued fraction).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DISTANCE_FLOOR",
    "ComparablesResult",
    "Features",
    "HedonicModel",
    "InsufficientSales",
    "Prediction",
    "SingularDesign",
    "evaluate",
    "fit_hedonic",
    "holdout_split",
    "minimum_sales",
    "select_comparables",
]

DateLike = np.datetime64 | dt.date | str

DAYS_PER_YEAR = 365.2425
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0
EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius
DISTANCE_FLOOR = 0.1
"""Added to every comparable's distance before inverting it into a reconciliation weight, so
that a sale identical to the subject (distance 0) gets a large but finite weight."""

NUMERIC_FIELDS = ("living_area_sqft", "lot_size_sqft", "year_built", "bedrooms", "bathrooms")
_POSITIVE_FIELDS = frozenset({"living_area_sqft", "lot_size_sqft", "year_built"})
_DENSE_COLUMNS = (
    "intercept",
    "ln_living_area",
    "ln_lot_size",
    "age_years",
    "bedrooms",
    "bathrooms",
    "time_months",
)
_N_DENSE = len(_DENSE_COLUMNS)
_TIME_COL = _DENSE_COLUMNS.index("time_months")
_QR_CHUNK = 16_384  # rows per TSQR block in fit_hedonic (a block of ~100-300 columns fits L2/L3)
_CORNISH_FISHER_MIN_DF = 200.0


class InsufficientSales(ValueError):
    """Too few usable sales for the requested model; carries the count and the minimum."""

    def __init__(self, message: str, *, n: int, minimum: int) -> None:
        super().__init__(message)
        self.n = n
        self.minimum = minimum


class SingularDesign(ValueError):
    """The hedonic design matrix is rank deficient, so some coefficients are not identified.

    Typical cause: a property class that occurs only inside one neighbourhood which has no
    other class (its two dummy columns are identical), or a characteristic that is constant
    over the sales.
    """


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _float_array(name: str, values: npt.ArrayLike) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _str_array(name: str, values: npt.ArrayLike) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=object))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr.astype(str)


@dataclass(frozen=True, eq=False)
class Features:
    """Characteristics of parcels (or of sold parcels), one array element per parcel.

    Numeric arrays are coerced to float64 and may contain NaN (imputed downstream, see the
    module docstring); ``property_class`` and ``neighborhood`` are coerced to ``str`` arrays.
    ``lon``/``lat`` are parcel centroids in WGS84 degrees; they are needed only by
    :func:`select_comparables`.
    """

    living_area_sqft: np.ndarray
    lot_size_sqft: np.ndarray
    year_built: np.ndarray
    bedrooms: np.ndarray
    bathrooms: np.ndarray
    property_class: np.ndarray
    neighborhood: np.ndarray
    lon: np.ndarray | None = None
    lat: np.ndarray | None = None
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Further numeric characteristics by name (app/characteristics.py); NaN = missing."""

    def __post_init__(self) -> None:
        for name in NUMERIC_FIELDS:
            object.__setattr__(self, name, _float_array(name, getattr(self, name)))
        object.__setattr__(
            self, "extra", {k: _float_array(k, v) for k, v in dict(self.extra).items()}
        )
        for name in ("property_class", "neighborhood"):
            object.__setattr__(self, name, _str_array(name, getattr(self, name)))
        if (self.lon is None) != (self.lat is None):
            raise ValueError("lon and lat must be given together")
        if self.lon is not None and self.lat is not None:
            object.__setattr__(self, "lon", _float_array("lon", self.lon))
            object.__setattr__(self, "lat", _float_array("lat", self.lat))
        lengths = {
            name: len(getattr(self, name))
            for name in (*NUMERIC_FIELDS, "property_class", "neighborhood", "lon", "lat")
            if getattr(self, name) is not None
        }
        lengths.update({name: len(values) for name, values in self.extra.items()})
        if len(set(lengths.values())) > 1:
            raise ValueError(f"feature arrays differ in length: {lengths}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Features:
        """Build from a mapping of column name to array (e.g. columns of a query result).

        Keys other than the field names are ignored, so a dict that also carries
        ``sale_price``/``sale_date`` can be passed as is; missing required keys raise.
        """
        required = (*NUMERIC_FIELDS, "property_class", "neighborhood")
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"missing feature columns: {', '.join(missing)}")
        return cls(
            **{key: data[key] for key in required},
            lon=data.get("lon"),
            lat=data.get("lat"),
        )

    def __len__(self) -> int:
        return len(self.living_area_sqft)

    def take(self, index: npt.ArrayLike) -> Features:
        """Subset every array with the same integer or boolean index (e.g. a holdout split)."""
        idx = np.asarray(index)
        return Features(
            **{name: getattr(self, name)[idx] for name in NUMERIC_FIELDS},
            property_class=self.property_class[idx],
            neighborhood=self.neighborhood[idx],
            lon=None if self.lon is None else self.lon[idx],
            lat=None if self.lat is None else self.lat[idx],
            extra={name: values[idx] for name, values in self.extra.items()},
        )


def _as_date(value: DateLike, name: str = "valuation_date") -> np.datetime64:
    date = np.datetime64(np.asarray(value, dtype="datetime64[D]").item(), "D")
    if np.isnat(date):
        raise ValueError(f"{name} is missing (NaT)")
    return date


def _as_dates(values: npt.ArrayLike | DateLike, n: int, name: str) -> np.ndarray:
    dates = np.asarray(values, dtype="datetime64[D]")
    if dates.ndim == 0:
        dates = np.full(n, dates)
    if dates.shape != (n,):
        raise ValueError(f"{name} must have {n} elements, got shape {dates.shape}")
    bad = int(np.isnat(dates).sum())
    if bad:
        raise ValueError(f"{name} has {bad} missing (NaT) dates")
    return dates


def _decimal_year(dates: np.ndarray) -> np.ndarray:
    return 1970.0 + dates.astype(np.int64) / DAYS_PER_YEAR


def _months_between(dates: np.ndarray, reference: np.datetime64) -> np.ndarray:
    """Months from ``reference`` to ``dates`` (negative for dates before the reference)."""
    return (dates - reference).astype(np.int64) / DAYS_PER_MONTH


def _valid(name: str, values: np.ndarray) -> np.ndarray:
    if name in _POSITIVE_FIELDS:
        return np.isfinite(values) & (values > 0)
    return np.isfinite(values) & (values >= 0)


def _numeric(features: Features, name: str) -> np.ndarray:
    values: np.ndarray = features.extra[name] if name in features.extra else getattr(features, name)
    return values


def _medians(features: Features, extra: tuple[str, ...] = ()) -> dict[str, float]:
    medians: dict[str, float] = {}
    for name in (*NUMERIC_FIELDS, *extra):
        values = _numeric(features, name)
        ok = _valid(name, values)
        if not ok.any():
            raise ValueError(f"{name} has no usable values to impute from")
        medians[name] = float(np.median(values[ok]))
    return medians


def _impute(
    features: Features, fill: Mapping[str, float]
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """Replace missing numeric values with ``fill`` (the core characteristics and any extra
    ones the fill names); return values, any-imputed mask, counts."""
    cleaned: dict[str, np.ndarray] = {}
    imputed = np.zeros(len(features), dtype=bool)
    counts: dict[str, int] = {}
    for name in fill:
        values = (
            _numeric(features, name)
            if name in NUMERIC_FIELDS or name in features.extra
            else np.full(len(features), np.nan)
        )
        missing = ~_valid(name, values)
        cleaned[name] = np.where(missing, fill[name], values)
        imputed |= missing
        counts[name] = int(missing.sum())
    return cleaned, imputed, counts


@dataclass(frozen=True)
class DesignTerms:
    """Which dense columns a hedonic design has beyond the core six (intercept .. bathrooms).

    ``extra``: further characteristics, each a linear term in its own units; ``origin``: the
    (lon, lat) a quadratic location surface is centred on (None: no location terms beyond the
    neighbourhood dummies); ``time_term``: the monthly trend column, last, when sale dates vary.
    """

    extra: tuple[str, ...] = ()
    origin: tuple[float, float] | None = None
    time_term: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        location = _LOCATION_COLUMNS if self.origin is not None else ()
        time = _DENSE_COLUMNS[_TIME_COL:] if self.time_term else ()
        return (*_DENSE_COLUMNS[:_TIME_COL], *self.extra, *location, *time)

    @property
    def n_dense(self) -> int:
        return len(self.names)


_LOCATION_COLUMNS = ("east_km", "north_km", "east_km_sq", "north_km_sq", "east_north_km_sq")
_KM_PER_DEGREE_LAT = 111.195


def _location_block(
    features: Features, origin: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic trend surface in km east/north of ``origin``, and a missing-location mask.

    Why a surface: neighbourhood dummies give each neighbourhood one level, while values also
    drift smoothly across a county (towards water, a centre); five terms catch that drift.
    A parcel without coordinates sits at the origin (imputed).
    """
    n = len(features)
    lon = features.lon if features.lon is not None else np.full(n, np.nan)
    lat = features.lat if features.lat is not None else np.full(n, np.nan)
    missing = ~(np.isfinite(lon) & np.isfinite(lat))
    east = np.where(
        missing, 0.0, (lon - origin[0]) * _KM_PER_DEGREE_LAT * math.cos(math.radians(origin[1]))
    )
    north = np.where(missing, 0.0, (lat - origin[1]) * _KM_PER_DEGREE_LAT)
    return np.column_stack([east, north, east**2, north**2, east * north]), missing


def _dense_block(
    num: Mapping[str, np.ndarray],
    dates: np.ndarray,
    valuation_date: np.datetime64,
    terms: DesignTerms = DesignTerms(),
    location: np.ndarray | None = None,
) -> np.ndarray:
    """The non-dummy design columns, in the order of ``terms.names``."""
    n = len(dates)
    block = np.empty((n, terms.n_dense), dtype=np.float64)
    block[:, 0] = 1.0
    block[:, 1] = np.log(num["living_area_sqft"])
    block[:, 2] = np.log(num["lot_size_sqft"])
    block[:, 3] = _decimal_year(dates) - num["year_built"]
    block[:, 4] = num["bedrooms"]
    block[:, 5] = num["bathrooms"]
    at = _TIME_COL
    for name in terms.extra:
        block[:, at] = num[name]
        at += 1
    if terms.origin is not None and location is not None:
        block[:, at : at + location.shape[1]] = location
        at += location.shape[1]
    if terms.time_term:
        block[:, at] = _months_between(dates, valuation_date)
    return block


def _encode(values: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level index of each value in the sorted ``levels``, and a mask of unseen values."""
    pos = np.searchsorted(levels, values)
    pos_clipped = np.minimum(pos, len(levels) - 1)
    unseen = levels[pos_clipped] != values
    return pos_clipped, unseen


def _augmented_block(
    dense: np.ndarray, class_cols: np.ndarray, nbhd_cols: np.ndarray, y: np.ndarray, k: int
) -> np.ndarray:
    """Rows of ``[X | y]``: dense block, one-hot dummies set by index assignment, then y."""
    m = len(dense)
    block = np.zeros((m, k + 1), dtype=np.float64)
    block[:, : dense.shape[1]] = dense
    rows = np.arange(m)
    for cols in (class_cols, nbhd_cols):
        has = cols >= 0
        block[rows[has], cols[has]] = 1.0
    block[:, k] = y
    return block


def _design_times(
    dense: np.ndarray, class_cols: np.ndarray, nbhd_cols: np.ndarray, mat: np.ndarray
) -> np.ndarray:
    """``X @ mat`` for design rows given as dense block + dummy column indices (-1 = none).

    The dummy part of a product with a one-hot row is a row gather, so this costs
    O(rows x columns of mat) instead of forming X.
    """
    ext = np.concatenate([mat, np.zeros((1, *mat.shape[1:]))])
    return dense @ mat[: dense.shape[1]] + ext[class_cols] + ext[nbhd_cols]


def _leverage(
    dense: np.ndarray, class_cols: np.ndarray, nbhd_cols: np.ndarray, xtx_inv: np.ndarray
) -> np.ndarray:
    """``x0 (X'X)^-1 x0'`` for every row of a batch, without forming the rows.

    A row is ``x0 = [d, e_c, e_n]`` (dense part d, one-hot class column c and neighbourhood
    column n, either possibly absent), so with ``M = (X'X)^-1`` the quadratic form expands
    to ``d M_dd d' + 2 d M[:, c] + 2 d M[:, n] + M[c, c] + M[n, n] + 2 M[c, n]``: one small
    dense product and gathers, O(rows x 7^2) instead of O(rows x k) for ``||x0 R^-1||^2``.
    Index -1 (reference or unseen level) hits the appended zero row/column.
    """
    m = np.zeros((xtx_inv.shape[0] + 1, xtx_inv.shape[1] + 1))
    m[:-1, :-1] = xtx_inv
    n_dense = dense.shape[1]
    m_dd = m[:n_dense, :n_dense]
    quad = np.einsum("ij,ij->i", dense @ m_dd, dense)
    quad += 2.0 * np.einsum("ij,ji->i", dense, m[:n_dense, class_cols])
    quad += 2.0 * np.einsum("ij,ji->i", dense, m[:n_dense, nbhd_cols])
    quad += m[class_cols, class_cols] + m[nbhd_cols, nbhd_cols] + 2.0 * m[class_cols, nbhd_cols]
    return np.maximum(quad, 0.0)


def _dummy_columns(n_levels: int, reference: int, offset: int) -> np.ndarray:
    """Design column of each level; -1 for the reference level (no column)."""
    cols = np.arange(n_levels) + offset
    cols[reference + 1 :] -= 1
    cols[reference] = -1
    return cols


# --------------------------------------------------------------------------------------------
# Student t quantile without scipy
# --------------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz; NR 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (tiny if abs(d) < tiny else d)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (tiny if abs(d) < tiny else d)
            c = 1.0 + aa / c
            c = tiny if abs(c) < tiny else c
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def _t_quantile(p: float, df: float) -> float:
    """Student t quantile.

    For ``df >= 200`` the four-term Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5)
    is accurate to about 1e-10; below that the CDF (via the incomplete beta function) is
    inverted by bisection, which is exact to 1e-12 for any real ``df > 0``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p < 0.5:
        return -_t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    z = NormalDist().inv_cdf(p)
    if df >= _CORNISH_FISHER_MIN_DF:
        g1 = (z**3 + z) / 4.0
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
        return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    lo, hi = 0.0, max(1.0, 2.0 * z)
    while _t_cdf(hi, df) < p:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


# --------------------------------------------------------------------------------------------
# Hedonic model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Prediction:
    """Values of many parcels at one date (by default the model's valuation date).

    ``estimate`` is the retransformed *mean* price, ``exp(x b) * smearing`` (Duan 1983).
    ``lower``/``upper`` are the exponentiated log-scale prediction interval
    ``x b -/+ t * log_se``; that interval is equal-tailed in probability for a sale price,
    so it is not centred on ``estimate``. ``log_se`` is the prediction standard error on the
    log scale, ``sigma * sqrt(1 + x0 (X'X)^-1 x0')``. ``unseen_class``/``unseen_neighborhood``
    mark parcels whose level was not in the training sales and was valued at the reference
    level; ``imputed`` marks parcels with at least one imputed characteristic.
    """

    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    log_mean: np.ndarray
    log_se: np.ndarray
    level: float
    unseen_class: np.ndarray
    unseen_neighborhood: np.ndarray
    imputed: np.ndarray


@dataclass(frozen=True, eq=False)
class HedonicModel:
    """A fitted log-linear hedonic model (see :func:`fit_hedonic`).

    ``r_inv`` is the inverse of the triangular factor R of the design's QR decomposition,
    so ``(X'X)^-1 = r_inv @ r_inv.T``, which :meth:`predict` needs for the prediction
    variance of any batch. ``smearing`` is Duan's (1983)
    factor ``mean(exp(residuals))``. Reference levels are the most frequent level of each
    factor in the training sales (ties: first in sort order).
    """

    column_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    sigma: float
    r2: float
    adj_r2: float
    n: int
    k: int
    smearing: float
    valuation_date: np.datetime64
    class_levels: np.ndarray
    class_reference: str
    neighborhood_levels: np.ndarray
    neighborhood_reference: str
    imputation: Mapping[str, float]
    imputed_counts: Mapping[str, int]
    r_inv: np.ndarray
    terms: DesignTerms = DesignTerms()
    """The dense columns: extra characteristics, location surface, and the time term (absent
    when every training sale has the same date: no trend can be estimated then, and values
    hold as of that date)."""

    @property
    def time_term(self) -> bool:
        return self.terms.time_term

    @property
    def n_dense(self) -> int:
        """Design columns before the dummies."""
        return self.terms.n_dense

    @property
    def _time_col(self) -> int:
        return self.n_dense - 1

    @property
    def df(self) -> int:
        """Residual degrees of freedom, n - k."""
        return self.n - self.k

    @property
    def coefficients(self) -> dict[str, float]:
        """Coefficient estimates by design column name (log-price units)."""
        return {name: float(b) for name, b in zip(self.column_names, self.beta, strict=True)}

    @property
    def standard_errors(self) -> dict[str, float]:
        """OLS standard errors by design column name."""
        return {name: float(s) for name, s in zip(self.column_names, self.se, strict=True)}

    def summary(self) -> dict[str, Any]:
        """JSON-friendly fit summary, including the monthly market trend in percent."""
        trend, trend_se = (
            (float(self.beta[self._time_col]), float(self.se[self._time_col]))
            if self.time_term
            else (0, 0)
        )
        return {
            "time_term": self.time_term,
            "n": self.n,
            "k": self.k,
            "df": self.df,
            "r2": self.r2,
            "adj_r2": self.adj_r2,
            "sigma": self.sigma,
            "smearing_factor": self.smearing,
            "valuation_date": str(self.valuation_date),
            "time_trend_pct_per_month": 100.0 * math.expm1(trend) if self.time_term else None,
            "time_trend_pct_per_month_se": (
                100.0 * math.exp(trend) * trend_se if self.time_term else None
            ),
            "reference_levels": {
                "property_class": self.class_reference,
                "neighborhood": self.neighborhood_reference,
            },
            "imputation": dict(self.imputation),
            "imputed_counts": dict(self.imputed_counts),
            "coefficients": {
                name: {"estimate": float(b), "se": float(s), "t": float(b / s) if s > 0 else None}
                for name, b, s in zip(self.column_names, self.beta, self.se, strict=True)
            },
        }

    def time_adjust(self, sale_price: npt.ArrayLike, sale_date: npt.ArrayLike) -> np.ndarray:
        """Sale prices moved to the valuation date with the fitted monthly trend only.

        This is the "time-adjusted sale price" of IAAO ratio studies; unlike
        :meth:`predict` with ``as_of`` it does not age the building.
        """
        price = _float_array("sale_price", sale_price)
        dates = _as_dates(sale_date, len(price), "sale_date")
        months = _months_between(dates, self.valuation_date)
        if not self.time_term:
            return price.copy()
        return price * np.exp(-self.beta[self._time_col] * months)

    def _terms(
        self, features: Features, dates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Dense block, dummy columns (-1 = none) and unseen/imputed masks for ``features``."""
        num, imputed, _ = _impute(features, self.imputation)
        location = None
        if self.terms.origin is not None:
            location, no_location = _location_block(features, self.terms.origin)
            imputed = imputed | no_location
        dense = _dense_block(num, dates, self.valuation_date, self.terms, location)
        class_cols_of_level = _dummy_columns(
            len(self.class_levels), self._class_ref_index, self.n_dense
        )
        nbhd_cols_of_level = _dummy_columns(
            len(self.neighborhood_levels),
            self._nbhd_ref_index,
            self.n_dense + len(self.class_levels) - 1,
        )
        class_pos, unseen_class = _encode(features.property_class, self.class_levels)
        nbhd_pos, unseen_nbhd = _encode(features.neighborhood, self.neighborhood_levels)
        class_cols = np.where(unseen_class, -1, class_cols_of_level[class_pos])
        nbhd_cols = np.where(unseen_nbhd, -1, nbhd_cols_of_level[nbhd_pos])
        return dense, class_cols, nbhd_cols, unseen_class, unseen_nbhd, imputed

    @property
    def _class_ref_index(self) -> int:
        return int(np.searchsorted(self.class_levels, self.class_reference))

    @property
    def _nbhd_ref_index(self) -> int:
        return int(np.searchsorted(self.neighborhood_levels, self.neighborhood_reference))

    def predict(
        self,
        features: Features,
        level: float = 0.95,
        *,
        as_of: DateLike | npt.ArrayLike | None = None,
    ) -> Prediction:
        """Value many parcels at once at the valuation date (or at per-parcel ``as_of`` dates).

        Vectorised over the batch, no per-parcel loop: the dummy part of ``x0 b`` is a gather
        of coefficients, and the OLS prediction variance
        ``sigma^2 (1 + x0 (X'X)^-1 x0')`` uses ``(X'X)^-1 = R^-1 R^-T`` from the fit's QR,
        expanded over the dense and one-hot parts of ``x0`` (see ``_leverage``).

        ``as_of`` (one date or one per parcel) values parcels at other dates, e.g. at their
        sale dates for a holdout test; both the time trend and the building age follow it.
        """
        _check_level(level)
        n = len(features)
        dates = np.full(n, self.valuation_date) if as_of is None else _as_dates(as_of, n, "as_of")
        dense, class_cols, nbhd_cols, unseen_class, unseen_nbhd, imputed = self._terms(
            features, dates
        )
        log_mean = _design_times(dense, class_cols, nbhd_cols, self.beta)
        leverage = _leverage(dense, class_cols, nbhd_cols, self.r_inv @ self.r_inv.T)
        log_se = self.sigma * np.sqrt(1.0 + leverage)
        t = _t_quantile(0.5 + level / 2.0, self.df)
        return Prediction(
            estimate=np.exp(log_mean) * self.smearing,
            lower=np.exp(log_mean - t * log_se),
            upper=np.exp(log_mean + t * log_se),
            log_mean=log_mean,
            log_se=log_se,
            level=level,
            unseen_class=unseen_class,
            unseen_neighborhood=unseen_nbhd,
            imputed=imputed,
        )


def minimum_sales(k: int) -> int:
    """Default minimum number of sales for a hedonic fit with ``k`` design columns.

    ``max(30, 3 k)``: at least three sales per estimated coefficient (a common rule of thumb
    for stable OLS in mass appraisal) and never fewer than 30.
    """
    return max(30, 3 * k)


def fit_hedonic(
    features: Features,
    sale_price: npt.ArrayLike,
    sale_date: npt.ArrayLike,
    valuation_date: DateLike,
    *,
    min_sales: int | None = None,
    extra: tuple[str, ...] = (),
    location: bool = False,
) -> HedonicModel:
    """Fit ``ln(price)`` by OLS on characteristics, a monthly time trend and fixed effects.

    Design columns: intercept, ``ln_living_area``, ``ln_lot_size``, ``age_years`` (at sale),
    ``bedrooms``, ``bathrooms``, ``time_months`` (months from the valuation date to the sale,
    negative for earlier sales, so predictions at 0 are time-adjusted to the valuation date
    as IAAO mass-appraisal practice requires; left out when every sale has the same date,
    see ``HedonicModel.time_term``), then ``class[<level>]`` and
    ``neighborhood[<level>]`` dummies for every level but the most frequent (the reference).
    ``extra`` names further characteristics of ``features.extra``, each a linear term after
    ``bathrooms`` (missing values imputed with the training median, like the core ones);
    ``location`` adds a quadratic surface in km east/north of the sales' mean coordinates
    (:func:`_location_block`) before the time term.

    Solved by Householder QR of the augmented matrix ``[X | y]`` without forming Q:
    the R factor of ``[X | y]`` holds R and ``Q'y``, so ``b = R^-1 (Q'y)``. The QR is done
    as a sequential TSQR (Demmel et al. 2012, "Communication-optimal parallel and sequential
    QR and LU factorizations", SIAM J. Sci. Comput. 34(1)): numpy ``qr`` mode "r" of row
    blocks of ``_QR_CHUNK`` rows, then of the stacked block R factors. It is exactly as stable
    as one Householder QR, but each block fits in cache, which is ~5x faster on tall designs,
    and the full n x k design is never held in memory. Rank is checked on the singular values of R
    (numpy's ``matrix_rank`` tolerance); a rank-deficient design raises
    :class:`SingularDesign` naming the aliased columns. Standard errors are
    ``sigma * sqrt(diag((X'X)^-1))`` with ``sigma^2 = RSS / (n - k)``; R^2 is on the log
    scale.

    ``min_sales`` defaults to :func:`minimum_sales` ``(k)``; the effective minimum is never
    below ``k + 1``. Fewer sales raise :class:`InsufficientSales`.
    """
    n = len(features)
    if n == 0:
        minimum = minimum_sales(_N_DENSE)
        raise InsufficientSales(
            f"hedonic fit needs at least {minimum} sales; got 0", n=0, minimum=minimum
        )
    price = _float_array("sale_price", sale_price)
    if len(price) != n:
        raise ValueError(f"sale_price has {len(price)} elements for {n} sales")
    bad_price = int((~(np.isfinite(price) & (price > 0))).sum())
    if bad_price:
        raise ValueError(f"sale_price has {bad_price} missing or non-positive values")
    dates = _as_dates(sale_date, n, "sale_date")
    val = _as_date(valuation_date)

    class_levels, class_codes, class_counts = np.unique(
        features.property_class, return_inverse=True, return_counts=True
    )
    nbhd_levels, nbhd_codes, nbhd_counts = np.unique(
        features.neighborhood, return_inverse=True, return_counts=True
    )
    class_ref = int(np.argmax(class_counts))
    nbhd_ref = int(np.argmax(nbhd_counts))
    # Sales all of one date (a cross-sectional sample) cannot show a trend: the time column
    # would be constant, aliased with the intercept, so the model goes without it.
    time_term = bool(dates.min() != dates.max())
    origin = None
    if location:
        if features.lon is None or features.lat is None:
            raise ValueError("location terms need lon/lat of the sales")
        known = np.isfinite(features.lon) & np.isfinite(features.lat)
        if not known.any():
            raise ValueError("location terms need lon/lat of the sales")
        origin = (float(features.lon[known].mean()), float(features.lat[known].mean()))
    terms = DesignTerms(extra=tuple(extra), origin=origin, time_term=time_term)
    n_dense = terms.n_dense
    k = n_dense + len(class_levels) - 1 + len(nbhd_levels) - 1
    minimum = max(minimum_sales(k) if min_sales is None else int(min_sales), k + 1)
    if n < minimum:
        raise InsufficientSales(
            f"hedonic fit needs at least {minimum} sales for {k} design columns "
            f"({len(class_levels)} property classes, {len(nbhd_levels)} neighborhoods); "
            f"got {n}",
            n=n,
            minimum=minimum,
        )

    fill = _medians(features, terms.extra)
    num, _, imputed_counts = _impute(features, fill)
    class_cols = _dummy_columns(len(class_levels), class_ref, n_dense)[class_codes]
    nbhd_cols = _dummy_columns(len(nbhd_levels), nbhd_ref, n_dense + len(class_levels) - 1)[
        nbhd_codes
    ]
    y = np.log(price)
    location_values = _location_block(features, origin)[0] if origin is not None else None
    dense = _dense_block(num, dates, val, terms, location_values)

    names = (
        *terms.names,
        *(f"class[{lv}]" for i, lv in enumerate(class_levels) if i != class_ref),
        *(f"neighborhood[{lv}]" for i, lv in enumerate(nbhd_levels) if i != nbhd_ref),
    )
    r_blocks = [
        np.linalg.qr(
            _augmented_block(dense[rows], class_cols[rows], nbhd_cols[rows], y[rows], k),
            mode="r",
        )
        for rows in (slice(start, start + _QR_CHUNK) for start in range(0, n, _QR_CHUNK))
    ]
    r_aug: np.ndarray = np.asarray(np.linalg.qr(np.vstack(r_blocks), mode="r"))
    r = r_aug[:k, :k]
    qty = r_aug[:k, k]
    _, s, vt = np.linalg.svd(r)
    tol = s[0] * max(n, k) * np.finfo(np.float64).eps
    rank = int((s > tol).sum())
    if rank < k:
        null = np.abs(vt[rank:]).max(axis=0)
        aliased = [name for name, w in zip(names, null, strict=True) if w > 1e-6]
        raise SingularDesign(
            f"hedonic design has rank {rank} < {k} columns; aliased columns: {', '.join(aliased)}"
        )
    r_inv = np.linalg.inv(r)
    beta = r_inv @ qty
    resid = y - _design_times(dense, class_cols, nbhd_cols, beta)
    df = n - k
    rss = float(resid @ resid)
    sigma2 = rss / df
    se = np.sqrt(sigma2 * np.einsum("ij,ij->i", r_inv, r_inv))
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    adj_r2 = 1.0 - (1.0 - r2) * (n - 1) / df if tss > 0 else math.nan
    return HedonicModel(
        column_names=names,
        beta=beta,
        se=se,
        sigma=math.sqrt(sigma2),
        r2=r2,
        adj_r2=adj_r2,
        n=n,
        k=k,
        smearing=float(np.mean(np.exp(resid))),
        valuation_date=val,
        class_levels=class_levels,
        class_reference=str(class_levels[class_ref]),
        neighborhood_levels=nbhd_levels,
        neighborhood_reference=str(nbhd_levels[nbhd_ref]),
        imputation=fill,
        imputed_counts=imputed_counts,
        r_inv=r_inv,
        terms=terms,
    )


# --------------------------------------------------------------------------------------------
# Sales comparison approach
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ComparablesResult:
    """The chosen comparables (nearest first) and their reconciled value.

    ``indices`` index the ``sales`` arrays passed to :func:`select_comparables`;
    ``weights`` are the normalised reconciliation weights (sum to 1); ``lower``/``upper``
    are NaN when fewer than two comparables were requested. ``model_adjusted`` says whether
    prices were adjusted with a hedonic model.
    """

    indices: np.ndarray
    distances: np.ndarray
    sale_prices: np.ndarray
    adjusted_prices: np.ndarray
    weights: np.ndarray
    estimate: float
    lower: float
    upper: float
    level: float
    model_adjusted: bool


def _haversine_km(lon0: float, lat0: float, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    phi0, phi = math.radians(lat0), np.radians(lat)
    dphi = phi - phi0
    dlam = np.radians(lon) - math.radians(lon0)
    a = np.sin(dphi / 2.0) ** 2 + math.cos(phi0) * np.cos(phi) * np.sin(dlam / 2.0) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _comparison_attributes(num: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.column_stack(
        [
            np.log(num["living_area_sqft"]),
            np.log(num["lot_size_sqft"]),
            num["year_built"],
            num["bedrooms"],
            num["bathrooms"],
        ]
    )


def select_comparables(
    subject: Features,
    sales: Features,
    sale_price: npt.ArrayLike,
    sale_date: npt.ArrayLike,
    *,
    k: int,
    valuation_date: DateLike,
    model: HedonicModel | None = None,
    max_age_months: float | None = 24.0,
    level: float = 0.95,
    geo_scale_km: float = 1.0,
    class_penalty: float = 2.0,
    neighborhood_penalty: float = 1.0,
    exclude: npt.ArrayLike | None = None,
) -> ComparablesResult:
    """Pick the ``k`` sales most similar to one subject parcel and reconcile their prices.

    **Eligibility.** A sale is eligible when it has finite coordinates and
    ``valuation_date - max_age_months <= sale_date <= valuation_date`` (no lower bound when
    ``max_age_months`` is None), and it is not marked in ``exclude`` (a boolean mask over the
    sales: callers mark the subject's own sales, because a comparable at distance 0 would
    carry most of the weight and return the subject's sale price, which is sales chasing built
    into the method). Fewer than ``k`` eligible sales raise :class:`InsufficientSales`.

    **Distance** (dimensionless, "standard deviations"):
    ``d = sqrt((geo_km / geo_scale_km)^2 + sum_w ((a_subject_w - a_sale_w) / s_w)^2
    + class_penalty^2 [class differs] + neighborhood_penalty^2 [neighborhood differs])``,
    where ``geo_km`` is the haversine great-circle distance between centroids (Earth radius
    6371.0088 km), the attributes ``a`` are ln(living area), ln(lot size), year built (the
    same as age at a common date), bedrooms and bathrooms, and ``s_w`` is the population
    standard deviation (ddof=0) of attribute ``w`` over *all* ``sales`` passed in (1 when
    that is 0). Logs keep large lots from dominating. Missing attributes are imputed with
    ``model.imputation`` when a model is given, else with the medians of ``sales``.
    The ``k`` smallest are found with ``argpartition``; ties at the cut go to the lower index.

    **Adjustment.** With a model, each price is multiplied by
    ``exp(eta_subject - eta_comp)``, the model's log-price difference between the subject at
    the valuation date and the comparable at its sale date: continuous characteristics
    (including age), the time trend to the valuation date and the class/neighbourhood
    fixed effects (a factor is not adjusted when either level is unknown to the model).
    Without a model prices are used unadjusted (IAAO: the time window then limits drift).

    **Reconciliation.** Inverse-distance weighted mean of adjusted prices with weights
    ``1 / (d + DISTANCE_FLOOR)`` normalised to sum 1. Interval: ``estimate -/+ t(level,
    k - 1) * se`` with ``se = s_w * sqrt(sum w^2)``, ``s_w^2 = sum w (p - estimate)^2 /
    (1 - sum w^2)`` (unbiased weighted variance); with equal weights this is the familiar
    ``t * sd / sqrt(k)``. It describes uncertainty of the reconciled value from the
    comparables' disagreement, not a prediction interval for a single sale. Lower is
    clipped at 0.
    """
    _check_level(level)
    if len(subject) != 1:
        raise ValueError(f"subject must hold exactly one parcel, got {len(subject)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if subject.lon is None or sales.lon is None or sales.lat is None or subject.lat is None:
        raise ValueError("select_comparables needs lon/lat for the subject and the sales")
    lon0, lat0 = float(subject.lon[0]), float(subject.lat[0])
    if not (math.isfinite(lon0) and math.isfinite(lat0)):
        raise ValueError("subject coordinates are missing")
    n = len(sales)
    price = _float_array("sale_price", sale_price)
    if len(price) != n:
        raise ValueError(f"sale_price has {len(price)} elements for {n} sales")
    dates = _as_dates(sale_date, n, "sale_date")
    val = _as_date(valuation_date)

    eligible = np.isfinite(sales.lon) & np.isfinite(sales.lat) & (dates <= val)
    eligible &= np.isfinite(price) & (price > 0)
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=bool)
        if excluded.shape != (n,):
            raise ValueError(f"exclude must have {n} elements, got shape {excluded.shape}")
        eligible &= ~excluded
    if max_age_months is not None:
        eligible &= _months_between(dates, val) >= -max_age_months
    n_eligible = int(eligible.sum())
    if n_eligible < k:
        window = "" if max_age_months is None else f" within {max_age_months:g} months"
        raise InsufficientSales(
            f"only {n_eligible} of {n} sales are eligible comparables (sold{window} up to "
            f"{val}, with coordinates and a positive price, not of the subject); need k={k}",
            n=n_eligible,
            minimum=k,
        )

    fill = dict(model.imputation) if model is not None else _medians(sales)
    sales_num, _, _ = _impute(sales, fill)
    subject_num, _, _ = _impute(subject, fill)
    attrs = _comparison_attributes(sales_num)
    scale = attrs.std(axis=0)
    scale[scale == 0] = 1.0
    z = (attrs - _comparison_attributes(subject_num)) / scale
    geo = _haversine_km(lon0, lat0, sales.lon, sales.lat) / geo_scale_km
    d2 = geo**2 + np.einsum("ij,ij->i", z, z)
    d2 += class_penalty**2 * (sales.property_class != subject.property_class[0])
    d2 += neighborhood_penalty**2 * (sales.neighborhood != subject.neighborhood[0])
    dist = np.where(eligible, np.sqrt(d2), np.inf)

    cut = dist[np.argpartition(dist, k - 1)[k - 1]]
    candidates = np.flatnonzero(dist <= cut)
    order = np.lexsort((candidates, dist[candidates]))
    chosen = candidates[order[:k]]
    chosen_dist = dist[chosen]
    chosen_price = price[chosen]

    if model is not None:
        adjusted = chosen_price * np.exp(
            _adjustment_log_ratio(model, subject, sales.take(chosen), dates[chosen])
        )
    else:
        adjusted = chosen_price.copy()

    raw_w = 1.0 / (chosen_dist + DISTANCE_FLOOR)
    w = raw_w / raw_w.sum()
    estimate = float(w @ adjusted)
    sum_w2 = float(w @ w)
    if k >= 2 and sum_w2 < 1.0:
        var_w = float(w @ (adjusted - estimate) ** 2) / (1.0 - sum_w2)
        half = _t_quantile(0.5 + level / 2.0, k - 1) * math.sqrt(var_w * sum_w2)
        lower, upper = max(estimate - half, 0.0), estimate + half
    else:
        lower = upper = math.nan
    return ComparablesResult(
        indices=chosen,
        distances=chosen_dist,
        sale_prices=chosen_price,
        adjusted_prices=adjusted,
        weights=w,
        estimate=estimate,
        lower=lower,
        upper=upper,
        level=level,
        model_adjusted=model is not None,
    )


def _adjustment_log_ratio(
    model: HedonicModel, subject: Features, comps: Features, comp_dates: np.ndarray
) -> np.ndarray:
    """``eta_subject(valuation date) - eta_comp(sale date)`` per comparable.

    A fixed-effect factor is left unadjusted for a comparable when the subject's or the
    comparable's level is unknown to the model (the reference-level fallback of
    :meth:`HedonicModel.predict` would otherwise invent an adjustment).
    """
    beta_ext = np.append(model.beta, 0.0)
    s_dense, s_class, s_nbhd, s_unseen_c, s_unseen_n, _ = model._terms(
        subject, np.full(1, model.valuation_date)
    )
    c_dense, c_class, c_nbhd, c_unseen_c, c_unseen_n, _ = model._terms(comps, comp_dates)
    dense_beta = model.beta[: model.n_dense]
    log_ratio = s_dense @ dense_beta - c_dense @ dense_beta
    class_diff = beta_ext[s_class] - beta_ext[c_class]
    nbhd_diff = beta_ext[s_nbhd] - beta_ext[c_nbhd]
    log_ratio += np.where(s_unseen_c | c_unseen_c, 0.0, class_diff)
    log_ratio += np.where(s_unseen_n | c_unseen_n, 0.0, nbhd_diff)
    return log_ratio


# --------------------------------------------------------------------------------------------
# Holdout evaluation
# --------------------------------------------------------------------------------------------


def holdout_split(n: int, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reproducible random train/test split of ``range(n)`` (both index arrays sorted).

    The test size is ``round(n * fraction)`` clamped to ``[1, n - 1]``; the same ``seed``
    always yields the same split (numpy ``default_rng``), so a holdout ratio study can be
    re-run and audited as the IAAO AVM standard asks.
    """
    if n < 2:
        raise ValueError(f"need at least 2 items to split, got {n}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_test = min(max(round(n * fraction), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def evaluate(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> dict[str, Any]:
    """Accuracy of predicted prices against actual (ideally time-adjusted) sale prices.

    Returns ``n``; ``mape`` and ``mdape`` (mean / median absolute percentage error, as
    fractions: 0.05 is 5 %); ``r2`` on prices (``1 - SS_res / SS_tot``, NaN when all actual
    prices are equal); and ``ratios`` = predicted / actual, the assessment-ratio vector from
    which the IAAO ratio statistics (median ratio, COD, PRD, PRB) are computed elsewhere.
    """
    p = _float_array("predicted", predicted)
    a = _float_array("actual", actual)
    if p.shape != a.shape:
        raise ValueError(f"predicted has {len(p)} elements, actual has {len(a)}")
    if len(a) == 0:
        raise ValueError("nothing to evaluate")
    if not np.isfinite(p).all():
        raise ValueError("predicted contains non-finite values")
    if not (np.isfinite(a) & (a > 0)).all():
        raise ValueError("actual must be finite and positive")
    ratios = p / a
    ape = np.abs(ratios - 1.0)
    ss_tot = float(((a - a.mean()) ** 2).sum())
    ss_res = float(((p - a) ** 2).sum())
    return {
        "n": len(a),
        "mape": float(ape.mean()),
        "mdape": float(np.median(ape)),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan,
        "ratios": ratios,
    }
