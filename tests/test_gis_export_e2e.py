"""GIS exports end to end, every file read back by a reader that shares no code with the writers.

Each format's export of a bbox, a Polygon with a hole and a MultiPolygon must hold exactly the
lots that intersect the area (shapely on the database's own geometries decides which), with
the attributes of the parcels, assessments and sales layers as the database has them, and a
recordCount / sizeBytes equal to what was downloaded. Lots are stored in both ring orientations.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
import shutil
import sqlite3
import struct
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.demo_data import load_demo_county
from app.importer import import_file
from jobs.spec import JobKind
from tests.builders import compute
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import gql_data, subscribe
from tests.test_job_flow import download, mutation

FORMATS = ("GeoJSON", "Shapefile", "KML", "CSV", "GeoPackage")
LAYERS = ["PARCELS", "ASSESSMENTS", "SALES"]
KML = "{http://www.opengis.net/kml/2.2}"

WATCH = """
subscription($id: ID!) {
  jobUpdated(id: $id) {
    id status message progress { percent step processed total } error { code message }
    ... on GisExportJob { result {
        recordCount bbox crs fieldNames { attribute field }
        file { name url sizeBytes rowCount contentType } } }
  }
}
"""

PARCEL_COLUMNS = (
    "address",
    "zip_code",
    "neighborhood",
    "property_class",
    "year_built",
    "living_area_sqft",
    "lot_size_sqft",
    "bedrooms",
    "bathrooms",
)
ASSESSMENT_COLUMNS = ("tax_year", "land_value", "improvement_value", "assessed_value")


# -- county set-up ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lots:
    parcel_id: np.ndarray
    geometry: np.ndarray

    def ids(self, mask: np.ndarray) -> set[str]:
        return set(self.parcel_id[mask].tolist())


async def read_lots(engine: AsyncEngine, county: str) -> Lots:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT parcel_id, geometry::text FROM parcels WHERE county_id = :c"),
                {"c": county},
            )
        ).all()
    return Lots(
        np.array([r[0] for r in rows], dtype=object),
        shapely.from_geojson(np.array([r[1] for r in rows], dtype=object)),
    )


async def store_every_third_lot_clockwise(engine: AsyncEngine, county: str) -> set[str]:
    """Rewrite a third of the stored lots with clockwise exterior rings, as data loaded by
    another tool may have them (the importer orients them counter-clockwise)."""
    lots = await read_lots(engine, county)
    chosen = np.arange(len(lots.parcel_id)) % 3 == 0
    reversed_json = shapely.to_geojson(shapely.reverse(lots.geometry[chosen])).tolist()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE parcels SET geometry = CAST(:g AS jsonb)"
                " WHERE county_id = :c AND parcel_id = :p"
            ),
            [
                {"g": g, "c": county, "p": p}
                for g, p in zip(reversed_json, lots.parcel_id[chosen].tolist(), strict=True)
            ],
        )
    stored = await read_lots(engine, county)
    exteriors = shapely.get_exterior_ring(stored.geometry)
    clockwise = ~shapely.is_ccw(exteriors)
    assert clockwise.sum() == chosen.sum() and (~clockwise).any()
    return stored.ids(clockwise)


async def sold_parcels(engine: AsyncEngine, county: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT parcel_id FROM sales WHERE county_id = :c AND arms_length"),
            {"c": county},
        )
        return set(rows.scalars())


async def add_later_private_sales(engine: AsyncEngine, county: str, parcels: list[str]) -> None:
    """Give parcels with an arm's-length sale a later non-arm's-length one, which the sales
    layer must pass over."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """INSERT INTO sales (county_id, parcel_id, sale_date, sale_price, arms_length)
                   VALUES (:c, :p, '2024-12-30', 5000, false)"""
            ),
            [{"c": county, "p": p} for p in parcels],
        )


def areas(lots: Lots) -> dict[str, dict[str, Any]]:
    """A bbox, a Polygon with a hole (exterior given clockwise, against RFC 7946, which a
    hand-drawn area may well be) and a MultiPolygon of one counter-clockwise and one clockwise
    part, placed over the county's extent."""
    x0, y0, x1, y1 = shapely.total_bounds(lots.geometry)
    w, h = x1 - x0, y1 - y0

    def at(fx: float, fy: float) -> list[float]:
        return [x0 + fx * w, y0 + fy * h]

    shell_ccw = [at(0.30, 0.25), at(0.80, 0.35), at(0.70, 0.80), at(0.35, 0.70), at(0.30, 0.25)]
    hole_cw = [at(0.45, 0.45), at(0.50, 0.60), at(0.62, 0.55), at(0.58, 0.43), at(0.45, 0.45)]
    part_a = [at(0.10, 0.55), at(0.35, 0.75), at(0.15, 0.90), at(0.10, 0.55)]
    part_b = [at(0.70, 0.10), at(0.75, 0.35), at(0.92, 0.20), at(0.70, 0.10)]
    return {
        "bbox": {"type": "bbox", "coordinates": [*at(0.0, 0.0), *at(0.55, 0.5)]},
        "polygon": {"type": "Polygon", "coordinates": [shell_ccw[::-1], hole_cw[::-1]]},
        "multipolygon": {"type": "MultiPolygon", "coordinates": [[part_a], [part_b[::-1]]]},
    }


