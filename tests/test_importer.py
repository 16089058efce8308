"""The county data importer on a real PostgreSQL: values, upserts, all-or-nothing errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.importer import DataFileError, UnknownParcelsError, import_file
from app.models import Assessment, Parcel, Sale

COUNTY = "TEST01"

# A lot near Tacoma, written clockwise (the importer stores it counter-clockwise).
LOT_WKT = (
    "POLYGON ((-122.44 47.24, -122.44 47.241, -122.439 47.241, -122.439 47.24, -122.44 47.24))"
)
LOT_CCW = [
    [-122.44, 47.24],
    [-122.439, 47.24],
    [-122.439, 47.241],
    [-122.44, 47.241],
    [-122.44, 47.24],
]


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return path


async def table_rows(engine: AsyncEngine, model: Any) -> list[tuple[Any, ...]]:
    """Every column of every row, in id order: a snapshot to compare before and after."""
    async with engine.connect() as conn:
        result = await conn.execute(select(model.__table__).order_by(model.__table__.c.id))
        return [tuple(row) for row in result]


async def parcels_by_id(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        result = await conn.execute(select(Parcel.__table__))
        return {row.parcel_id: row for row in result}


@pytest.fixture
async def parcels(engine: AsyncEngine, tmp_path: Path) -> None:
    """Parcels P0..P9 in COUNTY and in counties A and B, for files of their sales."""
    rows = "".join(f"P{i},-122.4,47.2\n" for i in range(10))
    path = write(tmp_path, "known-parcels.csv", "parcel_id,lon,lat\n" + rows)
    for county in (COUNTY, "A", "B"):
        await import_file(engine, "parcels", path, county)


SALES_CSV = """
    parcel_id,sale_date,sale_price,arms_length
    P1,2021-03-04,350000,true
    P2,2021-05-06,420000.50,FALSE
    P3,2022-01-15,199000,1
    P4,2022-02-01,250000,0
    P5,2022-03-01,275000,Yes
    P6,2022-04-01,300000,no
    P7,2022-05-01,310000,
