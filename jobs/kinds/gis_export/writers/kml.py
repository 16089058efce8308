"""KML 2.2 (OGC 07-147r2), for Google Earth and for anyone without a GIS.

One ``<Document>`` holding one ``<Folder>`` (the layer) with one ``<Placemark>`` per feature,
streamed to disk as text; `add_layer` appends a further Folder (e.g. the zone polygons). The
Folder is what GDAL/QGIS read as the layer: a Document without any Placemark otherwise shows
no layer at all, so an empty export would look broken. Per feature:

* ``<name>`` is the feature's `name_field` value (the parcel id), which is what Google Earth
  lists and labels (07-147r2 section 9.1.3.1 "kml:name").
* every attribute is an ``<ExtendedData><Data name="..."><value>`` pair (section 9.3,
  untyped data, which needs no ``<Schema>`` up front); a missing value is left out, which
  readers report as null rather than as an empty string. ExtendedData precedes the geometry,
  the element order the Placemark schema requires.
* a Polygon is ``<outerBoundaryIs>`` plus one ``<innerBoundaryIs>`` per hole (section 10.8),
  a MultiPolygon a ``<MultiGeometry>`` of Polygons (section 10.2), a Point (a parcel located
  by lon/lat) a ``<Point>`` (section 10.3). Coordinates are
  ``lon,lat`` tuples separated by spaces (section 16.9), WGS 84 being KML's only CRS, with
  exterior rings counter-clockwise as Google's KML reference asks for Polygons.
* text goes through xml.sax.saxutils escaping, and characters XML 1.0 cannot carry at all
  (C0 controls other than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF) are removed, since
  escaping cannot make them legal.

Floats are written with repr, the shortest text that reads back as the same double.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, ClassVar
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import shapely

from jobs.kinds.gis_export.writers.base import (
    Field,
    Geometries,
    GeometryKind,
    StreamingWriter,
    Value,
    polygon_rings,
    text_value,
)

KML_NAMESPACE = "http://www.opengis.net/kml/2.2"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return escape(_XML_ILLEGAL.sub("", value))


def _xml_attr(value: str) -> str:
    return quoteattr(_XML_ILLEGAL.sub("", value))


def _coordinates(ring: np.ndarray) -> str:
    return " ".join(f"{x!r},{y!r}" for x, y in ring.tolist())


def _polygon_kml(rings: list[np.ndarray]) -> str:
    exterior, *holes = rings
    inner = "".join(
        f"<innerBoundaryIs><LinearRing><coordinates>{_coordinates(h)}</coordinates>"
        "</LinearRing></innerBoundaryIs>"
        for h in holes
    )
    return (
        "<Polygon><outerBoundaryIs><LinearRing><coordinates>"
        f"{_coordinates(exterior)}</coordinates></LinearRing></outerBoundaryIs>{inner}</Polygon>"
    )


class KMLWriter(StreamingWriter):
    format_name: ClassVar[str] = "KML"
    content_type: ClassVar[str] = "application/vnd.google-earth.kml+xml"  # IANA registration
    extension: ClassVar[str] = "kml"
    exterior_cw: ClassVar[bool] = False

    def __init__(
        self,
        directory: Path,
        basename: str,
        fields: Sequence[Field],
        *,
        name_field: str = "parcel_id",
        geometry: GeometryKind = "polygon",
    ) -> None:
        self._name_field = name_field
        super().__init__(directory, basename, fields, geometry=geometry)

    def _start(self) -> None:
        self._layer = _Layer(self.fields, self._name_field)
        self._folders = {self.basename}
        self._file: IO[str] = self.path.open("w", encoding="utf-8", newline="\n")
        self._file.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<kml xmlns="{KML_NAMESPACE}">\n<Document>\n<name>{_xml_text(self.basename)}</name>\n'
            f"<Folder>\n<name>{_xml_text(self.basename)}</name>\n"
        )
        self._file.flush()

    def _write(self, geoms: np.ndarray, rows: list[list[Value]]) -> None:
        self._file.write(self._layer.placemarks(geoms, rows))
        self._file.flush()

    def add_layer(
        self,
        name: str,
        fields: Sequence[Field],
        geometries: Geometries,
        records: Sequence[Mapping[str, object]],
        *,
        name_field: str | None = None,
    ) -> int:
        """Close the main Folder and write a further polygon layer, whole, as a Folder of its
        own (GDAL and QGIS read each Folder as a layer). Call it last, before `close`; the
        file's bbox and row count stay the main layer's. Returns the features written."""
        self._require_open()
        if name in self._folders:
            raise ValueError(f"layer {name!r} is already in {self.path.name}")
        geoms, rows = self._other_layer(fields, geometries, records)
        layer = _Layer(tuple(fields), name_field or fields[0].name)
        self._file.write(
            f"</Folder>\n<Folder>\n<name>{_xml_text(name)}</name>\n" + layer.placemarks(geoms, rows)
        )
        self._file.flush()
        self._folders.add(name)
        return len(rows)

    def _finish(self) -> None:
        self._file.write("</Folder>\n</Document>\n</kml>\n")
        self._file.close()

    def _release(self) -> None:
        self._file.close()


class _Layer:
    """How one Folder's Placemarks are written: its Data names and which names a feature."""

    def __init__(self, fields: Sequence[Field], name_field: str) -> None:
        names = [f.name for f in fields]
        self._name_index = names.index(name_field) if name_field in names else None
        self._data_open = [f"<Data name={_xml_attr(name)}><value>" for name in names]

    def placemarks(self, geoms: np.ndarray, rows: list[list[Value]]) -> str:
        chunks: list[str] = []
        type_ids = shapely.get_type_id(geoms)
        is_multi = (type_ids == shapely.GeometryType.MULTIPOLYGON).tolist()
        points = type_ids == shapely.GeometryType.POINT
        point_kml = np.full(len(geoms), "", dtype=object)
        if points.any():
            xy = shapely.get_coordinates(geoms[points]).tolist()
            point_kml[points] = [
                f"<Point><coordinates>{x!r},{y!r}</coordinates></Point>" for x, y in xy
            ]
        features = zip(polygon_rings(geoms), is_multi, point_kml.tolist(), rows, strict=True)
        for polygons, multi, point, row in features:
            parts = ["<Placemark>"]
            if self._name_index is not None and row[self._name_index] is not None:
                parts.append(f"<name>{_xml_text(text_value(row[self._name_index]))}</name>")
            data = "".join(
                f"{opening}{_xml_text(text_value(value))}</value></Data>"
                for opening, value in zip(self._data_open, row, strict=True)
                if value is not None
            )
            if data:
                parts.append(f"<ExtendedData>{data}</ExtendedData>")
            if point:
                parts.append(point)
            elif polygons and not multi:
                parts.append(_polygon_kml(polygons[0]))
            elif polygons:
                body = "".join(_polygon_kml(rings) for rings in polygons)
                parts.append(f"<MultiGeometry>{body}</MultiGeometry>")
            parts.append("</Placemark>\n")
            chunks.append("".join(parts))
        return "".join(chunks)
