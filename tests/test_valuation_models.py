"""Tests of jobs.stats.valuation against data generated from a known hedonic model.

The generating model (log scale, months relative to the valuation date):

    ln p = 11 + 0.6 ln(area) + 0.1 ln(lot) - 0.004 age + 0.02 beds + 0.05 baths
           + class effect + neighbourhood effect + 0.004 months + N(0, 0.08^2)

with age and months defined exactly as in the module docstring, so the fit can recover the
coefficients without specification error. Everything is seeded and deterministic.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np
import pytest

from jobs.stats.valuation import (
    DISTANCE_FLOOR,
    Features,
    HedonicModel,
    InsufficientSales,
    SingularDesign,
    _t_quantile,
    evaluate,
    fit_hedonic,
    holdout_split,
    select_comparables,
)

VALUATION_DATE = np.datetime64("2024-01-01")
SIGMA = 0.08
TRUE = {
    "intercept": 11.0,
    "ln_living_area": 0.6,
    "ln_lot_size": 0.1,
    "age_years": -0.004,
    "bedrooms": 0.02,
    "bathrooms": 0.05,
    "time_months": 0.004,
}
CLASS_EFFECTS = {"SFR": 0.0, "TOWNHOUSE": -0.08, "CONDO": -0.15}
CLASS_PROBS = (0.6, 0.25, 0.15)  # SFR is the most frequent, hence the reference level
NBHD_EFFECTS = {
    "N00": 0.0,
    "N01": 0.12,
    "N02": -0.10,
    "N03": 0.25,
    "N04": -0.05,
    "N05": 0.08,
    "N06": -0.20,
    "N07": 0.15,
}
NBHD_PROBS = (0.23, *([0.11] * 7))  # N00 is the most frequent
# Neighbourhood centroids on a grid ~5.5 km apart near Olympia, WA.
NBHD_CENTERS = {
    name: (-122.95 + 0.07 * (i % 4), 47.00 + 0.05 * (i // 4)) for i, name in enumerate(NBHD_EFFECTS)
}


@dataclass(frozen=True)
class Synthetic:
    features: Features
    sale_date: np.ndarray
    sale_price: np.ndarray
    mu_at_sale: np.ndarray  # noise-free log price at the sale date
    mu_at_valuation: np.ndarray  # noise-free log price at the valuation date


def decimal_year(dates: np.ndarray) -> np.ndarray:
    return 1970.0 + dates.astype(np.int64) / 365.2425


def true_log_price(
    features: Features, dates: np.ndarray, valuation_date: np.datetime64 = VALUATION_DATE
) -> np.ndarray:
    months = (dates - valuation_date).astype(np.int64) / (365.2425 / 12)
    age = decimal_year(dates) - features.year_built
    return (
        TRUE["intercept"]
        + TRUE["ln_living_area"] * np.log(features.living_area_sqft)
        + TRUE["ln_lot_size"] * np.log(features.lot_size_sqft)
        + TRUE["age_years"] * age
        + TRUE["bedrooms"] * features.bedrooms
        + TRUE["bathrooms"] * features.bathrooms
        + TRUE["time_months"] * months
        + np.array([CLASS_EFFECTS[c] for c in features.property_class])
        + np.array([NBHD_EFFECTS[b] for b in features.neighborhood])
    )


def synthetic(n: int, seed: int) -> Synthetic:
    rng = np.random.default_rng(seed)
    area = np.round(np.exp(rng.normal(np.log(1800.0), 0.35, n)))
    lot = np.round(np.exp(rng.normal(np.log(8000.0), 0.5, n)))
    year_built = rng.integers(1920, 2023, n).astype(float)
    beds = np.clip(np.round(area / 600.0 + rng.normal(0.0, 0.8, n)), 1, 7)
    baths = np.clip(np.round(2.0 * (area / 1000.0 + rng.normal(0.0, 0.4, n))) / 2.0, 1, 5)
    classes = rng.choice(list(CLASS_EFFECTS), size=n, p=CLASS_PROBS)
    nbhds = rng.choice(list(NBHD_EFFECTS), size=n, p=NBHD_PROBS)
    centers = np.array([NBHD_CENTERS[b] for b in nbhds])
    lon = centers[:, 0] + rng.normal(0.0, 0.01, n)
    lat = centers[:, 1] + rng.normal(0.0, 0.008, n)
    sale_date = VALUATION_DATE - rng.integers(0, 3 * 365, n).astype("timedelta64[D]")
    features = Features(area, lot, year_built, beds, baths, classes, nbhds, lon=lon, lat=lat)
    mu_sale = true_log_price(features, sale_date)
    mu_val = true_log_price(features, np.full(n, VALUATION_DATE))
    price = np.exp(mu_sale + rng.normal(0.0, SIGMA, n))
    return Synthetic(features, sale_date, price, mu_sale, mu_val)


@pytest.fixture(scope="module")
def sales() -> Synthetic:
    return synthetic(3000, seed=20240101)


@pytest.fixture(scope="module")
def unsold() -> Synthetic:
    return synthetic(2000, seed=7)


@pytest.fixture(scope="module")
def model(sales: Synthetic) -> HedonicModel:
    return fit_hedonic(sales.features, sales.sale_price, sales.sale_date, VALUATION_DATE)


def explicit_design(model: HedonicModel, features: Features, dates: np.ndarray) -> np.ndarray:
    """The design matrix built column by column from the model's column names."""
    columns = {
        "intercept": np.ones(len(features)),
        "ln_living_area": np.log(features.living_area_sqft),
        "ln_lot_size": np.log(features.lot_size_sqft),
        "age_years": decimal_year(dates) - features.year_built,
        "bedrooms": features.bedrooms,
        "bathrooms": features.bathrooms,
        "time_months": (dates - VALUATION_DATE).astype(np.int64) / (365.2425 / 12),
    }
    out = []
    for name in model.column_names:
        if name.startswith("class["):
            out.append((features.property_class == name[6:-1]).astype(float))
        elif name.startswith("neighborhood["):
            out.append((features.neighborhood == name[13:-1]).astype(float))
        else:
            out.append(columns[name])
    return np.column_stack(out)


