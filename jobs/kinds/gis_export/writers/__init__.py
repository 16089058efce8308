"""Streaming writers for parcel exports: GeoJSON, Shapefile (zipped), KML, CSV, GeoPackage.

Usage::

    fields = [Field("parcel_id"), Field("living_area_sqft", "float"), Field("sale_date", "date")]
    with open_writer("GeoPackage", out_dir, "parcels", fields) as writer:
        for geometries, records in batches:      # shapely geometries, dicts keyed by name
            writer.write_batch(geometries, records)
        written = writer.close()                 # WrittenFile(path, name, size_bytes, ...)

Every writer sends each batch to disk before `write_batch` returns and keeps only a running
bbox and row count, so memory is flat in the number of features. Geometries are WGS 84
longitude/latitude Polygons or MultiPolygons, or Points for parcels located by lon/lat (None
for "no geometry"; the writer is told which kind its layer holds). Leaving the ``with``
block without `close()` - normally because of an exception - deletes what was written, as
does `remove_partial()` when called directly. Writers are not thread-safe: calls may come from
different threads (e.g. ``asyncio.to_thread``) but must not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jobs.kinds.gis_export.writers.base import (
    CRS,
    FIELD_TYPES,
    FeatureWriter,
    Field,
    FieldType,
    GeometryKind,
    StreamingWriter,
    WrittenFile,
)
from jobs.kinds.gis_export.writers.csv_wkt import CSVWriter
from jobs.kinds.gis_export.writers.geojson import GeoJSONWriter
from jobs.kinds.gis_export.writers.gpkg import GeoPackageWriter
from jobs.kinds.gis_export.writers.kml import KMLWriter
from jobs.kinds.gis_export.writers.shp import (
    DBF_ABBREVIATIONS,
    ShapefileWriter,
    shapefile_field_names,
)

WRITERS: dict[str, type[StreamingWriter]] = {
    "GeoJSON": GeoJSONWriter,
    "Shapefile": ShapefileWriter,
    "KML": KMLWriter,
    "CSV": CSVWriter,
    "GeoPackage": GeoPackageWriter,
}
#: The canonical format names, in the order they are offered.
EXPORT_FORMATS: tuple[str, ...] = tuple(WRITERS)


def canonical_format(name: str) -> str:
    """The canonical spelling of an export format name, matched case-insensitively.

    Only the five names themselves are accepted (no aliases such as "shp" or "gpkg"), so the
    API has exactly one spelling per format to document.
    """
    wanted = str(name).strip().lower()
    for fmt in EXPORT_FORMATS:
        if fmt.lower() == wanted:
            return fmt
    raise ValueError(f"unknown export format {name!r}; allowed: {', '.join(EXPORT_FORMATS)}")


def open_writer(
    fmt: str,
    directory: Path,
    basename: str,
    fields: Sequence[Field],
    *,
    name_field: str = "parcel_id",
    geometry: GeometryKind = "polygon",
) -> FeatureWriter:
    """A writer for `fmt` producing ``directory/basename.<extension>`` (replacing any file of
    that name, e.g. from an interrupted earlier attempt). `name_field` is the attribute used as
    each KML Placemark's <name>; other formats ignore it. `geometry` says what the layer holds;
    a Shapefile refuses "mixed" (it holds one shape type)."""
    canonical = canonical_format(fmt)
    if canonical == "KML":
        return KMLWriter(directory, basename, fields, name_field=name_field, geometry=geometry)
    return WRITERS[canonical](directory, basename, fields, geometry=geometry)


__all__ = [
    "CRS",
    "DBF_ABBREVIATIONS",
    "EXPORT_FORMATS",
    "FIELD_TYPES",
    "WRITERS",
    "CSVWriter",
    "FeatureWriter",
    "Field",
    "FieldType",
    "GeoJSONWriter",
    "GeoPackageWriter",
    "GeometryKind",
    "KMLWriter",
    "ShapefileWriter",
    "WrittenFile",
    "canonical_format",
    "open_writer",
    "shapefile_field_names",
]