def area_input(area: Mapping[str, Any]) -> dict[str, Any]:
    """An area of `areas` as the typed `AreaOfInterest` input."""
    if area["type"] == "bbox":
        return {
            "bbox": dict(
                zip(("minLon", "minLat", "maxLon", "maxLat"), area["coordinates"], strict=True)
            )
        }
    return {"geometry": dict(area)}


def area_geometry(area: Mapping[str, Any]) -> BaseGeometry:
    if area["type"] == "bbox":
        return shapely.box(*area["coordinates"])
    return shape(area)


def expected_lots(lots: Lots, area: Mapping[str, Any]) -> np.ndarray:
    """Which lots intersect the area, and a check that the area cuts through lots and leaves
    out lots inside its bounding box, so an export that skipped the exact test would fail."""
    geometry = area_geometry(area)
    inside = shapely.intersects(lots.geometry, geometry)
    straddling = inside & ~shapely.within(lots.geometry, geometry)
    assert 0 < inside.sum() < len(inside)
    assert straddling.any()
    if area["type"] != "bbox":
        in_box = shapely.intersects(lots.geometry, shapely.box(*geometry.bounds))
        assert (in_box & ~inside).any()
    return inside


# -- running exports --------------------------------------------------------------------------


async def run_exports(
    app: RunningApp, worker: WorkerControl, inputs: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """Submit every export with no worker running, subscribe to each, then start the worker;
    returns each job's updates, the first being PENDING and the last final."""
    ids = [
        (await gql_data(app.url, mutation("runGisExport"), {"input": i}))["runGisExport"]["id"]
        for i in inputs
    ]
    async with AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(subscribe(app.ws_url, WATCH, {"id": job_id}))
            for job_id in ids
        ]
        firsts = [await sub.next() for sub in subs]
        await worker.start()
        runs = [
            [first, *await sub.collect(timeout=120)]
            for first, sub in zip(firsts, subs, strict=True)
        ]
    return [[p["data"]["jobUpdated"] for p in run if p is not None] for run in runs]


def final(updates: list[dict[str, Any]], status: str = "COMPLETED") -> dict[str, Any]:
    assert updates[0]["status"] == "PENDING", updates[0]
    assert updates[-1]["status"] == status, updates[-1]
    return updates[-1]


# -- independent readers ----------------------------------------------------------------------


@dataclass
class Feature:
    parcel_id: str
    geometry: BaseGeometry | None
    attributes: dict[str, Any]