"""


async def test_import_parcels_csv_geometry_bbox_centroid(engine: AsyncEngine, tmp_path: Path):
    geojson_multi = json.dumps(
        {
            "type": "MultiPolygon",
            "coordinates": [
                [[[-122.5, 47.1], [-122.49, 47.1], [-122.49, 47.11], [-122.5, 47.1]]],
                [[[-122.48, 47.1], [-122.47, 47.1], [-122.47, 47.12], [-122.48, 47.1]]],
            ],
        }
    ).replace('"', '""')
    path = write(
        tmp_path,
        "parcels.csv",
        f"""
        Parcel_ID,address,zip_code,neighborhood,property_class,year_built,living_area_sqft,lot_size_sqft,bedrooms,bathrooms,lon,lat,geometry,owner
        P1,1 Main St,98402,Downtown,residential,1925,1850.5,6000,3,1.5,,,"{LOT_WKT}",Smith
        P2,2 Main St,98403,Hilltop,vacant,,,8000,,,-122.43,47.25,,Jones
        P3,,,,commercial,1990,12000,40000,,,,,"{geojson_multi}",
        """,
    )
    report = await import_file(engine, "parcels", path, COUNTY)

    assert (report.kind, report.county_id, report.rows) == ("parcels", COUNTY, 3)
    assert (report.inserted, report.updated, report.unchanged) == (3, 0, 0)
    rows = await parcels_by_id(engine)
    assert set(rows) == {"P1", "P2", "P3"}

    p1 = rows["P1"]
    assert p1.county_id == COUNTY
    assert (p1.address, p1.zip_code, p1.neighborhood, p1.property_class) == (
        "1 Main St",
        "98402",
        "Downtown",
        "residential",
    )
    assert (p1.year_built, p1.living_area_sqft, p1.lot_size_sqft) == (1925, 1850.5, 6000.0)
    assert (p1.bedrooms, p1.bathrooms) == (3, 1.5)
    assert p1.geometry == {"type": "Polygon", "coordinates": [LOT_CCW]}
    assert (p1.min_lon, p1.min_lat, p1.max_lon, p1.max_lat) == pytest.approx(
        (-122.44, 47.24, -122.439, 47.241)
    )
    assert (p1.centroid_lon, p1.centroid_lat) == pytest.approx((-122.4395, 47.2405))

    p2 = rows["P2"]
    assert p2.geometry == {"type": "Point", "coordinates": [-122.43, 47.25]}
    assert (p2.min_lon, p2.max_lon, p2.min_lat, p2.max_lat) == (-122.43, -122.43, 47.25, 47.25)
    assert (p2.centroid_lon, p2.centroid_lat) == (-122.43, 47.25)
    assert (p2.year_built, p2.living_area_sqft, p2.bedrooms, p2.bathrooms) == (None,) * 4

    p3 = rows["P3"]
    assert p3.geometry["type"] == "MultiPolygon"
    assert len(p3.geometry["coordinates"]) == 2
    assert (p3.address, p3.zip_code, p3.neighborhood) == (None, None, None)
    assert (p3.min_lon, p3.min_lat, p3.max_lon, p3.max_lat) == pytest.approx(
        (-122.5, 47.1, -122.47, 47.12)
    )
    assert -122.5 < p3.centroid_lon < -122.47 and 47.1 < p3.centroid_lat < 47.12


async def test_import_parcels_geojson_feature_collection(engine: AsyncEngine, tmp_path: Path):
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "parcel_id": "G1",
                    "year_built": 1950,
                    "bathrooms": 2.5,
                    "property_class": "residential",
                    "ignored": [1, 2],
                },
                "geometry": {"type": "Polygon", "coordinates": [LOT_CCW]},
            },
            {
                "type": "Feature",
                "properties": {"parcel_id": "G2", "lon": -122.41, "lat": 47.2},
                "geometry": None,
            },
        ],
    }
    path = tmp_path / "parcels.geojson"
    path.write_text(json.dumps(collection), encoding="utf-8")

    report = await import_file(engine, "parcels", path, COUNTY)

    assert (report.rows, report.inserted) == (2, 2)
    rows = await parcels_by_id(engine)
    assert rows["G1"].geometry == {"type": "Polygon", "coordinates": [LOT_CCW]}
    assert (rows["G1"].year_built, rows["G1"].bathrooms) == (1950, 2.5)
    assert rows["G1"].property_class == "residential"
    assert (rows["G1"].min_lon, rows["G1"].max_lat) == pytest.approx((-122.44, 47.241))
    assert rows["G2"].geometry == {"type": "Point", "coordinates": [-122.41, 47.2]}


async def test_geojson_errors_name_the_feature(engine: AsyncEngine, tmp_path: Path):
    features = [
        {"type": "Feature", "properties": {"parcel_id": f"G{i}", "year_built": 1950}}
        | {"geometry": {"type": "Point", "coordinates": [-122.4, 47.2]}}
        for i in range(3)
    ]
    features[2]["properties"]["year_built"] = "old"
    path = tmp_path / "parcels.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))

    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "parcels", path, COUNTY)

    assert str(caught.value) == f"{path}:features[2]: year_built: 'old' is not a number"
    assert await table_rows(engine, Parcel) == []


async def test_import_sales_values_and_booleans(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    path = write(tmp_path, "sales.csv", SALES_CSV)
    report = await import_file(engine, "sales", path, COUNTY)

    assert (report.rows, report.inserted, report.updated) == (7, 7, 0)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Sale.parcel_id, Sale.sale_date, Sale.sale_price, Sale.arms_length)
                .where(Sale.county_id == COUNTY)
                .order_by(Sale.parcel_id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("P1", dt.date(2021, 3, 4), 350000.0, True),
        ("P2", dt.date(2021, 5, 6), 420000.5, False),
        ("P3", dt.date(2022, 1, 15), 199000.0, True),
        ("P4", dt.date(2022, 2, 1), 250000.0, False),
        ("P5", dt.date(2022, 3, 1), 275000.0, True),
        ("P6", dt.date(2022, 4, 1), 300000.0, False),
        ("P7", dt.date(2022, 5, 1), 310000.0, True),
    ]


async def test_sales_without_arms_length_column_default_true(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    path = write(tmp_path, "sales.csv", "parcel_id,sale_price,sale_date\nP1,1000,2020-02-29\n")
    await import_file(engine, "sales", path, COUNTY)
    async with engine.connect() as conn:
        row = (await conn.execute(select(Sale.sale_date, Sale.arms_length))).one()
    assert tuple(row) == (dt.date(2020, 2, 29), True)


async def test_import_assessments(engine: AsyncEngine, tmp_path: Path, parcels: None) -> None:
    path = write(
        tmp_path,
        "assessments.csv",
        """
        parcel_id,tax_year,land_value,improvement_value,assessed_value
        P1,2023,100000,250000,350000
        P1,2024,110000,,360000.5
        P2,2024,,,0
        """,
    )
    report = await import_file(engine, "assessments", path, COUNTY)

    assert (report.rows, report.inserted) == (3, 3)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    Assessment.parcel_id,
                    Assessment.tax_year,
                    Assessment.land_value,
                    Assessment.improvement_value,
                    Assessment.assessed_value,
                ).order_by(Assessment.parcel_id, Assessment.tax_year)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("P1", 2023, 100000.0, 250000.0, 350000.0),
        ("P1", 2024, 110000.0, None, 360000.5),
        ("P2", 2024, None, None, 0.0),
    ]


async def test_reimport_upserts_changed_rows(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    first = write(
        tmp_path,
        "a.csv",
        """
        parcel_id,sale_date,sale_price
        P1,2021-01-01,100000
        P2,2021-01-02,200000
        P3,2021-01-03,300000
        """,
    )
    await import_file(engine, "sales", first, COUNTY)
    ids_before = {r[2]: r[0] for r in await table_rows(engine, Sale)}

    second = write(
        tmp_path,
        "b.csv",
        """
        parcel_id,sale_date,sale_price,arms_length
        P1,2021-01-01,100000,true
        P2,2021-01-02,250000,true
        P4,2021-01-04,400000,false
        """,
    )
    report = await import_file(engine, "sales", second, COUNTY)

    assert (report.rows, report.inserted, report.updated, report.unchanged) == (3, 1, 1, 1)
    rows = await table_rows(engine, Sale)
    prices = {r[2]: (r[4], r[5]) for r in rows}
    assert prices == {
        "P1": (100000.0, True),
        "P2": (250000.0, True),
        "P3": (300000.0, True),
        "P4": (400000.0, False),
    }
    assert len(rows) == 4
    # Existing rows were updated in place, not deleted and inserted again.
    assert {r[2]: r[0] for r in rows if r[2] != "P4"} == ids_before


async def test_file_without_a_column_leaves_it_alone(engine: AsyncEngine, tmp_path: Path):
    full = write(
        tmp_path,
        "full.csv",
        "parcel_id,address,year_built,lon,lat\nP1,1 Main St,1950,-122.4,47.2\n",
    )
    await import_file(engine, "parcels", full, COUNTY)
    partial = write(tmp_path, "partial.csv", "parcel_id,year_built,lon,lat\nP1,1960,-122.4,47.2\n")

    report = await import_file(engine, "parcels", partial, COUNTY)

    assert report.updated == 1
    row = (await parcels_by_id(engine))["P1"]
    assert (row.address, row.year_built) == ("1 Main St", 1960)


async def test_counties_are_separate(engine: AsyncEngine, tmp_path: Path, parcels: None) -> None:
    path = write(tmp_path, "sales.csv", SALES_CSV)
    await import_file(engine, "sales", path, "A")
    report = await import_file(engine, "sales", path, "B")

    assert report.inserted == 7
    async with engine.connect() as conn:
        counts = dict(
            (await conn.execute(text("SELECT county_id, count(*) FROM sales GROUP BY 1"))).all()
        )
    assert counts == {"A": 7, "B": 7}


async def test_bad_date_on_line_7_writes_nothing(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    await import_file(engine, "sales", write(tmp_path, "good.csv", SALES_CSV), COUNTY)
    before = await table_rows(engine, Sale)
    bad = write(
        tmp_path,
        "bad.csv",
        """
        parcel_id,sale_date,sale_price
        P1,2021-03-04,999999
        N1,2021-01-01,1000
        N2,2021-01-02,1000
        N3,2021-01-03,1000
        N4,2021-01-04,1000
        N5,2021-02-30,1000
        N6,2021-01-06,1000
        """,
    )

    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", bad, COUNTY)

    message = str(caught.value)
    assert ":7:" in message and "sale_date" in message
    assert message == f"{bad}:7: sale_date: '2021-02-30' is not a valid date in ISO form YYYY-MM-DD"
    assert (caught.value.where, caught.value.column) == ("7", "sale_date")
    assert isinstance(caught.value, ValueError)
    after = await table_rows(engine, Sale)
    assert len(after) == len(before) == 7
    assert after == before  # P1's price was not changed to 999999 either


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("2021-3-04", "'2021-3-04' is not a valid date in ISO form YYYY-MM-DD"),
        ("2021-03", "'2021-03' is not a valid date in ISO form YYYY-MM-DD"),
        ("04/03/2021", "'04/03/2021' is not a valid date in ISO form YYYY-MM-DD"),
        ("0221-03-04", "'0221-03-04' is outside 1800-01-01..2100-12-31"),
        ("", "is empty"),
    ],
)
async def test_date_must_be_iso(engine: AsyncEngine, tmp_path: Path, cell: str, problem: str):
    path = write(
        tmp_path, "s.csv", f"parcel_id,sale_date,sale_price\nP1,2021-01-01,1\nP2,{cell},1\n"
    )
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY)
    assert str(caught.value) == f"{path}:3: sale_date: {problem}"


async def test_earliest_bad_row_is_reported_whatever_the_column(
    engine: AsyncEngine, tmp_path: Path
):
    path = write(
        tmp_path,
        "sales.csv",
        """
        parcel_id,sale_date,sale_price,arms_length
        P1,2021-01-01,100,true
        P2,2021-01-01,100,maybe
        P3,2021-01-01,-5,true
        P4,not a date,100,true
        """,
    )
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY)
    assert str(caught.value) == (
        f"{path}:3: arms_length: 'maybe' is not true/false (or yes/no, 1/0)"
    )


async def test_missing_required_columns_are_named(engine: AsyncEngine, tmp_path: Path):
    path = write(tmp_path, "sales.csv", "parcel_id,date,price\nP1,2021-01-01,5\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY)
    assert str(caught.value) == (
        f"{path}:1: sale_date, sale_price: required column(s) missing; "
        "the file has: parcel_id, date, price"
    )

    parcels = write(tmp_path, "parcels.csv", "parcel_id,lon,address\nP1,-122.4,x\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "parcels", parcels, COUNTY)
    assert caught.value.column == "lat"
    assert "or a geometry column" in caught.value.problem
    assert await table_rows(engine, Sale) == []
    assert await table_rows(engine, Parcel) == []


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        ("P2,,200,47.2,", "lon", "'200' is outside -180..180 (is the file in WGS84 degrees?)"),
        ("P2,,-122.4,91,", "lat", "'91' is outside -90..90 (is the file in WGS84 degrees?)"),
        ("P2,,-122.4,,", "lat", "is empty"),
        ("P2,,east,47.2,", "lon", "'east' is not a number"),
        ("P2,,,,", "lon", "is empty"),
        (
            'P2,,,,"POINT (1150000 700000)"',
            "geometry",
            "coordinates outside lon -180..180 / lat -90..90 (bbox 1.15e+06, 700000, 1.15e+06, "
            "700000; is the file in WGS84 degrees?)",
        ),
        (
            'P2,,,,"POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"',
            "geometry",
            "invalid geometry: Self-intersection[0.5 0.5]",
        ),
        (
            'P2,,,,"LINESTRING (0 0, 1 1)"',
            "geometry",
            "a LineString is not a Polygon, MultiPolygon or Point",
        ),
        ("P2,,,,POLYGON ((0 0", "geometry", "'POLYGON ((0 0' is not readable as WKT"),
        (
            'P2,,,,"{""type"": ""Polygon""}"',
            "geometry",
            '\'{"type": "Polygon"}\' is not readable as GeoJSON',
        ),
        ("P2,,,,POINT EMPTY", "geometry", "is an empty geometry"),
        ("P2,2101,-122.4,47.2,", "year_built", "'2101' must be at most 2100"),
    ],
)
async def test_bad_location_and_values(
    engine: AsyncEngine, tmp_path: Path, row: str, column: str, problem: str
):
    path = write(
        tmp_path,
        "parcels.csv",
        f"parcel_id,year_built,lon,lat,geometry\nP1,,-122.4,47.2,\n{row}\nP3,,-122.4,47.2,\n",
    )
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "parcels", path, COUNTY)
    assert str(caught.value) == f"{path}:3: {column}: {problem}"
    assert await table_rows(engine, Parcel) == []


async def test_duplicate_key_in_file_names_both_lines(engine: AsyncEngine, tmp_path: Path):
    path = write(
        tmp_path,
        "sales.csv",
        """
        parcel_id,sale_date,sale_price
        P1,2021-03-04,100
        P2,2021-03-04,100
        P1,2021-03-05,100
        P2,2021-03-04,100
        P1,2021-03-04,200
        """,
    )
    # Batches of 2: the two rows of each duplicate pair are copied in different batches.
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY, batch_size=2)

    assert str(caught.value) == (
        f"{path}:5: parcel_id,sale_date: duplicate key (P2, 2021-03-04), same as {path}:3"
    )
    assert await table_rows(engine, Sale) == []


async def test_duplicate_parcel_even_when_identical(engine: AsyncEngine, tmp_path: Path):
    await import_file(
        engine, "parcels", write(tmp_path, "a.csv", "parcel_id,lon,lat\nP1,1,2\n"), COUNTY
    )
    path = write(tmp_path, "b.csv", "parcel_id,lon,lat\nP1,1,2\nP1,1,2\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "parcels", path, COUNTY)
    assert caught.value.where == "3"
    assert caught.value.problem == f"duplicate key (P1), same as {path}:2"


async def test_error_in_second_batch_rolls_back_the_first(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    await import_file(engine, "sales", write(tmp_path, "good.csv", SALES_CSV), COUNTY)
    before = await table_rows(engine, Sale)
    lines = ["parcel_id,sale_date,sale_price", "P1,2021-03-04,1"]  # would change P1's price
    lines += [f"N{i},2023-01-{i + 1:02d},{1000 + i}" for i in range(6)]
    lines += ["N9,2023-02-01,free"]
    path = write(tmp_path, "batches.csv", "\n".join(lines) + "\n")
    seen: list[tuple[int, int | None]] = []

    with pytest.raises(DataFileError) as caught:
        await import_file(
            engine,
            "sales",
            path,
            COUNTY,
            progress=lambda done, total: seen.append((done, total)),
            batch_size=4,
        )

    assert str(caught.value) == f"{path}:9: sale_price: 'free' is not a number"
    assert seen == [(4, 8)]  # the first batch (with P1's change) was copied, then undone
    assert await table_rows(engine, Sale) == before


async def test_progress_counts_rows_against_lines(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    lines = ["parcel_id,tax_year,assessed_value"] + [f"P{i},2024,{i}" for i in range(7)]
    path = write(tmp_path, "a.csv", "\n".join(lines) + "\n\n")  # a trailing blank line
    seen: list[tuple[int, int | None]] = []

    report = await import_file(
        engine, "assessments", path, COUNTY, progress=lambda d, t: seen.append((d, t)), batch_size=4
    )

    assert report.rows == 7
    assert seen == [(4, 8), (7, 8), (7, 7)]


async def test_line_numbers_count_quoted_line_breaks(engine: AsyncEngine, tmp_path: Path):
    path = write(
        tmp_path,
        "parcels.csv",
        'parcel_id,address,lon,lat\nP1,"1 Main St\nUnit 2\nBack",-122.4,47.2\nP2,x,-122.4,47.2\n'
        "P3,y,-122.4,470\n",
    )
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "parcels", path, COUNTY)
    assert caught.value.where == "6"
    assert caught.value.column == "lat"


async def test_short_and_long_rows(engine: AsyncEngine, tmp_path: Path):
    short = write(
        tmp_path, "short.csv", "parcel_id,sale_date,sale_price\nP1,2021-01-01,1\nP2,2021-01-01\n"
    )
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", short, COUNTY)
    assert str(caught.value) == (
        f"{short}:3: sale_price: is missing (the row has 2 fields, the header 3)"
    )

    one = write(tmp_path, "one.csv", "parcel_id,sale_date,sale_price\nP2\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", one, COUNTY)
    assert caught.value.problem == "is missing (the row has 1 field, the header 3)"

    long = write(tmp_path, "long.csv", "parcel_id,sale_date,sale_price\nP1,2021-01-01,1,000\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", long, COUNTY)
    assert (caught.value.where, caught.value.column) == ("2", "row")


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        ("P1,2024.5,1,2,3", "tax_year", "'2024.5' is not a whole number"),
        ("P1,1700,1,2,3", "tax_year", "'1700' must be at least 1800"),
        ("P1,2024,-1,2,3", "land_value", "'-1' must be at least 0"),
        ("P1,2024,1,2,", "assessed_value", "is empty"),
        ("P1,2024,1,2,inf", "assessed_value", "'inf' is not a finite number"),
        ("P1,2024,1,2,$300", "assessed_value", "'$300' is not a number"),
    ],
)
async def test_assessment_checks(
    engine: AsyncEngine, tmp_path: Path, row: str, column: str, problem: str
):
    path = write(
        tmp_path,
        "a.csv",
        f"parcel_id,tax_year,land_value,improvement_value,assessed_value\n{row}\n",
    )
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "assessments", path, COUNTY)
    assert str(caught.value) == f"{path}:2: {column}: {problem}"


async def test_text_checks(engine: AsyncEngine, tmp_path: Path):
    long_id = "P" * 65
    path = write(tmp_path, "s.csv", f"parcel_id,sale_date,sale_price\n{long_id},2021-01-01,1\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY)
    assert caught.value.column == "parcel_id"
    assert caught.value.problem.endswith("is longer than 64 characters")

    path = tmp_path / "nul.csv"
    path.write_text("parcel_id,address,lon,lat\nP1,a\x00b,1,2\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "parcels", path, COUNTY)
    assert str(caught.value) == f"{path}:2: address: 'a\\x00b' contains a NUL character"


async def test_sale_price_must_be_positive(engine: AsyncEngine, tmp_path: Path):
    path = write(tmp_path, "s.csv", "parcel_id,sale_date,sale_price\nP1,2021-01-01,0\n")
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY)
    assert str(caught.value) == f"{path}:2: sale_price: '0' must be above 0"


async def test_json_is_only_for_parcels(engine: AsyncEngine, tmp_path: Path):
    path = tmp_path / "sales.json"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(DataFileError) as caught:
        await import_file(engine, "sales", path, COUNTY)
    assert caught.value.problem == "sales must be CSV, not JSON"


UNKNOWN_SALES = "parcel_id,sale_date,sale_price\nP1,2021-01-01,1000\n" + "".join(
    f"X{i},2021-01-{i + 1:02d},{1000 + i}\n" for i in range(7)
)


async def test_sales_of_parcels_the_county_lacks_are_refused_with_their_lines(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    path = write(tmp_path, "sales.csv", UNKNOWN_SALES)

    with pytest.raises(UnknownParcelsError) as caught:
        await import_file(engine, "sales", path, COUNTY)

    error = caught.value
    assert (error.where, error.column, error.count) == ("3", "parcel_id", 7)
    lines = str(error).splitlines()
    assert lines[:5] == [
        f"{path}:{i + 3}: parcel_id: 'X{i}' is not a parcel of county {COUNTY}" for i in range(5)
    ]
    assert lines[5].startswith(f"{path}: 7 rows in all name parcels that county {COUNTY} does")
    assert "2 more not shown" in lines[5]
    assert await table_rows(engine, Sale) == []


async def test_a_parcel_of_another_county_is_unknown_here(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    path = write(tmp_path, "a.csv", "parcel_id,tax_year,assessed_value\nP1,2024,1\n")

    with pytest.raises(UnknownParcelsError) as caught:
        await import_file(engine, "assessments", path, "OTHER")

    assert str(caught.value).splitlines()[0] == (
        f"{path}:2: parcel_id: 'P1' is not a parcel of county OTHER"
    )
    assert await table_rows(engine, Assessment) == []


async def test_unknown_parcels_load_when_allowed_and_are_counted(
    engine: AsyncEngine, tmp_path: Path, parcels: None
) -> None:
    path = write(tmp_path, "sales.csv", UNKNOWN_SALES)

    report = await import_file(engine, "sales", path, COUNTY, allow_unknown_parcels=True)

    assert (report.rows, report.inserted, report.unknown_parcels) == (8, 8, 7)
    assert len(await table_rows(engine, Sale)) == 8


def _cli(database_url: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *map(str, args)],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_refuses_unknown_parcels_and_counts_rows_in_words(
    engine: AsyncEngine, tmp_path: Path, parcels: None, database_url: str
) -> None:
    unknown = write(tmp_path, "one.csv", "parcel_id,sale_date,sale_price\nX9,2021-01-01,1\n")
    known = write(tmp_path, "known.csv", "parcel_id,sale_date,sale_price\nP1,2021-01-01,1\n")

    refused = _cli(database_url, "import", "sales", unknown, "--county", COUNTY)
    assert refused.returncode == 1
    assert f"{unknown}:2: parcel_id: 'X9' is not a parcel of county {COUNTY}" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert f"{unknown}: 1 row in all name parcels" in refused.stderr

    loaded = _cli(database_url, "import", "sales", known, "--county", COUNTY)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"sales: 1 row loaded into county {COUNTY}"

    allowed = _cli(
        database_url, "import", "sales", unknown, "--county", COUNTY, "--allow-unknown-parcels"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == (
        f"sales: 1 row loaded into county {COUNTY} (1 row for parcels not in the county, "
        "loaded as --allow-unknown-parcels asked)"
    )
    assert len(await table_rows(engine, Sale)) == 2
