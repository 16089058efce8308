"""How the command line counts things: "1 row", "2 rows", "20,000 parcels"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`number` with thousands separators and `noun` in the form the number needs."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