# --------------------------------------------------------------------------------------------
# Hedonic model
# --------------------------------------------------------------------------------------------


def test_fit_recovers_generating_coefficients(model: HedonicModel) -> None:
    """Every coefficient within 4 SE of the truth, and every SE small enough to mean it.

    Fixed effects are identified relative to the reference level (the most frequent one).
    """
    assert model.class_reference == "SFR"
    assert model.neighborhood_reference == "N00"
    expected = dict(TRUE)
    expected["intercept"] += CLASS_EFFECTS["SFR"] + NBHD_EFFECTS["N00"]
    for level, effect in CLASS_EFFECTS.items():
        if level != "SFR":
            expected[f"class[{level}]"] = effect - CLASS_EFFECTS["SFR"]
    for level, effect in NBHD_EFFECTS.items():
        if level != "N00":
            expected[f"neighborhood[{level}]"] = effect - NBHD_EFFECTS["N00"]
    assert set(model.column_names) == set(expected)
    assert model.k == len(expected) == 16
    # Absolute ceilings on the SE so that "within 4 SE" cannot pass vacuously.
    max_se = {
        "intercept": 0.08,
        "ln_living_area": 0.01,
        "ln_lot_size": 0.005,
        "age_years": 0.0001,
        "bedrooms": 0.003,
        "bathrooms": 0.005,
        "time_months": 0.0002,
    }
    coefficients, ses = model.coefficients, model.standard_errors
    for name, truth in expected.items():
        se = ses[name]
        assert 0 < se <= max_se.get(name, 0.01), (name, se)
        assert abs(coefficients[name] - truth) <= 4 * se, (name, coefficients[name], truth, se)
    assert 0.075 < model.sigma < 0.085
    assert model.r2 > 0.9
    assert model.adj_r2 < model.r2


