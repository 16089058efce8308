"""GisExportJob: the parcels of an area written as a GIS file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.config import Settings
from jobs.context import RunContext
from jobs.county_data import require_county, require_county_and_tax_year
from jobs.kinds.gis_export import export
from jobs.kinds.gis_export.area import AreaOfInterestError, stored_area
from jobs.kinds.gis_export.params import LAYERS, GisExportParams
from jobs.kinds.gis_export.table import GisExportJobRow
from jobs.kinds.gis_export.writers import EXPORT_FORMATS
from jobs.kinds.gis_export.zoning import county_has_zoning
from jobs.params import choice, parse_params
from jobs.spec import BadInput, JobKind, KindSpec, ValidatedInput
from jobs.validation_reads import ValidationReads


async def validate(
    reads: ValidationReads, raw: Mapping[str, Any], settings: Settings
) -> ValidatedInput:
    export_format = choice("exportFormat", raw["export_format"], EXPORT_FORMATS)
    layers = list(raw.get("layers") or [])
    if not layers:
        allowed = ", ".join(layer.upper() for layer in LAYERS)
        raise BadInput("layers", f"must name at least one layer; allowed: {allowed}")
    layers = [choice(f"layers[{i}]", layer, LAYERS) for i, layer in enumerate(layers)]
    layers = list(dict.fromkeys(layers))
    try:
        area = stored_area(raw.get("area_of_interest"))
    except AreaOfInterestError as exc:
        raise BadInput(exc.field, exc.reason) from None
    params = parse_params(
        GisExportParams, raw.get("parameters"), max_bytes=settings.max_parameters_bytes
    )
    county_id = raw["county_id"]
    if "assessments" in layers:
        await require_county_and_tax_year(reads, county_id, params.tax_year, "parameters.taxYear")
    else:
        await require_county(reads, county_id)
    if "zoning" in layers and not await county_has_zoning(await reads.session(), county_id):
        raise BadInput(
            f"layers[{layers.index('zoning')}]",
            f"county {county_id} has no zoning layer; load one with "
            "`terrafusion import zoning FILE`, or leave ZONING out",
        )
    return ValidatedInput(
        county_id=county_id,
        parameters=params.model_dump(mode="json"),
        columns={
            "export_format": export_format,
            "area_of_interest": area,
            "layers": layers,
        },
    )


async def compute(ctx: RunContext) -> dict[str, Any]:
    return await export.run(ctx, GisExportParams(**ctx.parameters))


def result_columns(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "file_path": result["file"]["url"],
        "file_size_kb": round(result["file"]["size_bytes"] / 1024, 3),
        "record_count": result["record_count"],
    }


SPEC = KindSpec(
    kind=JobKind.GIS_EXPORT,
    model=GisExportJobRow,
    metric_prefix="gis_export",
    type_label="export_format",
    validate=validate,
    compute=compute,
    result_columns=result_columns,
)
