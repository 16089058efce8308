"""The zoning layer: `terrafusion import zoning FILE`, and ZONING in a GIS export.

The county is built by hand so every parcel's zone is known from the geometry alone: lots
inside a zone, a lot straddling a zone line (its centroid decides), a lot in a zone's hole,
a lot in no zone, a lot in the second part of a MultiPolygon zone, and one under two
overlapping zones (the first in the file wins). Exports are read back by GDAL (pyogrio,
and ogrinfo where it is installed), which shares no code with our writers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyogrio
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.importer import DataFileError, import_file
from tests.conftest import RunningApp, WorkerControl
from tests.test_gis_export_e2e import final, run_exports
from tests.test_importer import _cli as cli
from tests.test_job_flow import download

COUNTY = "ZONECO"
LON, LAT = -93.70, 42.00
UNIT = 0.001
FORMATS = ("GEOJSON", "SHAPEFILE", "KML", "CSV", "GEOPACKAGE")


def cell(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A box in units of `UNIT` degrees from (LON, LAT)."""
    return box(LON + x0 * UNIT, LAT + y0 * UNIT, LON + x1 * UNIT, LAT + y1 * UNIT)


ZONES: list[tuple[str, str, BaseGeometry]] = [
    (
        "R-1",
        "Single-family residential",
        Polygon(cell(0, 0, 2, 2).exterior.coords, [cell(1.2, 1.2, 1.8, 1.8).exterior.coords]),
    ),
    ("C-2", "General commercial", cell(2, 0, 4, 2)),
    ("MU", "Mixed use", MultiPolygon([cell(0, 3, 1, 4), cell(3, 3, 4, 4)])),
    ("OV", "Overlay drawn over R-1", cell(0, 0, 1, 1)),
]
PARCELS: dict[str, tuple[BaseGeometry, str | None]] = {
    "P-INSIDE": (cell(0.5, 1.2, 0.9, 1.6), "R-1"),
    "P-STRADDLE": (cell(1.5, 0.2, 2.9, 0.4), "C-2"),  # centroid at x=2.2: in C-2
    "P-MULTI": (cell(3.2, 3.2, 3.6, 3.6), "MU"),
    "P-HOLE": (cell(1.4, 1.4, 1.6, 1.6), None),  # inside R-1's hole
    "P-NOWHERE": (cell(5, 5, 5.5, 5.5), None),
    "P-OVERLAP": (cell(0.2, 0.2, 0.4, 0.4), "R-1"),  # R-1 and OV: R-1 comes first
}
DESCRIPTIONS = {code: description for code, description, _ in ZONES}


def zoning_geojson(zones: list[tuple[str, str, BaseGeometry]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"zone_code": code, "description": description},
                "geometry": json.loads(shapely.to_geojson(geometry)),
            }
            for code, description, geometry in zones
        ],
    }


def zoning_csv(zones: list[tuple[str, str, BaseGeometry]]) -> str:
    rows = [f'{code},{description},"{geometry.wkt}"\n' for code, description, geometry in zones]
    return "zone_code,description,geometry\n" + "".join(rows)


async def stored_zones(engine: AsyncEngine, county: str = COUNTY) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT feature, zone_code, description, geometry::text FROM zoning "
                "WHERE county_id = :c ORDER BY feature"
            ),
            {"c": county},
        )
        return [tuple(row) for row in rows]


@pytest.fixture
async def zoned_county(engine: AsyncEngine, tmp_path: Path) -> str:
    parcels = tmp_path / "parcels.csv"
    parcels.write_text(
        "parcel_id,neighborhood,geometry\n"
        + "".join(f'{pid},N1,"{geometry.wkt}"\n' for pid, (geometry, _) in PARCELS.items())
    )
    await import_file(engine, "parcels", parcels, COUNTY)
    zoning = tmp_path / "zoning.geojson"
    zoning.write_text(json.dumps(zoning_geojson(ZONES)))
    await import_file(engine, "zoning", zoning, COUNTY)
    return COUNTY


# -- import -----------------------------------------------------------------------------------


