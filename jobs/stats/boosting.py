"""Gradient-boosted trees for mass appraisal (LightGBM), as the Cook County Assessor's open
residential model values homes.

Why trees beside the hedonic regression: the log-linear model prices each characteristic the
same everywhere and in every combination. Markets do not: a garage matters more on a large
house, quality grades step rather than slope, a view lifts one part of a neighbourhood. Boosted
trees learn such shapes from the sales without the analyst writing them down, at the price of
coefficients one can read. The CCAO's model (github.com/ccao-data/model-res-avm) uses LightGBM
for that reason; so does this one, with a deliberately plain configuration:

* target ``ln(sale price)``; the estimate is ``exp(prediction) * smearing`` with Duan's
  smearing factor (the mean of exp(residuals) on the training sales), as the hedonic model;
* features chosen by the caller: numeric characteristics as they are (trees need no logs and
  treat NaN as its own branch, so nothing is imputed), ``location`` as longitude and latitude,
  property class and neighbourhood as categorical features, and time as a feature: the sale
  date in decimal years. A parcel is valued at the valuation date by setting that feature to
  it; beyond the last sale the trees hold the last learned level (no extrapolated trend);
* fixed hyperparameters (below), one thread and ``deterministic=True``, so the same sales give
  the same model on every machine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np
import numpy.typing as npt

from jobs.stats.valuation import DAYS_PER_YEAR, NUMERIC_FIELDS, Features

PARAMETERS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 0,
    "verbosity": -1,
}
"""LightGBM settings: moderate trees and a small learning rate, the usual robust start."""

ROUNDS = 600
"""Boosting rounds; with learning rate 0.05 enough for a few thousand sales to converge."""

LOCATION = "location"
"""The feature name that stands for the parcel's longitude and latitude."""


def _decimal_year(dates: npt.NDArray[np.datetime64]) -> npt.NDArray[np.float64]:
    days = dates.astype("datetime64[D]").astype(np.int64).astype(np.float64)
    return 1970.0 + days / DAYS_PER_YEAR


@dataclass(frozen=True, eq=False)
class BoostedModel:
    """A fitted LightGBM model and what it needs to value parcels like its training sales."""

    booster: lightgbm.Booster
    features: tuple[str, ...]
    """The caller's feature names, in matrix order (``location`` stands for lon and lat)."""
    columns: tuple[str, ...]
    """The matrix columns: the features, then property_class, neighborhood, sale_year."""
    class_levels: npt.NDArray[np.str_]
    neighborhood_levels: npt.NDArray[np.str_]
    smearing: float
    valuation_date: np.datetime64
    n: int

    def _matrix(self, data: Features, dates: npt.NDArray[np.datetime64]) -> npt.NDArray[Any]:
        return _matrix(data, self.features, self.class_levels, self.neighborhood_levels, dates)

    def predict(
        self, data: Features, as_of: npt.ArrayLike | dt.date | np.datetime64 | None = None
    ) -> npt.NDArray[np.float64]:
        """Values at the valuation date, or at ``as_of`` (one date or one per parcel)."""
        when = self.valuation_date if as_of is None else as_of
        dates = np.broadcast_to(np.asarray(when, dtype="datetime64[D]"), (len(data),))
        log_value = np.asarray(self.booster.predict(self._matrix(data, dates)), dtype=np.float64)
        return np.exp(log_value) * self.smearing

    def summary(self) -> dict[str, Any]:
        gain = self.booster.feature_importance(importance_type="gain")
        total = float(gain.sum()) or 1.0
        return {
            "n": self.n,
            "rounds": ROUNDS,
            "parameters": {k: v for k, v in PARAMETERS.items() if k != "verbosity"},
            "features": list(self.features),
            "smearing_factor": self.smearing,
            "valuation_date": str(self.valuation_date),
            "importance": {
                name: float(g) / total for name, g in zip(self.columns, gain, strict=True)
            },
        }


def _codes(values: npt.NDArray[Any], levels: npt.NDArray[np.str_]) -> npt.NDArray[np.float64]:
    """Category codes by position in the training levels; NaN for a level not seen there."""
    pos = np.searchsorted(levels, values)
    pos = np.minimum(pos, len(levels) - 1)
    return np.where(levels[pos] == values, pos, np.nan).astype(np.float64)


def _matrix(
    data: Features,
    features: Sequence[str],
    class_levels: npt.NDArray[np.str_],
    neighborhood_levels: npt.NDArray[np.str_],
    dates: npt.NDArray[np.datetime64],
) -> npt.NDArray[np.float64]:
    n = len(data)
    columns: list[npt.NDArray[np.float64]] = []
    for name in features:
        if name == LOCATION:
            for values in (data.lon, data.lat):
                columns.append(np.full(n, np.nan) if values is None else values)
        elif name in NUMERIC_FIELDS:
            columns.append(getattr(data, name))
        else:
            columns.append(data.extra.get(name, np.full(n, np.nan)))
    columns.append(_codes(data.property_class, class_levels))
    columns.append(_codes(data.neighborhood, neighborhood_levels))
    columns.append(_decimal_year(dates))
    return np.column_stack(columns)


def fit_boosted(
    data: Features,
    sale_price: npt.NDArray[np.float64],
    sale_date: npt.NDArray[np.datetime64],
    valuation_date: dt.date | np.datetime64,
    features: Sequence[str],
) -> BoostedModel:
    """Fit on the given sales (see the module docstring for the configuration)."""
    if len(data) < 2 * int(PARAMETERS["min_data_in_leaf"]):
        raise ValueError(
            f"gradient boosting needs at least {2 * PARAMETERS['min_data_in_leaf']} sales, "
            f"got {len(data)}"
        )
    class_levels = np.unique(data.property_class)
    neighborhood_levels = np.unique(data.neighborhood)
    dates = np.asarray(sale_date, dtype="datetime64[D]")
    matrix = _matrix(data, features, class_levels, neighborhood_levels, dates)
    names = [
        *(part for f in features for part in (("lon", "lat") if f == LOCATION else (f,))),
        "property_class",
        "neighborhood",
        "sale_year",
    ]
    target = np.log(np.asarray(sale_price, dtype=np.float64))
    dataset = lightgbm.Dataset(
        matrix,
        label=target,
        feature_name=names,
        categorical_feature=["property_class", "neighborhood"],
        params={"verbosity": -1},
    )
    booster = lightgbm.train(PARAMETERS, dataset, num_boost_round=ROUNDS)
    residual = target - np.asarray(booster.predict(matrix), dtype=np.float64)
    return BoostedModel(
        booster=booster,
        features=tuple(features),
        columns=tuple(names),
        class_levels=class_levels,
        neighborhood_levels=neighborhood_levels,
        smearing=float(np.mean(np.exp(residual))),
        valuation_date=np.datetime64(str(valuation_date)[:10], "D"),
        n=len(data),
    )


def time_ordered_split(
    sale_date: npt.NDArray[np.datetime64], fraction: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(training, holdout) indices: the latest ``fraction`` of the sales are held out.

    Why by time rather than at random: a model is used to value the market after its sales,
    so it must be judged on sales it could not have seen, later ones; a random holdout lets a
    flexible model interpolate between neighbours in time and flatters it.
    """
    order = np.argsort(sale_date, kind="stable")
    cut = len(order) - max(1, round(fraction * len(order)))
    return np.sort(order[:cut]), np.sort(order[cut:])