def read_geojson(body: bytes, _result: Mapping[str, Any], _tmp: Path) -> list[Feature]:
    collection = json.loads(body)
    assert collection["type"] == "FeatureCollection"
    assert "crs" not in collection  # RFC 7946 section 4: WGS 84 only, no crs member
    features = []
    for item in collection["features"]:
        geometry = shape(item["geometry"])
        # RFC 7946 section 3.1.6: exterior rings counter-clockwise, holes clockwise.
        for polygon in getattr(geometry, "geoms", [geometry]):
            assert polygon.exterior.is_ccw, item["properties"]["parcel_id"]
            assert not any(ring.is_ccw for ring in polygon.interiors)
        properties = item["properties"]
        features.append(Feature(properties["parcel_id"], geometry, properties))
    return features


def read_shapefile(body: bytes, result: Mapping[str, Any], _tmp: Path) -> list[Feature]:
    archive = zipfile.ZipFile(io.BytesIO(body))
    members = {Path(name).suffix: name for name in archive.namelist()}
    assert {".shp", ".shx", ".dbf", ".prj"} <= members.keys(), members
    prj = archive.read(members[".prj"]).decode("ascii")
    assert prj.startswith("GEOGCS[") and "WGS_1984" in prj, prj
    reader = shapefile.Reader(
        shp=io.BytesIO(archive.read(members[".shp"])),
        shx=io.BytesIO(archive.read(members[".shx"])),
        dbf=io.BytesIO(archive.read(members[".dbf"])),
        encoding="utf-8",
    )
    assert reader.shapeType == shapefile.POLYGON
    # The DBF's 10-character names, mapped back to attribute names by the result's fieldNames.
    attribute_of = {f["field"]: f["attribute"] for f in result["fieldNames"]}
    features = []
    for record in reader.iterShapeRecords():
        attributes = {attribute_of[k]: v for k, v in record.record.as_dict().items()}
        geometry = shape(record.shape.__geo_interface__)
        features.append(Feature(attributes["parcel_id"], geometry, attributes))
    return features


def _kml_ring(element: ET.Element) -> list[tuple[float, float]]:
    coordinates = element.findtext(f"{KML}LinearRing/{KML}coordinates") or ""
    return [(float(x), float(y)) for x, y in (p.split(",")[:2] for p in coordinates.split())]


def _kml_polygon(element: ET.Element) -> Polygon:
    shell = _kml_ring(element.find(f"{KML}outerBoundaryIs"))  # type: ignore[arg-type]
    holes = [_kml_ring(e) for e in element.findall(f"{KML}innerBoundaryIs")]
    return Polygon(shell, holes)


def read_kml(body: bytes, _result: Mapping[str, Any], _tmp: Path) -> list[Feature]:
    root = ET.fromstring(body)
    assert root.tag == f"{KML}kml"
    features = []
    for placemark in root.iter(f"{KML}Placemark"):
        attributes = {
            data.attrib["name"]: data.findtext(f"{KML}value")
            for data in placemark.iter(f"{KML}Data")
        }
        parcel_id = placemark.findtext(f"{KML}name")
        assert parcel_id is not None and parcel_id == attributes["parcel_id"]
        multi = placemark.find(f"{KML}MultiGeometry")
        geometry: BaseGeometry
        if multi is not None:
            geometry = MultiPolygon([_kml_polygon(p) for p in multi.findall(f"{KML}Polygon")])
        else:
            geometry = _kml_polygon(placemark.find(f"{KML}Polygon"))  # type: ignore[arg-type]
        features.append(Feature(parcel_id, geometry, attributes))
    return features


def read_csv(body: bytes, _result: Mapping[str, Any], _tmp: Path) -> list[Feature]:
    rows = csv.DictReader(io.StringIO(body.decode("utf-8"), newline=""))
    return [Feature(row["parcel_id"], shapely.wkt.loads(row.pop("WKT")), row) for row in rows]