def test_fit_matches_explicit_ols(sales: Synthetic, model: HedonicModel) -> None:
    """Coefficients, SEs and prediction variances equal a textbook OLS on the explicit X."""
    x = explicit_design(model, sales.features, sales.sale_date)
    y = np.log(sales.sale_price)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    sigma2 = resid @ resid / (len(y) - x.shape[1])
    xtx_inv = np.linalg.inv(x.T @ x)
    np.testing.assert_allclose(model.beta, beta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.se, np.sqrt(sigma2 * np.diag(xtx_inv)), rtol=1e-6)
    assert model.smearing == pytest.approx(np.mean(np.exp(resid)), rel=1e-12)

    parcels = synthetic(500, seed=99).features
    x0 = explicit_design(model, parcels, np.full(len(parcels), VALUATION_DATE))
    pred = model.predict(parcels)
    leverage = np.einsum("ij,jk,ik->i", x0, xtx_inv, x0)
    np.testing.assert_allclose(pred.log_mean, x0 @ beta, atol=1e-9)
    np.testing.assert_allclose(pred.log_se, np.sqrt(sigma2 * (1 + leverage)), rtol=1e-6)


def test_summary_reports_trend_in_percent(model: HedonicModel) -> None:
    summary = model.summary()
    assert summary["n"] == 3000
    assert summary["k"] == 16
    assert summary["r2"] == model.r2
    trend = summary["time_trend_pct_per_month"]
    # 0.004/month in logs is 0.4008 %/month; allow 4 SE.
    assert abs(trend - 100 * math.expm1(0.004)) < 4 * summary["time_trend_pct_per_month_se"]
    assert (
        summary["coefficients"]["ln_living_area"]["se"] == model.standard_errors["ln_living_area"]
    )
    assert summary["reference_levels"] == {"property_class": "SFR", "neighborhood": "N00"}


def test_predict_unsold_parcels_close_to_noise_free_value(
    model: HedonicModel, unsold: Synthetic
) -> None:
    """Median absolute percentage error < 5 % against the noise-free mean value.

    The smeared estimate targets the conditional mean ``exp(mu + sigma^2 / 2)``, so that is
    the reference; the mean ratio must also be within 1 % of 1 (no retransformation bias).
    """
    pred = model.predict(unsold.features)
    truth = np.exp(unsold.mu_at_valuation + SIGMA**2 / 2)
    ratio = pred.estimate / truth
    assert np.median(np.abs(ratio - 1)) < 0.05
    assert abs(ratio.mean() - 1) < 0.01
    assert np.all(pred.lower < pred.estimate)
    assert np.all(pred.estimate < pred.upper)
    assert not pred.unseen_class.any()
    assert not pred.unseen_neighborhood.any()


def test_prediction_interval_covers_about_95_percent_of_holdout_sales(sales: Synthetic) -> None:
    train, test = holdout_split(len(sales.sale_price), fraction=0.2, seed=11)
    model = fit_hedonic(
        sales.features.take(train), sales.sale_price[train], sales.sale_date[train], VALUATION_DATE
    )
    pred = model.predict(sales.features.take(test), level=0.95, as_of=sales.sale_date[test])
    actual = sales.sale_price[test]
    coverage = np.mean((pred.lower <= actual) & (actual <= pred.upper))
    assert 0.90 <= coverage <= 0.99
    narrow = model.predict(sales.features.take(test), level=0.5, as_of=sales.sale_date[test])
    assert 0.40 <= np.mean((narrow.lower <= actual) & (actual <= narrow.upper)) <= 0.60
    metrics = evaluate(pred.estimate, actual)
    assert metrics["mape"] < 0.08
    assert metrics["r2"] > 0.85
    assert metrics["ratios"].shape == (len(test),)


def test_insufficient_sales_names_count_and_minimum(sales: Synthetic) -> None:
    few = np.arange(40)
    features = sales.features.take(few)
    k = 7 + len(set(features.property_class)) - 1 + len(set(features.neighborhood)) - 1
    minimum = max(30, 3 * k)
    assert minimum > 40
    with pytest.raises(InsufficientSales, match=rf"at least {minimum} sales.*got 40") as info:
        fit_hedonic(features, sales.sale_price[few], sales.sale_date[few], VALUATION_DATE)
    assert info.value.n == 40
    assert info.value.minimum == minimum
    assert isinstance(info.value, ValueError)

    more = np.arange(120)
    with pytest.raises(InsufficientSales, match=r"at least 200 sales.*got 120"):
        fit_hedonic(
            sales.features.take(more),
            sales.sale_price[more],
            sales.sale_date[more],
            VALUATION_DATE,
            min_sales=200,
        )


