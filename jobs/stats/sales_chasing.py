"""Sales-chasing detection: assessments moved toward the sale prices of the sold parcels.

Why this matters: a ratio study judges all parcels by the sold ones. An office that re-values
a parcel when it sells (or copies the price into the roll) makes the sold parcels look
uniform and level while the unsold ones are not, so every statistic of the study flatters the
roll. The IAAO *Standard on Ratio Studies* (2013), Appendix E ("Sales chasing detection"),
describes the tell-tale: ratios bunched around 1.00 more tightly than a smooth distribution
allows. No test proves chasing; these are the two screens county analysts use, as the Cook
County Assessor's ``assesspy.is_sales_chased`` (``assesspy/sales_chasing.py``, 2.0) runs them:

* **cdf**: the largest step of the empirical CDF of the ratios. A smooth sample has small
  steps; many ratios at one value (1.000 for copied prices) make one large step. Flagged when
  the step exceeds ``gap`` and sits strictly inside ``bounds``.
* **distribution** (Appendix E, section 4): the share of ratios inside ``bounds`` against the
  share a normal distribution with the sample's mean and (population) standard deviation puts
  there. Flagged when they differ by more than ``gap``.

``assesspy`` flags a sample when both screens do (its default ``method="both"``), and so does
:attr:`SalesChasing.flagged`; each screen's own verdict and statistic is kept too.

One deliberate difference: ``assesspy`` estimates the normal share from 10,000 unseeded
random draws, so its verdict can change between runs near the threshold; here the share is the
normal distribution's exact probability, Phi((b1 - mean) / sd) - Phi((b0 - mean) / sd), which
the draws estimate (their standard error is at most 0.005).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

BOUNDS: tuple[float, float] = (0.98, 1.02)
"""The band around 1.00 where chased ratios bunch (``assesspy`` default)."""

GAP = 0.05
"""Threshold of both screens, a share of the sales (``assesspy`` default)."""

SMALL_SAMPLE = 30
"""Below this many ratios the screens are unreliable (``assesspy`` warns below 30)."""


@dataclass(frozen=True)
class SalesChasing:
    """Both screens' statistics and verdicts for one sample of ratios."""

    flagged: bool
    """Both screens flag the sample (``assesspy.is_sales_chased(method="both")``)."""
    cdf_flagged: bool
    cdf_largest_step: float
    """Largest step of the ratios' empirical CDF, a share of the sales."""
    cdf_step_at: float
    """The ratio at which that step occurs."""
    distribution_flagged: bool
    share_in_bounds: float
    """Share of the ratios inside ``bounds``."""
    normal_share_in_bounds: float
    """Share a normal distribution with the ratios' mean and standard deviation puts there."""
    bounds_lower: float
    bounds_upper: float
    gap: float
    count: int
    note: str | None = None


def largest_cdf_step(ratio_sorted: NDArray[np.float64]) -> tuple[float, float]:
    """(largest step, ratio where it occurs) of the empirical CDF of sorted ratios.

    Exactly ``assesspy._cdf_sales_chased``: the CDF is evaluated at every sorted ratio with the
    values statsmodels' ``ECDF`` uses (``linspace(1/n, 1, n)`` at the last index of each tied
    run), consecutive differences are taken, the first maximal one is chosen, and its ratio
    is the sorted ratio at that position. The step into the smallest ratio is not a
    difference, so it is not counted, as there.
    """
    n = ratio_sorted.size
    levels = np.linspace(1.0 / n, 1.0, n)
    cdf = levels[np.searchsorted(ratio_sorted, ratio_sorted, side="right") - 1]
    steps = np.diff(cdf)
    at = int(np.argmax(steps))
    return float(steps[at]), float(ratio_sorted[at + 1])


def detect_sales_chasing(
    ratio: NDArray[np.float64], bounds: tuple[float, float] = BOUNDS, gap: float = GAP
) -> SalesChasing | None:
    """Both screens on the ratios of one sample; None for fewer than three ratios (a CDF of
    one or two points has no step to judge, and ``assesspy`` refuses such samples)."""
    if not 0.0 < gap < 1.0:
        raise ValueError(f"gap must be between 0 and 1, got {gap}")
    if not bounds[0] < bounds[1]:
        raise ValueError(f"bounds must be increasing, got {bounds}")
    r = np.sort(np.asarray(ratio, dtype=np.float64))
    n = int(r.size)
    if n < 3:
        return None
    step, step_at = largest_cdf_step(r)
    cdf_flagged = step > gap and bounds[0] < step_at < bounds[1]
    share = float(np.count_nonzero((r >= bounds[0]) & (r <= bounds[1]))) / n
    sd = float(r.std())
    if sd > 0.0:
        normal = NormalDist(float(r.mean()), sd)
        expected = normal.cdf(bounds[1]) - normal.cdf(bounds[0])
    else:
        expected = 1.0 if bounds[0] <= r[0] <= bounds[1] else 0.0
    distribution_flagged = abs(share - expected) > gap
    note = (
        f"sales-chasing screens on {n} sales are unreliable (IAAO: at least {SMALL_SAMPLE})"
        if n < SMALL_SAMPLE
        else None
    )
    return SalesChasing(
        flagged=cdf_flagged and distribution_flagged,
        cdf_flagged=cdf_flagged,
        cdf_largest_step=step,
        cdf_step_at=step_at,
        distribution_flagged=distribution_flagged,
        share_in_bounds=share,
        normal_share_in_bounds=expected,
        bounds_lower=bounds[0],
        bounds_upper=bounds[1],
        gap=gap,
        count=n,
        note=note,
    )
