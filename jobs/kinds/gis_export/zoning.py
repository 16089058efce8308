"""The zoning layer of an export: the county's zone polygons, and the zone of each parcel.

A parcel is in the zone its centroid falls in (a point on a shared edge counts for both
zones, and the first of them in the imported file wins, as it does where zones overlap), so
a lot straddling a zone line still gets exactly one zone, the one holding most of it in the
usual case. PostgreSQL here has no PostGIS, so the join runs in shapely: one STRtree of the
zones, built once per export, queried with a whole batch of centroids at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Zone
from jobs.kinds.gis_export.writers import Field

PARCEL_ZONE_FIELDS = (Field("zone_code", "str"), Field("zone_description", "str"))
"""What each exported parcel carries when the ZONING layer is asked for."""
ZONE_FIELDS = PARCEL_ZONE_FIELDS
"""The attributes of the zone polygons' own layer: the same names as on the parcels (and
not KML's own ``description``, which a KML reader would confuse it with)."""
ZONE_LAYER = "zoning"

ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Zones:
    """A county's zone polygons in file order, with a spatial index over them."""

    code: ObjectArray
    description: ObjectArray
    geometry: ObjectArray
    tree: shapely.STRtree

    def __len__(self) -> int:
        return len(self.code)

    def of(self, geometries: ObjectArray) -> tuple[list[Any], list[Any]]:
        """(zone codes, descriptions) of the zone each geometry's centroid falls in; None for
        a centroid in no zone (or no geometry)."""
        centroids = shapely.centroid(geometries)
        found, zones = self.tree.query(centroids, predicate="intersects")
        chosen = np.full(len(geometries), -1, dtype=np.int64)
        if len(found):
            order = np.lexsort((zones, found))
            found, zones = found[order], zones[order]
            _, first = np.unique(found, return_index=True)
            chosen[found[first]] = zones[first]
        missing = chosen < 0
        codes = self.code[np.where(missing, 0, chosen)]
        descriptions = self.description[np.where(missing, 0, chosen)]
        codes[missing] = None
        descriptions[missing] = None
        return codes.tolist(), descriptions.tolist()

    def records(self, keep: npt.NDArray[np.bool_]) -> list[dict[str, Any]]:
        """The kept zones as records of `ZONE_FIELDS`."""
        return [
            {"zone_code": code, "zone_description": description}
            for code, description in zip(
                self.code[keep].tolist(), self.description[keep].tolist(), strict=True
            )
        ]


async def county_has_zoning(session: AsyncSession, county_id: str) -> bool:
    found = await session.scalar(
        select(func.count()).select_from(Zone).where(Zone.county_id == county_id).limit(1)
    )
    return bool(found)


async def load_zones(session: AsyncSession, county_id: str) -> Zones:
    """Every zone of the county: a parcel selected by the area may have its centroid outside
    the area, so the zones are not cut to it (a county has thousands of zones, not millions)."""
    rows = (
        await session.execute(
            select(Zone.zone_code, Zone.description, cast(Zone.geometry, Text))
            .where(Zone.county_id == county_id)
            .order_by(Zone.feature)
        )
    ).all()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    code, description, geojson = (np.array(column, dtype=object) for column in columns)
    geometry = shapely.from_geojson(geojson) if len(geojson) else np.empty(0, dtype=object)
    return Zones(code, description, geometry, shapely.STRtree(geometry))
