"""Comparable market areas: neighborhoods grouped by price level and market trend.

Why: an assessor values a neighborhood with too few sales by borrowing sales from
neighborhoods whose market behaves alike, and the IAAO *Standard on Mass Appraisal of Real
Property* (2017, section 4.3) asks for market areas ("economic areas") delineated from sales
evidence rather than from lines on a map alone. Two facts of a neighborhood's market are
compared here:

* its price level: the median sale price per square foot of living area, each price first
  time-adjusted to one valuation date with the county's own index
  (:func:`jobs.stats.market.time_adjustment_factors`), so neighborhoods whose sales fall in
  different years compare on the same date;
* its trend: the slope of ln(price per square foot) on time
  (:func:`jobs.stats.market.log_linear_trend`), fitted to the neighborhood's unadjusted sales.

Method: the features are ln(level) and the log-scale annual slope, each standardised to mean 0
and standard deviation 1 across the neighborhoods (so neither unit dominates; a feature that
does not vary contributes nothing), the trend multiplied by ``trend_weight``. Neighborhoods
are clustered by Ward's minimum-variance hierarchical method (Ward 1963; ``scipy.cluster.
hierarchy.linkage(method="ward")``), which merges at each step the two groups whose union least
increases the within-group sum of squares: compact areas of alike markets, deterministic (no
random start). The tree is cut into ``area_count`` areas; without one, into the count from 2
to ``max_areas`` with the largest mean silhouette width (Rousseeuw 1987), the smaller count on
a tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from jobs.stats.market import TrendFit, log_linear_trend

ChosenBy = Literal["area_count", "silhouette", "neighborhood_count"]


@dataclass(frozen=True)
class NeighborhoodMarket:
    """One neighborhood's sales evidence."""

    name: str
    sales: int
    """Usable sales with a living area."""
    median_price_per_sqft: float
    """Median time-adjusted price per square foot."""
    trend: TrendFit | None
    """ln(price per sqft) on time; None when its sales leave the slope undefined."""


@dataclass(frozen=True)
class Clustering:
    labels: npt.NDArray[np.intp]
    """Area of each neighborhood, 0..area_count-1, in order of rising median level."""
    area_count: int
    chosen_by: ChosenBy
    silhouette: float | None
    """Mean silhouette width of the cut; None for fewer than 2 areas or one per neighborhood."""
    features: npt.NDArray[np.float64]
    """The standardised (weighted) features clustered, one row per neighborhood."""


def neighborhood_markets(
    neighborhood: npt.NDArray[np.object_],
    sale_date: npt.NDArray[np.datetime64],
    price_per_sqft: npt.NDArray[np.float64],
    adjusted_price_per_sqft: npt.NDArray[np.float64],
) -> list[NeighborhoodMarket]:
    """Per neighborhood (sorted by name): sales, median adjusted level and the trend.

    Sales are expected to be usable already (finite positive prices and areas); the loop runs
    over neighborhoods, each one's sales taken by one sort.
    """
    names, inverse = np.unique(neighborhood.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(names.size + 1))
    markets = []
    for i, name in enumerate(names.tolist()):
        rows = order[bounds[i] : bounds[i + 1]]
        markets.append(
            NeighborhoodMarket(
                name=name,
                sales=int(rows.size),
                median_price_per_sqft=float(np.median(adjusted_price_per_sqft[rows])),
                trend=log_linear_trend(sale_date[rows], price_per_sqft[rows]),
            )
        )
    return markets


def standardise(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns to mean 0, standard deviation 1; a constant column to 0."""
    spread = values.std(axis=0)
    centred = values - values.mean(axis=0)
    result: npt.NDArray[np.float64] = np.divide(
        centred, spread, out=np.zeros_like(centred), where=spread > 0
    )
    return result


def silhouette(features: npt.NDArray[np.float64], labels: npt.NDArray[np.intp]) -> float:
    """Mean silhouette width (Rousseeuw 1987) of a partition with 2 or more clusters.

    s(i) = (b - a) / max(a, b), a the mean distance from i to the rest of its cluster, b the
    smallest mean distance to another cluster; a member of a cluster of one has s(i) = 0.
    """
    distance = squareform(pdist(features))
    k = int(labels.max()) + 1
    members = np.eye(k)[labels]
    sizes = members.sum(axis=0)
    totals = distance @ members
    own = sizes[labels]
    a = np.divide(
        totals[np.arange(labels.size), labels],
        own - 1,
        out=np.zeros(labels.size),
        where=own > 1,
    )
    means = totals / sizes
    means[np.arange(labels.size), labels] = np.inf
    b = means.min(axis=1)
    widest = np.maximum(a, b)
    s = np.divide(b - a, widest, out=np.zeros(labels.size), where=(own > 1) & (widest > 0))
    return float(s.mean())


def _relabel(raw: npt.NDArray[np.int32], level: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """fcluster's 1-based labels to 0.. in order of each area's median neighborhood level."""
    areas = np.unique(raw)
    medians = np.array([np.median(level[raw == a]) for a in areas])
    rank = np.empty(areas.size, dtype=np.intp)
    rank[np.argsort(medians, kind="stable")] = np.arange(areas.size)
    result: npt.NDArray[np.intp] = rank[np.searchsorted(areas, raw)]
    return result


def cluster_markets(
    markets: Sequence[NeighborhoodMarket],
    *,
    area_count: int | None,
    max_areas: int,
    trend_weight: float,
    fallback_slope: float,
) -> Clustering:
    """Ward clustering of the neighborhoods (module docstring); `fallback_slope` stands in for
    a neighborhood whose own trend is undefined. Asking for as many areas as neighborhoods or
    more, or for a chosen count with fewer than 3 neighborhoods, gives one per neighborhood."""
    n = len(markets)
    if n == 0:
        raise ValueError("no neighborhoods to cluster")
    level = np.log([m.median_price_per_sqft for m in markets])
    slope = np.array(
        [m.trend.slope_per_year if m.trend is not None else fallback_slope for m in markets]
    )
    features = standardise(np.column_stack([level, slope])) * np.array([1.0, trend_weight])
    chosen_by: ChosenBy
    if area_count is not None and area_count < n:
        candidates, chosen_by = [area_count], "area_count"
    elif area_count is None and n >= 3:
        candidates, chosen_by = list(range(2, min(max_areas, n - 1) + 1)), "silhouette"
    else:
        labels = np.argsort(np.argsort(level, kind="stable")).astype(np.intp)
        chosen_by = "area_count" if area_count == n else "neighborhood_count"
        return Clustering(labels, n, chosen_by, None, features)
    tree = linkage(features, method="ward")
    cuts = [_relabel(fcluster(tree, t=k, criterion="maxclust"), level) for k in candidates]
    widths = [silhouette(features, c) if c.max() >= 1 else math.nan for c in cuts]
    # np.argmax takes the first of equal widths: the smaller count on a tie.
    best = int(np.argmax(widths)) if chosen_by == "silhouette" else 0
    labels = cuts[best]
    return Clustering(
        labels=labels,
        area_count=int(labels.max()) + 1,
        chosen_by=chosen_by,
        silhouette=None if math.isnan(widths[best]) else widths[best],
        features=features,
    )
