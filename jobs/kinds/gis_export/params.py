"""A GIS export's parameters and the layers it can write."""

from __future__ import annotations

from pydantic import Field

from jobs.params import Params

LAYERS = ("parcels", "assessments", "sales", "zoning")
"""What an export joins onto each parcel; zoning also writes the zone polygons as a layer of
their own where the format holds several (GeoPackage, KML)."""


class GisExportParams(Params):
    """What to join onto each parcel, and how many parcels to write per batch."""

    tax_year: int | None = Field(
        default=None,
        ge=1800,
        le=2200,
        description="assessment year of the assessments layer (default: the latest)",
    )
    batch_size: int = Field(
        default=2000, ge=100, le=50_000, description="parcels read and written per batch"
    )