def read_geopackage(body: bytes, _result: Mapping[str, Any], tmp: Path) -> list[Feature]:
    path = tmp / "export.gpkg"
    path.write_bytes(body)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        ((table, srs_id),) = db.execute(
            "SELECT table_name, srs_id FROM gpkg_contents WHERE data_type = 'features'"
        ).fetchall()
        assert srs_id == 4326
        (geometry_column,) = db.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ? AND srs_id = 4326",
            (table,),
        ).fetchone()
        organization = db.execute(
            "SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys"
            " WHERE srs_id = 4326"
        ).fetchone()
        assert organization == ("EPSG", 4326)
        cursor = db.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
    features = []
    for row in rows:
        geometry = _gpkg_geometry(row.pop(geometry_column))
        row.pop("fid")
        features.append(Feature(row["parcel_id"], geometry, row))
    return features


def _gpkg_geometry(blob: bytes) -> BaseGeometry:
    """GeoPackage binary (OGC 12-128r15 section 2.1.3): "GP", version, flags, srs_id,
    envelope, then WKB. The envelope must bound the geometry."""
    assert blob[:2] == b"GP" and blob[2] == 0
    flags = blob[3]
    order = "<" if flags & 1 else ">"
    (srs_id,) = struct.unpack(f"{order}i", blob[4:8])
    assert srs_id == 4326
    doubles = {0: 0, 1: 4, 2: 6, 3: 6, 4: 8}[(flags >> 1) & 0b111]
    envelope = struct.unpack(f"{order}{doubles}d", blob[8 : 8 + 8 * doubles])
    geometry = shapely.from_wkb(blob[8 + 8 * doubles :])
    assert doubles >= 4
    min_x, max_x, min_y, max_y = envelope[:4]
    assert (min_x, min_y, max_x, max_y) == pytest.approx(geometry.bounds, abs=1e-12)
    return geometry


READERS = {
    "GeoJSON": read_geojson,
    "Shapefile": read_shapefile,
    "KML": read_kml,
    "CSV": read_csv,
    "GeoPackage": read_geopackage,
}


# -- the database's view of the attributes ----------------------------------------------------


