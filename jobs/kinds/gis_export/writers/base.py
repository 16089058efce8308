"""What every export writer shares: the field model, value coercion, geometry preparation,
running bbox/count, and the open -> write_batch* -> close | remove_partial life cycle.

Memory stays flat in the number of features: a writer sends every batch to disk before
`write_batch` returns and keeps only the running bbox and row count. Each batch is validated
completely (geometries and every attribute value) before anything of it is written, so a bad
record fails the batch without leaving half of it in the file.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, Self, get_args

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

FieldType = Literal["str", "int", "float", "date", "bool"]
GeometryKind = Literal["polygon", "point", "mixed"]
"""What a layer holds: lot polygons, points (parcels imported by lon/lat), or both."""
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
CRS = "EPSG:4326"
Value = str | int | float | bool | dt.date | None
Geometries = np.ndarray | Sequence[BaseGeometry | None]

_POLYGON = shapely.GeometryType.POLYGON.value
_MULTIPOLYGON = shapely.GeometryType.MULTIPOLYGON.value
_POINT = shapely.GeometryType.POINT.value
_MISSING = shapely.GeometryType.MISSING.value
_ALLOWED_TYPES: dict[str, tuple[int, ...]] = {
    "polygon": (_POLYGON, _MULTIPOLYGON, _MISSING),
    "point": (_POINT, _MISSING),
    "mixed": (_POLYGON, _MULTIPOLYGON, _POINT, _MISSING),
}
_KIND_TEXT = {
    "polygon": "a polygon layer (Polygon or MultiPolygon, or None)",
    "point": "a point layer (Point, or None)",
    "mixed": "a layer of Polygons, MultiPolygons and Points (or None)",
}
_BASENAME = re.compile(r"^[\w][\w.\- ]*$")


@dataclass(frozen=True)
class Field:
    """One attribute column: its name in the records and the type its values are coerced to."""

    name: str
    type: FieldType = "str"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"field name must be a non-empty string, got {self.name!r}")
        if self.type not in FIELD_TYPES:
            raise ValueError(
                f"field {self.name!r}: type {self.type!r} is not one of: {', '.join(FIELD_TYPES)}"
            )


@dataclass(frozen=True)
class WrittenFile:
    """The finished export file. `bbox` is [minLon, minLat, maxLon, maxLat] of every written
    geometry (None when nothing with a geometry was written); `field_names` maps each
    attribute name to its column name in the file (only Shapefile renames)."""

    path: Path
    name: str
    format: str
    content_type: str
    size_bytes: int
    row_count: int
    bbox: tuple[float, float, float, float] | None
    field_names: dict[str, str] = field(default_factory=dict)
    crs: str = CRS


class FeatureWriter(Protocol):
    """A streaming writer for one export file (see `open_writer`)."""

    path: Path

    @property
    def format_name(self) -> str:
        """The canonical format name (one of EXPORT_FORMATS)."""

    @property
    def content_type(self) -> str:
        """The media type to serve the file with."""

    @property
    def extension(self) -> str:
        """The file name extension, without the dot ("shp.zip" for Shapefile)."""

    def field_names(self) -> dict[str, str]:
        """Attribute name -> column name in the file."""

    def write_batch(self, geometries: Geometries, records: Sequence[Mapping[str, object]]) -> None:
        """Append features: geometries[i] (Polygon, MultiPolygon or None) with records[i]."""

    def close(self) -> WrittenFile:
        """Finish the file (footer, headers, zip...) and describe it."""

    def remove_partial(self) -> None:
        """Delete everything this writer created, finished or not (an aborted export)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class StreamingWriter(ABC):
    """Base class for the format writers. Subclasses implement `_start` (open the file, write
    its header), `_write` (one validated batch), `_finish` (finalise the file at `path`),
    `_release` (close handles without finishing) and may add scratch paths to `_scratch` for
    `remove_partial` to delete."""

    format_name: ClassVar[str]
    content_type: ClassVar[str]
    extension: ClassVar[str]
    #: Polygon exterior rings clockwise? The formats' own rules differ (see subclasses).
    exterior_cw: ClassVar[bool] = False

    def __init__(
        self,
        directory: Path,
        basename: str,
        fields: Sequence[Field],
        *,
        geometry: GeometryKind = "polygon",
    ) -> None:
        if geometry not in _ALLOWED_TYPES:
            raise ValueError(
                f"geometry kind {geometry!r} is not one of: {', '.join(_ALLOWED_TYPES)}"
            )
        self.geometry: GeometryKind = geometry
        if not _BASENAME.match(basename) or basename in (".", ".."):
            raise ValueError(
                f"basename {basename!r} must be a plain file name (letters, digits, '_', '-', "
                "'.', spaces) without a directory or extension"
            )
        self.fields: tuple[Field, ...] = tuple(fields)
        seen: dict[str, str] = {}
        for f in self.fields:
            if not isinstance(f, Field):
                raise TypeError(f"fields must be Field instances, got {type(f).__name__}")
            key = f.name.lower()
            if key in seen:
                raise ValueError(f"duplicate field name {f.name!r} (names are case-insensitive)")
            seen[key] = f.name
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.basename = basename
        self.path = directory / f"{basename}.{self.extension}"
        self.row_count = 0
        self._bounds = [math.inf, math.inf, -math.inf, -math.inf]
        self._converters = converters(self.fields)
        self._scratch: list[Path] = []
        self._state: Literal["open", "closed", "removed"] = "open"
        # A rerun after a crash must not append to, or trip over, the previous attempt's file.
        self.path.unlink(missing_ok=True)
        self._start()

    # -- public interface -------------------------------------------------------------

    def write_batch(self, geometries: Geometries, records: Sequence[Mapping[str, object]]) -> None:
        """Validate and append one batch; see the module docstring for the guarantees."""
        self._require_open()
        geoms = prepare_geometries(geometries, len(records), self.row_count, self.geometry)
        rows = [self._coerce(record, self.row_count + i) for i, record in enumerate(records)]
        if not rows:
            return
        geoms = shapely.orient_polygons(geoms, exterior_cw=self.exterior_cw)
        self._write(geoms, rows)
        self.row_count += len(rows)
        self._extend_bounds(geoms)

    def close(self) -> WrittenFile:
        self._require_open()
        self._finish()
        self._state = "closed"
        return WrittenFile(
            path=self.path,
            name=self.path.name,
            format=self.format_name,
            content_type=self.content_type,
            size_bytes=self.path.stat().st_size,
            row_count=self.row_count,
            bbox=self.bbox,
            field_names=self.field_names(),
        )

    def remove_partial(self) -> None:
        """Delete the output and any scratch files; safe to call in any state, repeatedly."""
        if self._state == "open":
            self._release()
        self._state = "removed"
        for path in [*self._scratch, self.path]:
            if path.is_dir():
                for child in path.iterdir():
                    child.unlink(missing_ok=True)
                path.rmdir()
            else:
                path.unlink(missing_ok=True)

    def field_names(self) -> dict[str, str]:
        """Attribute name -> column name in the file."""
        return {f.name: f.name for f in self.fields}

    @property
    def bbox(self) -> tuple[float, float, float, float] | None:
        if self._bounds[0] == math.inf:
            return None
        min_x, min_y, max_x, max_y = self._bounds
        return (min_x, min_y, max_x, max_y)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leaving the block without `close()` (an exception, or a forgotten close) means the
        file is incomplete, so it is deleted rather than handed out half-written."""
        if self._state == "open":
            self.remove_partial()

    # -- for subclasses ---------------------------------------------------------------

    def _other_layer(
        self,
        fields: Sequence[Field],
        geometries: Geometries,
        records: Sequence[Mapping[str, object]],
    ) -> tuple[np.ndarray, list[list[Value]]]:
        """A further polygon layer's features, checked and oriented as `write_batch` does the
        main layer's, for the formats that hold several layers."""
        geoms = prepare_geometries(geometries, len(records), 0, "polygon")
        convert = converters(fields)
        rows = [coerce_record(fields, convert, record, i) for i, record in enumerate(records)]
        return shapely.orient_polygons(geoms, exterior_cw=self.exterior_cw), rows

    @abstractmethod
    def _start(self) -> None:
        """Open the file and write what precedes the features (header, layer definition);
        may refuse the fields or the geometry kind with ValueError."""

    @abstractmethod
    def _write(self, geoms: np.ndarray, rows: list[list[Value]]) -> None:
        """Append one validated, oriented batch (geoms[i] is a 2-D Polygon/MultiPolygon or
        None; rows[i][j] is the coerced value of fields[j])."""

    @abstractmethod
    def _finish(self) -> None:
        """Complete the file at `self.path` and release every handle."""

    @abstractmethod
    def _release(self) -> None:
        """Release handles without completing the file; must not raise."""

    # -- internals --------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"{self.format_name} writer for {self.path.name} is {self._state}")

    def _coerce(self, record: Mapping[str, object], row: int) -> list[Value]:
        return coerce_record(self.fields, self._converters, record, row)

    def _extend_bounds(self, geoms: np.ndarray) -> None:
        bounds = shapely.bounds(geoms)
        present = ~np.isnan(bounds[:, 0])
        if not present.any():
            return
        bounds = bounds[present]
        lows = bounds[:, :2].min(axis=0)
        highs = bounds[:, 2:].max(axis=0)
        self._bounds = [
            min(self._bounds[0], float(lows[0])),
            min(self._bounds[1], float(lows[1])),
            max(self._bounds[2], float(highs[0])),
            max(self._bounds[3], float(highs[1])),
        ]