def test_unseen_levels_fall_back_to_reference_with_flags(model: HedonicModel) -> None:
    base = synthetic(3, seed=5).features
    unseen = Features(
        base.living_area_sqft,
        base.lot_size_sqft,
        base.year_built,
        base.bedrooms,
        base.bathrooms,
        np.array(["SFR", "MOBILE", "SFR"]),
        np.array(["N99", "N03", "N03"]),
    )
    as_reference = Features(
        base.living_area_sqft,
        base.lot_size_sqft,
        base.year_built,
        base.bedrooms,
        base.bathrooms,
        np.array(["SFR", "SFR", "SFR"]),
        np.array(["N00", "N03", "N03"]),
    )
    pred = model.predict(unseen)
    ref = model.predict(as_reference)
    np.testing.assert_array_equal(pred.unseen_neighborhood, [True, False, False])
    np.testing.assert_array_equal(pred.unseen_class, [False, True, False])
    np.testing.assert_allclose(pred.log_mean, ref.log_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pred.estimate, ref.estimate, rtol=1e-12)
    assert np.all(np.isfinite(pred.upper))


def test_missing_values_imputed_with_training_medians(sales: Synthetic) -> None:
    f = sales.features
    area = f.living_area_sqft.copy()
    year = f.year_built.copy()
    area[:25] = np.nan
    year[25:40] = 0.0  # the usual CAMA code for "unknown"
    holes = Features(
        area,
        f.lot_size_sqft,
        year,
        f.bedrooms,
        f.bathrooms,
        f.property_class,
        f.neighborhood,
    )
    model = fit_hedonic(holes, sales.sale_price, sales.sale_date, VALUATION_DATE)
    assert model.imputation["living_area_sqft"] == np.median(area[25:])
    assert model.imputation["year_built"] == np.median(year[np.r_[0:25, 40:3000]])
    assert model.imputed_counts["living_area_sqft"] == 25
    assert model.imputed_counts["year_built"] == 15
    assert model.imputed_counts["bedrooms"] == 0
    pred = model.predict(holes.take(np.arange(50)))
    np.testing.assert_array_equal(pred.imputed, np.arange(50) < 40)
    filled = holes.take([0])
    filled = Features(
        np.array([model.imputation["living_area_sqft"]]),
        filled.lot_size_sqft,
        filled.year_built,
        filled.bedrooms,
        filled.bathrooms,
        filled.property_class,
        filled.neighborhood,
    )
    assert model.predict(filled).estimate[0] == pytest.approx(pred.estimate[0], rel=1e-12)


def test_predict_is_vectorised_over_10000_parcels(model: HedonicModel) -> None:
    parcels = synthetic(10_000, seed=123).features
    pred = model.predict(parcels)
    for array in (pred.estimate, pred.lower, pred.upper, pred.log_se):
        assert array.shape == (10_000,)
        assert np.all(np.isfinite(array))
    assert np.all(pred.log_se > model.sigma)
    # A batch gives exactly what slices and single parcels give.
    for part in (slice(0, 1), slice(1, 2500), slice(9_999, 10_000)):
        sub = model.predict(parcels.take(np.arange(10_000)[part]))
        np.testing.assert_allclose(sub.estimate, pred.estimate[part], rtol=1e-12)
        np.testing.assert_allclose(sub.upper, pred.upper[part], rtol=1e-12)


def test_rank_deficient_design_names_aliased_columns(sales: Synthetic) -> None:
    f = sales.features
    cls = f.property_class.astype(object)  # object dtype: "RURAL" must not be truncated
    nbhd = f.neighborhood.astype(object)
    cls[:60] = "FARM"
    nbhd[:60] = "RURAL"  # FARM occurs only in RURAL and RURAL holds only FARM
    aliased = Features(
        f.living_area_sqft, f.lot_size_sqft, f.year_built, f.bedrooms, f.bathrooms, cls, nbhd
    )
    with pytest.raises(SingularDesign, match=r"class\[FARM\].*neighborhood\[RURAL\]"):
        fit_hedonic(aliased, sales.sale_price, sales.sale_date, VALUATION_DATE)


