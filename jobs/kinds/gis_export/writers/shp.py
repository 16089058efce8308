"""ESRI Shapefile, delivered as one ``<basename>.shp.zip``.

A Shapefile is several files, so they are zipped for download; the ``.shp.zip`` name is the
one GDAL (3.1+) and QGIS open directly as a Shapefile. Members, written with pyshp:

* ``.shp``/``.shx``/``.dbf`` - POLYGON shape type (ESRI Shapefile Technical Description, July
  1998, "Polygon"): rings of one shape are parts, and orientation says which are holes -
  outer rings clockwise, holes counter-clockwise (`exterior_cw = True`); or, for a layer of
  parcels located by lon/lat, the POINT shape type. A file holds exactly one shape type, so a
  layer mixing lots and points cannot be a Shapefile (the writer refuses it up front). A
  missing geometry is a Null Shape. pyshp appends each shape and record to the open files as
  it is given and only rewrites the fixed-size headers at close, so nothing accumulates in
  memory.
* ``.prj`` - the ESRI-flavoured WKT of GCS WGS 1984: what ArcGIS writes itself and reads
  without a "projection unknown" warning (GDAL reads it too).
* ``.cpg`` - ``UTF-8``: the dBASE header's language-driver byte cannot say UTF-8, so ArcGIS
  and GDAL look for the code page here; without it "Peñasco" would be read as Latin-1.

DBF limits (dBASE III+ table file format) decide the attribute encoding: field names are at
most 10 characters (see `shapefile_field_names`); text is C(254), the longest character field,
cut at a UTF-8 character boundary when longer; integers N(18,0); floats N(24,15) as GDAL
writes them; dates D (YYYYMMDD); booleans L. A missing value is blank (numbers ``*``), which
GDAL and QGIS read as null.
"""

from __future__ import annotations

import contextlib
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import shapefile
import shapely

from jobs.kinds.gis_export.writers.base import (
    Field,
    StreamingWriter,
    Value,
    polygon_rings,
)

ESRI_WGS84_WKT = (
    'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
    'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
)
DBF_NAME_LIMIT = 10
DBF_TEXT_BYTES = 254

#: Fixed abbreviations for the long column names of the county data model (app/models.py),
#: so the common fields get readable, stable names instead of truncations like "LIVING_ARE".
DBF_ABBREVIATIONS: dict[str, str] = {
    "living_area_sqft": "LIV_AREA",
    "lot_size_sqft": "LOT_SIZE",
    "neighborhood": "NBHD",
    "property_class": "PROP_CLASS",
    "improvement_value": "IMPR_VALUE",
    "assessed_value": "ASSD_VALUE",
    "arms_length": "ARMS_LEN",
    "centroid_lon": "CENT_LON",
    "centroid_lat": "CENT_LAT",
    "last_sale_date": "LSALE_DATE",
    "last_sale_price": "LSALE_PRC",
}

_DBF_SPEC: dict[str, tuple[str, int, int]] = {
    "str": ("C", DBF_TEXT_BYTES, 0),
    "int": ("N", 18, 0),
    "float": ("N", 24, 15),
    "date": ("D", 8, 0),
    "bool": ("L", 1, 0),
}
_NOT_DBF_CHAR = re.compile(r"[^A-Z0-9_]")
_MEMBER_EXTENSIONS = ("shp", "shx", "dbf", "prj", "cpg")


def shapefile_field_names(fields: Sequence[Field]) -> dict[str, str]:
    """Attribute name -> DBF field name (at most 10 characters, unique).

    The rule, applied to the fields in order, so the same field list always maps the same way:

    1. a name in `DBF_ABBREVIATIONS` takes its fixed abbreviation (living_area_sqft -> LIV_AREA);
    2. otherwise it is upper-cased, every character outside A-Z, 0-9 and "_" becomes "_", an
       "F" is prefixed if it does not start with a letter (dBASE names must), and it is cut to
       10 characters (year_built -> YEAR_BUILT, parcel_id -> PARCEL_ID);
    3. a name already taken gets a numeric suffix replacing its tail: NAME_1, NAME_2, ...
       (assessment_district_a -> ASSESSMENT, assessment_district_b -> ASSESSME_1).

    Upper case is the dBASE convention, and DBF readers compare names case-insensitively, so
    uniqueness is decided on the upper-cased names.
    """
    taken: set[str] = set()
    mapping: dict[str, str] = {}
    for f in fields:
        base = DBF_ABBREVIATIONS.get(f.name.lower())
        if base is None:
            base = _NOT_DBF_CHAR.sub("_", f.name.upper())
            if not base[:1].isalpha():
                base = f"F{base}"
            base = base[:DBF_NAME_LIMIT]
        name = base
        n = 0
        while name in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: DBF_NAME_LIMIT - len(suffix)] + suffix
        taken.add(name)
        mapping[f.name] = name
    return mapping