def converters(fields: Sequence[Field]) -> list[Callable[[Any], Value]]:
    """Each field's value converter, looked up once per layer rather than once per value."""
    return [_CONVERTERS[f.type] for f in fields]


def coerce_record(
    fields: Sequence[Field],
    convert: Sequence[Callable[[Any], Value]],
    record: Mapping[str, object],
    row: int,
) -> list[Value]:
    """A record's values in field order, each coerced to its field's type; ValueError names
    the feature and field of a value that is not of its type."""
    values: list[Value] = []
    for f, to_value in zip(fields, convert, strict=True):
        raw = record.get(f.name)
        try:
            values.append(None if raw is None else to_value(raw))
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"feature {row}, field {f.name!r}: {_describe(raw)} is not a valid {f.type}"
            ) from None
    return values


def prepare_geometries(
    geometries: Geometries,
    expected: int,
    first_row: int = 0,
    kind: GeometryKind = "polygon",
) -> np.ndarray:
    """An object array of 2-D geometries of the layer's ``kind`` (or None), one per record.

    Parcels are lots (polygons) or, when imported by lon/lat, points. A writer is told up
    front which its layer holds (a Shapefile and a GeoPackage declare it in their headers),
    and any other geometry type is refused rather than silently mixed in. Empty geometries
    become None: all five formats have a native "no geometry" (null
    GeoJSON geometry, Shapefile null shape, Placemark without geometry, empty WKT cell, NULL
    blob), while an empty polygon has no Shapefile or KML encoding.
    """
    if isinstance(geometries, np.ndarray) and geometries.dtype == object:
        arr = geometries.ravel().copy()
    else:
        items = list(geometries)
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
    if len(arr) != expected:
        raise ValueError(f"got {len(arr)} geometries for {expected} records")
    if not len(arr):
        return arr
    not_geometry = ~shapely.is_valid_input(arr)
    if not_geometry.any():
        i = int(np.flatnonzero(not_geometry)[0])
        raise TypeError(
            f"feature {first_row + i}: geometry must be a shapely geometry or None, "
            f"got {type(arr[i]).__name__}"
        )
    type_ids = shapely.get_type_id(arr)
    wrong = ~np.isin(type_ids, _ALLOWED_TYPES[kind])
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"feature {first_row + i}: geometry type {arr[i].geom_type} is not supported in "
            f"{_KIND_TEXT[kind]}"
        )
    arr[shapely.is_empty(arr)] = None
    if shapely.has_z(arr).any():
        arr = shapely.force_2d(arr)
    return arr


