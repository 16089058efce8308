"""ReportJob: sales ratio studies and assessment rolls (validation, dispatch, its spec)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from app.config import Settings
from jobs.county_data import require_county_and_tax_year
from jobs.kinds.report import assessment_roll, sales_ratio_study
from jobs.kinds.report.params import AssessmentRollParams, CodStandard, SalesRatioStudyParams
from jobs.kinds.report.table import ReportJobRow
from jobs.params import graphql_name
from jobs.spec import BadInput, JobKind, KindSpec, ValidatedInput
from jobs.stats.ratio import normalize_property_class
from jobs.validation_reads import ValidationReads
from jobs.variants import Variant, Variants


def _require_cod_standard(params: SalesRatioStudyParams) -> None:
    """Pass/fail needs an IAAO COD range: a class filter the table does not know must say which."""
    property_class = params.sales.property_class
    if params.cod_standard is not None or property_class is None:
        return
    try:
        normalize_property_class(property_class)
    except ValueError:
        allowed = ", ".join(value.upper() for value in get_args(CodStandard.__value__))
        raise BadInput(
            "parameters.salesRatioStudy.codStandard",
            f"property class {property_class!r} has no IAAO COD range of its own; "
            f"give one of: {allowed}",
        ) from None


REPORT_TYPES = Variants(
    field="reportType",
    column="report_type",
    choices={
        "sales_ratio_study": Variant(SalesRatioStudyParams, sales_ratio_study.run),
        "assessment_roll": Variant(AssessmentRollParams, assessment_roll.run),
    },
)


async def validate(
    reads: ValidationReads, raw: Mapping[str, Any], settings: Settings
) -> ValidatedInput:
    report_type, params = REPORT_TYPES.parse(raw, settings)
    if isinstance(params, SalesRatioStudyParams):
        _require_cod_standard(params)
    county_id = raw["county_id"]
    await require_county_and_tax_year(
        reads,
        county_id,
        getattr(params, "tax_year", None),
        field=f"parameters.{graphql_name(report_type)}.taxYear",
    )
    return ValidatedInput(
        county_id=county_id,
        parameters=params.model_dump(mode="json"),
        columns={"report_type": report_type},
    )


SPEC = KindSpec(
    kind=JobKind.REPORT,
    model=ReportJobRow,
    metric_prefix="report",
    type_label="report_type",
    validate=validate,
    compute=REPORT_TYPES.compute,
)