def _dbf_text(value: str) -> str:
    """Fit text into the C(254) field without pyshp's data-loss warning or a split character:
    trailing blanks are padding in DBF anyway, and over-long text is cut at a UTF-8 boundary."""
    text = value.rstrip(" \x00")
    if len(text) * 4 > DBF_TEXT_BYTES:
        encoded = text.encode("utf-8")
        if len(encoded) > DBF_TEXT_BYTES:
            text = encoded[:DBF_TEXT_BYTES].decode("utf-8", errors="ignore").rstrip(" \x00")
    return text


class ShapefileWriter(StreamingWriter):
    format_name: ClassVar[str] = "Shapefile"
    content_type: ClassVar[str] = "application/zip"
    extension: ClassVar[str] = "shp.zip"
    exterior_cw: ClassVar[bool] = True

    def _start(self) -> None:
        if self.geometry == "mixed":
            raise ValueError(
                "a Shapefile holds one shape type: it cannot mix lot polygons and points"
            )
        self._names = shapefile_field_names(self.fields)
        self._text_columns = [i for i, f in enumerate(self.fields) if f.type == "str"]
        # The loose files live in their own scratch folder until zipped, so they can never
        # collide with other files in `directory` and are removed as a unit.
        self._stage = self.directory / f".{self.basename}.shp-parts"
        self._scratch.append(self._stage)
        if self._stage.exists():
            for child in self._stage.iterdir():
                child.unlink()
        self._stage.mkdir(exist_ok=True)
        # A fixed stem: pyshp derives the member names with Path.with_suffix, which would cut
        # a basename such as "parcels.2024" short. The zip gets the real names.
        self._stem = self._stage / "layer"
        shape_type = shapefile.POINT if self.geometry == "point" else shapefile.POLYGON
        self._shp = shapefile.Writer(self._stem, shapeType=shape_type, encoding="utf-8")
        for f in self.fields:
            kind, size, decimal = _DBF_SPEC[f.type]
            self._shp.field(self._names[f.name], kind, size, decimal)
        if not self.fields:
            # A DBF needs at least one column; an attribute-less export gets a row number.
            self._shp.field("FID", "N", 18, 0)

    def field_names(self) -> dict[str, str]:
        return dict(self._names)

    def _write(self, geoms: np.ndarray, rows: list[list[Value]]) -> None:
        for number, (shape, row) in enumerate(
            zip(self._shapes(geoms), rows, strict=True), start=self.row_count + 1
        ):
            if shape is None:
                self._shp.null()
            elif self.geometry == "point":
                self._shp.point(*shape)
            else:
                self._shp.poly(shape)
            for i in self._text_columns:
                value = row[i]
                # pyshp writes a positional None in a C field as the text "None".
                row[i] = "" if value is None else _dbf_text(str(value))
            if self.fields:
                self._shp.record(*row)
            else:
                self._shp.record(number)
        for stream in (self._shp.shp, self._shp.shx, self._shp.dbf):
            stream.flush()

    def _shapes(self, geoms: np.ndarray) -> Iterator[Any]:
        """Per feature, what pyshp takes: (x, y) of a point, a polygon's rings, or None."""
        if self.geometry == "point":
            present = ~shapely.is_missing(geoms)
            xy = np.full((len(geoms), 2), np.nan)
            xy[present] = shapely.get_coordinates(geoms[present])
            for point, ok in zip(xy.tolist(), present.tolist(), strict=True):
                yield point if ok else None
            return
        for polygons in polygon_rings(geoms):
            yield [ring.tolist() for rings in polygons for ring in rings] if polygons else None

    def _finish(self) -> None:
        self._shp.close()
        self._stem.with_suffix(".prj").write_text(ESRI_WGS84_WKT, encoding="ascii")
        self._stem.with_suffix(".cpg").write_text("UTF-8", encoding="ascii")
        with zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for ext in _MEMBER_EXTENSIONS:
                archive.write(self._stem.with_suffix(f".{ext}"), arcname=f"{self.basename}.{ext}")
        for ext in _MEMBER_EXTENSIONS:
            self._stem.with_suffix(f".{ext}").unlink()
        self._stage.rmdir()

    def _release(self) -> None:
        # pyshp refuses to close while a shape lacks its record (only possible if a write
        # failed half-way); balancing first lets it release the files, which are about to be
        # deleted, so nothing else it could complain about matters.
        with warnings.catch_warnings(), contextlib.suppress(Exception):
            warnings.simplefilter("ignore")
            self._shp.balance()
            self._shp.close()
