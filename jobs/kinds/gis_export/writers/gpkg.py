"""OGC GeoPackage 1.2 (OGC 12-128r15), written with the standard library's sqlite3.

Everything a reader checks, with the requirement (Req) numbers of the 1.2 specification:

* Req 2/Req 3 - SQLite ``application_id`` 0x47504B47 ("GPKG") and ``user_version`` 10200,
  file extension ``.gpkg``.
* Req 10/Req 11 - ``gpkg_spatial_ref_sys`` with at least the rows -1 (undefined cartesian),
  0 (undefined geographic) and 4326 (WGS 84 geodetic, EPSG).
* Req 13/Req 14 - ``gpkg_contents`` with one "features" row for the table; its min/max extent
  (informative, Req 15's bounds) is filled in at close, when it is known.
* Req 21/Req 22 - ``gpkg_geometry_columns`` naming the geometry column, its type and SRS.
* Req 19/Req 20/Req 29 - a feature table with an INTEGER PRIMARY KEY AUTOINCREMENT ``fid``
  and a ``geom`` column holding GeoPackage binary blobs (section 2.1.3): magic "GP", version
  0, flags 0b00000011 (bit 0: little-endian header; bits 1-3 = 1: envelope [minx, maxx, miny,
  maxy]; bit 4 = 0: not empty; bit 5 = 0: standard binary), int32 srs_id 4326, the envelope,
  then the geometry as ISO WKB (little-endian, from one vectorised shapely.to_wkb call).
* Req 25/Req 32 - the declared type must cover every value: parcels are a mix of Polygon
  and MultiPolygon, and a Polygon is not assignable to MULTIPOLYGON, so every geometry is
  promoted to MultiPolygon (what ``ogr2ogr -nlt PROMOTE_TO_MULTI`` does) and the column is
  declared MULTIPOLYGON, which GIS clients show as a plain polygon layer. A layer of parcels
  located by lon/lat is declared POINT, and one mixing both GEOMETRY.
* Table 1 - attribute types TEXT, INTEGER, REAL, DATE (ISO 8601 ``YYYY-MM-DD`` text) and
  BOOLEAN (0/1).

Rings are oriented counter-clockwise like the other formats (ISO 19125-1's "top" side); the
spec itself imposes no orientation. Each batch is one transaction (executemany + commit), so
memory holds one batch and a failing batch leaves no partial rows. No R-tree spatial index is
written: the gpkg_rtree_index extension requires triggers calling ST_* SQL functions that
only a GeoPackage-aware SQLite provides; GDAL/QGIS build one on demand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import shapely

from jobs.kinds.gis_export.writers.base import (
    Field,
    Geometries,
    StreamingWriter,
    Value,
)

APPLICATION_ID = 0x47504B47  # "GPKG"
USER_VERSION = 10200  # GeoPackage 1.2.0
SRS_ID = 4326
GEOMETRY_COLUMN = "geom"
_GEOMETRY_TYPE_NAMES = {"polygon": "MULTIPOLYGON", "point": "POINT", "mixed": "GEOMETRY"}
"""The declared geometry type per layer kind (GeoPackage 1.3 Annex G): GEOMETRY admits all."""
FID_COLUMN = "fid"
EPSG_4326_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AUTHORITY["EPSG","4326"]]'
)
_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "date": "DATE", "bool": "BOOLEAN"}
_TIMESTAMP = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"  # the format Req 15 asks for

#: StandardGeoPackageBinary header, section 2.1.3.1.1: fixed 8 bytes + xy envelope.
_GP_HEADER = np.dtype(
    [
        ("magic", "S2"),
        ("version", "u1"),
        ("flags", "u1"),
        ("srs_id", "<i4"),
        ("envelope", "<f8", (4,)),
    ]
)
_GP_FLAGS = 0b0000_0011  # little-endian, envelope type 1 (xy), non-empty, standard binary

# Annex C DDL (Table definition SQL) for the core tables.
_CORE_DDL = f"""
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL PRIMARY KEY,
  organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL,
  definition TEXT NOT NULL,
  description TEXT
);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY,
  data_type TEXT NOT NULL,
  identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT ({_TIMESTAMP}),
  min_x DOUBLE,
  min_y DOUBLE,
  max_x DOUBLE,
  max_y DOUBLE,
  srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id)
);
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL,
  z TINYINT NOT NULL,
  m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id)
);
"""

_SRS_ROWS = [
    (
        "Undefined cartesian SRS",
        -1,
        "NONE",
        -1,
        "undefined",
        "undefined cartesian coordinate reference system",
    ),
    (
        "Undefined geographic SRS",
        0,
        "NONE",
        0,
        "undefined",
        "undefined geographic coordinate reference system",
    ),
    (
        "WGS 84 geodetic",
        SRS_ID,
        "EPSG",
        SRS_ID,
        EPSG_4326_WKT,
        "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid",
    ),
]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table_name_for(basename: str) -> str:
    """The feature table's name: the basename in lower case with other characters made "_",
    as the spec recommends for portable names; never with the reserved gpkg_/sqlite_ prefix."""
    name = re.sub(r"[^a-z0-9_]", "_", basename.lower())
    if not name[:1].isalpha() or name.startswith(("gpkg_", "sqlite_")):
        name = f"layer_{name}"
    return name


def gpkg_geometry_blobs(geoms: np.ndarray) -> list[bytes | None]:
    """GeoPackage binary blobs for a batch (None stays None, stored as SQL NULL).

    The headers of the whole batch are built as one numpy structured array (envelope
    reordered from shapely's (minx, miny, maxx, maxy) to the spec's (minx, maxx, miny, maxy))
    and the WKB comes from one shapely call; per feature only the two are concatenated.
    """
    n = len(geoms)
    headers = np.zeros(n, dtype=_GP_HEADER)
    headers["magic"] = b"GP"
    headers["flags"] = _GP_FLAGS
    headers["srs_id"] = SRS_ID
    headers["envelope"] = shapely.bounds(geoms)[:, [0, 2, 1, 3]]
    raw = headers.tobytes()
    size = _GP_HEADER.itemsize
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso").tolist()
    return [None if w is None else raw[i * size : (i + 1) * size] + w for i, w in enumerate(wkb)]


class GeoPackageWriter(StreamingWriter):
    format_name: ClassVar[str] = "GeoPackage"
    content_type: ClassVar[str] = "application/geopackage+sqlite3"  # IANA registration
    extension: ClassVar[str] = "gpkg"
    exterior_cw: ClassVar[bool] = False

    def _start(self) -> None:
        _check_reserved(self.fields)
        self._type_name = _GEOMETRY_TYPE_NAMES[self.geometry]
        self.table = table_name_for(self.basename)
        self._tables = {self.table}
        journal = self.path.with_name(self.path.name + "-journal")
        # A journal left by a crashed earlier attempt would be "hot" and replayed into the
        # new file by SQLite on open, so it goes with the old file.
        journal.unlink(missing_ok=True)
        self._scratch.append(journal)
        # A rollback journal, not WAL: the file must be complete on its own once closed.
        # check_same_thread=False because async callers may hand each batch to a different
        # worker thread; calls are still sequential, which is all sqlite3 needs.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db = self._db
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {USER_VERSION}")
        db.execute("BEGIN")
        for statement in _CORE_DDL.split(";"):
            if statement.strip():
                db.execute(statement)
        db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", _SRS_ROWS)
        _create_table(db, self.table, self.fields, self._type_name)
        db.execute("COMMIT")

    def _write(self, geoms: np.ndarray, rows: list[list[Value]]) -> None:
        _insert(self._db, self.table, self.fields, geoms, rows)

    def add_layer(
        self,
        name: str,
        fields: Sequence[Field],
        geometries: Geometries,
        records: Sequence[Mapping[str, object]],
    ) -> int:
        """Write a further polygon layer into the same file, whole, in one transaction (e.g.
        the zone polygons beside the parcels: a GeoPackage is the one format of the five that
        holds several layers). Call it before `close`; returns the features written. The
        file's bbox and row count stay the main layer's; this table's extent is its own."""
        self._require_open()
        table = table_name_for(name)
        if table in self._tables:
            raise ValueError(f"layer {table!r} is already in {self.path.name}")
        _check_reserved(fields)
        geoms, rows = self._other_layer(fields, geometries, records)
        db = self._db
        db.execute("BEGIN")
        try:
            _create_table(db, table, fields, _GEOMETRY_TYPE_NAMES["polygon"])
            if rows:
                _insert(db, table, fields, geoms, rows, transaction=False)
                present = ~shapely.is_missing(geoms)
                if present.any():
                    bounds = shapely.bounds(geoms[present])
                    db.execute(
                        "UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ?"
                        " WHERE table_name = ?",
                        (
                            float(bounds[:, 0].min()),
                            float(bounds[:, 1].min()),
                            float(bounds[:, 2].max()),
                            float(bounds[:, 3].max()),
                            table,
                        ),
                    )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._tables.add(table)
        return len(rows)

    def _finish(self) -> None:
        extent = self.bbox
        self._db.execute(
            f"UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ?, "
            f"last_change = {_TIMESTAMP} WHERE table_name = ?",
            (*(extent if extent is not None else (None, None, None, None)), self.table),
        )
        self._db.close()

    def _release(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()


def _check_reserved(fields: Sequence[Field]) -> None:
    reserved = {FID_COLUMN, GEOMETRY_COLUMN}
    clash = [f.name for f in fields if f.name.lower() in reserved]
    if clash:
        raise ValueError(f"field name {clash[0]!r} is reserved for the GeoPackage {clash[0]}")


def _create_table(
    db: sqlite3.Connection, table: str, fields: Sequence[Field], type_name: str
) -> None:
    """A feature table with its gpkg_contents and gpkg_geometry_columns rows (Req 13, 21)."""
    attributes = "".join(f",\n  {_quote(f.name)} {_SQL_TYPES[f.type]}" for f in fields)
    db.execute(
        f"CREATE TABLE {_quote(table)} (\n"
        f"  {_quote(FID_COLUMN)} INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,\n"
        f"  {_quote(GEOMETRY_COLUMN)} {type_name}{attributes}\n)"
    )
    db.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id)"
        " VALUES (?, 'features', ?, ?)",
        (table, table, SRS_ID),
    )
    db.execute(
        "INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, ?, 0, 0)",
        (table, GEOMETRY_COLUMN, type_name, SRS_ID),
    )


