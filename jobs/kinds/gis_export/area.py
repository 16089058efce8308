"""The `areaOfInterest` of an export: parsed once, validated with messages that name the field.

Accepted shapes (anything else is rejected, never guessed at):

* ``None`` - the whole county; `parse_area_of_interest` returns ``None``.
* ``{"type": "bbox", "coordinates": [minLon, minLat, maxLon, maxLat]}`` - the order of an
  RFC 7946 section 5 bounding box. A box crossing the antimeridian (minLon > maxLon, which
  RFC 7946 section 5.2 allows) is rejected: no county needs it and it would be mistaken for
  a typo far more often than meant.
* a GeoJSON ``Polygon`` or ``MultiPolygon`` geometry object (RFC 7946 sections 3.1.6/3.1.7).
* a GeoJSON ``Feature`` whose ``geometry`` is one of those two (what most web map tools
  export when a user draws a shape); its ``properties`` are ignored. A ``FeatureCollection``
  is rejected because it could hold several unrelated areas.

The ``type`` member is matched case-insensitively because people type these by hand into
GraphiQL; members other than ``type``/``coordinates``/``geometry`` (``bbox``, ``crs``,
``properties``...) are ignored. Positions may carry an altitude, which is dropped: the areas
are 2-D.

Why every check exists: the bbox of the area becomes an indexed SQL range prefilter and the
geometry an exact GEOS test, so a latitude of 95 or an unclosed ring must be refused with a
message that says where, not turn into an empty or whole-county export. The vertex cap bounds
the GEOS work per parcel (prepared geometries are fast, but not free) and the parse work on
hostile input, and is checked while walking the input so an oversized payload is rejected
before it is materialised.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from jobs.params import graphql_name

DEFAULT_MAX_VERTICES = 10_000
ROOT_FIELD = "areaOfInterest"
ALLOWED_TYPES = ("bbox", "Polygon", "MultiPolygon", "Feature")
FEATURE_GEOMETRY_TYPES = ("Polygon", "MultiPolygon")

AreaKind = Literal["bbox", "Polygon", "MultiPolygon"]
Position = tuple[float, ...]
Ring = list[Position]


class AreaOfInterestError(ValueError):
    """An unusable area of interest. `field` is the JSON path of the offending member
    (e.g. ``areaOfInterest.coordinates[0][3]``) and `reason` what is wrong and what is allowed;
    ``str(exc)`` is ``"<field>: <reason>"`` so it can be shown as is."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, eq=False)
class AreaOfInterest:
    """A validated area: its geometry (prepared, so repeated tests against many parcels reuse
    the GEOS spatial index of its edges), its bounds for the SQL prefilter, and how it was
    given."""

    kind: AreaKind
    geometry: Polygon | MultiPolygon
    bbox: tuple[float, float, float, float]
    vertex_count: int

    def intersects(self, geometries: np.ndarray | Sequence[BaseGeometry | None]) -> np.ndarray:
        """Boolean mask of the parcels that intersect (touching counts) the area.

        One vectorised shapely call; because `geometry` is prepared, GEOS uses the prepared
        predicate for every element. Missing geometries (None) are never inside.
        """
        if isinstance(geometries, np.ndarray):
            arr = geometries
        else:
            arr = np.empty(len(geometries), dtype=object)
            arr[:] = list(geometries)
        return np.asarray(shapely.intersects(self.geometry, arr), dtype=bool)

    def to_geojson(self) -> dict[str, Any]:
        """The area as an RFC 7946 geometry object, for echoing back in results.

        A bbox is rendered as the equivalent Polygon so the result is always plain GeoJSON;
        rings follow the right-hand rule (exterior counter-clockwise, RFC 7946 section 3.1.6)
        and the optional ``bbox`` member (section 5) carries the prefilter bounds.
        """
        oriented = shapely.orient_polygons(self.geometry, exterior_cw=False)
        out: dict[str, Any] = json.loads(shapely.to_geojson(oriented))
        out["bbox"] = list(self.bbox)
        return out


def parse_area_of_interest(
    value: object,
    *,
    max_vertices: int = DEFAULT_MAX_VERTICES,
    field: str = ROOT_FIELD,
) -> AreaOfInterest | None:
    """Validate `value` (see the module docstring for what is accepted) and build the area.

    Returns None for None (the whole county). Raises AreaOfInterestError naming the JSON path
    of the first problem found.
    """
    if value is None:
        return None
    obj = _object(value, field)
    type_name = _type_of(obj, field)
    if type_name == "Feature":
        geometry_field = f"{field}.geometry"
        if obj.get("geometry") is None:
            raise AreaOfInterestError(
                geometry_field, "is required: a Feature must wrap a Polygon or MultiPolygon"
            )
        geometry_obj = _object(obj["geometry"], geometry_field)
        inner = _type_of(geometry_obj, geometry_field, FEATURE_GEOMETRY_TYPES)
        return _parse_geometry(geometry_obj, inner, geometry_field, max_vertices)
    return _parse_geometry(obj, type_name, field, max_vertices)


