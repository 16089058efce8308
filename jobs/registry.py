"""The job kinds, one line each."""

from __future__ import annotations

from jobs.kinds.gis_export import spec as gis_export
from jobs.kinds.market_analysis import spec as market_analysis
from jobs.kinds.report import spec as report
from jobs.kinds.valuation import spec as valuation
from jobs.spec import JobKind, KindSpec

KINDS: dict[JobKind, KindSpec] = {
    JobKind.REPORT: report.SPEC,
    JobKind.MARKET_ANALYSIS: market_analysis.SPEC,
    JobKind.GIS_EXPORT: gis_export.SPEC,
    JobKind.VALUATION: valuation.SPEC,
}


def metric_kinds() -> list[tuple[str, str, str]]:
    return [(spec.kind.value, spec.metric_prefix, spec.type_label) for spec in KINDS.values()]
