"""GisExportJob and its results."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from schema.job import Job, JobControls, ResultFile


@strawberry.type
class GisExportResult:
    file: ResultFile
    record_count: int
    bbox: list[float] | None = strawberry.field(description="[minLon, minLat, maxLon, maxLat]")
    crs: str
    field_names: JSON | None = strawberry.field(
        default=None, description="attribute name -> name in the file (Shapefile's 10-char limit)"
    )


@strawberry.type
class GisExportJob(Job):
    export_format: str
    area_of_interest: JSON | None
    layers: list[str]
    result: GisExportResult | None


@strawberry.input
class RunGisExportInput(JobControls):
    export_format: str = strawberry.field(
        description="GeoJSON | Shapefile | KML | CSV | GeoPackage"
    )
    county_id: str
    layers: list[str] = strawberry.field(description="parcels | assessments | sales")
    area_of_interest: JSON | None = strawberry.field(
        default=None,
        description='{"type":"bbox","coordinates":[minLon,minLat,maxLon,maxLat]} or a GeoJSON '
        "Polygon/MultiPolygon; null for the whole county",
    )
    parameters: JSON | None = None
