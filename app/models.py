"""County data tables: what the jobs compute from.

Geometry is kept as GeoJSON (WGS84 lon/lat) beside plain bbox and centroid columns, so a
spatial prefilter is an indexed range query on any PostgreSQL, with no PostGIS to install.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, Float, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB}


class Parcel(Base):
    __tablename__ = "parcels"
    __table_args__ = (
        UniqueConstraint("county_id", "parcel_id", name="uq_parcels_county_parcel"),
        Index("ix_parcels_county_bbox", "county_id", "min_lon", "max_lon", "min_lat", "max_lat"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    county_id: Mapped[str] = mapped_column(String(64))
    parcel_id: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(255))
    zip_code: Mapped[str | None] = mapped_column(String(16))
    neighborhood: Mapped[str | None] = mapped_column(String(64))
    property_class: Mapped[str | None] = mapped_column(String(64))
    year_built: Mapped[int | None] = mapped_column(Integer)
    living_area_sqft: Mapped[float | None] = mapped_column(Float)
    lot_size_sqft: Mapped[float | None] = mapped_column(Float)
    bedrooms: Mapped[int | None] = mapped_column(Integer)
    bathrooms: Mapped[float | None] = mapped_column(Float)
    # The optional characteristics of app/characteristics.py, one column each.
    garage_spaces: Mapped[int | None] = mapped_column(Integer)
    basement_sqft: Mapped[float | None] = mapped_column(Float)
    fireplaces: Mapped[int | None] = mapped_column(Integer)
    central_air: Mapped[int | None] = mapped_column(Integer)
    quality: Mapped[int | None] = mapped_column(Integer)
    condition: Mapped[int | None] = mapped_column(Integer)
    stories: Mapped[float | None] = mapped_column(Float)
    remodel_year: Mapped[int | None] = mapped_column(Integer)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSONB)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    centroid_lon: Mapped[float] = mapped_column(Float)
    centroid_lat: Mapped[float] = mapped_column(Float)


class Sale(Base):
    __tablename__ = "sales"
    __table_args__ = (
        UniqueConstraint("county_id", "parcel_id", "sale_date", name="uq_sales_county_parcel_date"),
        Index("ix_sales_county_date", "county_id", "sale_date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    county_id: Mapped[str] = mapped_column(String(64))
    parcel_id: Mapped[str] = mapped_column(String(64))
    sale_date: Mapped[dt.date] = mapped_column(Date)
    sale_price: Mapped[float] = mapped_column(Float)
    arms_length: Mapped[bool] = mapped_column(server_default=text("true"))


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (
        UniqueConstraint(
            "county_id", "parcel_id", "tax_year", name="uq_assessments_county_parcel_year"
        ),
        Index("ix_assessments_county_year", "county_id", "tax_year"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    county_id: Mapped[str] = mapped_column(String(64))
    parcel_id: Mapped[str] = mapped_column(String(64))
    tax_year: Mapped[int] = mapped_column(Integer)
    land_value: Mapped[float | None] = mapped_column(Float)
    improvement_value: Mapped[float | None] = mapped_column(Float)
    assessed_value: Mapped[float] = mapped_column(Float)


class Zone(Base):
    """One polygon of a county's zoning layer.

    A zoning file is a layer, not keyed records: many polygons may share a zone code, and an
    import replaces the county's layer as a whole. ``feature`` is the polygon's position in
    the file it came from (line or feature index), so a zone can be traced back to its row.
    """

    __tablename__ = "zoning"
    __table_args__ = (
        UniqueConstraint("county_id", "feature", name="uq_zoning_county_feature"),
        Index("ix_zoning_county_bbox", "county_id", "min_lon", "max_lon", "min_lat", "max_lat"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    county_id: Mapped[str] = mapped_column(String(64))
    feature: Mapped[int] = mapped_column(Integer)
    zone_code: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(String(255))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSONB)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