def test_features_from_dict_checks_columns() -> None:
    data = {
        "living_area_sqft": [1500.0, float("nan")],
        "lot_size_sqft": [6000, 7000],
        "year_built": [1990, 2001],
        "bedrooms": [3, 4],
        "bathrooms": [2, 2.5],
        "property_class": ["SFR", "CONDO"],
        "neighborhood": ["N01", "N02"],
        "lon": [-122.9, -122.8],
        "lat": [47.0, 47.1],
        "sale_price": [300_000, 400_000],
    }
    f = Features.from_dict(data)
    assert len(f) == 2
    assert f.living_area_sqft.dtype == np.float64
    assert np.isnan(f.living_area_sqft[1])
    assert f.property_class.tolist() == ["SFR", "CONDO"]
    with pytest.raises(ValueError, match="missing feature columns: bedrooms"):
        Features.from_dict({k: v for k, v in data.items() if k != "bedrooms"})
    with pytest.raises(ValueError, match="differ in length"):
        Features.from_dict({**data, "bathrooms": [2, 2, 3]})


# --------------------------------------------------------------------------------------------
# Comparables
# --------------------------------------------------------------------------------------------


def haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def brute_force_distances(
    subject: Features,
    sales: Features,
    sale_date: np.ndarray,
    max_age_months: float,
    geo_scale_km: float = 1.0,
    class_penalty: float = 2.0,
    neighborhood_penalty: float = 1.0,
) -> list[float]:
    """The documented distance, one sale at a time with the math module; inf if ineligible."""

    def attrs(f: Features, i: int) -> list[float]:
        return [
            math.log(f.living_area_sqft[i]),
            math.log(f.lot_size_sqft[i]),
            float(f.year_built[i]),
            float(f.bedrooms[i]),
            float(f.bathrooms[i]),
        ]

    table = [attrs(sales, i) for i in range(len(sales))]
    scales = [statistics.pstdev(col) or 1.0 for col in zip(*table, strict=True)]
    s = attrs(subject, 0)
    oldest = VALUATION_DATE - np.timedelta64(round(max_age_months * 365.2425 / 12), "D")
    out = []
    for i, row in enumerate(table):
        if not oldest <= sale_date[i] <= VALUATION_DATE:
            out.append(math.inf)
            continue
        geo = haversine_km(subject.lon[0], subject.lat[0], sales.lon[i], sales.lat[i])
        total = (geo / geo_scale_km) ** 2
        total += sum(((a - b) / sc) ** 2 for a, b, sc in zip(s, row, scales, strict=True))
        total += class_penalty**2 * (sales.property_class[i] != subject.property_class[0])
        total += neighborhood_penalty**2 * (sales.neighborhood[i] != subject.neighborhood[0])
        out.append(math.sqrt(total))
    return out


@pytest.mark.parametrize(("subject_index", "k", "max_age"), [(0, 8, 24.0), (17, 3, 12.0)])
def test_comparables_are_the_k_nearest_by_the_documented_distance(
    sales: Synthetic, unsold: Synthetic, subject_index: int, k: int, max_age: float
) -> None:
    subject = unsold.features.take([subject_index])
    result = select_comparables(
        subject,
        sales.features,
        sales.sale_price,
        sales.sale_date,
        k=k,
        valuation_date=VALUATION_DATE,
        max_age_months=max_age,
    )
    distances = brute_force_distances(subject, sales.features, sales.sale_date, max_age)
    expected = sorted(range(len(distances)), key=lambda i: (distances[i], i))[:k]
    assert result.indices.tolist() == expected
    np.testing.assert_allclose(result.distances, [distances[i] for i in expected], rtol=1e-9)
    assert np.all(np.diff(result.distances) >= 0)
    # Without a model the prices are not adjusted.
    assert not result.model_adjusted
    np.testing.assert_array_equal(result.adjusted_prices, sales.sale_price[result.indices])


