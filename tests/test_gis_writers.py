"""Every export format, written in batches and read back with an independent reader.

Readers: json + shapely.geometry.shape (GeoJSON), pyshp's Reader on the zip members
(Shapefile), xml.etree (KML), csv + shapely.wkt (CSV), sqlite3 with a hand-written
GeoPackage-binary parser + shapely.from_wkb (GeoPackage), and GDAL's ogrinfo when installed.
Input polygons come in both ring orientations, with a hole, and as a MultiPolygon, with
coordinates carrying many decimals so that any loss of precision shows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import shutil
import sqlite3
import struct
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pytest
import shapefile
import shapely
import shapely.wkt
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from jobs.kinds.gis_export.writers import (
    EXPORT_FORMATS,
    Field,
    WrittenFile,
    canonical_format,
    open_writer,
    shapefile_field_names,
)
from jobs.kinds.gis_export.writers.shp import ESRI_WGS84_WKT

KML_NS = {"k": "http://www.opengis.net/kml/2.2"}
LON0, LAT0 = -105.6712345678901, 36.16870432109876  # Penasco, New Mexico


def _ring(x0: float, y0: float, w: float, h: float, *, ccw: bool) -> list[tuple[float, float]]:
    corners = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    if not ccw:
        corners.reverse()
    return [*corners, corners[0]]


CCW_SQUARE = Polygon(_ring(LON0, LAT0, 0.0012345, 0.0011111, ccw=True))
CW_SQUARE = Polygon(_ring(LON0 + 0.01, LAT0, 0.0012345, 0.0011111, ccw=False))
# Both rings wound the "Shapefile way" (shell clockwise, hole counter-clockwise).
WITH_HOLE = Polygon(
    _ring(LON0 + 0.02, LAT0, 0.004, 0.003, ccw=False),
    [_ring(LON0 + 0.021, LAT0 + 0.001, 0.001, 0.001, ccw=True)],
)
MULTI = MultiPolygon(
    [
        Polygon(_ring(LON0 + 0.03, LAT0 + 0.01, 0.001, 0.001, ccw=False)),
        Polygon(
            _ring(LON0 + 0.04, LAT0 + 0.01, 0.003, 0.003, ccw=True),
            [_ring(LON0 + 0.041, LAT0 + 0.011, 0.001, 0.001, ccw=False)],
        ),
    ]
)
GEOMETRIES: list[BaseGeometry] = [CCW_SQUARE, CW_SQUARE, WITH_HOLE, MULTI, CCW_SQUARE]

FIELDS = [
    Field("parcel_id"),
    Field("address"),
    Field("living_area_sqft", "float"),
    Field("year_built", "int"),
    Field("sale_date", "date"),
    Field("arms_length", "bool"),
]
RECORDS: list[dict[str, object]] = [
    {
        "parcel_id": "P-001",
        "address": "12 Calle del Peñasco",
        "living_area_sqft": 1834.25,
        "year_built": 1978,
        "sale_date": dt.date(2021, 6, 30),
        "arms_length": True,
    },
    {
        "parcel_id": "P-002",
        "address": 'Ñandú & <Sons>, "the" shop',
        "living_area_sqft": 0.1 + 0.2,
        "year_built": 2004,
        "sale_date": "2019-01-15",
        "arms_length": False,
    },
    {"parcel_id": "P-003", "address": None, "living_area_sqft": None, "year_built": None},
    {
        "parcel_id": "P-004",
        "address": "Línea 2\nrear lot",
        "living_area_sqft": 960.0,
        "year_built": 1950,
        "sale_date": dt.datetime(2020, 2, 29, 13, 45),
        "arms_length": True,
    },
    {"parcel_id": "P-005", "address": "Taos", "living_area_sqft": 12.5, "year_built": 1900},
]
# The values every format should carry, once coerced (sale_date given as str/datetime too).
EXPECTED: list[dict[str, Any]] = [
    {
        "parcel_id": "P-001",
        "address": "12 Calle del Peñasco",
        "living_area_sqft": 1834.25,
        "year_built": 1978,
        "sale_date": dt.date(2021, 6, 30),
        "arms_length": True,
    },
    {
        "parcel_id": "P-002",
        "address": 'Ñandú & <Sons>, "the" shop',
        "living_area_sqft": 0.1 + 0.2,
        "year_built": 2004,
        "sale_date": dt.date(2019, 1, 15),
        "arms_length": False,
    },
    {
        "parcel_id": "P-003",
        "address": None,
        "living_area_sqft": None,
        "year_built": None,
        "sale_date": None,
        "arms_length": None,
    },
    {
        "parcel_id": "P-004",
        "address": "Línea 2\nrear lot",
        "living_area_sqft": 960.0,
        "year_built": 1950,
        "sale_date": dt.date(2020, 2, 29),
        "arms_length": True,
    },
    {
        "parcel_id": "P-005",
        "address": "Taos",
        "living_area_sqft": 12.5,
        "year_built": 1900,
        "sale_date": None,
        "arms_length": None,
    },
]
EXPECTED_BBOX = tuple(float(v) for v in shapely.total_bounds(np.array(GEOMETRIES)))


def write_all(
    tmp_path: Path,
    fmt: str,
    geometries: list[BaseGeometry | None] | None = None,
    records: list[dict[str, object]] | None = None,
    fields: list[Field] | None = None,
    batch_sizes: tuple[int, ...] = (2, 0, 3),
) -> WrittenFile:
    """Write in several batches (including an empty one) and close."""
    geometries = GEOMETRIES if geometries is None else geometries
    records = RECORDS if records is None else records
    with open_writer(fmt, tmp_path, "parcels", FIELDS if fields is None else fields) as writer:
        start = 0
        for size in batch_sizes:
            writer.write_batch(geometries[start : start + size], records[start : start + size])
            start += size
        assert start == len(records)
        return writer.close()


def assert_same_geometry(actual: BaseGeometry, expected: BaseGeometry) -> None:
    """Same point set and bit-identical vertices (so no precision was lost on the way)."""
    assert actual.equals(expected), (actual.wkt, expected.wkt)
    got = sorted(map(tuple, shapely.get_coordinates(actual).tolist()))
    want = sorted(map(tuple, shapely.get_coordinates(expected).tolist()))
    assert got == want


def exterior_and_hole_orientation(geometry: BaseGeometry) -> tuple[list[bool], list[bool]]:
    """is_ccw of every exterior ring and of every hole, as stored in `geometry`."""
    polygons = shapely.get_parts(geometry)
    exteriors = [p.exterior.is_ccw for p in polygons]
    holes = [ring.is_ccw for p in polygons for ring in p.interiors]
    return exteriors, holes


def text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


# -- readers ---------------------------------------------------------------------------


def read_geojson(path: Path) -> list[tuple[BaseGeometry | None, dict[str, Any]]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc
    out = []
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        geometry = feature["geometry"]
        out.append((None if geometry is None else shape(geometry), feature["properties"]))
    return out


def open_shapefile(path: Path, basename: str = "parcels") -> shapefile.Reader:
    archive = zipfile.ZipFile(path)
    members = {name: archive.read(name) for name in archive.namelist()}
    assert sorted(members) == sorted(f"{basename}.{e}" for e in ("shp", "shx", "dbf", "prj", "cpg"))
    assert members[f"{basename}.prj"].decode("ascii") == ESRI_WGS84_WKT
    assert "WGS_1984" in members[f"{basename}.prj"].decode("ascii")
    assert members[f"{basename}.cpg"].decode("ascii").strip() == "UTF-8"
    return shapefile.Reader(
        shp=io.BytesIO(members[f"{basename}.shp"]),
        shx=io.BytesIO(members[f"{basename}.shx"]),
        dbf=io.BytesIO(members[f"{basename}.dbf"]),
        encoding="utf-8",
    )


def read_shapefile(path: Path) -> list[tuple[BaseGeometry | None, dict[str, Any]]]:
    reader = open_shapefile(path)
    assert reader.shapeType == shapefile.POLYGON
    out = []
    for item in reader.iterShapeRecords():
        geometry = None if item.shape.shapeType == shapefile.NULL else shape(item.shape)
        out.append((geometry, item.record.as_dict()))
    return out


def _kml_polygon(element: ET.Element) -> Polygon:
    def ring(boundary: ET.Element) -> list[tuple[float, float]]:
        text = boundary.findtext("k:LinearRing/k:coordinates", namespaces=KML_NS) or ""
        return [(float(x), float(y)) for x, y in (t.split(",") for t in text.split())]

    outer = element.find("k:outerBoundaryIs", KML_NS)
    assert outer is not None
    return Polygon(ring(outer), [ring(b) for b in element.findall("k:innerBoundaryIs", KML_NS)])


def read_kml(path: Path) -> list[tuple[BaseGeometry | None, dict[str, Any]]]:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.opengis.net/kml/2.2}kml"
    documents = root.findall("k:Document", KML_NS)
    assert len(documents) == 1
    folders = documents[0].findall("k:Folder", KML_NS)
    assert len(folders) == 1
    assert folders[0].findtext("k:name", namespaces=KML_NS) == "parcels"
    out = []
    for placemark in folders[0].findall("k:Placemark", KML_NS):
        data = {
            d.attrib["name"]: d.findtext("k:value", namespaces=KML_NS)
            for d in placemark.findall("k:ExtendedData/k:Data", KML_NS)
        }
        data["<name>"] = placemark.findtext("k:name", namespaces=KML_NS)
        geometry: BaseGeometry | None = None
        polygon = placemark.find("k:Polygon", KML_NS)
        multi = placemark.find("k:MultiGeometry", KML_NS)
        if polygon is not None:
            geometry = _kml_polygon(polygon)
        elif multi is not None:
            geometry = MultiPolygon([_kml_polygon(p) for p in multi.findall("k:Polygon", KML_NS)])
        out.append((geometry, data))
    return out


def read_csv(path: Path) -> list[tuple[BaseGeometry | None, dict[str, Any]]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [*(f.name for f in FIELDS), "WKT"]
        rows = list(reader)
    return [(shapely.wkt.loads(row["WKT"]) if row["WKT"] else None, row) for row in rows]


def parse_gpkg_blob(blob: bytes) -> tuple[BaseGeometry, tuple[float, ...]]:
    """GeoPackage binary (OGC 12-128 section 2.1.3): header, envelope, then WKB."""
    magic, version, flags = blob[:2], blob[2], blob[3]
    assert magic == b"GP"
    assert version == 0
    little_endian = flags & 0b1
    envelope_kind = (flags >> 1) & 0b111
    assert little_endian == 1
    assert envelope_kind == 1
    assert not flags & 0b0001_0000  # not empty
    assert not flags & 0b0010_0000  # standard, not extended, binary
    (srs_id,) = struct.unpack("<i", blob[4:8])
    assert srs_id == 4326
    envelope = struct.unpack("<4d", blob[8:40])
    return shapely.from_wkb(blob[40:]), envelope


def read_gpkg(path: Path) -> list[tuple[BaseGeometry | None, dict[str, Any]]]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 10200
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        srs = {
            r[0]: r[1] for r in db.execute("SELECT srs_id, organization FROM gpkg_spatial_ref_sys")
        }
        assert srs[-1] == "NONE"
        assert srs[0] == "NONE"
        assert srs[4326].upper() == "EPSG"
        contents = db.execute("SELECT table_name, data_type, srs_id FROM gpkg_contents").fetchall()
        assert contents == [("parcels", "features", 4326)]
        columns = db.execute(
            "SELECT table_name, column_name, geometry_type_name, srs_id, z, m "
            "FROM gpkg_geometry_columns"
        ).fetchall()
        assert columns == [("parcels", "geom", "MULTIPOLYGON", 4326, 0, 0)]
        cursor = db.execute("SELECT * FROM parcels ORDER BY fid")
        names = [d[0] for d in cursor.description]
        assert names[:2] == ["fid", "geom"]
        out = []
        for row in cursor.fetchall():
            values = dict(zip(names, row, strict=True))
            blob = values.pop("geom")
            values.pop("fid")
            geometry = None
            if blob is not None:
                geometry, envelope = parse_gpkg_blob(blob)
                min_x, min_y, max_x, max_y = geometry.bounds
                assert envelope == (min_x, max_x, min_y, max_y)
                assert geometry.geom_type == "MultiPolygon"
            out.append((geometry, values))
        return out
    finally:
        db.close()


READERS: dict[str, Callable[[Path], list[tuple[BaseGeometry | None, dict[str, Any]]]]] = {
    "GeoJSON": read_geojson,
    "Shapefile": read_shapefile,
    "KML": read_kml,
    "CSV": read_csv,
    "GeoPackage": read_gpkg,
}


# -- round trips, one per format ------------------------------------------------------


def test_geojson_round_trip(tmp_path: Path) -> None:
    written = write_all(tmp_path, "geojson")
    features = read_geojson(written.path)
    assert len(features) == written.row_count == 5
    for (geometry, properties), expected_geometry, expected in zip(
        features, GEOMETRIES, EXPECTED, strict=True
    ):
        assert geometry is not None
        assert_same_geometry(geometry, expected_geometry)
        want = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in expected.items()}
        assert properties == want
        # RFC 7946 section 3.1.6: exterior rings counter-clockwise, holes clockwise.
        exteriors, holes = exterior_and_hole_orientation(geometry)
        assert all(exteriors)
        assert not any(holes)
    assert [g.geom_type if g else None for g, _ in features] == [g.geom_type for g in GEOMETRIES]
    doc = json.loads(written.path.read_text(encoding="utf-8"))
    assert doc["bbox"] == list(EXPECTED_BBOX)
    assert "Peñasco" in written.path.read_text(encoding="utf-8")  # UTF-8, not \u escapes


def test_shapefile_round_trip(tmp_path: Path) -> None:
    written = write_all(tmp_path, "Shapefile")
    assert written.name == "parcels.shp.zip"
    assert written.content_type == "application/zip"
    reader = open_shapefile(written.path)
    names = [f.name for f in reader.fields[1:]]
    assert all(len(n) <= 10 for n in names)
    assert names == list(written.field_names.values())
    assert written.field_names["living_area_sqft"] == "LIV_AREA"
    assert reader.bbox == pytest.approx(
        [EXPECTED_BBOX[0], EXPECTED_BBOX[1], EXPECTED_BBOX[2], EXPECTED_BBOX[3]]
    )
    features = read_shapefile(written.path)
    assert len(features) == written.row_count == 5
    for i, ((geometry, record), expected_geometry, expected) in enumerate(
        zip(features, GEOMETRIES, EXPECTED, strict=True)
    ):
        assert geometry is not None
        assert_same_geometry(geometry, expected_geometry)
        got = {name: record[written.field_names[name]] for name in expected}
        want = dict(expected)
        if want["address"] is None:
            want["address"] = ""  # a DBF character field has no null
        # N(24,15) keeps 15 decimals, not every bit of a double.
        area, want_area = got.pop("living_area_sqft"), want.pop("living_area_sqft")
        assert area == (None if want_area is None else pytest.approx(want_area, rel=1e-12))
        assert got == want, i
        # Shapefile rule: outer rings clockwise, holes counter-clockwise - read off the raw
        # parts, not through a library that might rewind them.
        shp = reader.shape(i)
        bounds = [*shp.parts, len(shp.points)]
        rings = [shp.points[a:b] for a, b in itertools.pairwise(bounds)]
        rings_ccw = [shapely.LinearRing(ring).is_ccw for ring in rings]
        exteriors, holes = exterior_and_hole_orientation(expected_geometry)
        assert rings_ccw.count(False) == len(exteriors)
        assert rings_ccw.count(True) == len(holes)


def test_kml_round_trip(tmp_path: Path) -> None:
    written = write_all(tmp_path, "kml")
    assert written.content_type == "application/vnd.google-earth.kml+xml"
    placemarks = read_kml(written.path)
    assert len(placemarks) == written.row_count == 5
    for (geometry, data), expected_geometry, expected in zip(
        placemarks, GEOMETRIES, EXPECTED, strict=True
    ):
        assert geometry is not None
        assert_same_geometry(geometry, expected_geometry)
        assert geometry.geom_type == expected_geometry.geom_type
        exteriors, holes = exterior_and_hole_orientation(geometry)
        assert all(exteriors)
        assert not any(holes)
        assert data.pop("<name>") == expected["parcel_id"]
        # A missing value is an absent <Data>, not an empty string.
        assert data == {k: text_of(v) for k, v in expected.items() if v is not None}


def test_csv_round_trip(tmp_path: Path) -> None:
    written = write_all(tmp_path, "CSV")
    rows = read_csv(written.path)
    assert len(rows) == written.row_count == 5
    for (geometry, row), expected_geometry, expected in zip(
        rows, GEOMETRIES, EXPECTED, strict=True
    ):
        assert geometry is not None
        assert_same_geometry(geometry, expected_geometry)
        assert all(exterior_and_hole_orientation(geometry)[0])
        row.pop("WKT")
        assert row == {k: text_of(v) for k, v in expected.items()}
    assert float(rows[1][1]["living_area_sqft"]) == 0.1 + 0.2


def test_geopackage_round_trip(tmp_path: Path) -> None:
    written = write_all(tmp_path, "GeoPackage")
    assert written.name == "parcels.gpkg"
    assert written.path.read_bytes()[:16] == b"SQLite format 3\x00"
    features = read_gpkg(written.path)
    assert len(features) == written.row_count == 5
    for (geometry, values), expected_geometry, expected in zip(
        features, GEOMETRIES, EXPECTED, strict=True
    ):
        assert geometry is not None
        assert_same_geometry(geometry, expected_geometry)
        want = {
            k: v.isoformat() if isinstance(v, dt.date) else int(v) if isinstance(v, bool) else v
            for k, v in expected.items()
        }
        assert values == want
    db = sqlite3.connect(written.path)
    extent = db.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents").fetchone()
    last_change = db.execute("SELECT last_change FROM gpkg_contents").fetchone()[0]
    db.close()
    assert extent == EXPECTED_BBOX
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", last_change)


# -- behaviour shared by all formats --------------------------------------------------


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_written_file_describes_the_output(tmp_path: Path, fmt: str) -> None:
    written = write_all(tmp_path, fmt)
    assert written.format == fmt
    assert written.path.exists()
    assert written.path.parent == tmp_path
    assert written.name == written.path.name
    assert written.size_bytes == written.path.stat().st_size > 0
    assert written.row_count == 5
    assert written.bbox == EXPECTED_BBOX
    assert written.crs == "EPSG:4326"
    assert set(written.field_names) == {f.name for f in FIELDS}
    # Nothing but the output is left behind (no loose Shapefile parts, no journals).
    assert [p.name for p in tmp_path.iterdir()] == [written.name]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_empty_export_is_a_valid_file(tmp_path: Path, fmt: str) -> None:
    written = write_all(tmp_path, fmt, geometries=[], records=[], batch_sizes=())
    assert written.row_count == 0
    assert written.bbox is None
    assert READERS[fmt](written.path) == []
    if fmt == "GeoJSON":
        assert "bbox" not in json.loads(written.path.read_text(encoding="utf-8"))
    if fmt == "GeoPackage":
        db = sqlite3.connect(written.path)
        assert db.execute("SELECT min_x FROM gpkg_contents").fetchone() == (None,)
        db.close()


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_missing_and_empty_geometries_are_written_as_null(tmp_path: Path, fmt: str) -> None:
    written = write_all(
        tmp_path,
        fmt,
        geometries=[None, Polygon(), CCW_SQUARE],
        records=RECORDS[:3],
        batch_sizes=(3,),
    )
    features = READERS[fmt](written.path)
    assert [g is None for g, _ in features] == [True, True, False]
    assert written.bbox == CCW_SQUARE.bounds


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_z_coordinates_are_dropped(tmp_path: Path, fmt: str) -> None:
    with_z = shapely.force_3d(CW_SQUARE, z=1500.0)
    written = write_all(tmp_path, fmt, geometries=[with_z], records=RECORDS[:1], batch_sizes=(1,))
    (geometry, _), *_ = READERS[fmt](written.path)
    assert geometry is not None
    assert not geometry.has_z
    assert_same_geometry(geometry, CW_SQUARE)


def _on_disk(tmp_path: Path, fmt: str, path: Path) -> int:
    """How much of the export is on disk before close (rows for GeoPackage, else bytes)."""
    if fmt == "GeoPackage":
        db = sqlite3.connect(path)
        try:
            return int(db.execute("SELECT count(*) FROM parcels").fetchone()[0])
        finally:
            db.close()
    if fmt == "Shapefile":
        return sum(p.stat().st_size for p in tmp_path.glob(".parcels.shp-parts/*.dbf"))
    return path.stat().st_size


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_each_batch_reaches_disk_before_close(tmp_path: Path, fmt: str) -> None:
    with open_writer(fmt, tmp_path, "parcels", FIELDS) as writer:
        writer.write_batch(GEOMETRIES[:2], RECORDS[:2])
        after_first = _on_disk(tmp_path, fmt, writer.path)
        writer.write_batch(GEOMETRIES[2:], RECORDS[2:])
        after_second = _on_disk(tmp_path, fmt, writer.path)
        assert 0 < after_first < after_second
        if fmt == "GeoPackage":
            assert (after_first, after_second) == (2, 5)
        writer.close()


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_remove_partial_deletes_an_unfinished_export(tmp_path: Path, fmt: str) -> None:
    writer = open_writer(fmt, tmp_path, "parcels", FIELDS)
    writer.write_batch(GEOMETRIES[:2], RECORDS[:2])
    writer.remove_partial()
    assert list(tmp_path.iterdir()) == []
    writer.remove_partial()  # idempotent
    with pytest.raises(RuntimeError):
        writer.write_batch(GEOMETRIES[:1], RECORDS[:1])


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_remove_partial_after_close_deletes_the_file(tmp_path: Path, fmt: str) -> None:
    writer = open_writer(fmt, tmp_path, "parcels", FIELDS)
    writer.write_batch(GEOMETRIES, RECORDS)
    writer.close()
    writer.remove_partial()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_leaving_the_block_on_error_removes_the_file(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(KeyError), open_writer(fmt, tmp_path, "parcels", FIELDS) as writer:
        writer.write_batch(GEOMETRIES, RECORDS)
        raise KeyError("database went away")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_a_bad_record_fails_its_batch_without_writing_any_of_it(tmp_path: Path, fmt: str) -> None:
    with open_writer(fmt, tmp_path, "parcels", FIELDS) as writer:
        writer.write_batch(GEOMETRIES[:2], RECORDS[:2])
        bad = [dict(RECORDS[2]), {**RECORDS[3], "year_built": "nineteen fifty"}]
        with pytest.raises(ValueError, match=r"feature 3, field 'year_built'.*not a valid int"):
            writer.write_batch(GEOMETRIES[2:4], bad)
        written = writer.close()
    assert written.row_count == 2
    assert len(READERS[fmt](written.path)) == 2


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_rerun_replaces_a_previous_attempt(tmp_path: Path, fmt: str) -> None:
    write_all(tmp_path, fmt)
    written = write_all(
        tmp_path, fmt, geometries=GEOMETRIES[:1], records=RECORDS[:1], batch_sizes=(1,)
    )
    assert len(READERS[fmt](written.path)) == 1


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("rows", [5, 0])
def test_gdal_reads_every_format(tmp_path: Path, fmt: str, rows: int) -> None:
    """Cross-check with GDAL, the reader behind QGIS and most GIS tools, when it is here."""
    ogrinfo = shutil.which("ogrinfo")
    if ogrinfo is None:
        pytest.skip("ogrinfo (GDAL, Debian package gdal-bin) is not installed")
    batch_sizes = (2, 0, 3) if rows else ()
    written = write_all(tmp_path, fmt, GEOMETRIES[:rows], RECORDS[:rows], batch_sizes=batch_sizes)
    options = (
        ["-oo", "GEOM_POSSIBLE_NAMES=WKT", "-oo", "KEEP_GEOM_COLUMNS=NO"] if fmt == "CSV" else []
    )
    result = subprocess.run(
        [ogrinfo, "-ro", "-so", "-al", *options, str(written.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    counts = re.findall(r"Feature Count: (\d+)", result.stdout)
    assert counts == [str(rows)], result.stdout


# -- Shapefile specifics ---------------------------------------------------------------


def test_shapefile_field_names_mapping() -> None:
    fields = [
        Field("parcel_id"),
        Field("living_area_sqft", "float"),
        Field("neighborhood"),
        Field("assessment_district_a"),
        Field("assessment_district_b"),
        Field("assessment_district_c"),
        Field("2024 value", "float"),
        Field("año"),
        Field("LIV_AREA"),
    ]
    mapping = shapefile_field_names(fields)
    assert mapping == {
        "parcel_id": "PARCEL_ID",
        "living_area_sqft": "LIV_AREA",
        "neighborhood": "NBHD",
        "assessment_district_a": "ASSESSMENT",
        "assessment_district_b": "ASSESSME_1",
        "assessment_district_c": "ASSESSME_2",
        "2024 value": "F2024_VALU",
        "año": "A_O",
        "LIV_AREA": "LIV_AREA_1",
    }
    assert shapefile_field_names(fields) == mapping  # deterministic
    assert all(len(name) <= 10 for name in mapping.values())


def test_shapefile_long_text_is_cut_at_a_character_boundary(tmp_path: Path) -> None:
    long_text = "ñ" * 200  # 400 bytes of UTF-8
    written = write_all(
        tmp_path,
        "Shapefile",
        geometries=[CCW_SQUARE],
        records=[{"parcel_id": "P", "address": long_text}],
        batch_sizes=(1,),
    )
    ((_, record),) = read_shapefile(written.path)
    assert record["ADDRESS"] == "ñ" * 127


def test_shapefile_without_fields_gets_a_row_number(tmp_path: Path) -> None:
    written = write_all(
        tmp_path,
        "Shapefile",
        geometries=GEOMETRIES[:2],
        records=[{}, {}],
        fields=[],
        batch_sizes=(1, 1),
    )
    assert [r for _, r in read_shapefile(written.path)] == [{"FID": 1}, {"FID": 2}]


def test_shapefile_basename_with_a_dot(tmp_path: Path) -> None:
    with open_writer("Shapefile", tmp_path, "parcels.2024", FIELDS) as writer:
        writer.write_batch(GEOMETRIES, RECORDS)
        written = writer.close()
    assert written.name == "parcels.2024.shp.zip"
    reader = open_shapefile(written.path, basename="parcels.2024")
    assert len(reader) == 5


# -- the interface -----------------------------------------------------------------------


def test_canonical_format() -> None:
    assert EXPORT_FORMATS == ("GeoJSON", "Shapefile", "KML", "CSV", "GeoPackage")
    assert canonical_format("geojson") == "GeoJSON"
    assert canonical_format(" SHAPEFILE ") == "Shapefile"
    assert canonical_format("geopackage") == "GeoPackage"
    with pytest.raises(ValueError, match="allowed: GeoJSON, Shapefile, KML, CSV, GeoPackage"):
        canonical_format("SHP")


def test_extension_and_content_type(tmp_path: Path) -> None:
    expected = {
        "GeoJSON": ("geojson", "application/geo+json"),
        "Shapefile": ("shp.zip", "application/zip"),
        "KML": ("kml", "application/vnd.google-earth.kml+xml"),
        "CSV": ("csv", "text/csv; charset=utf-8"),
        "GeoPackage": ("gpkg", "application/geopackage+sqlite3"),
    }
    for fmt, (extension, content_type) in expected.items():
        writer = open_writer(fmt, tmp_path, "x", FIELDS)
        assert (writer.extension, writer.content_type) == (extension, content_type)
        writer.remove_partial()


def test_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        open_writer("CSV", tmp_path, "../escape", FIELDS)
    with pytest.raises(ValueError, match="duplicate field name"):
        open_writer("CSV", tmp_path, "x", [Field("a"), Field("A")])
    with pytest.raises(ValueError, match="type 'text' is not one of"):
        Field("a", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reserved"):
        open_writer("CSV", tmp_path, "x", [Field("WKT")])
    with pytest.raises(ValueError, match="reserved"):
        open_writer("GeoPackage", tmp_path, "x", [Field("geom")])
    with open_writer("GeoJSON", tmp_path, "x", FIELDS) as writer:
        with pytest.raises(ValueError, match="got 2 geometries for 1 records"):
            writer.write_batch(GEOMETRIES[:2], RECORDS[:1])
        with pytest.raises(ValueError, match="geometry type Point is not supported"):
            writer.write_batch([shapely.Point(1, 2)], RECORDS[:1])
        with pytest.raises(TypeError, match="must be a shapely geometry"):
            not_a_geometry: list[Any] = ["POLYGON EMPTY"]
            writer.write_batch(not_a_geometry, RECORDS[:1])
        with pytest.raises(ValueError, match="field 'arms_length'"):
            writer.write_batch(GEOMETRIES[:1], [{"arms_length": "yes"}])
        with pytest.raises(ValueError, match="field 'sale_date'"):
            writer.write_batch(GEOMETRIES[:1], [{"sale_date": "31/12/2020"}])
        writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.close()


def test_numpy_input_and_not_a_number(tmp_path: Path) -> None:
    geometries = np.array(GEOMETRIES[:2], dtype=object)
    records: list[dict[str, object]] = [
        {"parcel_id": "A", "year_built": np.int64(1990), "living_area_sqft": float("nan")},
        {"parcel_id": "B", "year_built": 2001.0, "living_area_sqft": np.float32(2.5)},
    ]
    with open_writer("GeoJSON", tmp_path, "x", FIELDS) as writer:
        writer.write_batch(geometries, records)
        written = writer.close()
    properties = [p for _, p in read_geojson(written.path)]
    assert [p["year_built"] for p in properties] == [1990, 2001]
    assert [p["living_area_sqft"] for p in properties] == [None, 2.5]


# -- point layers (parcels imported by lon/lat) ------------------------------------------------

POINTS = [shapely.Point(LON0 + i * 0.0012345678901, LAT0 - i * 0.000987654321) for i in range(4)]


def read_with_gdal(path: Path) -> tuple[str, list[BaseGeometry], list[str]]:
    """(declared geometry type, geometries, parcel ids) as GDAL reads the file, with no
    options: what QGIS or ogr2ogr would see when the file is opened."""
    meta, _, wkb, values = pyogrio.raw.read(str(path))
    names = [name.lower() for name in meta["fields"].tolist()]
    ids = values[names.index("parcel_id")].tolist()
    return meta["geometry_type"], list(shapely.from_wkb(wkb)), ids


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_a_point_layer_reads_back_as_points(tmp_path: Path, fmt: str) -> None:
    """Parcels imported by lon/lat could not be exported in any format; every format now
    writes them as points (a Shapefile of POINT shapes), and GDAL reads them back unchanged.
    The CSV's geometry column is named WKT, which GDAL takes as the geometry unasked."""
    records = RECORDS[: len(POINTS)]
    with open_writer(fmt, tmp_path, "parcels", FIELDS, geometry="point") as writer:
        writer.write_batch(POINTS[:3], records[:3])
        writer.write_batch(POINTS[3:], records[3:])
        written = writer.close()
    assert written.row_count == len(POINTS)
    assert written.bbox == tuple(float(v) for v in shapely.total_bounds(np.array(POINTS)))
    declared, geometries, ids = read_with_gdal(written.path)
    # Text formats declare no type; GDAL reports what it finds in them.
    assert declared == "Point" or (fmt in ("CSV", "KML") and declared == "Unknown"), declared
    assert ids == [r["parcel_id"] for r in records]
    for got, want in zip(geometries, POINTS, strict=True):
        assert got.geom_type == "Point"
        assert (got.x, got.y) == (want.x, want.y)


