"""The printable ratio-study page: structure, escaping, chart sampling, small-sample notes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from jobs.kinds.report.html_report import (
    MAX_CHART_POINTS,
    RatioStudyReport,
    chart_sample,
    write_ratio_study_html,
)
from jobs.stats.ratio import cod_range, group_statistics, iqr_trim_mask, ratio_statistics
from tests.builders import load_small_county, ratio_study, result_text

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}
GENERATED = dt.datetime(2025, 3, 4, 15, 30, tzinfo=dt.UTC)


class Page(HTMLParser):
    """Parses the page, failing on any mis-nested or unclosed element."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []
        self.doctype: str | None = None
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.text_in: dict[str, list[str]] = {}
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {[t for t, _ in self.stack]}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def _classes(self) -> tuple[str, ...]:
        return tuple(a.get("class") or "" for _, a in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), self._classes()))
        if tag not in VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), self._classes()))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        for tag, _ in self.stack:
            self.text_in.setdefault(tag, []).append(data)

    def text(self, tag: str) -> str:
        return " ".join(self.text_in.get(tag, []))

    def marks(self, group_class: str) -> list[tuple[str, dict[str, str | None]]]:
        """Elements drawn inside a chart group of that class (not the legend's swatches)."""
        return [
            (tag, attrs)
            for tag, attrs, classes in self.elements
            if classes and classes[-1] == group_class and "legend" not in classes
        ]


