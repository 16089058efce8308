"""GisExportJob: the parcels of an area written as a GIS file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field
from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.config import Settings
from app.models import Base
from jobs.context import RunContext
from jobs.county_data import require_county, require_tax_year
from jobs.gis import export
from jobs.gis.area import AreaOfInterestError, parse_area_of_interest
from jobs.gis.writers import EXPORT_FORMATS
from jobs.params import Params, choice, parse_params
from jobs.spec import BadInput, JobKind, KindSpec, ValidatedInput
from jobs.table import JobMixin

LAYERS = ("parcels", "assessments", "sales")


class GisExportJobRow(JobMixin, Base):
    __tablename__ = "gis_export_jobs"

    export_format: Mapped[str] = mapped_column(String(32))
    area_of_interest: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    layers: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    file_path: Mapped[str | None] = mapped_column(Text)
    file_size_kb: Mapped[float | None] = mapped_column(Float)
    record_count: Mapped[int | None] = mapped_column(Integer)


class GisExportParams(Params):
    tax_year: int | None = Field(default=None, ge=1800, le=2200)
    batch_size: int = Field(default=2000, ge=100, le=50_000)


async def validate(
    session: AsyncSession, raw: Mapping[str, Any], settings: Settings
) -> ValidatedInput:
    export_format = choice("exportFormat", raw["export_format"], EXPORT_FORMATS)
    layers = list(raw.get("layers") or [])
    if not layers:
        raise BadInput("layers", f"must name at least one layer; allowed: {', '.join(LAYERS)}")
    layers = [choice(f"layers[{i}]", layer, LAYERS) for i, layer in enumerate(layers)]
    layers = list(dict.fromkeys(layers))
    try:
        parse_area_of_interest(raw.get("area_of_interest"))
    except AreaOfInterestError as exc:
        raise BadInput(exc.field, exc.reason) from None
    params = parse_params(
        GisExportParams, raw.get("parameters"), max_bytes=settings.max_parameters_bytes
    )
    county_id = raw["county_id"]
    await require_county(session, county_id)
    if "assessments" in layers:
        await require_tax_year(session, county_id, params.tax_year)
    return ValidatedInput(
        county_id=county_id,
        parameters=params.model_dump(mode="json"),
        columns={
            "export_format": export_format,
            "area_of_interest": raw.get("area_of_interest"),
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