async def test_cli_imports_geojson_and_wkt_csv_and_a_load_replaces_the_layer(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    geojson = tmp_path / "zoning.geojson"
    geojson.write_text(json.dumps(zoning_geojson(ZONES)))
    loaded = cli(database_url, "import", "zoning", geojson, "--county", COUNTY)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"zoning: 4 rows loaded into county {COUNTY}"
    rows = await stored_zones(engine)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (i, code, description) for i, (code, description, _) in enumerate(ZONES)
    ]
    for row, (_, _, geometry) in zip(rows, ZONES, strict=True):
        assert shapely.from_geojson(row[3]).equals(geometry)

    csv_file = tmp_path / "zoning.csv"
    csv_file.write_text(zoning_csv(ZONES[:2]))
    replaced = cli(database_url, "import", "zoning", csv_file, "--county", COUNTY)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.strip() == (
        f"zoning: 2 rows loaded into county {COUNTY}, replacing its 4 earlier rows"
    )
    rows = await stored_zones(engine)
    # CSV positions are file lines (the header is line 1).
    assert [(r[0], r[1]) for r in rows] == [(2, "R-1"), (3, "C-2")]
    assert shapely.from_geojson(rows[0][3]).equals(ZONES[0][2])
    assert await stored_zones(engine, "OTHER") == []


