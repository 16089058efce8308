"""A GIS export: the county's parcels that intersect an area, streamed to a file.

Parcels are read through a server-side cursor in batches; the indexed bbox columns
prefilter in SQL and shapely decides exact intersection, batch by batch, so memory stays
flat however many parcels the county has. Each batch's GEOS and formatting work runs in a
thread, so one export does not stall the worker's other jobs or its progress events.
With the zoning layer, each batch's lots get their zone from one STRtree query
(`jobs.kinds.gis_export.zoning`), and a GeoPackage or KML file gets the zone polygons as a
second layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Text, and_, cast, func, select
from sqlalchemy.orm import aliased

from app.models import Assessment, Parcel, Sale
from jobs.blocking import off_loop
from jobs.context import RunContext
from jobs.county_data import require_tax_year
from jobs.kinds.gis_export.area import AreaOfInterest, parse_area_of_interest
from jobs.kinds.gis_export.params import GisExportParams
from jobs.kinds.gis_export.writers import (
    FeatureWriter,
    Field,
    GeometryKind,
    GeoPackageWriter,
    KMLWriter,
    open_writer,
)
from jobs.kinds.gis_export.zoning import (
    PARCEL_ZONE_FIELDS,
    ZONE_FIELDS,
    ZONE_LAYER,
    Zones,
    load_zones,
)
from jobs.spec import JobFailure

PARCEL_FIELDS = (
    Field("parcel_id", "str"),
    Field("address", "str"),
    Field("zip_code", "str"),
    Field("neighborhood", "str"),
    Field("property_class", "str"),
    Field("year_built", "int"),
    Field("living_area_sqft", "float"),
    Field("lot_size_sqft", "float"),
    Field("bedrooms", "int"),
    Field("bathrooms", "float"),
)
ASSESSMENT_FIELDS = (
    Field("tax_year", "int"),
    Field("land_value", "float"),
    Field("improvement_value", "float"),
    Field("assessed_value", "float"),
)
SALE_FIELDS = (Field("last_sale_date", "date"), Field("last_sale_price", "float"))


async def run(ctx: RunContext, params: GisExportParams) -> dict[str, Any]:
    layers: list[str] = ctx.columns["layers"]
    area = parse_area_of_interest(ctx.columns["area_of_interest"])
    await ctx.progress("selecting parcels", percent=2)
    fields: list[Field] = [PARCEL_FIELDS[0]]
    columns: list[Any] = [Parcel.parcel_id]
    if "parcels" in layers:
        fields += PARCEL_FIELDS[1:]
        columns += [getattr(Parcel, f.name) for f in PARCEL_FIELDS[1:]]
    query_filters = [Parcel.county_id == ctx.county_id]
    if area is not None:
        min_lon, min_lat, max_lon, max_lat = area.bbox
        query_filters += [
            Parcel.max_lon >= min_lon,
            Parcel.min_lon <= max_lon,
            Parcel.max_lat >= min_lat,
            Parcel.min_lat <= max_lat,
        ]
    async with ctx.sessions() as session:
        query = select(*columns, cast(Parcel.geometry, Text).label("geojson")).where(*query_filters)
        if "assessments" in layers:
            tax_year = await require_tax_year(ctx.rows, ctx.county_id, params.tax_year)
            fields += ASSESSMENT_FIELDS
            query = query.add_columns(
                Assessment.tax_year,
                Assessment.land_value,
                Assessment.improvement_value,
                Assessment.assessed_value,
            ).outerjoin(
                Assessment,
                and_(
                    Assessment.county_id == Parcel.county_id,
                    Assessment.parcel_id == Parcel.parcel_id,
                    Assessment.tax_year == tax_year,
                ),
            )
        if "sales" in layers:
            fields += SALE_FIELDS
            latest = (
                select(
                    Sale.parcel_id,
                    Sale.sale_date,
                    Sale.sale_price,
                    func.row_number()
                    .over(partition_by=Sale.parcel_id, order_by=Sale.sale_date.desc())
                    .label("rank"),
                )
                .where(Sale.county_id == ctx.county_id, Sale.arms_length.is_(True))
                .subquery()
            )
            last = aliased(latest)
            query = query.add_columns(last.c.sale_date, last.c.sale_price).outerjoin(
                last, and_(last.c.parcel_id == Parcel.parcel_id, last.c.rank == 1)
            )
        zones: Zones | None = None
        if "zoning" in layers:
            zones = await load_zones(session, ctx.county_id)
            fields += PARCEL_ZONE_FIELDS
        total, points = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(Parcel.geometry["type"].astext == "Point"),
                ).where(*query_filters)
            )
        ).one()
        geometry = layer_geometry(total, points)
        if geometry == "mixed" and ctx.columns["export_format"] == "Shapefile":
            raise JobFailure(
                "UNSUPPORTED_GEOMETRY",
                f"{points} of the {total} parcels selected are located by a Point (imported by "
                "lon/lat), the others by a lot polygon; a Shapefile holds one shape type, so "
                "export this selection as GeoPackage, GeoJSON, KML or CSV, or import the "
                "points' boundaries (a geometry column)",
            )
        ctx.job_dir.mkdir(parents=True, exist_ok=True)
        names = [f.name for f in fields]
        scanned = 0
        stream = await session.stream(
            query.order_by(Parcel.parcel_id).execution_options(yield_per=params.batch_size)
        )
        # Leaving the block without close() (a failure, a cancel) removes the partial file.
        with open_writer(
            ctx.columns["export_format"],
            ctx.job_dir,
            f"parcels_{ctx.county_id}",
            fields,
            geometry=geometry,
        ) as writer:
            async for rows in stream.partitions(params.batch_size):
                await off_loop(_write_batch, writer, rows, names, area, zones)
                scanned += len(rows)
                await ctx.progress(
                    "writing features",
                    processed=scanned,
                    total=total,
                    percent=5 + 90 * scanned / max(total, 1),
                )
            if zones is not None and isinstance(writer, GeoPackageWriter | KMLWriter):
                await off_loop(_write_zones, writer, zones, area)
            written = writer.close()
    ctx.files.append(written.path)
    return {
        "file": ctx.result_file(written.path, written.content_type, written.row_count),
        "record_count": written.row_count,
        "bbox": list(written.bbox) if written.bbox else None,
        "crs": "EPSG:4326",
        "field_names": written.field_names,
    }


def _write_batch(
    writer: FeatureWriter,
    rows: Sequence[Any],
    names: list[str],
    area: AreaOfInterest | None,
    zones: Zones | None,
) -> None:
    """Keep the rows whose lot intersects the area, give each its zone if asked, and append
    them to the file."""
    geometries = shapely.from_geojson(np.array([row.geojson for row in rows], dtype=object))
    keep = area.intersects(geometries) if area is not None else np.ones(len(rows), bool)
    kept = geometries[keep]
    kept_rows = [row for row, kept_row in zip(rows, keep.tolist(), strict=True) if kept_row]
    if zones is None:
        records = [dict(zip(names, _reorder(row), strict=True)) for row in kept_rows]
    else:
        codes, descriptions = zones.of(kept)
        records = [
            dict(zip(names, (*_reorder(row), code, description), strict=True))
            for row, code, description in zip(kept_rows, codes, descriptions, strict=True)
        ]
    writer.write_batch(kept, records)


def _write_zones(
    writer: GeoPackageWriter | KMLWriter, zones: Zones, area: AreaOfInterest | None
) -> None:
    """The zone polygons that meet the area, as the file's second layer."""
    keep = area.intersects(zones.geometry) if area is not None else np.ones(len(zones), bool)
    writer.add_layer(ZONE_LAYER, ZONE_FIELDS, zones.geometry[keep], zones.records(keep))


def layer_geometry(total: int, points: int) -> GeometryKind:
    """What the layer holds, from the selection's counts (a bbox prefilter, so a mixed
    prefilter may hold only one kind exactly inside the area; it is still called mixed).

    Parcels imported by lon/lat are Points: they are exported as points, never dropped
    (which would leave the file silently incomplete) nor refused, except by a Shapefile
    asked to hold both kinds.
    """
    if points == 0:
        return "polygon"
    return "point" if points == total else "mixed"


def _reorder(row: Any) -> tuple[Any, ...]:
    """Row values in field order: the geometry column sits between the parcel and joined ones."""
    values = tuple(row)
    geometry_at = row._fields.index("geojson")
    return values[:geometry_at] + values[geometry_at + 1 :]