def polygon_rings(geoms: np.ndarray) -> Iterator[list[list[np.ndarray]]]:
    """For each geometry, its polygons as lists of (n, 2) coordinate arrays, exterior first.

    Decomposes the whole batch with three vectorised shapely calls (parts, rings,
    coordinates) instead of walking each geometry's Python objects; what remains per feature
    is only slicing the coordinate array. None yields an empty list.
    """
    parts, part_feature = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    ring_sizes = np.bincount(coord_ring, minlength=len(rings))
    ring_ends = np.cumsum(ring_sizes).tolist()
    ring_starts = (np.cumsum(ring_sizes) - ring_sizes).tolist()
    rings_per_part = np.bincount(ring_part, minlength=len(parts))
    parts_per_feature = np.bincount(part_feature, minlength=len(geoms))
    ring_i = 0
    part_i = 0
    for n_parts in parts_per_feature.tolist():
        polygons: list[list[np.ndarray]] = []
        for n_rings in rings_per_part[part_i : part_i + n_parts].tolist():
            polygons.append(
                [coords[ring_starts[r] : ring_ends[r]] for r in range(ring_i, ring_i + n_rings)]
            )
            ring_i += n_rings
        part_i += n_parts
        yield polygons


# -- value coercion -------------------------------------------------------------------
# Each converter maps a non-None value to the canonical Python type of its field type, or
# raises TypeError/ValueError. NaN/inf mean "no value" for numbers (they have no encoding in
# JSON, DBF or KML), so they become None instead of failing the export.


def _to_str(value: object) -> Value:
    return value if isinstance(value, str) else str(value)


def _to_int(value: object) -> Value:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating | Decimal):
        if not math.isfinite(value):
            return None
        if value != int(value):
            raise ValueError("not a whole number")
        return int(value)
    raise TypeError(type(value).__name__)


def _to_float(value: object) -> Value:
    if isinstance(value, bool | np.bool_):
        raise TypeError("bool")
    if isinstance(value, int | float | np.integer | np.floating | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    raise TypeError(type(value).__name__)


def _to_date(value: object) -> Value:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value.strip()[:10])
    raise TypeError(type(value).__name__)


def _to_bool(value: object) -> Value:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    raise TypeError(type(value).__name__)


_CONVERTERS: dict[str, Callable[[Any], Value]] = {
    "str": _to_str,
    "int": _to_int,
    "float": _to_float,
    "date": _to_date,
    "bool": _to_bool,
}


def text_value(value: Value) -> str:
    """The text form used by CSV and KML: ISO 8601 dates, xsd:boolean true/false, the
    shortest round-tripping repr for floats, and "" for no value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