BOWTIE = "POLYGON((-93.7 42, -93.69 42.01, -93.69 42, -93.7 42.01, -93.7 42))"
SQUARE = "POLYGON((-93.7 42, -93.69 42, -93.69 42.01, -93.7 42.01, -93.7 42))"
BAD_CSV = [
    ("no zone_code column", f'description,geometry\nx,"{SQUARE}"\n', "1: zone_code: required"),
    ("no geometry column", "zone_code,description\nR-1,x\n", "1: geometry: required"),
    ("empty code", f'zone_code,geometry\nR-1,"{SQUARE}"\n,"{SQUARE}"\n', "3: zone_code: is empty"),
    ("empty geometry", "zone_code,geometry\nR-1,\n", "2: geometry: is empty"),
    ("a point", "zone_code,geometry\nR-1,POINT(-93.7 42)\n", "not a Polygon or MultiPolygon"),
    ("unreadable WKT", "zone_code,geometry\nR-1,POLYGON((1 2\n", "2: geometry: 'POLYGON((1 2'"),
    ("self-intersecting", f'zone_code,geometry\nR-1,"{BOWTIE}"\n', "2: geometry: invalid geometry"),
    (
        "projected coordinates",
        'zone_code,geometry\nR-1,"POLYGON((500000 4600000,500100 4600000,500100 4600100,'
        '500000 4600000))"\n',
        "2: geometry: coordinates outside lon -180..180",
    ),
    ("code too long", f'zone_code,geometry\n{"R" * 33},"{SQUARE}"\n', "longer than 32 characters"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD_CSV, ids=[c[0] for c in BAD_CSV])
async def test_a_bad_csv_is_refused_naming_row_and_field_and_the_layer_stays(
    engine: AsyncEngine, tmp_path: Path, case: str, body: str, message: str
) -> None:
    good = tmp_path / "good.geojson"
    good.write_text(json.dumps(zoning_geojson(ZONES)))
    await import_file(engine, "zoning", good, COUNTY)
    before = await stored_zones(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text(body)
    with pytest.raises(DataFileError) as raised:
        await import_file(engine, "zoning", bad, COUNTY)
    assert str(raised.value).startswith(f"{bad}:"), raised.value
    assert message in str(raised.value), raised.value
    assert await stored_zones(engine) == before


async def test_a_bad_geojson_feature_is_named_by_index_through_the_cli(
    engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    document = zoning_geojson(ZONES)
    document["features"][2]["geometry"] = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(document))
    refused = cli(database_url, "import", "zoning", bad, "--county", COUNTY)
    assert refused.returncode == 1
    assert "nothing was written" in refused.stderr
    assert (
        f"{bad}:features[2]: geometry: a LineString is not a Polygon or MultiPolygon"
        in refused.stderr
    ), refused.stderr
    assert await stored_zones(engine) == []


# -- export -----------------------------------------------------------------------------------


def read_layer(path: Path, layer: str | int = 0) -> tuple[list[str], list[Any], list[Any]]:
    """(field names, geometries, columns) of a file's layer, read by GDAL."""
    meta, _, wkb, values = pyogrio.raw.read(str(path), layer=layer)
    return list(meta["fields"].tolist()), list(shapely.from_wkb(wkb)), list(values)


def column(names: list[str], values: list[Any], name: str) -> list[Any]:
    lower = [n.lower() for n in names]
    return [None if v in ("", None) else v for v in values[lower.index(name.lower())].tolist()]


async def export_files(
    app: RunningApp, worker: WorkerControl, inputs: list[dict[str, Any]], tmp_path: Path
) -> list[tuple[dict[str, Any], dict[str, str], Path]]:
    """Each export's result, its attribute -> file column names, and the downloaded file."""
    done = []
    for updates in await run_exports(app, worker, inputs):
        result = final(updates)["result"]
        renamed = {f["attribute"]: f["field"] for f in result["fieldNames"]}
        path = tmp_path / result["file"]["name"]
        path.write_bytes(await download(app, result["file"]["url"]))
        done.append((result, renamed, path))
    return done


async def test_every_format_gives_each_parcel_the_zone_of_its_centroid(
    app_server: RunningApp,
    worker: WorkerControl,
    zoned_county: str,
    tmp_path: Path,
) -> None:
    inputs = [
        {"exportFormat": fmt, "countyId": zoned_county, "layers": ["PARCELS", "ZONING"]}
        for fmt in FORMATS
    ]
    files = await export_files(app_server, worker, inputs, tmp_path)
    for fmt, (result, renamed, path) in zip(FORMATS, files, strict=True):
        assert result["recordCount"] == len(PARCELS), fmt
        assert {"zone_code", "zone_description"} <= set(renamed), (fmt, renamed)
        names, _, values = read_layer(path)
        ids = column(names, values, renamed["parcel_id"])
        codes = dict(zip(ids, column(names, values, renamed["zone_code"]), strict=True))
        descriptions = dict(
            zip(ids, column(names, values, renamed["zone_description"]), strict=True)
        )
        assert codes == {pid: zone for pid, (_, zone) in PARCELS.items()}, fmt
        assert descriptions == {
            pid: None if zone is None else DESCRIPTIONS[zone] for pid, (_, zone) in PARCELS.items()
        }, fmt


@pytest.mark.parametrize("fmt", ["GEOPACKAGE", "KML"])
async def test_the_zone_polygons_of_the_area_are_a_second_layer(
    app_server: RunningApp,
    worker: WorkerControl,
    zoned_county: str,
    tmp_path: Path,
    fmt: str,
) -> None:
    # The area takes in the lots near the origin only; MU's parts lie outside it, and the
    # straddling lot's centroid is in C-2, which the area meets.
    area = {"bbox": {"minLon": LON, "minLat": LAT, "maxLon": LON + 0.0025, "maxLat": LAT + 0.0025}}
    inputs = [
        {
            "exportFormat": fmt,
            "countyId": zoned_county,
            "layers": ["ZONING"],
            "areaOfInterest": area,
        }
    ]
    ((_, _, path),) = await export_files(app_server, worker, inputs, tmp_path)
    layers = [name for name, _ in pyogrio.list_layers(str(path)).tolist()]
    parcels = (
        f"parcels_{zoned_county.lower()}" if fmt == "GEOPACKAGE" else f"parcels_{zoned_county}"
    )
    assert layers == [parcels, "zoning"], layers

    names, _, values = read_layer(path, parcels)
    ids = column(names, values, "parcel_id")
    codes = dict(zip(ids, column(names, values, "zone_code"), strict=True))
    inside = {"P-INSIDE", "P-STRADDLE", "P-HOLE", "P-OVERLAP"}
    assert codes == {pid: PARCELS[pid][1] for pid in inside}

    names, geometries, values = read_layer(path, "zoning")
    kept = [z for z in ZONES if z[0] != "MU"]
    assert column(names, values, "zone_code") == [code for code, _, _ in kept]
    assert column(names, values, "zone_description") == [d for _, d, _ in kept]
    for geometry, (code, _, expected) in zip(geometries, kept, strict=True):
        assert geometry.equals(expected), code

    if shutil.which("ogrinfo") is not None:
        info = subprocess.run(
            ["ogrinfo", "-ro", "-so", str(path), "zoning"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Feature Count: 3" in info, info
        assert "zone_code: String" in info and "zone_description: String" in info, info
        if fmt == "GEOPACKAGE":
            assert "Geometry: Multi Polygon" in info, info


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
async def test_ogrinfo_reads_the_zone_fields_of_every_format(
    app_server: RunningApp,
    worker: WorkerControl,
    zoned_county: str,
    tmp_path: Path,
) -> None:
    inputs = [
        {"exportFormat": fmt, "countyId": zoned_county, "layers": ["ZONING"]} for fmt in FORMATS
    ]
    files = await export_files(app_server, worker, inputs, tmp_path)
    for fmt, (_, renamed, path) in zip(FORMATS, files, strict=True):
        options = ["-oo", "GEOM_POSSIBLE_NAMES=WKT"] if fmt == "CSV" else []
        layer = [f"parcels_{zoned_county.lower()}"] if fmt == "GEOPACKAGE" else []
        info = subprocess.run(
            ["ogrinfo", "-ro", "-al", "-geom=NO", *options, str(path), *layer],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"Feature Count: {len(PARCELS)}" in info, (fmt, info[:3000])
        field = renamed["zone_code"]
        for code in ("R-1", "C-2", "MU"):
            assert f"{field} (String) = {code}" in info, (fmt, code, info[:3000])
