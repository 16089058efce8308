"""A GIS export's parameters and the layers it can write."""

from __future__ import annotations

from pydantic import Field

from jobs.params import Params

LAYERS = ("parcels", "assessments", "sales")


class GisExportParams(Params):
    tax_year: int | None = Field(default=None, ge=1800, le=2200)
    batch_size: int = Field(default=2000, ge=100, le=50_000)