@pytest.mark.parametrize("fmt", [f for f in EXPORT_FORMATS if f != "Shapefile"])
def test_a_mixed_layer_keeps_lots_and_points(tmp_path: Path, fmt: str) -> None:
    mixed = [GEOMETRIES[0], POINTS[0], GEOMETRIES[2]]
    with open_writer(fmt, tmp_path, "parcels", FIELDS, geometry="mixed") as writer:
        writer.write_batch(mixed, RECORDS[:3])
        written = writer.close()
    _, geometries, ids = read_with_gdal(written.path)
    assert ids == [r["parcel_id"] for r in RECORDS[:3]]
    assert [g.geom_type for g in geometries][1] == "Point"
    assert shapely.equals(geometries[0], mixed[0]) and shapely.equals(geometries[2], mixed[2])


def test_a_shapefile_refuses_a_mixed_layer_and_each_layer_its_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one shape type"):
        open_writer("Shapefile", tmp_path, "x", FIELDS, geometry="mixed")
    with (
        open_writer("Shapefile", tmp_path, "x", FIELDS, geometry="point") as writer,
        pytest.raises(ValueError, match="Polygon is not supported in a point layer"),
    ):
        writer.write_batch([GEOMETRIES[0]], RECORDS[:1])
    assert list(tmp_path.iterdir()) == []
