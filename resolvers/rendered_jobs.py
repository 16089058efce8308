"""The `Job` last built from each recently read job row, reused while its row stays the same.

A client following a job asks for it again and again (`job(id)` polled for progress), and
between two changes every read returns the same row. Turning a row into its snapshot and
the snapshot into the schema's object cost about an eighth of such a request's CPU, though
the same row always makes the same object (`job_from_snapshot(snapshot(spec, row))`
reads nothing but the row). Every request still reads the row and checks who may see it;
only the object is kept, and only for a row equal to the one it was built from in every
value and every value's type, all the way into its JSON columns: `1 == 1.0 == True` and
`0.0 == -0.0`, yet each prints differently. Built objects are never changed afterwards
(resolvers only read them), so requests may share one.

The rows compare as tuples first (`==`, at C speed); only the columns whose equal values
may still print differently are then walked: JSON, floats (the sign of a zero) and any
type not known to be exact. A column of another type (text, integer, boolean, UUID, date,
timestamp) always arrives as the same Python type from the driver, so `==` is enough there.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

from jobs.lifecycle import row_by_id, snapshot
from jobs.spec import JobKind, KindSpec
from schema.job import Job
from schema.job_types import job_from_snapshot

MAX_RENDERED_JOBS = 256
"""Rows kept with their objects; the oldest kept goes first. A few KiB each for most jobs;
more for a finished job with a large result, hence few: those a handful of clients follow."""

EXACT = frozenset({str, int, bool, uuid.UUID, type(None)})
"""Types whose equal values always print the same."""
EXACT_COLUMNS = frozenset({str, int, bool, uuid.UUID, dt.datetime, dt.date})
"""Python types of columns whose values `==` compares exactly (the driver gives one
Python type per column type; datetimes of one column in one time zone)."""


class RenderedJobs:
    def __init__(self, size: int = MAX_RENDERED_JOBS) -> None:
        self._size = size
        self._kept: dict[Any, tuple[KindSpec, tuple[Any, ...], Job]] = {}
        self._loose: dict[JobKind, tuple[int, ...]] = {}

    def job(self, spec: KindSpec, row: tuple[Any, ...]) -> Job:
        """The object `job_from_snapshot(snapshot(spec, row))` builds, built anew only when
        this row differs from the one last read for its id."""
        key = row.id  # type: ignore[attr-defined]
        kept = self._kept.get(key)
        if kept is not None and kept[0] is spec and self._alike(spec, kept[1], row):
            return kept[2]
        job = job_from_snapshot(snapshot(spec, row))
        if kept is None and len(self._kept) >= self._size:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = (spec, row, job)
        return job

    def _alike(self, spec: KindSpec, before: tuple[Any, ...], row: tuple[Any, ...]) -> bool:
        if before != row:
            return False
        loose = self._loose.get(spec.kind)
        if loose is None:
            loose = self._loose[spec.kind] = loose_columns(spec)
        return all(same_values(before[index], row[index]) for index in loose)


def loose_columns(spec: KindSpec) -> tuple[int, ...]:
    """Where in the kind's row `==` may hide a difference that prints."""
    loose = []
    for index, column in enumerate(row_by_id(spec).exported_columns):
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            python_type = object
        if python_type not in EXACT_COLUMNS:
            loose.append(index)
    return tuple(loose)


def same_values(a: Any, b: Any) -> bool:
    """Equal, and of the same type at every level (dict keys in the same order), so that
    both render to the same bytes."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind in EXACT:
        return bool(a == b)
    if kind is dict:
        return len(a) == len(b) and all(
            ka == kb and same_values(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if kind is list or issubclass(kind, tuple):
        return len(a) == len(b) and all(map(same_values, a, b))
    if kind is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    # datetimes in other time zones, Decimal("1.0") and Decimal("1.00"): equal, not alike
    return bool(a == b) and repr(a) == repr(b)
