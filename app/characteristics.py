"""The optional building characteristics a CAMA system exports, beyond the core ones.

Declared once here: the parcels table's columns (app/models.py), the import's columns and
their checks (app/importer.py), and the valuation models' candidate features all read this
list, so adding a characteristic is one line. Every one is optional in a parcels file; a
county that has none of them still imports and values as before.

Codes follow common CAMA practice: ``central_air`` is 1 (has it) or 0, ``quality`` and
``condition`` are ordinal grades where a higher number is better (e.g. 1 poor .. 6
excellent; the scale is the county's own, only the order matters to the models).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Characteristic:
    name: str
    integer: bool
    minimum: float
    maximum: float | None
    description: str


EXTRA_CHARACTERISTICS: tuple[Characteristic, ...] = (
    Characteristic("garage_spaces", True, 0, 100, "garage parking spaces"),
    Characteristic("basement_sqft", False, 0, None, "finished and unfinished basement area"),
    Characteristic("fireplaces", True, 0, 100, "number of fireplaces"),
    Characteristic("central_air", True, 0, 1, "1 with central air conditioning, 0 without"),
    Characteristic("quality", True, 0, 100, "construction quality grade (higher is better)"),
    Characteristic("condition", True, 0, 100, "physical condition grade (higher is better)"),
    Characteristic("stories", False, 0, 200, "number of stories (1.5 for a story and a half)"),
    Characteristic("remodel_year", True, 0, 2100, "year of the last major remodel"),
)
EXTRA_NAMES: tuple[str, ...] = tuple(c.name for c in EXTRA_CHARACTERISTICS)
