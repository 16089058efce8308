"""The sales ratio study as one self-contained HTML page that an assessor prints or files.

Why HTML: every office has a browser and a printer, and a page needs no PDF library. Why
self-contained (inline CSS, the chart as inline SVG, no URLs, no web fonts): the file is mailed
to boards, archived with the roll and opened years later on machines that block or lack remote
content; it must look the same everywhere and print the same as it shows.

Built with ``html.escape`` and string assembly rather than a template engine: the page has a
fixed shape, and one less dependency is one less thing to audit in a county's network. Parts
are written to the open file as they are produced, so a study with thousands of groups never
holds its whole table in memory.

The chart draws at most :data:`MAX_CHART_POINTS` sales (see :func:`chart_sample`); the
statistics in the tables are always computed on every sale, before this module is called.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jobs.stats.ratio import (
    LEVEL_RANGE,
    MKI_RANGE,
    PRB_RANGE,
    PRD_RANGE,
    Interval,
    RatioStatistics,
)
from jobs.stats.sales_chasing import SalesChasing

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]

MAX_CHART_POINTS = 5000
"""Most sales the chart draws.

Why 5,000: each point is an SVG element of about 40 bytes that a printer driver rasterises one
by one; beyond a few thousand the file grows to megabytes, browsers print slowly and the cloud
of dots stops showing more than a sample would. Larger studies plot a systematic sample.
"""

CONTENT_TYPE = "text/html; charset=utf-8"

# Chart geometry in SVG user units (the SVG scales to the page width).
_WIDTH, _HEIGHT = 960, 480
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 18, 100
_PLOT_W = _WIDTH - _LEFT - _RIGHT
_PLOT_H = _HEIGHT - _TOP - _BOTTOM

_DASH = "\u2014"
_EN = "\u2013"


@dataclass(frozen=True)
class RatioStudyReport:
    """What the page shows. The statistics are final; the arrays are one entry per sale."""

    county_id: str
    tax_year: int
    sale_date_from: dt.date
    sale_date_to: dt.date
    trim: str
    iqr_factor: float
    group_by: str | None
    property_class: str | None
    arms_length_only: bool
    generated_at: dt.datetime
    overall: RatioStatistics
    groups: Sequence[RatioStatistics]
    cod_range: tuple[float, float]
    """The COD range the verdicts used (depends on the property class, IAAO Table 9-1)."""
    sale_price: FloatArray
    ratio: FloatArray
    trimmed: BoolArray
    """True for a sale the study-wide outlier rule removed from the overall statistics."""
    trim_text: str = ""
    """The outlier method and its factor, in words (empty: derived from ``trim``)."""
    exclusions: Sequence[Mapping[str, Any]] = ()
    """Each selection step's excluded sales: ``step``, ``excluded`` (count), ``reason``."""
    zip_codes: Sequence[str] | None = None
    neighborhoods: Sequence[str] | None = None
    time_adjustment: Mapping[str, Any] | None = None
    """``method``, ``adjusted_to`` and ``annual_trend_percent`` when prices were adjusted."""


@dataclass(frozen=True)
class ChartSample:
    """Which sales the chart draws, and the counts its caption reports."""

    used: IndexArray
    trimmed: IndexArray
    used_total: int
    trimmed_total: int

    @property
    def sampled(self) -> bool:
        return self.used.size + self.trimmed.size < self.used_total + self.trimmed_total


