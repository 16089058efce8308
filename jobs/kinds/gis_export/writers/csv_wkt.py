"""CSV with the geometry as WKT, for spreadsheets and for GIS tools' "delimited text" import.

One header row of the attribute names plus a final ``WKT`` column (the name GDAL's CSV
driver and QGIS's delimited-text import take as the geometry without being told), then one row per
feature, written with the csv module's RFC 4180 dialect (comma separator, CRLF line ends,
fields quoted when they contain a comma, quote or line break). UTF-8 without a byte order
mark. The WKT (OGC 06-103r4 section 7) comes from one vectorised shapely.to_wkt call per batch
at full precision (``rounding_precision=-1``; shapely's default of 6 decimals would move
coordinates by up to 5 cm) with rings counter-clockwise like the other formats. Dates are ISO
8601, booleans ``true``/``false``, and a missing value or geometry is an empty cell.
"""

from __future__ import annotations

import csv
from typing import IO, ClassVar

import numpy as np
import shapely

from jobs.kinds.gis_export.writers.base import (
    StreamingWriter,
    Value,
    text_value,
)

GEOMETRY_COLUMN = "WKT"


class CSVWriter(StreamingWriter):
    format_name: ClassVar[str] = "CSV"
    content_type: ClassVar[str] = "text/csv; charset=utf-8"  # RFC 4180 section 3, RFC 7111
    extension: ClassVar[str] = "csv"
    exterior_cw: ClassVar[bool] = False

    def _start(self) -> None:
        if any(f.name.lower() == GEOMETRY_COLUMN.lower() for f in self.fields):
            raise ValueError(f"field name {GEOMETRY_COLUMN!r} is reserved for the CSV geometry")
        # newline="" hands line-end control to the csv module (its documented requirement).
        self._file: IO[str] = self.path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow([*(f.name for f in self.fields), GEOMETRY_COLUMN])
        self._file.flush()

    def _write(self, geoms: np.ndarray, rows: list[list[Value]]) -> None:
        wkt = shapely.to_wkt(geoms, rounding_precision=-1).tolist()
        self._csv.writerows(
            [*(text_value(v) for v in row), w or ""] for row, w in zip(rows, wkt, strict=True)
        )
        self._file.flush()

    def _finish(self) -> None:
        self._file.close()

    def _release(self) -> None:
        self._file.close()
