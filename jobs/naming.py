"""A job's name when the client gives none, e.g. "Sales ratio study, COUNTY01, 2025".

Written once for every kind from what each already declares: its variant column (the
kind's `type_label`), its county and, when its parameters carry one, the tax year. A variant
column named `*_type` names the job by itself (a report's `sales_ratio_study`); any other
variant (a GIS export's format, a valuation's method) qualifies the kind's own name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobs.spec import KindSpec, ValidatedInput

MAX_NAME = 200
MAX_DESCRIPTION = 2000
ACRONYMS = {"gis": "GIS", "geojson": "GeoJSON", "csv": "CSV", "kml": "KML"}


def _words(value: str) -> str:
    words = [ACRONYMS.get(word, word) for word in value.lower().split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _tax_year(parameters: Mapping[str, Any]) -> Any:
    if "tax_year" in parameters:
        return parameters["tax_year"]
    nested = [v for v in parameters.values() if isinstance(v, Mapping)]
    return next((n["tax_year"] for n in nested if n.get("tax_year") is not None), None)


def default_name(spec: KindSpec, valid: ValidatedInput) -> str:
    variant = valid.columns.get(spec.type_label)
    if variant is None:
        headline = _words(spec.kind.value)
    elif spec.type_label.endswith("_type"):
        headline = _words(str(variant))
    else:
        headline = f"{_words(spec.kind.value)} ({_words(str(variant)).lower()})"
    parts = [headline, valid.county_id]
    year = _tax_year(valid.parameters)
    if year is not None:
        parts.append(str(year))
    return ", ".join(parts)[:MAX_NAME]