async def database_attributes(
    engine: AsyncEngine, county: str, parcel_ids: list[str], tax_year: int
) -> dict[str, dict[str, Any]]:
    """Every exported attribute of some parcels, read with SQL written for the test: the
    assessment of `tax_year` and the latest arm's-length sale."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"""SELECT p.parcel_id, {", ".join(f"p.{c}" for c in PARCEL_COLUMNS)},
                           a.tax_year, a.land_value, a.improvement_value, a.assessed_value,
                           (SELECT s.sale_date FROM sales s
                             WHERE s.county_id = p.county_id AND s.parcel_id = p.parcel_id
                               AND s.arms_length ORDER BY s.sale_date DESC LIMIT 1)
                             AS last_sale_date,
                           (SELECT s.sale_price FROM sales s
                             WHERE s.county_id = p.county_id AND s.parcel_id = p.parcel_id
                               AND s.arms_length ORDER BY s.sale_date DESC LIMIT 1)
                             AS last_sale_price
                       FROM parcels p LEFT JOIN assessments a
                         ON a.county_id = p.county_id AND a.parcel_id = p.parcel_id
                        AND a.tax_year = :year
                       WHERE p.county_id = :c AND p.parcel_id = ANY(:ids)"""
                ),
                {"c": county, "ids": parcel_ids, "year": tax_year},
            )
        ).mappings()
        return {row["parcel_id"]: dict(row) for row in rows}


def same_lot(written: BaseGeometry, stored: BaseGeometry) -> bool:
    """The same vertices, whatever the ring orientation or start, and with a GeoPackage's
    single-part MultiPolygon (every geometry is promoted, to fit a MULTIPOLYGON column)
    standing for the Polygon it holds."""
    if isinstance(written, MultiPolygon) and len(written.geoms) == 1:
        written = written.geoms[0]
    return bool(
        shapely.equals_exact(shapely.normalize(written), shapely.normalize(stored), tolerance=0)
    )


def same_value(expected: Any, actual: Any) -> bool:
    """Equality across the formats' encodings: text formats carry everything as text, and
    a missing value is null, an empty cell, or absent."""
    if expected is None:
        return actual in (None, "")
    if isinstance(expected, dt.date):
        return str(actual)[:10] == expected.isoformat()
    if isinstance(expected, int | float):
        return actual not in (None, "") and float(actual) == pytest.approx(float(expected))
    return str(actual) == expected


def sample_parcels(ids: set[str], sold: set[str], private_later: list[str]) -> list[str]:
    """A few parcels of the export: with a later private sale, with only arm's-length sales,
    and never sold."""
    assert private_later, "no sold parcel in the area"
    ordered = sorted(ids)
    never_sold = [p for p in ordered if p not in sold][:2]
    arms_length_last = [p for p in ordered if p in sold and p not in private_later][:2]
    return [*private_later, *arms_length_last, *never_sold]


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_export_holds_exactly_the_lots_of_the_area(
    app_server: RunningApp,
    worker: WorkerControl,
    county: str,
    engine: AsyncEngine,
    tmp_path: Path,
    fmt: str,
) -> None:
    clockwise = await store_every_third_lot_clockwise(engine, county)
    lots = await read_lots(engine, county)
    sold = await sold_parcels(engine, county)
    async with engine.connect() as conn:
        latest_year = (
            await conn.execute(
                text("SELECT max(tax_year) FROM assessments WHERE county_id = :c"), {"c": county}
            )
        ).scalar_one()
    shapes = areas(lots)
    expected_ids = {name: lots.ids(expected_lots(lots, area)) for name, area in shapes.items()}
    private_later = {name: sorted(ids & sold)[:2] for name, ids in expected_ids.items()}
    await add_later_private_sales(engine, county, sorted(set().union(*private_later.values())))
    # The bbox export asks for an earlier tax year; the others get the latest by default.
    tax_years = {"bbox": latest_year - 2, "polygon": latest_year, "multipolygon": latest_year}
    inputs = [
        {
            "exportFormat": fmt.upper(),
            "countyId": county,
            "layers": LAYERS,
            "areaOfInterest": area_input(area),
            "parameters": {"taxYear": tax_years[name]} if name == "bbox" else None,
        }
        for name, area in shapes.items()
    ]
    runs = await run_exports(app_server, worker, inputs)
    by_id = dict(zip(lots.parcel_id.tolist(), lots.geometry.tolist(), strict=True))
    for (name, area), updates in zip(shapes.items(), runs, strict=True):
        result = final(updates)["result"]
        inside = expected_lots(lots, area)
        expected = expected_ids[name]
        body = await download(app_server, result["file"]["url"])
        assert len(body) == result["file"]["sizeBytes"], name
        features = READERS[fmt](body, result, tmp_path)
        got = [f.parcel_id for f in features]
        assert len(got) == len(set(got)), f"{name}: a lot written twice"
        assert set(got) == expected, f"{name}: {sorted(set(got) ^ expected)[:5]}"
        assert result["recordCount"] == result["file"]["rowCount"] == len(features)
        assert result["crs"] == "EPSG:4326"
        assert result["bbox"] == pytest.approx(
            list(shapely.total_bounds(lots.geometry[inside])), abs=1e-12
        )
        assert expected & clockwise and expected - clockwise, name
        for feature in features:
            assert feature.geometry is not None
            assert same_lot(feature.geometry, by_id[feature.parcel_id]), feature.parcel_id
        picks = sample_parcels(expected, sold, private_later[name])
        truth = await database_attributes(engine, county, picks, tax_years[name])
        attributes = {f.parcel_id: f.attributes for f in features}
        for parcel_id in picks:
            for column, value in truth[parcel_id].items():
                actual = attributes[parcel_id].get(column)
                assert same_value(value, actual), (name, parcel_id, column, value, actual)


async def test_progress_is_reported_per_batch(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    lots = await read_lots(engine, county)
    (updates,) = await run_exports(
        app_server,
        worker,
        [
            {
                "exportFormat": "GEOPACKAGE",
                "countyId": county,
                "layers": ["PARCELS"],
                "parameters": {"batchSize": 100},
            }
        ],
    )
    assert final(updates)["result"]["recordCount"] == len(lots.parcel_id)
    writing = [u["progress"] for u in updates if u["progress"]["step"] == "writing features"]
    processed = [p["processed"] for p in writing]
    assert len(writing) >= 3, writing
    assert processed == sorted(set(processed)), processed
    assert all(p["total"] == len(lots.parcel_id) for p in writing)
    assert processed[-1] == len(lots.parcel_id)
    assert all(n % 100 == 0 for n in processed[:-1]), processed
    percents = [p["percent"] for p in writing]
    assert percents == sorted(percents) and percents[-1] < 100


def job_files(settings: Settings, job_id: str) -> list[Path]:
    folder = settings.resolved_results_dir / job_id
    return sorted(folder.rglob("*")) if folder.exists() else []


async def files_left_after_unwinding(
    settings: Settings, job_id: str, timeout: float = 30
) -> list[Path]:
    """The job's files once its worker has noticed the cancel, which it does at its next
    batch (the job's status changes at once; the worker's clean-up publishes nothing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (files := job_files(settings, job_id)) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return files


async def test_a_shapefile_of_lots_and_points_is_the_one_refusal(
    app_server: RunningApp,
    worker: WorkerControl,
    county: str,
    engine: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """A parcel re-imported with a lon/lat location is a point; a Shapefile holds one shape
    type, so a selection of lots and points cannot be one. The job fails before writing,
    saying why and what to do, and leaves no file."""
    lots = await read_lots(engine, county)
    last = max(lots.parcel_id.tolist())
    centre = shapely.centroid(lots.geometry[lots.parcel_id == last][0])
    locations = tmp_path / "locations.csv"
    locations.write_text(f"parcel_id,lon,lat\n{last},{centre.x!r},{centre.y!r}\n")
    await import_file(engine, "parcels", locations, county)
    (updates,) = await run_exports(
        app_server,
        worker,
        [{"exportFormat": "SHAPEFILE", "countyId": county, "layers": ["PARCELS", "SALES"]}],
    )
    failed = final(updates, "FAILED")
    assert failed["error"]["code"] == "UNSUPPORTED_GEOMETRY", failed["error"]
    message = failed["error"]["message"]
    assert "Point" in message and "Shapefile" in message and "GeoPackage" in message
    assert job_files(settings, failed["id"]) == []


@pytest.mark.parametrize("located", ["all", "one"])
async def test_parcels_located_by_lon_lat_are_exported_as_points(
    county: str, engine: AsyncEngine, settings: Settings, tmp_path: Path, located: str
) -> None:
    """Parcels imported by lon/lat (which the import allows) could not be exported in any
    format, CSV included. They are points now, in every format (a point Shapefile when the
    whole layer is points), read back by GDAL with no options."""
    lots = await read_lots(engine, county)
    ids = sorted(lots.parcel_id.tolist())
    moved = ids if located == "all" else ids[-1:]
    centres = {
        pid: shapely.centroid(geometry)
        for pid, geometry in zip(lots.parcel_id.tolist(), lots.geometry, strict=True)
        if pid in set(moved)
    }
    locations = tmp_path / "locations.csv"
    locations.write_text(
        "parcel_id,lon,lat\n" + "".join(f"{pid},{p.x!r},{p.y!r}\n" for pid, p in centres.items())
    )
    await import_file(engine, "parcels", locations, county)
    formats = FORMATS if located == "all" else [f for f in FORMATS if f != "Shapefile"]
    for fmt in formats:
        result = await compute(
            engine,
            settings,
            JobKind.GIS_EXPORT,
            {"county_id": county, "export_format": fmt, "layers": LAYERS},
        )
        assert result["record_count"] == len(ids), fmt
        path = settings.resolved_results_dir / result["file"]["url"].removeprefix("/results/")
        meta, _, wkb, values = pyogrio.raw.read(str(path))
        names = [n.lower() for n in meta["fields"].tolist()]
        got = dict(
            zip(values[names.index("parcel_id")].tolist(), shapely.from_wkb(wkb), strict=True)
        )
        assert sorted(got) == ids, fmt
        for pid, point in centres.items():
            assert got[pid].geom_type == "Point", fmt
            assert (got[pid].x, got[pid].y) == (point.x, point.y), fmt
        kept = [g for pid, g in got.items() if pid not in centres]
        assert all(g.geom_type in ("Polygon", "MultiPolygon") for g in kept), fmt


async def test_cancelled_export_leaves_no_partial_file(
    app_server: RunningApp, worker: WorkerControl, engine: AsyncEngine, settings: Settings
) -> None:
    await load_demo_county(engine, "BIGCO", 3000, seed=3)
    job = (
        await gql_data(
            app_server.url,
            mutation("runGisExport"),
            {
                "input": {
                    "exportFormat": "KML",
                    "countyId": "BIGCO",
                    "layers": LAYERS,
                    "parameters": {"batchSize": 100},
                }
            },
        )
    )["runGisExport"]
    async with subscribe(app_server.ws_url, WATCH, {"id": job["id"]}) as sub:
        await sub.next()
        await worker.start()
        # Cancel as soon as the first batch is on disk.
        while True:
            payload = await sub.next()
            assert payload is not None
            update = payload["data"]["jobUpdated"]
            if update["progress"]["step"] == "writing features":
                break
        cancelled = (
            await gql_data(
                app_server.url,
                "mutation($id: ID!) { cancelJob(id: $id) { status progress { processed total } } }",
                {"id": job["id"]},
            )
        )["cancelJob"]
        assert cancelled["status"] == "CANCELLED"
        progress = cancelled["progress"]
        assert 0 < progress["processed"] < progress["total"] == 3000, progress
        rest = await sub.collect()
    assert rest[-1]["data"]["jobUpdated"]["status"] == "CANCELLED"
    assert await files_left_after_unwinding(settings, job["id"]) == []


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
async def test_gdal_opens_every_format(
    app_server: RunningApp,
    worker: WorkerControl,
    county: str,
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    lots = await read_lots(engine, county)
    area = areas(lots)["polygon"]
    expected = int(expected_lots(lots, area).sum())
    runs = await run_exports(
        app_server,
        worker,
        [
            {
                "exportFormat": fmt.upper(),
                "countyId": county,
                "layers": LAYERS,
                "areaOfInterest": area_input(area),
            }
            for fmt in FORMATS
        ],
    )
    for fmt, updates in zip(FORMATS, runs, strict=True):
        result = final(updates)["result"]
        path = tmp_path / result["file"]["name"]
        path.write_bytes(await download(app_server, result["file"]["url"]))
        options = ["-oo", "GEOM_POSSIBLE_NAMES=WKT"] if fmt == "CSV" else []
        info = subprocess.run(
            ["ogrinfo", "-ro", "-al", "-geom=SUMMARY", *options, str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"Feature Count: {expected}" in info, (fmt, info[:3000])
        # One geometry summary line per feature, e.g. "  POLYGON : 1 rings (5 points)".
        polygons = re.findall(r"^\s+(?:MULTI)?POLYGON : ", info, flags=re.MULTILINE)
        assert len(polygons) == expected, (fmt, info[:3000])
        if fmt != "CSV":
            assert 'GEOGCRS["WGS 84"' in info or 'GEOGCS["WGS 84"' in info, (fmt, info[:3000])
