"""GisExportJob, its typed input (format, layers, area of interest) and its results."""

from __future__ import annotations

from typing import Any, Self

import strawberry

from jobs.kinds.gis_export.area import typed_area
from jobs.kinds.gis_export.params import LAYERS, GisExportParams
from jobs.kinds.gis_export.writers import EXPORT_FORMATS
from schema.inputs import choice_enum, input_type, output_type
from schema.job import Job, JobControls, ResultFile
from schema.scalars import GeoJSON

ExportFormat = choice_enum("ExportFormat", EXPORT_FORMATS)
GisLayer = choice_enum("GisLayer", LAYERS)
GisExportParameters = input_type(GisExportParams)
GisExportParametersOutput = output_type(GisExportParams)


@strawberry.input(description="An RFC 7946 bounding box in WGS84 degrees.")
class BoundingBox:
    min_lon: float = strawberry.field(description="west edge, -180 to 180")
    min_lat: float = strawberry.field(description="south edge, -90 to 90")
    max_lon: float = strawberry.field(description="east edge, greater than minLon")
    max_lat: float = strawberry.field(description="north edge, greater than minLat")


@strawberry.input(one_of=True, description="The area to export: a box or a polygon.")
class AreaOfInterest:
    bbox: BoundingBox | None = strawberry.UNSET
    geometry: GeoJSON | None = strawberry.field(
        default=strawberry.UNSET, description="a Polygon or MultiPolygon"
    )


@strawberry.type(name="BoundingBoxOutput", description="An RFC 7946 bounding box (WGS84).")
class BoundingBoxOutput:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


@strawberry.type(name="AreaOfInterestOutput", description="The area a job exported.")
class AreaOfInterestOutput:
    bbox: BoundingBoxOutput | None = None
    geometry: GeoJSON | None = None


@strawberry.type(description="How an attribute is named in the file (Shapefile: 10 characters).")
class FieldName:
    attribute: str
    field: str


@strawberry.type
class GisExportResult:
    file: ResultFile
    record_count: int
    bbox: list[float] | None = strawberry.field(description="[minLon, minLat, maxLon, maxLat]")
    crs: str
    field_names: list[FieldName] | None = strawberry.field(
        default=None, description="each attribute and its name in the file"
    )


@strawberry.type
class GisExportJob(Job):
    export_format: ExportFormat  # type: ignore[valid-type]
    area_of_interest: AreaOfInterestOutput | None
    layers: list[GisLayer]  # type: ignore[valid-type]
    parameters: GisExportParametersOutput  # type: ignore[valid-type]
    result: GisExportResult | None

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Self:
        fields = dict(snap["fields"])
        fields["area_of_interest"] = typed_area(fields.get("area_of_interest"))
        result = snap["result"]
        if result is not None and isinstance(result.get("field_names"), dict):
            names = result["field_names"].items()
            result = {**result, "field_names": [{"attribute": a, "field": f} for a, f in names]}
        return super().from_snapshot({**snap, "fields": fields, "result": result})


@strawberry.input
class RunGisExportInput(JobControls):
    county_id: str
    export_format: ExportFormat  # type: ignore[valid-type]
    layers: list[GisLayer] = strawberry.field(  # type: ignore[valid-type]
        description="at least one; each parcel row joins these"
    )
    area_of_interest: AreaOfInterest | None = strawberry.field(
        default=strawberry.UNSET, description="null for the whole county"
    )
    parameters: GisExportParameters | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET, description="optional: the defaults of each parameter"
    )