def test_comparable_adjustments_and_reconciliation(
    sales: Synthetic, unsold: Synthetic, model: HedonicModel
) -> None:
    subject = unsold.features.take([3])
    k = 6
    # No class/neighbourhood penalty and a wide geographic scale, so that comparables from
    # other classes and neighbourhoods are chosen and their fixed effects get adjusted.
    result = select_comparables(
        subject,
        sales.features,
        sales.sale_price,
        sales.sale_date,
        k=k,
        valuation_date=VALUATION_DATE,
        model=model,
        geo_scale_km=50.0,
        class_penalty=0.0,
        neighborhood_penalty=0.0,
    )
    assert result.model_adjusted
    comps = sales.features.take(result.indices)
    assert np.any(comps.neighborhood != subject.neighborhood[0])
    assert np.any(comps.property_class != subject.property_class[0])
    # Adjustment = the model's log-price difference, subject at valuation vs comp at sale.
    subject_eta = model.predict(subject).log_mean[0]
    comp_eta = model.predict(comps, as_of=sales.sale_date[result.indices]).log_mean
    np.testing.assert_allclose(
        result.adjusted_prices, result.sale_prices * np.exp(subject_eta - comp_eta), rtol=1e-10
    )
    # Inverse-distance weights, weighted mean, t interval on the weighted spread.
    w = 1 / (result.distances + DISTANCE_FLOOR)
    w /= w.sum()
    np.testing.assert_allclose(result.weights, w, rtol=1e-12)
    estimate = float(w @ result.adjusted_prices)
    assert result.estimate == pytest.approx(estimate, rel=1e-12)
    var = float(w @ (result.adjusted_prices - estimate) ** 2) / (1 - w @ w)
    half = T_975_DF5 * math.sqrt(var * (w @ w))
    assert result.lower == pytest.approx(estimate - half, rel=1e-9)
    assert result.upper == pytest.approx(estimate + half, rel=1e-9)
    assert result.adjusted_prices.min() <= result.estimate <= result.adjusted_prices.max()


def test_unseen_subject_neighbourhood_is_not_adjusted_for(
    sales: Synthetic, unsold: Synthetic, model: HedonicModel
) -> None:
    """A subject in a neighbourhood the model never saw gets no neighbourhood adjustment.

    Equivalently, each comparable is adjusted as if the subject sat in the comparable's own
    neighbourhood, while class, characteristics and time are still adjusted.
    """
    base = unsold.features.take([5])
    subject = Features(
        base.living_area_sqft,
        base.lot_size_sqft,
        base.year_built,
        base.bedrooms,
        base.bathrooms,
        base.property_class,
        np.array(["N99"]),
        lon=base.lon,
        lat=base.lat,
    )
    result = select_comparables(
        subject,
        sales.features,
        sales.sale_price,
        sales.sale_date,
        k=5,
        valuation_date=VALUATION_DATE,
        model=model,
        neighborhood_penalty=0.0,
    )
    comps = sales.features.take(result.indices)
    assert len(set(comps.neighborhood)) > 1 or comps.neighborhood[0] != model.neighborhood_reference
    as_comp_nbhd = Features(
        np.repeat(base.living_area_sqft, 5),
        np.repeat(base.lot_size_sqft, 5),
        np.repeat(base.year_built, 5),
        np.repeat(base.bedrooms, 5),
        np.repeat(base.bathrooms, 5),
        np.repeat(base.property_class, 5),
        comps.neighborhood,
    )
    subject_eta = model.predict(as_comp_nbhd).log_mean
    comp_eta = model.predict(comps, as_of=sales.sale_date[result.indices]).log_mean
    np.testing.assert_allclose(
        result.adjusted_prices, result.sale_prices * np.exp(subject_eta - comp_eta), rtol=1e-10
    )


def test_model_adjusted_comparables_value_subjects_accurately(
    sales: Synthetic, unsold: Synthetic, model: HedonicModel
) -> None:
    """Over 40 subjects: adjusted comps MdAPE < 5 %, and better than unadjusted comps."""
    adjusted_errors, raw_errors = [], []
    for i in range(40):
        subject = unsold.features.take([i])
        truth = math.exp(unsold.mu_at_valuation[i] + SIGMA**2 / 2)
        for errors, used in ((adjusted_errors, model), (raw_errors, None)):
            result = select_comparables(
                subject,
                sales.features,
                sales.sale_price,
                sales.sale_date,
                k=10,
                valuation_date=VALUATION_DATE,
                model=used,
            )
            errors.append(abs(result.estimate / truth - 1))
    assert statistics.median(adjusted_errors) < 0.05
    assert statistics.median(adjusted_errors) < statistics.median(raw_errors)