def study(
    n: int,
    *,
    seed: int = 3,
    groups: list[str] | None = None,
    level: float = 0.97,
    trim: str = "iqr",
    **overrides: Any,
) -> RatioStudyReport:
    rng = np.random.default_rng(seed)
    price = np.round(np.exp(rng.normal(12.4, 0.5, n)), -2)
    assessed = np.round(price * level * np.exp(rng.normal(0, 0.1, n)), -2)
    assessed[: max(1, n // 100)] *= 3.0  # a few gross errors for the trimming to catch
    ratio = assessed / price
    kept = iqr_trim_mask(ratio) if trim == "iqr" else np.ones(n, bool)
    labels = None
    if groups:
        labels = np.array(groups, dtype=object)[np.arange(n) % len(groups)]
    report = RatioStudyReport(
        county_id="TESTCO",
        tax_year=2024,
        sale_date_from=dt.date(2023, 1, 1),
        sale_date_to=dt.date(2023, 12, 31),
        trim=trim,
        iqr_factor=1.5,
        group_by="neighborhood" if labels is not None else None,
        property_class=None,
        arms_length_only=True,
        generated_at=GENERATED,
        overall=ratio_statistics(assessed, price, trim=trim, bootstrap_reps=20),
        groups=(
            group_statistics(assessed, price, labels, trim=trim, bootstrap_reps=20)
            if labels is not None
            else []
        ),
        cod_range=cod_range(None),
        sale_price=price,
        ratio=ratio,
        trimmed=~kept,
    )
    return dataclasses.replace(report, **overrides)


def render(tmp_path: Path, report: RatioStudyReport, **options: Any) -> tuple[str, Page]:
    path = tmp_path / "study.html"
    write_ratio_study_html(path, report, **options)
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def drawn_points(page: Page) -> int:
    return sum(len(page.marks(c)) for c in ("used", "trimmed", "used-off", "trimmed-off"))


def test_page_is_well_formed_and_self_contained(tmp_path: Path) -> None:
    text, page = render(tmp_path, study(200, groups=["North", "South"]))
    assert page.errors == []
    assert page.doctype is not None and page.doctype.lower() == "doctype html"
    title = page.text("title").split("Ratio against")[0]
    for part in ("TESTCO", "2024", "2023-01-01", "2023-12-31", "IQR trim 1.5", "2025-03-04 15:30"):
        assert part in title, title
    header = page.text("header")
    assert "2025-03-04 15:30 UTC" in header
    assert "IQR rule" in header and "1.5" in header
    assert "http:" not in text and "https:" not in text and "//" not in text
    tags = {tag for tag, _, _ in page.elements}
    assert {"script", "link", "img", "iframe", "object"}.isdisjoint(tags)
    assert all(not (a.get("href") or a.get("src")) for _, a, _ in page.elements), (
        "no element may reference another resource"
    )
    assert "@media print" in text and "@page" in text
    assert "svg" in tags


def test_overall_table_shows_every_statistic_and_verdict(tmp_path: Path) -> None:
    report = study(300)
    overall = report.overall
    assert overall.median_ratio is not None and overall.cod is not None
    _, page = render(tmp_path, report)
    body = page.text("section")
    for label in (
        "Sales in study",
        "Sales used",
        "Median ratio",
        "Mean ratio",
        "Weighted mean ratio",
        "COD",
        "PRD",
        "PRB",
        "KI",
        "MKI",
        "Meets IAAO standards",
        "Notes:",
    ):
        assert label in body, label
    assert f"{overall.median_ratio:.3f}" in body
    assert f"{overall.cod:.1f}" in body
    assert f"{overall.count - overall.count_used} trimmed" in body
    assert "0.90 \u2013 1.10" in body and "5.0 \u2013 15.0" in body and "0.98 \u2013 1.03" in body
    # Level, COD, PRD, PRB and MKI.
    assert body.count("\u2713 pass") + body.count("\u2717 fail") == 5


def test_failing_study_reads_fail(tmp_path: Path) -> None:
    report = study(200, level=0.7)
    assert report.overall.standards["level"] is False
    _, page = render(tmp_path, report)
    body = page.text("section")
    assert "\u2717 fail" in body
    assert "\u2717 no" in body


def test_every_sale_is_plotted_below_the_threshold(tmp_path: Path) -> None:
    report = study(400)
    _, page = render(tmp_path, report)
    assert drawn_points(page) == 400
    trimmed = int(report.trimmed.sum())
    assert trimmed > 0
    assert len(page.marks("trimmed")) + len(page.marks("trimmed-off")) == trimmed
    caption = page.text("figcaption")
    assert "All 400 sales are plotted." in caption
    assert "sample" not in caption


def test_large_study_plots_a_documented_sample(tmp_path: Path) -> None:
    report = study(MAX_CHART_POINTS + 1500)
    text, page = render(tmp_path, report)
    assert drawn_points(page) == MAX_CHART_POINTS
    caption = page.text("figcaption")
    assert f"a sample of {MAX_CHART_POINTS:,} of {MAX_CHART_POINTS + 1500:,} sales" in caption
    assert f"The statistics use all {MAX_CHART_POINTS + 1500:,} sales" in caption
    again, _ = render(tmp_path, report)
    assert again == text, "the sample and the page must be deterministic"


def test_sample_threshold_is_a_parameter(tmp_path: Path) -> None:
    _, page = render(tmp_path, study(1000), max_points=100)
    assert drawn_points(page) == 100
    assert "a sample of 100 of 1,000 sales" in page.text("figcaption")


def test_chart_sample_keeps_outliers_and_spans_prices() -> None:
    rng = np.random.default_rng(0)
    price = rng.lognormal(12, 0.6, 50_000)
    trimmed = np.zeros(price.size, bool)
    trimmed[rng.choice(price.size, 300, replace=False)] = True
    sample = chart_sample(price, trimmed, 5000)
    assert sample.sampled
    assert sample.used.size + sample.trimmed.size == 5000
    assert sample.trimmed.size == 300  # a tenth of the budget covers every outlier
    assert not trimmed[sample.used].any() and trimmed[sample.trimmed].all()
    assert np.unique(sample.used).size == sample.used.size
    used_prices = price[~trimmed]
    assert price[sample.used].min() == used_prices.min()
    # Evenly spaced in price order: the sample's deciles track the population's.
    assert np.allclose(
        np.quantile(price[sample.used], [0.1, 0.5, 0.9]),
        np.quantile(used_prices, [0.1, 0.5, 0.9]),
        rtol=0.01,
    )
    again = chart_sample(price, trimmed, 5000)
    assert np.array_equal(again.used, sample.used) and np.array_equal(again.trimmed, sample.trimmed)


def test_chart_has_labelled_log_axis_and_reference_lines(tmp_path: Path) -> None:
    report = study(300)
    _, page = render(tmp_path, report)
    labels = [t for t in page.text("svg").split() if t.startswith("$")]
    assert len(labels) >= 2
    assert all(re.fullmatch(r"\$\d+(\.\d+)?[kM]?", label) for label in labels), labels
    lines = {a.get("class") for tag, a, _ in page.elements if tag == "line"}
    assert {"one", "median"} <= lines
    assert any(tag == "rect" and a.get("class") == "band" for tag, a, _ in page.elements)
    svg_text = page.text("svg")
    assert "Sale price (log scale)" in svg_text
    assert f"Median ratio {report.overall.median_ratio:.3f}" in svg_text


def test_group_names_are_escaped(tmp_path: Path) -> None:
    report = study(120, groups=["<b>&", 'Quote "Hill"'], county_id="<X&Y>")
    text, page = render(tmp_path, report)
    assert page.errors == []
    assert "<b>&" not in text and "<X&Y>" not in text
    assert "&lt;b&gt;&amp;" in text
    table_text = page.text("tbody")
    assert "<b>&" in table_text and 'Quote "Hill"' in table_text
    assert "<X&Y>" in page.text("title")
    assert not any(tag == "b" for tag, _, _ in page.elements)


def test_small_groups_show_their_note(tmp_path: Path) -> None:
    report = study(63, groups=["Big"] * 20 + ["Tiny"], trim="none")
    tiny = next(g for g in report.groups if g.group == "Tiny")
    assert tiny.count == 3 and tiny.note is not None
    _, page = render(tmp_path, report)
    table = page.text("tbody")
    assert "sample too small: 3 sales, at least 5 needed" in table
    assert "Statistics by neighborhood" in page.text("h2")


def test_overall_note_is_shown(tmp_path: Path) -> None:
    report = study(25)  # trimming a sample under 30 sales is noted
    assert report.overall.note and "trimmed" in report.overall.note
    _, page = render(tmp_path, report)
    assert report.overall.note in page.text("p")


def test_too_small_study_still_renders(tmp_path: Path) -> None:
    report = study(3)
    assert report.overall.median_ratio is None
    _, page = render(tmp_path, report)
    assert page.errors == []
    assert "sample too small" in page.text("p")
    assert drawn_points(page) == 3
    assert "Median ratio (none)" in page.text("svg")


def test_ungrouped_study_has_no_group_table(tmp_path: Path) -> None:
    _, page = render(tmp_path, study(100))
    assert "Statistics by" not in page.text("h2")
    assert not any(a.get("class") == "groups" for _, a, _ in page.elements)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_degenerate_price_ranges_render(tmp_path: Path, n: int) -> None:
    report = study(n)
    same = dataclasses.replace(report, sale_price=np.full(n, 250_000.0))
    _, page = render(tmp_path, same)
    assert page.errors == []
    assert drawn_points(page) == n
    assert any(t.startswith("$") for t in page.text("svg").split())


def standards_rows(page: Page, text: str) -> dict[str, list[str]]:
    """The IAAO standards table of the overall section: statistic -> [value, range, result,
    verdict of its interval]."""
    table = text.split("IAAO standards", 1)[1].split("Meets IAAO standards", 1)[0]
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>(.*?)</tr>", table)
    cells = {
        stat: [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", rest)]
        for stat, rest in rows
    }
    assert page.errors == []
    return cells


@pytest.mark.parametrize(
    ("cod", "passes", "shown"),
    [
        (15.038, False, "15.04"),
        (4.96, False, "4.96"),
        (14.96, True, "15.0"),
        (15.0004, False, "15.0004"),
    ],
)
def test_a_value_beside_its_range_never_looks_on_the_wrong_side(
    tmp_path: Path, cod: float, passes: bool, shown: str
) -> None:
    """COD 15.038 printed "15.0" beside "5.0 - 15.0  fail" contradicted itself: the value is
    printed with as many digits as it takes to read as failing, and no more when it passes."""
    base = study(300)
    overall = dataclasses.replace(
        base.overall, cod=cod, standards={**base.overall.standards, "cod": passes}
    )
    text, page = render(tmp_path, dataclasses.replace(base, overall=overall, groups=[overall]))
    value, bounds, verdict, _ = standards_rows(page, text)["COD (%)"]
    assert value == shown
    assert bounds == "5.0 \u2013 15.0"
    assert verdict == ("\u2713 pass" if passes else "\u2717 fail")


async def test_the_report_prints_the_cod_range_it_judged_by(
    engine: AsyncEngine, settings: Settings
) -> None:
    """With codStandard set, the page showed the property class's COD range next to a verdict
    taken against another one."""
    county = await load_small_county(engine, parcels=1500)
    result = await ratio_study(
        engine, settings, county, cod_standard="residential_homogeneous", tax_year=2023
    )
    overall = result["ratio_study"]["overall"]
    (cod,) = [s for s in overall["standards"] if s["statistic"] == "cod"]
    assert (cod["lower"], cod["upper"]) == (5.0, 10.0)
    assert cod["passes"] == (5.0 <= overall["cod"] <= 10.0)
    text = result_text(settings, result, ".html")
    _, bounds, verdict, _ = standards_rows(Page(text), text)["COD (%)"]
    assert bounds == "5.0 \u2013 10.0"
    assert verdict == ("\u2713 pass" if cod["passes"] else "\u2717 fail")
    assert "COD 5.0 \u2013 15.0" not in text
