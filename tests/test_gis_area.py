"""parse_area_of_interest: accepted shapes, every rejection naming its field, and intersects()."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon, box, shape

from jobs.kinds.gis_export.area import AreaOfInterest, AreaOfInterestError, parse_area_of_interest

SQUARE = [[-106.0, 35.0], [-105.0, 35.0], [-105.0, 36.0], [-106.0, 36.0], [-106.0, 35.0]]
HOLE = [[-105.8, 35.2], [-105.8, 35.4], [-105.6, 35.4], [-105.6, 35.2], [-105.8, 35.2]]
# An L: the bbox is [0, 0, 2, 2] but the square [1, 1]-[2, 2] is not part of it.
L_SHAPE = [[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0], [0.0, 0.0]]


def polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [list(r) for r in rings]}


def parse(value: object, **kwargs: Any) -> AreaOfInterest:
    area = parse_area_of_interest(value, **kwargs)
    assert area is not None
    return area


def error(value: object, **kwargs: Any) -> AreaOfInterestError:
    with pytest.raises(AreaOfInterestError) as info:
        parse_area_of_interest(value, **kwargs)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == f"{info.value.field}: {info.value.reason}"
    return info.value


# -- accepted -------------------------------------------------------------------------


def test_none_means_the_whole_county() -> None:
    assert parse_area_of_interest(None) is None


def test_bbox() -> None:
    area = parse({"type": "bbox", "coordinates": [-106.5, 35.0, -105.5, 36.25]})
    assert area.kind == "bbox"
    assert area.bbox == (-106.5, 35.0, -105.5, 36.25)
    assert area.geometry.equals(box(-106.5, 35.0, -105.5, 36.25))
    assert parse({"type": "BBOX", "coordinates": [0, 0, 1, 1]}).bbox == (0.0, 0.0, 1.0, 1.0)


def test_polygon_with_hole_and_altitude() -> None:
    with_altitude = [[*p, 2100.0] for p in SQUARE]
    area = parse(polygon(with_altitude, HOLE))
    assert area.kind == "Polygon"
    assert area.bbox == (-106.0, 35.0, -105.0, 36.0)
    assert area.vertex_count == 10
    assert not area.geometry.has_z
    assert area.geometry.equals(Polygon(SQUARE, [HOLE]))


def test_multipolygon() -> None:
    far = [[-104.0, 35.0], [-103.5, 35.0], [-103.5, 35.5], [-104.0, 35.0]]
    area = parse({"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE], [far]]})
    assert area.kind == "MultiPolygon"
    assert area.bbox == (-106.0, 35.0, -103.5, 36.0)
    assert area.vertex_count == 14
    assert area.geometry.geom_type == "MultiPolygon"


def test_feature_wrapping_a_polygon() -> None:
    feature = {"type": "Feature", "properties": {"name": "north"}, "geometry": polygon(SQUARE)}
    assert parse(feature).geometry.equals(Polygon(SQUARE))


def test_geometry_is_prepared() -> None:
    assert shapely.is_prepared(parse(polygon(SQUARE)).geometry)
    assert shapely.is_prepared(parse({"type": "bbox", "coordinates": [0, 0, 1, 1]}).geometry)


def test_to_geojson_is_rfc7946() -> None:
    clockwise = list(reversed(SQUARE))
    echoed = parse(polygon(clockwise, list(reversed(HOLE)))).to_geojson()
    json.dumps(echoed)  # plain JSON types only
    assert echoed["type"] == "Polygon"
    assert echoed["bbox"] == [-106.0, 35.0, -105.0, 36.0]
    rings = [shapely.LinearRing(r) for r in echoed["coordinates"]]
    assert rings[0].is_ccw
    assert not rings[1].is_ccw
    assert shape(echoed).equals(Polygon(SQUARE, [HOLE]))
    as_box = parse({"type": "bbox", "coordinates": [0, 0, 1, 2]}).to_geojson()
    assert as_box["type"] == "Polygon"
    assert shape(as_box).equals(box(0, 0, 1, 2))


# -- intersects -----------------------------------------------------------------------


def test_intersects_is_exact_not_bbox() -> None:
    area = parse(polygon(L_SHAPE))
    assert area.bbox == (0.0, 0.0, 2.0, 2.0)
    parcels = np.array(
        [
            box(0.2, 0.2, 0.4, 0.4),  # inside the L
            box(1.4, 1.4, 1.6, 1.6),  # inside the L's bbox, outside the L
            box(0.9, 0.9, 1.1, 1.1),  # straddles the inner corner
            box(5.0, 5.0, 6.0, 6.0),  # far away
            None,  # no geometry
            box(1.0, 1.0, 1.5, 1.5),  # touches the L at its inner corner
        ],
        dtype=object,
    )
    assert area.intersects(parcels).tolist() == [True, False, True, False, False, True]
    # The bbox the SQL prefilter uses keeps the notch parcel; only the exact test drops it.
    bbox_area = parse({"type": "bbox", "coordinates": list(area.bbox)})
    assert bbox_area.intersects(parcels).tolist() == [True, True, True, False, False, True]


def test_intersects_accepts_a_list_and_returns_bools() -> None:
    result = parse(polygon(SQUARE)).intersects([Point(-105.5, 35.5), Point(0, 0)])
    assert result.dtype == bool
    assert result.tolist() == [True, False]
    assert parse(polygon(SQUARE)).intersects([]).tolist() == []


# -- rejected, each naming the field --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "fragment"),
    [
        ([1, 2, 3, 4], "areaOfInterest", "must be a JSON object"),
        ("bbox", "areaOfInterest", "must be a JSON object"),
        ({"coordinates": [0, 0, 1, 1]}, "areaOfInterest.type", "is required; allowed: bbox"),
        ({"type": "Point", "coordinates": [0, 0]}, "areaOfInterest.type", "'Point' is not"),
        ({"type": "FeatureCollection", "features": []}, "areaOfInterest.type", "one Feature"),
        ({"type": "bbox"}, "areaOfInterest.coordinates", "must be [minLon, minLat"),
        ({"type": "bbox", "coordinates": [0, 0, 1]}, "areaOfInterest.coordinates", "got 3"),
        (
            {"type": "bbox", "coordinates": [0, "0", 1, 1]},
            "areaOfInterest.coordinates[1]",
            "must be a number, got '0'",
        ),
        (
            {"type": "bbox", "coordinates": [0, True, 1, 1]},
            "areaOfInterest.coordinates[1]",
            "must be a number, got True",
        ),
        (
            {"type": "bbox", "coordinates": [0, 0, float("inf"), 1]},
            "areaOfInterest.coordinates[2]",
            "must be a finite number",
        ),
        (
            {"type": "bbox", "coordinates": [-200, 0, 1, 1]},
            "areaOfInterest.coordinates[0]",
            "longitude -200.0 is outside -180..180",
        ),
        (
            {"type": "bbox", "coordinates": [0, 0, 1, 95]},
            "areaOfInterest.coordinates[3]",
            "latitude 95.0 is outside -90..90",
        ),
        (
            {"type": "bbox", "coordinates": [10, 0, 5, 1]},
            "areaOfInterest.coordinates",
            "minLon 10.0 must be less than maxLon 5.0",
        ),
        (
            {"type": "bbox", "coordinates": [0, 1, 1, 1]},
            "areaOfInterest.coordinates",
            "minLat 1.0 must be less than maxLat 1.0",
        ),
        (
            polygon([[0, 0], [1, 0], [1, 1], [0, 95.0], [0, 0]]),
            "areaOfInterest.coordinates[0][3]",
            "latitude 95.0 is outside -90..90",
        ),
        (
            polygon([[0, 0], [1, 0], [181, 1], [0, 0]]),
            "areaOfInterest.coordinates[0][2]",
            "longitude 181.0 is outside -180..180",
        ),
        (
            polygon([[0, 0], [1, 0], [1, 1], [0, 1]]),
            "areaOfInterest.coordinates[0]",
            "is not closed",
        ),
        (
            polygon([[0, 0], [1, 0], [0, 0]]),
            "areaOfInterest.coordinates[0]",
            "has 3 positions; a linear ring needs at least 4",
        ),
        (
            polygon([[0, 0], [1, 0], [1], [0, 0]]),
            "areaOfInterest.coordinates[0][2]",
            "must be a [longitude, latitude] position",
        ),
        (
            polygon([[0, 0], [1, 0], [1, float("nan")], [0, 0]]),
            "areaOfInterest.coordinates[0][2][1]",
            "must be a finite number",
        ),
        ({"type": "Polygon", "coordinates": []}, "areaOfInterest.coordinates", "at least one"),
        ({"type": "Polygon", "coordinates": "x"}, "areaOfInterest.coordinates", "must be an"),
        (
            polygon([[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]),  # a bow tie
            "areaOfInterest.coordinates",
            "is not a valid polygon (Self-intersection[1 1])",
        ),
        (
            polygon(SQUARE, [[0, 0], [1, 0], [1, 1], [0, 0]]),  # hole outside the shell
            "areaOfInterest.coordinates",
            "is not a valid polygon (Hole lies outside shell",
        ),
        ({"type": "MultiPolygon", "coordinates": []}, "areaOfInterest.coordinates", "at least"),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE], [[[0, 0], [1, 0], [1, 1]]]]},
            "areaOfInterest.coordinates[1][0]",
            "has 3 positions",
        ),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [[SQUARE], [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]],
            },
            "areaOfInterest.coordinates[1]",
            "is not a valid polygon (Self-intersection",
        ),
        (
            {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE]]},  # overlapping parts
            "areaOfInterest.coordinates",
            "is not a valid polygon",
        ),
        ({"type": "Feature", "geometry": None}, "areaOfInterest.geometry", "is required"),
        (
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},
            "areaOfInterest.geometry.type",
            "'Point' is not supported inside a Feature",
        ),
        (
            {"type": "Feature", "geometry": polygon([[0, 0], [1, 0], [1, 1], [0, 1]])},
            "areaOfInterest.geometry.coordinates[0]",
            "is not closed",
        ),
    ],
)
def test_rejections_name_the_field(value: object, field: str, fragment: str) -> None:
    exc = error(value)
    assert exc.field == field
    assert fragment in exc.reason
    assert str(exc).startswith(f"{field}: ")


def test_messages_say_what_is_allowed() -> None:
    assert "allowed: bbox, Polygon, MultiPolygon, Feature" in str(error({"type": "Line"}))
    exc = error(polygon([[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]))
    assert "rings must not cross" in exc.reason


def test_vertex_cap() -> None:
    ring = [[float(i) / 100, 0.0] for i in range(20)] + [[0.1, 1.0], [0.0, 0.0]]
    assert parse(polygon(ring), max_vertices=22).vertex_count == 22
    exc = error(polygon(ring), max_vertices=21)
    assert exc.field == "areaOfInterest.coordinates"
    assert "at most 21 are allowed" in exc.reason
    # Counted across the polygons of a MultiPolygon, before the geometry is built.
    multi = {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE]]}
    assert "at most 8" in error(multi, max_vertices=8).reason


def test_default_vertex_cap_is_ten_thousand() -> None:
    circle = shapely.Point(0, 0).buffer(1, quad_segs=2600)  # 10,401 vertices
    exc = error(json.loads(shapely.to_geojson(circle)))
    assert "at most 10000 are allowed" in exc.reason


def test_custom_root_field() -> None:
    exc = error({"type": "bbox", "coordinates": [0, 0, 1, 100]}, field="input.area")
    assert exc.field == "input.area.coordinates[3]"