def _parse_geometry(
    obj: Mapping[str, Any], type_name: str, field: str, max_vertices: int
) -> AreaOfInterest:
    if type_name == "bbox":
        return _parse_bbox(obj, field)
    coords_field = f"{field}.coordinates"
    counter = _VertexCounter(max_vertices, coords_field)
    geometry: Polygon | MultiPolygon
    if type_name == "Polygon":
        rings_raw = _array(obj.get("coordinates"), coords_field, "an array of linear rings")
        geometry = _polygon(rings_raw, coords_field, counter)
        _require_valid(geometry, coords_field)
        kind: AreaKind = "Polygon"
    else:
        polygons_raw = _array(obj.get("coordinates"), coords_field, "an array of polygons")
        if not polygons_raw:
            raise AreaOfInterestError(coords_field, "must contain at least one polygon")
        polygons = []
        for i, rings in enumerate(polygons_raw):
            path = f"{coords_field}[{i}]"
            polygon = _polygon(_array(rings, path, "an array of linear rings"), path, counter)
            _require_valid(polygon, path)
            polygons.append(polygon)
        geometry = MultiPolygon(polygons)
        _require_valid(geometry, coords_field)
        kind = "MultiPolygon"
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in geometry.bounds)
    shapely.prepare(geometry)
    return AreaOfInterest(
        kind=kind,
        geometry=geometry,
        bbox=(min_lon, min_lat, max_lon, max_lat),
        vertex_count=counter.count,
    )


def _parse_bbox(obj: Mapping[str, Any], field: str) -> AreaOfInterest:
    path = f"{field}.coordinates"
    coordinates = _array(obj.get("coordinates"), path, "[minLon, minLat, maxLon, maxLat]")
    if len(coordinates) != 4:
        raise AreaOfInterestError(
            path, f"must be [minLon, minLat, maxLon, maxLat] (4 numbers), got {len(coordinates)}"
        )
    values = [_number(v, f"{path}[{i}]") for i, v in enumerate(coordinates)]
    min_lon, min_lat, max_lon, max_lat = values
    _check_lon(min_lon, f"{path}[0]")
    _check_lat(min_lat, f"{path}[1]")
    _check_lon(max_lon, f"{path}[2]")
    _check_lat(max_lat, f"{path}[3]")
    if not min_lon < max_lon:
        raise AreaOfInterestError(
            path,
            f"minLon {min_lon!r} must be less than maxLon {max_lon!r} "
            "(boxes crossing the antimeridian are not supported)",
        )
    if not min_lat < max_lat:
        raise AreaOfInterestError(path, f"minLat {min_lat!r} must be less than maxLat {max_lat!r}")
    geometry = box(min_lon, min_lat, max_lon, max_lat)
    shapely.prepare(geometry)
    return AreaOfInterest(
        kind="bbox",
        geometry=geometry,
        bbox=(min_lon, min_lat, max_lon, max_lat),
        vertex_count=5,
    )


class _VertexCounter:
    """Counts positions as they are read so an oversized area fails before it is built."""

    def __init__(self, limit: int, field: str) -> None:
        self.limit = limit
        self.field = field
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise AreaOfInterestError(
                self.field,
                f"has more than {self.limit} vertices; at most {self.limit} are allowed "
                "(simplify the shape or use a bbox)",
            )


def _polygon(rings_raw: list[Any], path: str, counter: _VertexCounter) -> Polygon:
    if not rings_raw:
        raise AreaOfInterestError(path, "must contain at least one linear ring (the exterior)")
    rings = [_ring(ring, f"{path}[{i}]", counter) for i, ring in enumerate(rings_raw)]
    shell, *holes = ([p[:2] for p in ring] for ring in rings)
    return Polygon(shell, holes)


def _ring(value: object, path: str, counter: _VertexCounter) -> Ring:
    """A GeoJSON linear ring: closed, with at least four positions (RFC 7946 section 3.1.6)."""
    raw = _array(value, path, "a linear ring (an array of [longitude, latitude] positions)")
    counter.add(len(raw))
    ring = [_position(p, f"{path}[{i}]") for i, p in enumerate(raw)]
    if len(ring) < 4:
        raise AreaOfInterestError(
            path,
            f"has {len(ring)} positions; a linear ring needs at least 4 "
            "(three corners and the first repeated at the end)",
        )
    if ring[0] != ring[-1]:
        raise AreaOfInterestError(
            path,
            f"is not closed: the first position {list(ring[0])} differs from the last "
            f"{list(ring[-1])}; a linear ring must end where it starts",
        )
    return ring