def test_comparables_respect_time_window_and_report_shortfall(sales: Synthetic) -> None:
    subject = sales.features.take([0])
    result = select_comparables(
        subject,
        sales.features,
        sales.sale_price,
        sales.sale_date,
        k=5,
        valuation_date=VALUATION_DATE,
        max_age_months=3,
    )
    oldest = VALUATION_DATE - np.timedelta64(92, "D")
    assert np.all(sales.sale_date[result.indices] >= oldest)
    recent = np.flatnonzero(sales.sale_date >= VALUATION_DATE - np.timedelta64(10, "D"))
    n_recent = len(recent)
    assert 0 < n_recent < 100
    with pytest.raises(InsufficientSales, match=rf"only {n_recent} of 3000 sales.*need k=100"):
        select_comparables(
            subject,
            sales.features,
            sales.sale_price,
            sales.sale_date,
            k=100,
            valuation_date=VALUATION_DATE,
            max_age_months=10 / (365.2425 / 12),
        )


# --------------------------------------------------------------------------------------------
# Holdout evaluation and helpers
# --------------------------------------------------------------------------------------------


def test_holdout_split_is_seeded_and_partitions() -> None:
    train, test = holdout_split(1000, fraction=0.2, seed=3)
    again_train, again_test = holdout_split(1000, fraction=0.2, seed=3)
    other_train, _ = holdout_split(1000, fraction=0.2, seed=4)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    assert not np.array_equal(train, other_train)
    assert len(test) == 200
    assert len(train) == 800
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1000))
    with pytest.raises(ValueError, match="fraction"):
        holdout_split(10, fraction=1.0)


def test_evaluate_known_values() -> None:
    result = evaluate([110.0, 180.0], [100.0, 200.0])
    assert result["n"] == 2
    assert result["mape"] == pytest.approx(0.1)
    assert result["mdape"] == pytest.approx(0.1)
    # SS_res = 10^2 + 20^2 = 500, SS_tot = 2 * 50^2 = 5000.
    assert result["r2"] == pytest.approx(0.9)
    np.testing.assert_allclose(result["ratios"], [1.1, 0.9])
    with pytest.raises(ValueError, match="positive"):
        evaluate([1.0], [0.0])


def t_cdf_closed_form(t: float, df: int) -> float:
    """Student t CDF for integer df by the finite series of Abramowitz & Stegun 26.7.3-4."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:
        series, term = 0.0, math.cos(theta)
        for j in range(1, (df - 1) // 2 + 1):
            series += term
            term *= (2 * j) / (2 * j + 1) * c2
        a = 2 / math.pi * (theta + (math.sin(theta) * series if df > 1 else 0.0))
    else:
        series, term = 0.0, 1.0
        for j in range(df // 2):
            series += term
            term *= (2 * j + 1) / (2 * j + 2) * c2
        a = math.sin(theta) * series
    return 0.5 + a / 2


T_975_DF5 = 2.5705818356357626  # t(0.975, 5); t_cdf_closed_form gives 0.975 to 1e-14


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 30, 199, 200, 250, 1000])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9995])
def test_t_quantile_inverts_the_exact_cdf(p: float, df: int) -> None:
    """Both branches (bisection below df=200, Cornish-Fisher from 200) invert the CDF."""
    q = _t_quantile(p, df)
    assert t_cdf_closed_form(q, df) == pytest.approx(p, abs=1e-10)
    assert _t_quantile(1 - p, df) == pytest.approx(-q, abs=1e-12)


def test_t_quantile_closed_forms_and_tables() -> None:
    assert _t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-10)
    assert _t_quantile(0.975, 2) == pytest.approx(0.95 * math.sqrt(2 / 0.0975), rel=1e-10)
    assert _t_quantile(0.975, 5) == pytest.approx(T_975_DF5, rel=1e-10)
    assert t_cdf_closed_form(T_975_DF5, 5) == pytest.approx(0.975, abs=1e-13)
    # Printed tables (3 decimals).
    for df, table in ((4, 2.776), (10, 2.228), (30, 2.042), (120, 1.980)):
        assert round(_t_quantile(0.975, df), 3) == table
