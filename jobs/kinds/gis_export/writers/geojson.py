"""GeoJSON (RFC 7946), written as one FeatureCollection streamed feature by feature.

Rules followed, by RFC 7946 section:

* 4 - coordinates are WGS 84 longitude, latitude and there is no "crs" member (removed from
  the format; its presence makes some readers reject or reproject the file).
* 3.1.6 - polygon rings follow the right-hand rule: exterior counter-clockwise, holes
  clockwise (`exterior_cw = False`, applied to the batch with shapely.orient_polygons).
* 3.2 - a Feature with no location has ``"geometry": null``.
* 5 - the optional "bbox" member: it is only known once every feature is written, so it is
  emitted after "features" (member order is not significant in JSON, RFC 8259 section 4) and
  omitted for an empty collection, where there is no extent to report.
* 11/RFC 8259 section 8.1 - UTF-8 without a byte order mark; non-ASCII text is written as is.

The file is written as header, comma-separated features, footer, so memory never holds more
than one batch; each geometry's JSON comes from one vectorised shapely.to_geojson call (full
double precision, so coordinates round-trip exactly).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import IO, ClassVar

import numpy as np
import shapely

from jobs.kinds.gis_export.writers.base import StreamingWriter, Value

_HEADER = '{"type":"FeatureCollection","features":[\n'


def _json_default(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class GeoJSONWriter(StreamingWriter):
    format_name: ClassVar[str] = "GeoJSON"
    content_type: ClassVar[str] = "application/geo+json"  # RFC 7946 section 12
    extension: ClassVar[str] = "geojson"
    exterior_cw: ClassVar[bool] = False

    def _start(self) -> None:
        self._names = [f.name for f in self.fields]
        self._file: IO[str] = self.path.open("w", encoding="utf-8", newline="\n")
        self._file.write(_HEADER)
        self._file.flush()

    def _write(self, geoms: np.ndarray, rows: list[list[Value]]) -> None:
        geometry_json = shapely.to_geojson(geoms).tolist()
        chunks: list[str] = []
        for geometry, row in zip(geometry_json, rows, strict=True):
            properties = json.dumps(
                dict(zip(self._names, row, strict=True)),
                ensure_ascii=False,
                allow_nan=False,
                default=_json_default,
            )
            chunks.append(
                f'{{"type":"Feature","geometry":{geometry or "null"},"properties":{properties}}}'
            )
        separator = ",\n" if self.row_count else ""
        self._file.write(separator + ",\n".join(chunks))
        self._file.flush()

    def _finish(self) -> None:
        footer = "\n]"
        if self.bbox is not None:
            footer += ',"bbox":' + json.dumps(list(self.bbox))
        self._file.write(footer + "}\n")
        self._file.close()

    def _release(self) -> None:
        self._file.close()