def _position(value: object, path: str) -> Position:
    """[longitude, latitude] or [longitude, latitude, altitude] (RFC 7946 section 3.1.1)."""
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        raise AreaOfInterestError(
            path, f"must be a [longitude, latitude] position, got {_describe(value)}"
        )
    numbers = tuple(_number(v, f"{path}[{i}]") for i, v in enumerate(value))
    _check_lon(numbers[0], path)
    _check_lat(numbers[1], path)
    return numbers


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AreaOfInterestError(path, f"must be a number, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise AreaOfInterestError(path, f"must be a finite number, got {value!r}")
    return number


def _check_lon(lon: float, path: str) -> None:
    if not -180.0 <= lon <= 180.0:
        raise AreaOfInterestError(path, f"longitude {lon!r} is outside -180..180")


def _check_lat(lat: float, path: str) -> None:
    if not -90.0 <= lat <= 90.0:
        raise AreaOfInterestError(path, f"latitude {lat!r} is outside -90..90")


def _require_valid(geometry: BaseGeometry, path: str) -> None:
    """OGC Simple Features validity, which GEOS predicates assume: on an invalid polygon
    `intersects` can silently answer wrong, so it is refused with GEOS's own explanation."""
    if not shapely.is_valid(geometry):
        raise AreaOfInterestError(
            path,
            f"is not a valid polygon ({shapely.is_valid_reason(geometry)}); rings must not "
            "cross themselves or each other, holes must lie inside the exterior ring, and the "
            "polygons of a MultiPolygon must not overlap",
        )


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AreaOfInterestError(
            path,
            f"must be a JSON object ({', '.join(ALLOWED_TYPES)}) or null, got {_describe(value)}",
        )
    return value


def _type_of(obj: Mapping[str, Any], path: str, allowed: tuple[str, ...] = ALLOWED_TYPES) -> str:
    raw = obj.get("type")
    allowed_text = ", ".join(allowed)
    if raw is None:
        raise AreaOfInterestError(f"{path}.type", f"is required; allowed: {allowed_text}")
    if isinstance(raw, str):
        for name in allowed:
            if name.lower() == raw.strip().lower():
                return name
    where = " inside a Feature" if allowed == FEATURE_GEOMETRY_TYPES else ""
    hint = (
        "; send a single Polygon/MultiPolygon geometry or one Feature wrapping it"
        if isinstance(raw, str) and raw.strip().lower() == "featurecollection"
        else ""
    )
    raise AreaOfInterestError(
        f"{path}.type", f"{raw!r} is not supported{where}; allowed: {allowed_text}{hint}"
    )


def _array(value: object, path: str, expected: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise AreaOfInterestError(path, f"must be {expected}, got {_describe(value)}")
    return list(value)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool | int | float | str):
        text = repr(value)
        return text if len(text) <= 40 else f"{text[:37]}..."
    return type(value).__name__


BBOX_FIELDS = ("min_lon", "min_lat", "max_lon", "max_lat")
"""The typed `BoundingBox` input's fields, in the order of an RFC 7946 bbox."""


def require_polygonal(value: object, field: str) -> Mapping[str, Any]:
    """A GeoJSON Polygon or MultiPolygon object (the `GeoJSON` scalar), fully validated."""
    obj = _object(value, field)
    if obj.get("type") not in FEATURE_GEOMETRY_TYPES:
        raise AreaOfInterestError(
            f"{field}.type",
            f"must be {' or '.join(FEATURE_GEOMETRY_TYPES)}, got {_describe(obj.get('type'))}",
        )
    parse_area_of_interest(obj, field=field)
    return obj


def stored_area(typed: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The typed `AreaOfInterest` input (`bbox` or `geometry`, as a plain dict) validated and
    in the form the job row keeps: an RFC 7946 bbox as ``{"type": "bbox", ...}`` or the
    geometry object. Errors name the typed input's path (``areaOfInterest.bbox.minLat``)."""
    if typed is None:
        return None
    if "bbox" in typed:
        field = f"{ROOT_FIELD}.bbox"
        stored = {"type": "bbox", "coordinates": [typed["bbox"][k] for k in BBOX_FIELDS]}
        try:
            parse_area_of_interest(stored, field=field)
        except AreaOfInterestError as exc:
            index = exc.field.removeprefix(f"{field}.coordinates")
            where = field
            if index.startswith("["):
                where = f"{field}.{graphql_name(BBOX_FIELDS[int(index[1])])}"
            raise AreaOfInterestError(where, exc.reason) from None
        return stored
    return dict(require_polygonal(typed["geometry"], f"{ROOT_FIELD}.geometry"))


def typed_area(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored area in the shape of the typed `AreaOfInterest` (for the job's output)."""
    if stored is None:
        return None
    if str(stored.get("type", "")).lower() == "bbox":
        return {"bbox": dict(zip(BBOX_FIELDS, stored["coordinates"], strict=True))}
    if str(stored.get("type", "")).lower() == "feature":
        return {"geometry": stored["geometry"]}
    return {"geometry": dict(stored)}