def _insert(
    db: sqlite3.Connection,
    table: str,
    fields: Sequence[Field],
    geoms: np.ndarray,
    rows: list[list[Value]],
    *,
    transaction: bool = True,
) -> None:
    """Append validated rows to a feature table (in a transaction of its own unless the
    caller holds one); Polygons are promoted to MultiPolygons, see the module docstring."""
    polygons = shapely.get_type_id(geoms) == shapely.GeometryType.POLYGON
    if polygons.any():
        geoms = geoms.copy()
        geoms[polygons] = shapely.multipolygons(geoms[polygons][:, np.newaxis])
    blobs = gpkg_geometry_blobs(geoms)
    bool_or_date = [i for i, f in enumerate(fields) if f.type in ("date", "bool")]
    for row in rows:
        for i in bool_or_date:
            value = row[i]
            if isinstance(value, bool):
                row[i] = int(value)
            elif isinstance(value, dt.date):
                row[i] = value.isoformat()
    columns = ", ".join(_quote(f.name) for f in fields)
    placeholders = ", ".join("?" for _ in range(len(fields) + 1))
    insert = (
        f"INSERT INTO {_quote(table)} ({_quote(GEOMETRY_COLUMN)}"
        f"{', ' + columns if columns else ''}) VALUES ({placeholders})"
    )
    values = [(b, *r) for b, r in zip(blobs, rows, strict=True)]
    if not transaction:
        db.executemany(insert, values)
        return
    db.execute("BEGIN")
    try:
        db.executemany(insert, values)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