def _systematic(index: IndexArray, sale_price: FloatArray, budget: int) -> IndexArray:
    """``budget`` of ``index`` evenly spaced in sale-price order (all of them if they fit).

    Why systematic in price order: it keeps the spread of the cloud along the price axis,
    which is what a reader judges vertical equity from, and it is reproducible without a seed.
    """
    if budget >= index.size:
        return index
    by_price = index[np.argsort(sale_price[index], kind="stable")]
    picked: IndexArray = by_price[np.arange(budget) * index.size // budget]
    return picked


def chart_sample(
    sale_price: FloatArray, trimmed: BoolArray, max_points: int = MAX_CHART_POINTS
) -> ChartSample:
    """All sales when at most ``max_points``; else a deterministic sample of that many.

    Trimmed outliers are the points a reviewer looks for, so they keep their proportional
    share of the budget or a tenth of it, whichever is more (all of them, as a rule), without
    crowding out the cloud of used sales, which fill the rest. Each kind is sampled
    systematically in sale-price order (:func:`_systematic`).
    """
    if max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}")
    out = np.flatnonzero(trimmed)
    kept = np.flatnonzero(~trimmed)
    if sale_price.size <= max_points:
        return ChartSample(kept, out, kept.size, out.size)
    share = out.size * max_points // sale_price.size
    out_budget = min(out.size, max(share, max_points // 10))
    return ChartSample(
        used=_systematic(kept, sale_price, max_points - out_budget),
        trimmed=_systematic(out, sale_price, out_budget),
        used_total=int(kept.size),
        trimmed_total=int(out.size),
    )


def write_ratio_study_html(
    path: Path, report: RatioStudyReport, *, max_points: int = MAX_CHART_POINTS
) -> None:
    """Write the page to ``path``, part by part."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for part in _page(report, max_points):
            out.write(part)


# ---------------------------------------------------------------------------------------------
# Formatting


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None, digits: int, *, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return _DASH
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _judged(
    value: float | None, bounds: tuple[float, float], digits: int, *, signed: bool = False
) -> str:
    """``value`` with at least ``digits`` decimals, and more when needed so that the printed
    number lies inside ``bounds`` exactly when the value does.

    Why: a COD of 15.038 printed as "15.0" beside "5.0 to 15.0: fail" reads as a
    contradiction; "15.04" does not. Likewise 4.96 is shown as "4.96", never as "5.0".
    """
    if value is None or not math.isfinite(value):
        return _DASH
    inside = bounds[0] <= value <= bounds[1]
    shown = digits
    while shown < 12 and (bounds[0] <= float(f"{value:.{shown}f}") <= bounds[1]) != inside:
        shown += 1
    return _num(value, shown, signed=signed)


def _count(value: int) -> str:
    return f"{value:,}"


def _ci(interval: Interval | None, digits: int, *, signed: bool = False) -> str:
    if interval is None:
        return ""
    lower = _num(interval.lower, digits, signed=signed)
    upper = _num(interval.upper, digits, signed=signed)
    return f"{lower} {_EN} {upper} ({interval.level:.0%})"


def _range(bounds: tuple[float, float], digits: int, *, signed: bool = False) -> str:
    return (
        f"{_num(bounds[0], digits, signed=signed)} {_EN} {_num(bounds[1], digits, signed=signed)}"
    )


def _verdict(
    passed: bool | None,
    *,
    compact: bool = False,
    words: tuple[str, str] = ("\u2713 pass", "\u2717 fail"),
) -> str:
    if passed is None:
        return f'<span class="na">{_DASH}{"" if compact else " not evaluated"}</span>'
    if passed:
        return f'<span class="pass">{words[0]}</span>'
    return f'<span class="fail">{words[1]}</span>'


def _meets(meets: bool | None, *, compact: bool = False) -> str:
    if meets is None:
        return f'<span class="na">{_DASH}{"" if compact else " not determined"}</span>'
    return (
        '<span class="pass">\u2713 yes</span>' if meets else '<span class="fail">\u2717 no</span>'
    )


def _trim_text(report: RatioStudyReport) -> str:
    if report.trim_text:
        return report.trim_text
    if report.trim == "iqr":
        return (
            f"IQR rule: ratios more than {report.iqr_factor:g} \u00d7 IQR beyond the quartiles "
            "removed"
        )
    return "none (all sales used)"


def _time_adjustment_text(adjustment: Mapping[str, Any] | None) -> str:
    if adjustment is None:
        return "none (ratios against the prices as sold)"
    trend = adjustment.get("annual_trend_percent")
    trend_text = f", market trend {trend:+.1f} % a year" if trend is not None else ""
    return (
        f"sale prices adjusted to {adjustment['adjusted_to']} with the county's "
        f"{adjustment['method'].replace('_', ' ')} index{trend_text}"
    )


def _exclusions_text(exclusions: Sequence[Mapping[str, Any]]) -> str:
    parts = [f"{_count(e['excluded'])} {e['reason']}" for e in exclusions if e["excluded"]]
    return "; ".join(parts) if parts else "none"


def _money(value: float) -> str:
    """Short axis label: $850k, $1.2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"${value / scale:.3g}{suffix}"
    return f"${value:.3g}"


# ---------------------------------------------------------------------------------------------
# Page


_CSS = """
@page { size: landscape; margin: 12mm; }
* { box-sizing: border-box; }
body { font: 10pt/1.35 "Helvetica Neue", Helvetica, Arial, sans-serif; color: #111;
       margin: 0 auto; max-width: 1120px; padding: 16px;
       -webkit-print-color-adjust: exact; print-color-adjust: exact; }
h1 { font-size: 16pt; margin: 0 0 4px; }
h2 { font-size: 12pt; margin: 18px 0 6px; border-bottom: 1px solid #999; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 1px 14px; margin: 6px 0; }
.meta dt { font-weight: bold; } .meta dd { margin: 0; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border: 1px solid #bbb; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ci { display: block; color: #444; font-size: 8pt; }
.groups { font-size: 8.5pt; }
.groups th { font-size: 8pt; }
.pass { color: #1b6e20; } .fail { color: #b00020; font-weight: bold; } .na { color: #666; }
.note { color: #333; font-size: 9pt; }
figure { margin: 8px 0; }
figcaption { font-size: 9pt; color: #333; margin-top: 4px; }
svg { width: 100%; height: auto; font: 11px "Helvetica Neue", Helvetica, Arial, sans-serif; }
.axis path { stroke: #333; } .grid { stroke: #ddd; }
.band { fill: #e3efe3; } .one { stroke: #333; stroke-width: 1.2; }
.median { stroke: #1f4fa0; stroke-width: 1.4; stroke-dasharray: 6 4; }
.used circle, .used-off path { fill: #3a6fb0; fill-opacity: 0.65; }
.trimmed path { stroke: #c0392b; stroke-width: 1.6; fill: none; }
.trimmed-off path { fill: none; stroke: #c0392b; stroke-width: 1.4; }
footer { margin-top: 14px; font-size: 8.5pt; color: #444; }
@media print {
  body { padding: 0; max-width: none; }
  thead { display: table-header-group; }
  tr, figure, .meta { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""


def _page(report: RatioStudyReport, max_points: int) -> Iterator[str]:
    county = _text(report.county_id)
    window = f"{report.sale_date_from.isoformat()} to {report.sale_date_to.isoformat()}"
    generated = report.generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    trim = f"IQR trim {report.iqr_factor:g}" if report.trim == "iqr" else "no trim"
    # Browsers print the title in the page header, so it alone identifies a loose sheet.
    title = (
        f"Sales ratio study {_DASH} {county}, tax year {report.tax_year}, sales {window}, "
        f"{trim}, generated {generated}"
    )
    yield (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header>\n<h1>Sales ratio study {_DASH} {county}, tax year {report.tax_year}</h1>\n"
        '<dl class="meta">\n'
    )
    meta = [
        ("County", report.county_id),
        ("Tax year", str(report.tax_year)),
        ("Sale window", window),
        ("Sales", "arm's-length only" if report.arms_length_only else "all recorded sales"),
        ("Property class", report.property_class or "all classes"),
        ("ZIP codes", ", ".join(report.zip_codes) if report.zip_codes else "all"),
        ("Neighborhoods", ", ".join(report.neighborhoods) if report.neighborhoods else "all"),
        ("Time adjustment", _time_adjustment_text(report.time_adjustment)),
        ("Outlier trimming", _trim_text(report)),
        ("Sales excluded", _exclusions_text(report.exclusions)),
        ("Grouped by", (report.group_by or "").replace("_", " ") or "not grouped"),
        ("Generated", generated),
    ]
    yield "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>\n" for k, v in meta)
    yield "</dl>\n</header>\n"
    yield from _overall_section(report)
    if report.group_by is not None:
        yield from _groups_section(report)
    yield from _chart_section(report, max_points)
    yield (
        "<footer>\nRatio = assessed value \u00f7 sale price. COD: coefficient of dispersion "
        "around the median ratio (%). PRD: mean ratio \u00f7 sale-price-weighted mean ratio. "
        "PRB: coefficient of price-related bias (change in ratios when value doubles). "
        "KI / MKI: Kakwani and modified Kakwani indices of vertical equity. Sales chasing: the "
        "two screens of IAAO Appendix E as assesspy's is_sales_chased runs them. Acceptable ranges "
        "from the IAAO Standard on Ratio Studies (2013), Section 9 and Table 9-1; intervals are "
        "distribution-free (median), bootstrap (COD, PRD) and t intervals (PRB).\n"
        "</footer>\n</body>\n</html>\n"
    )


def _stat_row(label: str, value: str, ci: str = "") -> str:
    return f'<tr><th scope="row">{label}</th><td class="num">{value}</td><td>{ci}</td></tr>\n'


def _overall_section(report: RatioStudyReport) -> Iterator[str]:
    s = report.overall
    trimmed = s.count - s.count_used
    used = _count(s.count_used) + (f" ({_count(trimmed)} trimmed)" if trimmed else "")
    yield (
        "<section>\n<h2>Overall statistics</h2>\n<table>\n<thead><tr><th>Statistic</th>"
        "<th>Value</th><th>Confidence interval</th></tr></thead>\n<tbody>\n"
    )
    yield _stat_row("Sales in study (count)", _count(s.count))
    yield _stat_row("Sales used (count used)", used)
    cod_bounds = report.cod_range
    median = _judged(s.median_ratio, LEVEL_RANGE, 3)
    cod = _judged(s.cod, cod_bounds, 1)
    prd = _judged(s.prd, PRD_RANGE, 3)
    prb = _judged(s.prb, PRB_RANGE, 3, signed=True)
    yield _stat_row("Median ratio", median, _ci(s.median_ratio_ci, 3))
    yield _stat_row("Mean ratio", _num(s.mean_ratio, 3))
    yield _stat_row("Weighted mean ratio", _num(s.weighted_mean_ratio, 3))
    yield _stat_row("COD (%)", cod, _ci(s.cod_ci, 1))
    yield _stat_row("PRD", prd, _ci(s.prd_ci, 3))
    yield _stat_row("PRB", prb, _ci(s.prb_ci, 3, signed=True))
    yield _stat_row("KI", _num(s.ki, 4, signed=True))
    yield _stat_row("MKI", _judged(s.mki, MKI_RANGE, 3))
    yield "</tbody>\n</table>\n"

    standards = (
        ("Level", "median ratio", "level", median, _range(LEVEL_RANGE, 2)),
        ("Uniformity", "COD (%)", "cod", cod, _range(cod_bounds, 1)),
        ("Vertical equity", "PRD", "prd", prd, _range(PRD_RANGE, 2)),
        ("Vertical equity", "PRB", "prb", prb, _range(PRB_RANGE, 2, signed=True)),
        ("Vertical equity", "MKI", "mki", _judged(s.mki, MKI_RANGE, 3), _range(MKI_RANGE, 2)),
    )
    by_interval = {c.standard: c.with_confidence for c in s.compliance}
    yield (
        "<h2>IAAO standards</h2>\n<table>\n<thead><tr><th>Standard</th><th>Statistic</th>"
        "<th>Value</th><th>Acceptable range</th><th>Result</th>"
        "<th>By its confidence interval</th></tr></thead>\n<tbody>\n"
    )
    for name, stat, key, value, bounds in standards:
        yield (
            f'<tr><td>{name}</td><td>{stat}</td><td class="num">{value}</td>'
            f'<td class="num">{bounds}</td><td>{_verdict(s.standards.get(key))}</td>'
            f"<td>{_confidence_text(key, by_interval.get(key))}</td></tr>\n"
        )
    yield (
        f'<tr><th colspan="4" scope="row">Meets IAAO standards (level, COD, PRD, PRB)</th>'
        f"<td>{_meets(s.meets_standards)}</td>"
        f"<td>{_meets_with_confidence(s.meets_with_confidence)}</td></tr>\n"
        "</tbody>\n</table>\n"
    )
    yield f'<p class="note"><strong>Notes:</strong> {_text(s.note or "none")}</p>\n'
    yield from _sales_chasing_section(s.sales_chasing)
    yield "</section>\n"


_CONFIDENCE_WORDS = {
    "meets_with_confidence": '<span class="pass">\u2713 meets with confidence</span>',
    "fails_with_confidence": '<span class="fail">\u2717 fails with confidence</span>',
    "inconclusive": '<span class="na">inconclusive (the interval straddles a bound)</span>',
}


def _confidence_text(standard: str, verdict: str | None) -> str:
    if verdict is None:
        reason = "no interval for MKI" if standard == "mki" else "no interval"
        return f'<span class="na">{_DASH} {reason}</span>'
    return _CONFIDENCE_WORDS[verdict]


def _meets_with_confidence(meets: bool | None) -> str:
    if meets is None:
        return '<span class="na">not shown by the intervals</span>'
    return _CONFIDENCE_WORDS["meets_with_confidence" if meets else "fails_with_confidence"]


def _chased(flagged: bool | None, *, compact: bool = False) -> str:
    passed = None if flagged is None else not flagged
    return _verdict(passed, compact=compact, words=("\u2713 not indicated", "\u26a0 flagged"))


def _sales_chasing_section(chasing: SalesChasing | None) -> Iterator[str]:
    """Both IAAO Appendix E screens with their statistics, so a reader can judge the margin."""
    yield "<h2>Sales chasing (IAAO Standard on Ratio Studies, Appendix E)</h2>\n"
    if chasing is None:
        yield '<p class="note">Not evaluated: too few sales.</p>\n'
        return
    band = _range((chasing.bounds_lower, chasing.bounds_upper), 2)
    gap = f"{chasing.gap:.1%}"
    rows = (
        (
            "Largest step of the ratios' CDF",
            f"{chasing.cdf_largest_step:.1%} of sales at ratio {chasing.cdf_step_at:.3f}",
            f"above {gap} and inside {band}",
            chasing.cdf_flagged,
        ),
        (
            f"Share of ratios within {band}",
            f"{chasing.share_in_bounds:.1%} (normal distribution of the same mean and SD: "
            f"{chasing.normal_share_in_bounds:.1%})",
            f"differs by more than {gap}",
            chasing.distribution_flagged,
        ),
    )
    yield (
        "<table>\n<thead><tr><th>Screen</th><th>Statistic</th><th>Flags when</th>"
        "<th>Result</th></tr></thead>\n<tbody>\n"
    )
    for name, value, rule, flagged in rows:
        yield (
            f'<tr><td>{_text(name)}</td><td class="num">{_text(value)}</td>'
            f"<td>{_text(rule)}</td><td>{_chased(flagged)}</td></tr>\n"
        )
    yield (
        '<tr><th colspan="3" scope="row">Sales chasing indicated (both screens)</th>'
        f"<td>{_chased(chasing.flagged)}</td></tr>\n</tbody>\n</table>\n"
    )
    if chasing.note:
        yield f'<p class="note">{_text(chasing.note)}</p>\n'


_GROUP_HEADER = (
    "Group",
    "Count",
    "Used",
    "Median ratio",
    "Mean",
    "Weighted mean",
    "COD (%)",
    "PRD",
    "PRB",
    "KI",
    "MKI",
    "Level",
    "COD",
    "PRD",
    "PRB",
    "MKI",
    "Meets standards",
    "Sales chasing",
    "Note",
)


def _with_ci(value: str, interval: Interval | None, digits: int, *, signed: bool = False) -> str:
    ci = _ci(interval, digits, signed=signed)
    extra = f'<span class="ci">{ci}</span>' if ci else ""
    return f'<td class="num">{value}{extra}</td>'


def _group_row(s: RatioStatistics, cod_bounds: tuple[float, float]) -> str:
    chasing = s.sales_chasing
    cells = [
        f'<th scope="row">{_text(s.group if s.group is not None else _DASH)}</th>',
        f'<td class="num">{_count(s.count)}</td>',
        f'<td class="num">{_count(s.count_used)}</td>',
        _with_ci(_judged(s.median_ratio, LEVEL_RANGE, 3), s.median_ratio_ci, 3),
        f'<td class="num">{_num(s.mean_ratio, 3)}</td>',
        f'<td class="num">{_num(s.weighted_mean_ratio, 3)}</td>',
        _with_ci(_judged(s.cod, cod_bounds, 1), s.cod_ci, 1),
        _with_ci(_judged(s.prd, PRD_RANGE, 3), s.prd_ci, 3),
        _with_ci(_judged(s.prb, PRB_RANGE, 3, signed=True), s.prb_ci, 3, signed=True),
        f'<td class="num">{_num(s.ki, 4, signed=True)}</td>',
        f'<td class="num">{_judged(s.mki, MKI_RANGE, 3)}</td>',
        *(
            f"<td>{_verdict(s.standards.get(k), compact=True)}</td>"
            for k in ("level", "cod", "prd", "prb", "mki")
        ),
        f"<td>{_meets(s.meets_standards, compact=True)}</td>",
        f"<td>{_chased(None if chasing is None else chasing.flagged, compact=True)}</td>",
        f'<td class="note">{_text(s.note or "")}</td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>\n"


def _groups_section(report: RatioStudyReport) -> Iterator[str]:
    by = _text((report.group_by or "").replace("_", " "))
    yield (
        f"<section>\n<h2>Statistics by {by}</h2>\n"
        f'<p class="note">Each group is trimmed and judged on its own sales. Acceptable ranges: '
        f"level {_range(LEVEL_RANGE, 2)}, COD {_range(report.cod_range, 1)}, "
        f"PRD {_range(PRD_RANGE, 2)}, PRB {_range(PRB_RANGE, 2, signed=True)}, "
        f"MKI {_range(MKI_RANGE, 2)}.</p>\n"
        '<table class="groups">\n<thead><tr>'
        + "".join(f'<th scope="col">{h}</th>' for h in _GROUP_HEADER)
        + "</tr></thead>\n<tbody>\n"
    )
    for group in report.groups:
        yield _group_row(group, report.cod_range)
    if not report.groups:
        yield f'<tr><td colspan="{len(_GROUP_HEADER)}">no groups</td></tr>\n'
    yield "</tbody>\n</table>\n</section>\n"


# ---------------------------------------------------------------------------------------------
# Chart


def _nice_step(span: float, target: int) -> float:
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw * 0.999)


def _linear_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _decimals(ticks: Sequence[float]) -> int:
    """Fewest decimals (up to 3) that print every tick exactly: 0.9/1.0/1.1 or 0.25/0.50."""
    return next(
        (d for d in range(4) if all(abs(round(t, d) - t) < 1e-9 for t in ticks)),
        3,
    )


def _price_ticks(lo_log: float, hi_log: float) -> list[float]:
    """Log-axis ticks: decades, else 1-2-5, else 1..9 per decade; linear ticks on a tiny span."""
    decades = range(math.floor(lo_log), math.ceil(hi_log) + 1)
    candidates: list[list[float]] = []
    for multipliers in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [
            m * 10.0**d
            for d in decades
            for m in multipliers
            if lo_log <= math.log10(m * 10.0**d) <= hi_log
        ]
        if len(ticks) >= 4:
            return ticks
        candidates.append(ticks)
    if len(candidates[-1]) >= 2:
        return candidates[-1]
    return [t for t in _linear_ticks(10.0**lo_log, 10.0**hi_log, 4) if t > 0]


def _ratio_domain(ratio: FloatArray, median: float | None) -> tuple[float, float]:
    """Vertical range: the level band and every ratio within 3 IQR of the quartiles.

    Why not simply min..max: one data-entry error (a ratio of 40) would flatten every other
    point into a line. Ratios beyond the range are drawn on its edge as triangles and counted
    in the caption.
    """
    q1, q3 = np.quantile(ratio, [0.25, 0.75])
    fence = 3.0 * float(q3 - q1)
    core = ratio[(ratio >= q1 - fence) & (ratio <= q3 + fence)]
    lo = min(LEVEL_RANGE[0] - 0.05, float(core.min()))
    hi = max(LEVEL_RANGE[1] + 0.05, float(core.max()))
    if median is not None:
        lo, hi = min(lo, median), max(hi, median)
    pad = 0.04 * (hi - lo)
    return max(0.0, lo - pad), hi + pad


def _price_domain(sale_price: FloatArray) -> tuple[float, float]:
    lo, hi = math.log10(float(sale_price.min())), math.log10(float(sale_price.max()))
    if hi - lo < 0.1:
        mid = (lo + hi) / 2
        lo, hi = mid - 0.05, mid + 0.05
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


@dataclass(frozen=True)
class _Scale:
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float

    def x(self, log_price: FloatArray | float) -> FloatArray:
        return np.asarray(_LEFT + (log_price - self.x_lo) / (self.x_hi - self.x_lo) * _PLOT_W)

    def y(self, ratio: FloatArray | float) -> FloatArray:
        return np.asarray(_TOP + (self.y_hi - ratio) / (self.y_hi - self.y_lo) * _PLOT_H)


def _marks(template: str, *columns: FloatArray) -> Iterator[str]:
    """One SVG element per point; coordinates were computed vectorised beforehand."""
    for values in zip(*(np.round(c, 1).tolist() for c in columns), strict=True):
        yield template.format(*values)


def _points(scale: _Scale, price: FloatArray, ratio: FloatArray, kind: str) -> Iterator[str]:
    """The in-range points of one kind, then its off-scale ones as edge triangles."""
    x = scale.x(np.log10(price))
    y = scale.y(ratio)
    above = ratio > scale.y_hi
    below = ratio < scale.y_lo
    inside = ~(above | below)
    yield f'<g class="{kind}">\n'
    if kind == "used":
        yield from _marks('<circle cx="{}" cy="{}" r="2.4"/>', x[inside], y[inside])
    else:
        yield from _marks('<path d="M{} {}l6 6m0 -6l-6 6"/>', x[inside] - 3, y[inside] - 3)
    yield f'</g>\n<g class="{kind}-off">\n'
    top, bottom = float(_TOP), float(_TOP + _PLOT_H)
    yield from _marks(f'<path d="M{{}} {top}l-4 7h8z"/>', x[above])
    yield from _marks(f'<path d="M{{}} {bottom}l-4 -7h8z"/>', x[below])
    yield "</g>\n"


def _hline(scale: _Scale, ratio: float, css: str) -> str:
    y = float(scale.y(ratio))
    return f'<line class="{css}" x1="{_LEFT}" x2="{_LEFT + _PLOT_W}" y1="{y:.1f}" y2="{y:.1f}"/>\n'


def _axes(scale: _Scale) -> Iterator[str]:
    right, bottom = _LEFT + _PLOT_W, _TOP + _PLOT_H
    y_ticks = _linear_ticks(scale.y_lo, scale.y_hi, 8)
    digits = _decimals(y_ticks)
    yield '<g class="axis">\n'
    for tick in y_ticks:
        y = float(scale.y(tick))
        yield (
            f'<line class="grid" x1="{_LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.{digits}f}</text>\n'
        )
    for tick in _price_ticks(scale.x_lo, scale.x_hi):
        x = float(scale.x(math.log10(tick)))
        yield (
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{bottom}"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_money(tick)}</text>\n'
        )
    yield (
        f'<path fill="none" d="M{_LEFT} {_TOP}V{bottom}H{right}"/>\n'
        f'<text x="{_LEFT + _PLOT_W / 2:.0f}" y="{bottom + 34}" text-anchor="middle">'
        "Sale price (log scale)</text>\n"
        f'<text transform="translate(16 {_TOP + _PLOT_H / 2:.0f}) rotate(-90)" '
        'text-anchor="middle">Ratio (assessed value \u00f7 sale price)</text>\n</g>\n'
    )


def _legend(median: float | None) -> str:
    """Below the axis title, in two rows of three, so it never hides a point."""
    entries = [
        ('<g class="used"><circle cx="12" cy="0" r="3"/></g>', "Sale used in the statistics"),
        ('<g class="trimmed"><path d="M9 -3l6 6m0 -6l-6 6"/></g>', "Trimmed outlier"),
        (
            '<g class="used-off"><path d="M8 4l-4 -7h8z"/></g>'
            '<g class="trimmed-off"><path d="M20 4l-4 -7h8z"/></g>',
            "Beyond the vertical scale (drawn on its edge)",
        ),
        (
            '<rect class="band" x="4" y="-5" width="18" height="10"/>',
            f"IAAO level range {_range(LEVEL_RANGE, 2)}",
        ),
        ('<line class="one" x1="4" x2="22" y1="0" y2="0"/>', "Ratio 1.00"),
        (
            '<line class="median" x1="4" x2="22" y1="0" y2="0"/>',
            f"Median ratio {_num(median, 3)}" if median is not None else "Median ratio (none)",
        ),
    ]
    top = _TOP + _PLOT_H + 50
    parts = ['<g class="legend">']
    for i, (mark, label) in enumerate(entries):
        x, y = _LEFT + (i % 3) * 290, top + (i // 3) * 18
        parts.append(
            f'<g transform="translate({x} {y})">{mark}<text x="30" y="4">{_text(label)}</text></g>'
        )
    parts.append("</g>\n")
    return "".join(parts)


def _caption(report: RatioStudyReport, sample: ChartSample, off_scale: int) -> str:
    total = report.sale_price.size
    shown = sample.used.size + sample.trimmed.size
    if sample.sampled:
        step = sample.used_total / max(sample.used.size, 1)
        text = (
            f"Plotted: a sample of {_count(shown)} of {_count(total)} sales, so the file stays "
            f"printable: {_count(sample.trimmed.size)} of {_count(sample.trimmed_total)} trimmed "
            f"outliers and {_count(sample.used.size)} of {_count(sample.used_total)} used sales, "
            f"each a systematic sample evenly spaced in sale-price order (about 1 in "
            f"{step:.1f} used sales). The statistics use all {_count(total)} sales."
        )
    else:
        text = f"All {_count(total)} sales are plotted."
    if off_scale:
        text += (
            f" {_count(off_scale)} plotted sale(s) lie beyond the vertical scale and are drawn "
            "as triangles on its edge."
        )
    return (
        "Ratio against sale price (log scale). Shaded band: IAAO level range "
        f"{_range(LEVEL_RANGE, 2)}; solid line: ratio 1.00; dashed line: median ratio of the "
        f"sales used. {text}"
    )


def _chart_section(report: RatioStudyReport, max_points: int) -> Iterator[str]:
    price, ratio = report.sale_price, report.ratio
    yield "<section>\n<h2>Ratio against sale price</h2>\n"
    if price.size == 0:
        yield '<p class="note">No sales to plot.</p>\n</section>\n'
        return
    median = report.overall.median_ratio
    sample = chart_sample(price, report.trimmed, max_points)
    y_lo, y_hi = _ratio_domain(ratio, median)
    scale = _Scale(*_price_domain(price), y_lo, y_hi)
    shown = np.concatenate([sample.used, sample.trimmed])
    off_scale = int(np.count_nonzero((ratio[shown] < y_lo) | (ratio[shown] > y_hi)))
    band_top, band_bottom = float(scale.y(LEVEL_RANGE[1])), float(scale.y(LEVEL_RANGE[0]))
    yield (
        f'<figure>\n<svg viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        'aria-labelledby="chart-title">\n'
        f'<title id="chart-title">Ratio against sale price, {_text(report.county_id)} '
        f"tax year {report.tax_year}</title>\n"
        f'<rect class="band" x="{_LEFT}" y="{band_top:.1f}" width="{_PLOT_W}" '
        f'height="{band_bottom - band_top:.1f}"/>\n'
    )
    yield from _axes(scale)
    yield _hline(scale, 1.0, "one")
    yield from _points(scale, price[sample.used], ratio[sample.used], "used")
    yield from _points(scale, price[sample.trimmed], ratio[sample.trimmed], "trimmed")
    if median is not None:
        yield _hline(scale, median, "median")
    yield _legend(median)
    yield (
        f"</svg>\n<figcaption>{_text(_caption(report, sample, off_scale))}</figcaption>\n"
        "</figure>\n</section>\n"
    )
