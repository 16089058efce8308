"""Loading county data files (parcels, sales, assessments, zoning) into PostgreSQL.

The path of a file through here, and why each step is shaped the way it is:

1. A worker thread reads the file in batches (CSV: the ``csv`` module, streaming; parcels and
   zoning may also be a GeoJSON FeatureCollection) and validates each batch with vectorised
   numpy / shapely, so a county roll of a million rows costs seconds and the event loop stays
   free meanwhile.
2. Each validated batch goes to a TEMP table with asyncpg's binary COPY: no per-row SQL.
3. After the last batch: one duplicate-key query on the temp table, then a single
   ``INSERT … SELECT … ON CONFLICT (natural key) DO UPDATE``, then commit. Everything runs in one
   transaction, so a bad row anywhere leaves the tables exactly as they were.

``copy_upsert`` (steps 2-3) is public because the demo county loader (`app.demo_data`) feeds it
generated columns directly: both paths write through the same SQL.

Error messages have the form ``FILE:LINE: COLUMN: what is wrong`` (LINE is 1-based with the
header on line 1; a GeoJSON file gives ``features[i]`` instead). Within a batch the row checks
report the earliest bad row whichever column fails; duplicate natural keys are found by one query
after all rows passed their own checks, so a duplicate is reported only when no row has a bad
value.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import json
import operator
import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.characteristics import EXTRA_CHARACTERISTICS, EXTRA_NAMES
from app.models import Assessment, Parcel, Sale, Zone
from app.wording import counted

Kind = Literal["parcels", "sales", "assessments", "zoning"]
KINDS: tuple[Kind, ...] = get_args(Kind)

ProgressCallback = Callable[[int, int | None], None]
"""Called as ``progress(rows_done, total)`` after each batch is copied; see `import_file`."""

DEFAULT_BATCH_SIZE = 50_000
UNKNOWN_PARCELS_SHOWN = 5
"""Rows of unknown parcels named one by one in `UnknownParcelsError` (all are counted)."""

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

# Plausibility bounds. Years outside them are almost always typos ("0221-05-01", "20021").
FIRST_DATE = np.datetime64("1800-01-01", "D")
LAST_DATE = np.datetime64("2100-12-31", "D")
TAX_YEARS = (1800, 2200)
MAX_YEAR_BUILT = 2100

# Geometry types a parcel location may have: Point, Polygon, MultiPolygon (shapely type ids);
# a zone is an area, so only the polygons.
_LOCATION_TYPES = ((0, 3, 6), "a Polygon, MultiPolygon or Point")
_ZONE_TYPES = ((3, 6), "a Polygon or MultiPolygon")
# Counts stored as PostgreSQL integers; anything near the limit is a typo anyway.
MAX_BEDROOMS = 1000

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class DataFileError(ValueError):
    """A data file that cannot be loaded; ``str()`` is ``FILE:LINE: COLUMN: what is wrong``.

    The parts are kept as attributes so a caller (CLI, a job) can point at the cell.
    """

    def __init__(self, source: str, where: str, column: str, problem: str) -> None:
        self.source = source
        self.where = where
        self.column = column
        self.problem = problem
        super().__init__(f"{source}:{where}: {column}: {problem}")


class UnknownParcelsError(DataFileError):
    """Sales or assessments of parcels the county does not have.

    Such a row can never join a parcel, so no study would use it, and it usually means the
    wrong file or the wrong county. ``str()`` names the first few rows, one
    ``FILE:LINE: parcel_id: 'X' is not a parcel of county C`` line each, then how many there
    are in all; ``rows`` holds those (where, parcel_id) pairs and ``count`` the total.
    """

    def __init__(
        self, source: str, county_id: str, rows: list[tuple[str, str]], count: int
    ) -> None:
        where, parcel_id = rows[0]
        super().__init__(source, where, "parcel_id", _not_a_parcel(parcel_id, county_id))
        self.county_id = county_id
        self.rows = rows
        self.count = count

    def __str__(self) -> str:
        lines = [
            f"{self.source}:{where}: parcel_id: {_not_a_parcel(parcel_id, self.county_id)}"
            for where, parcel_id in self.rows
        ]
        hidden = self.count - len(self.rows)
        lines.append(
            f"{self.source}: {counted(self.count, 'row')} in all name parcels that county "
            f"{self.county_id} does not have"
            + (f" ({hidden:,} more not shown)" if hidden else "")
            + "; load the county's parcels first, or load these rows anyway with "
            "--allow-unknown-parcels"
        )
        return "\n".join(lines)


def _not_a_parcel(parcel_id: str, county_id: str) -> str:
    return f"{_shown(parcel_id)} is not a parcel of county {county_id}"


@dataclass(frozen=True)
class ImportReport:
    """What one load did.

    ``inserted`` are new natural keys, ``updated`` existing keys whose values changed, and
    ``unchanged`` existing keys whose row was already identical (those are not rewritten, so
    re-importing the same roll leaves no dead tuples behind). The three add up to ``rows``.
    ``unknown_parcels`` counts rows (of sales or assessments) whose parcel the county does not
    have, loaded only because the caller allowed them. ``replaced`` counts the rows a
    layer's load (zoning) deleted before writing its own.
    """

    kind: Kind
    county_id: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    unknown_parcels: int = 0
    replaced: int = 0

    def __str__(self) -> str:
        return (
            f"{self.kind}: {counted(self.rows, 'row')} ({self.inserted:,} inserted, "
            f"{self.updated:,} updated, {self.unchanged:,} unchanged)"
        )


@dataclass(frozen=True)
class RowBatch:
    """Validated rows ready for COPY, column by column.

    ``positions`` says where each row came from (a file line, a feature index, a generated row
    number); it is copied along so the duplicate-key check can name both rows. ``columns`` maps a
    table column to Python values in COPY form (``None`` = NULL, dates as ``datetime.date``,
    ``geometry`` as GeoJSON text).
    """

    positions: IntArray
    columns: Mapping[str, list[Any]]

    def __len__(self) -> int:
        return int(self.positions.size)


@dataclass(frozen=True)
class _Table:
    """How one kind lands in its table: natural key and the columns a file can fill."""

    name: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    required: tuple[str, ...]
    replaces: bool = False
    """A load replaces the county's rows as a whole (a layer, not records with a key)."""

    def column_type(self, column: str) -> str:
        return dict(self.columns)[column]


LOCATION_COLUMNS = (
    "geometry",
    "min_lon",
    "min_lat",
    "max_lon",
    "max_lat",
    "centroid_lon",
    "centroid_lat",
)
"""The parcel columns `location_columns` fills; every parcels load carries all of them."""

_TABLES: dict[Kind, _Table] = {
    "parcels": _Table(
        name=Parcel.__tablename__,
        key=("parcel_id",),
        columns=(
            ("parcel_id", "text"),
            ("address", "text"),
            ("zip_code", "text"),
            ("neighborhood", "text"),
            ("property_class", "text"),
            ("year_built", "integer"),
            ("living_area_sqft", "double precision"),
            ("lot_size_sqft", "double precision"),
            ("bedrooms", "integer"),
            ("bathrooms", "double precision"),
            *(
                (c.name, "integer" if c.integer else "double precision")
                for c in EXTRA_CHARACTERISTICS
            ),
            ("geometry", "text"),
            ("min_lon", "double precision"),
            ("min_lat", "double precision"),
            ("max_lon", "double precision"),
            ("max_lat", "double precision"),
            ("centroid_lon", "double precision"),
            ("centroid_lat", "double precision"),
        ),
        required=("parcel_id",),
    ),
    "sales": _Table(
        name=Sale.__tablename__,
        key=("parcel_id", "sale_date"),
        columns=(
            ("parcel_id", "text"),
            ("sale_date", "date"),
            ("sale_price", "double precision"),
            ("arms_length", "boolean"),
        ),
        required=("parcel_id", "sale_date", "sale_price"),
    ),
    "assessments": _Table(
        name=Assessment.__tablename__,
        key=("parcel_id", "tax_year"),
        columns=(
            ("parcel_id", "text"),
            ("tax_year", "integer"),
            ("land_value", "double precision"),
            ("improvement_value", "double precision"),
            ("assessed_value", "double precision"),
        ),
        required=("parcel_id", "tax_year", "assessed_value"),
    ),
    "zoning": _Table(
        name=Zone.__tablename__,
        key=("feature",),
        columns=(
            ("feature", "integer"),
            ("zone_code", "text"),
            ("description", "text"),
            ("geometry", "text"),
            ("min_lon", "double precision"),
            ("min_lat", "double precision"),
            ("max_lon", "double precision"),
            ("max_lat", "double precision"),
        ),
        required=("zone_code", "geometry"),
        replaces=True,
    ),
}

_PARCEL_FILE_COLUMNS = (
    "parcel_id",
    "address",
    "zip_code",
    "neighborhood",
    "property_class",
    "year_built",
    "living_area_sqft",
    "lot_size_sqft",
    "bedrooms",
    "bathrooms",
    *EXTRA_NAMES,
    "lon",
    "lat",
    "geometry",
)
_FILE_COLUMNS: dict[Kind, tuple[str, ...]] = {
    "parcels": _PARCEL_FILE_COLUMNS,
    "sales": ("parcel_id", "sale_date", "sale_price", "arms_length"),
    "assessments": ("parcel_id", "tax_year", "land_value", "improvement_value", "assessed_value"),
    "zoning": ("zone_code", "description", "geometry"),
}
ZONE_COLUMNS = ("feature", "geometry", "min_lon", "min_lat", "max_lon", "max_lat")
"""The zoning columns every zoning load carries, whatever the file's optional columns."""


def _max_length(model: Any, column: str) -> int:
    """String limits come from the models, so a file can never fail on the INSERT instead."""
    col_type = model.__table__.c[column].type
    assert isinstance(col_type, String) and col_type.length is not None
    return int(col_type.length)


# ---------------------------------------------------------------------------------------------
# Public entry point


async def import_file(
    engine: AsyncEngine,
    kind: Kind,
    path: Path,
    county_id: str,
    *,
    progress: ProgressCallback | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    allow_unknown_parcels: bool = False,
) -> ImportReport:
    """Load one county data file, all or nothing, upserting on the natural key.

    Sales and assessments must be of parcels the county already has: a file with rows of
    other parcels is refused (`UnknownParcelsError`) unless ``allow_unknown_parcels``, which
    loads them and counts them in the report.

    ``progress(rows_done, total)`` is called after each batch is copied. ``total`` is the
    number of data lines counted up front with a cheap binary scan (for GeoJSON: the number of
    features); it is an upper bound when the file has blank lines or quoted line breaks, and the
    last call always has ``rows_done == total``. The final upsert runs after that last call.

    A zoning file is a layer: it replaces the county's zoning as a whole (``updated`` and
    ``unchanged`` are then 0, and ``replaced`` counts the zones it replaced).

    Columns a file does not have are left alone on existing rows (and NULL, or the column
    default, on new ones), so a file carrying only some attributes does not erase the others.
    A parcel row with a non-empty ``geometry`` cell takes its location from it (its lon/lat
    cells are then ignored); otherwise from ``lon``/``lat``.

    Raises `DataFileError` for a bad file (nothing written), ValueError for bad arguments.
    """
    if kind not in _TABLES:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    check_county_id(county_id)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    source = await asyncio.to_thread(_open_source, kind, Path(path), batch_size)
    try:
        async with engine.begin() as conn, contextlib.aclosing(_read_batches(source)) as batches:
            return await copy_upsert(
                conn,
                kind,
                county_id,
                batches,
                columns=_carried_columns(kind, source.present),
                source=source.name,
                describe=source.describe,
                progress=progress,
                total=source.total,
                allow_unknown_parcels=allow_unknown_parcels,
            )
    finally:
        source.close()


def check_county_id(county_id: str) -> None:
    """Reject a county id the tables cannot hold before any file is read."""
    limit = _max_length(Parcel, "county_id")
    if not county_id or len(county_id) > limit:
        raise ValueError(f"county_id must be 1..{limit} characters, got {county_id!r}")


async def _read_batches(source: _Source) -> AsyncGenerator[RowBatch, None]:
    """Parse in a worker thread, one batch ahead.

    Validation is CPU work that would otherwise stall the event loop, and reading batch k+1
    while batch k is being copied overlaps our parsing with the server's COPY work. Closing the
    generator waits for a read in flight, so the file is never closed under the thread.
    """
    pending = asyncio.ensure_future(asyncio.to_thread(source.next_batch))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(source.next_batch))
            yield batch
    finally:
        if not pending.done():
            await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()  # a failure after ours is moot; don't log it as unretrieved


# ---------------------------------------------------------------------------------------------
# COPY + upsert, shared with the demo loader


async def copy_upsert(
    conn: AsyncConnection,
    kind: Kind,
    county_id: str,
    batches: AsyncIterable[RowBatch] | Iterable[RowBatch],
    *,
    columns: Collection[str],
    source: str,
    describe: Callable[[int], str] = str,
    progress: ProgressCallback | None = None,
    total: int | None = None,
    allow_unknown_parcels: bool = False,
) -> ImportReport:
    """COPY batches into a temp table and upsert them into the kind's table.

    Runs inside the caller's transaction (``conn`` must come from ``engine.begin()``) and does
    not commit: the caller decides what is all-or-nothing (one file; or a whole demo county).
    ``columns`` are the table columns the batches carry; the natural key is always carried.
    ``source`` and ``describe(position)`` name rows in a duplicate-key error.
    Sales and assessments of parcels the county lacks raise `UnknownParcelsError` unless
    ``allow_unknown_parcels`` (parcels already written in this transaction count as known).
    """
    table = _TABLES[kind]
    loaded = [name for name, _ in table.columns if name in columns or name in table.key]
    tmp = f"_import_{kind}"
    # Two loads of the same county and kind at once would deadlock on each other's keys (and
    # make the inserted/updated counts wrong); the second waits for the first to commit.
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 0))"),
        {"lock": f"terrafusion-import:{kind}:{county_id}"},
    )
    replaced = 0
    if table.replaces:
        deleted = await conn.execute(
            text(f"DELETE FROM {table.name} WHERE county_id = :county"), {"county": county_id}
        )
        replaced = int(deleted.rowcount)
    column_defs = ", ".join(f"{name} {table.column_type(name)}" for name in loaded)
    await conn.execute(
        text(f"CREATE TEMP TABLE {tmp} (line integer NOT NULL, {column_defs}) ON COMMIT DROP")
    )
    raw = await conn.get_raw_connection()
    apg = raw.driver_connection
    if apg is None or not apg.is_in_transaction():
        raise RuntimeError("copy_upsert needs a connection inside a transaction")

    rows = 0

    def report(done: int) -> None:
        if progress is not None:
            progress(done, None if total is None else max(total, done))

    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            rows += await _copy_batch(apg, tmp, loaded, batch)
            report(rows)
    else:
        for batch in batches:
            rows += await _copy_batch(apg, tmp, loaded, batch)
            report(rows)
    if progress is not None and total is not None and total != rows:
        progress(rows, rows)

    await _check_duplicates(conn, tmp, table, source, describe)
    await conn.execute(text(f"ANALYZE {tmp}"))
    unknown = 0
    if kind in ("sales", "assessments"):
        unknown = await _check_parcels(
            conn, tmp, county_id, source, describe, refuse=not allow_unknown_parcels
        )
    key_match = " AND ".join(f"t.{name} = s.{name}" for name in table.key)
    matched = await conn.scalar(
        text(
            f"SELECT count(*) FROM {tmp} s JOIN {table.name} t "
            f"ON t.county_id = :county AND {key_match}"
        ),
        {"county": county_id},
    )
    written = await conn.execute(text(_upsert_sql(table, tmp, loaded)), {"county": county_id})
    inserted = rows - int(matched or 0)
    updated = int(written.rowcount) - inserted
    if inserted + updated + replaced:
        # Fresh planner statistics: right after a large load, stale ones turned the ratio
        # study's join into a nested loop 4x slower (BENCHMARKS.md, findings).
        await conn.execute(text(f"ANALYZE {table.name}"))
    return ImportReport(
        kind=kind,
        county_id=county_id,
        rows=rows,
        inserted=inserted,
        updated=updated,
        unchanged=rows - inserted - updated,
        unknown_parcels=unknown,
        replaced=replaced,
    )


async def _copy_batch(apg: Any, tmp: str, loaded: list[str], batch: RowBatch) -> int:
    if len(batch) == 0:
        return 0
    records = zip(batch.positions.tolist(), *(batch.columns[name] for name in loaded), strict=True)
    await apg.copy_records_to_table(tmp, records=records, columns=["line", *loaded])
    return len(batch)


def _upsert_sql(table: _Table, tmp: str, loaded: list[str]) -> str:
    values = [name for name in loaded if name not in table.key]
    select = ", ".join(f"{name}::jsonb" if name == "geometry" else name for name in loaded)
    conflict = ", ".join(("county_id", *table.key))
    sql = (
        f"INSERT INTO {table.name} (county_id, {', '.join(loaded)}) "
        f"SELECT :county, {select} FROM {tmp} ON CONFLICT ({conflict}) "
    )
    if not values:
        return sql + "DO NOTHING"
    assignments = ", ".join(f"{name} = EXCLUDED.{name}" for name in values)
    old = ", ".join(f"{table.name}.{name}" for name in values)
    new = ", ".join(f"EXCLUDED.{name}" for name in values)
    # ROW() keeps a one-column comparison a row comparison.
    return sql + f"DO UPDATE SET {assignments} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"


async def _check_duplicates(
    conn: AsyncConnection, tmp: str, table: _Table, source: str, describe: Callable[[int], str]
) -> None:
    """Name the first row whose natural key an earlier row of the same load already had.

    Done in SQL on the temp table rather than in Python: exact, needs no memory per row, and
    costs one hash/sort over data the database already holds.
    """
    key = ", ".join(table.key)
    found = (
        await conn.execute(
            text(
                f"SELECT line, first_line, {key} FROM ("
                f"  SELECT line, {key}, min(line) OVER (PARTITION BY {key}) AS first_line"
                f"  FROM {tmp}) d "
                "WHERE line <> first_line ORDER BY line LIMIT 1"
            )
        )
    ).first()
    if found is None:
        return
    line, first_line, *values = found
    shown = ", ".join(str(v) for v in values)
    raise DataFileError(
        source,
        describe(line),
        ",".join(table.key),
        f"duplicate key ({shown}), same as {source}:{describe(first_line)}",
    )


async def _check_parcels(
    conn: AsyncConnection,
    tmp: str,
    county_id: str,
    source: str,
    describe: Callable[[int], str],
    *,
    refuse: bool,
) -> int:
    """Count the loaded rows whose parcel the county does not have; refuse them if asked.

    One anti-join on the parcels' natural-key index; the window count comes with the first
    few rows, so naming them and counting them all is a single query.
    """
    found = (
        await conn.execute(
            text(
                f"SELECT s.line, s.parcel_id, count(*) OVER () FROM {tmp} s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {Parcel.__tablename__} p "
                "  WHERE p.county_id = :county AND p.parcel_id = s.parcel_id) "
                "ORDER BY s.line LIMIT :shown"
            ),
            {"county": county_id, "shown": UNKNOWN_PARCELS_SHOWN},
        )
    ).all()
    if not found:
        return 0
    count = int(found[0][2])
    if refuse:
        rows = [(describe(line), parcel_id) for line, parcel_id, _ in found]
        raise UnknownParcelsError(source, county_id, rows, count)
    return count


# ---------------------------------------------------------------------------------------------
# Row checks: every check marks bad rows with a vectorised mask; the earliest row wins.


class _Problems:
    """Collects the earliest bad row of a batch, so the error names the first bad row in the
    file whichever column happens to be checked first."""

    def __init__(self, source: str, positions: IntArray, describe: Callable[[int], str]) -> None:
        self.source = source
        self.positions = positions
        self.describe = describe
        self.first: tuple[int, str, str] | None = None

    def flag(self, bad: BoolArray, column: str, problem: Callable[[int], str]) -> None:
        if not bad.any():
            return
        index = int(np.argmax(bad))
        if self.first is None or index < self.first[0]:
            self.first = (index, column, problem(index))

    def flag_row(self, index: int, column: str, problem: str) -> None:
        if self.first is None or index < self.first[0]:
            self.first = (index, column, problem)

    def only(self, rows: BoolArray) -> _Problems:
        """A view that hears only about ``rows`` (e.g. lon/lat matter where no geometry is)."""
        return _ScopedProblems(self, rows)

    def raise_first(self) -> None:
        if self.first is not None:
            index, column, problem = self.first
            where = self.describe(int(self.positions[index]))
            raise DataFileError(self.source, where, column, problem)


class _ScopedProblems(_Problems):
    def __init__(self, parent: _Problems, rows: BoolArray) -> None:
        super().__init__(parent.source, parent.positions, parent.describe)
        self.parent = parent
        self.rows = rows

    def flag(self, bad: BoolArray, column: str, problem: Callable[[int], str]) -> None:
        self.parent.flag(bad & self.rows, column, problem)

    def flag_row(self, index: int, column: str, problem: str) -> None:
        if self.rows[index]:
            self.parent.flag_row(index, column, problem)

    def raise_first(self) -> None:
        self.parent.raise_first()


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _as_objects(values: list[str]) -> ObjectArray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _text(
    values: list[str], column: str, problems: _Problems, *, required: bool, max_length: int
) -> list[str | None]:
    array = _as_objects(values)
    empty = array == ""
    if required:
        problems.flag(empty, column, lambda i: "is empty")
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    problems.flag(
        lengths > max_length,
        column,
        lambda i: f"{_shown(values[i])} is longer than {max_length} characters",
    )
    # PostgreSQL text cannot hold NUL; csv passes it through, COPY would fail on it unnamed.
    nul = np.fromiter(
        map(operator.contains, values, itertools.repeat("\x00")), dtype=bool, count=len(values)
    )
    problems.flag(nul, column, lambda i: f"{_shown(values[i])} contains a NUL character")
    if empty.any():
        array[empty] = None
    result: list[str | None] = array.tolist()
    return result


def _numbers(
    values: list[str],
    column: str,
    problems: _Problems,
    *,
    required: bool,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
    integer: bool = False,
) -> FloatArray:
    """Parse a numeric column; empty cells become NaN (NULL). One C-level pass on good data."""
    array = _as_objects(values)
    empty = array == ""
    if required:
        problems.flag(empty, column, lambda i: "is empty")
    if empty.any():
        array[empty] = "nan"
    unparsable = np.zeros(len(values), dtype=bool)
    try:
        numbers = array.astype(np.float64)
    except ValueError:
        numbers = np.full(len(values), np.nan)
        for i, value in enumerate(array):
            try:
                numbers[i] = float(value)
            except ValueError:
                unparsable[i] = True
        problems.flag(unparsable, column, lambda i: f"{_shown(values[i])} is not a number")
    given = ~empty & ~unparsable
    problems.flag(
        given & ~np.isfinite(numbers),
        column,
        lambda i: f"{_shown(values[i])} is not a finite number",
    )
    finite = given & np.isfinite(numbers)
    if integer:
        problems.flag(
            finite & (numbers != np.floor(numbers)),
            column,
            lambda i: f"{_shown(values[i])} is not a whole number",
        )
    if positive:
        problems.flag(
            finite & ~(numbers > 0), column, lambda i: f"{_shown(values[i])} must be above 0"
        )
    if minimum is not None:
        problems.flag(
            finite & ~(numbers >= minimum),
            column,
            lambda i: f"{_shown(values[i])} must be at least {minimum:g}",
        )
    if maximum is not None:
        problems.flag(
            finite & ~(numbers <= maximum),
            column,
            lambda i: f"{_shown(values[i])} must be at most {maximum:g}",
        )
    return numbers


def _dates(values: list[str], column: str, problems: _Problems) -> npt.NDArray[np.datetime64]:
    """ISO dates, strictly: numpy parses leniently ('2021-03' is March 1st), so every parsed
    date must print back to exactly the text it came from."""
    array = _as_objects(values)
    empty = array == ""
    problems.flag(empty, column, lambda i: "is empty")
    try:
        dates = np.array(values, dtype="datetime64[D]")
    except ValueError:
        dates = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
        for i, value in enumerate(values):
            if _ISO_DATE.fullmatch(value):
                try:
                    dates[i] = np.datetime64(value, "D")
                except ValueError:
                    continue
    not_iso = ~empty & (np.datetime_as_string(dates) != np.asarray(values, dtype=str))
    problems.flag(
        not_iso, column, lambda i: f"{_shown(values[i])} is not a valid date in ISO form YYYY-MM-DD"
    )
    out_of_range = ~empty & ~not_iso & ((dates < FIRST_DATE) | (dates > LAST_DATE))
    problems.flag(
        out_of_range,
        column,
        lambda i: f"{_shown(values[i])} is outside {FIRST_DATE}..{LAST_DATE}",
    )
    return dates


def _booleans(
    values: list[str], column: str, problems: _Problems, *, default: bool
) -> list[bool | None]:
    """Map each distinct spelling once (a column holds a handful), then look rows up in C."""
    meaning: dict[str, bool | None] = {}
    for value in set(values):
        word = value.lower()
        meaning[value] = (
            default if word == "" else True if word in _TRUE else False if word in _FALSE else None
        )
    if any(v is None for v in meaning.values()):
        bad = np.fromiter((meaning[v] is None for v in values), dtype=bool, count=len(values))
        problems.flag(
            bad, column, lambda i: f"{_shown(values[i])} is not true/false (or yes/no, 1/0)"
        )
    return list(map(meaning.__getitem__, values))


def _nullable(numbers: FloatArray, *, integer: bool = False) -> list[float | int | None]:
    """NaN → None (NULL) for COPY; integer columns as Python ints."""
    missing = np.isnan(numbers)
    if integer:
        objects = np.where(missing, 0, numbers).astype(np.int64).astype(object)
    else:
        objects = numbers.astype(object)
    if missing.any():
        objects[missing] = None
    result: list[float | int | None] = objects.tolist()
    return result


# ---------------------------------------------------------------------------------------------
# Parcel locations


def location_columns(geometries: ObjectArray) -> dict[str, list[Any]]:
    """GeoJSON text, bbox and centroid columns for valid WGS84 geometries (vectorised).

    Polygon rings are re-oriented to RFC 7946 (exterior counter-clockwise) because the GIS
    exports hand this GeoJSON out as is; the bbox columns are what spatial prefilters query.
    """
    oriented = shapely.orient_polygons(geometries)
    bounds = shapely.bounds(oriented)
    centroids = shapely.centroid(oriented)
    return {
        "geometry": shapely.to_geojson(oriented).tolist(),
        "min_lon": bounds[:, 0].tolist(),
        "min_lat": bounds[:, 1].tolist(),
        "max_lon": bounds[:, 2].tolist(),
        "max_lat": bounds[:, 3].tolist(),
        "centroid_lon": shapely.get_x(centroids).tolist(),
        "centroid_lat": shapely.get_y(centroids).tolist(),
    }


def _parcel_locations(raw: _RawBatch, problems: _Problems) -> ObjectArray:
    """One shapely geometry per row: the geometry cell (WKT or GeoJSON) when given, else a point
    from lon/lat. Rows with a problem are flagged and left None."""
    n = len(raw)
    geometries = np.empty(n, dtype=object)
    geometry_text = raw.columns.get("geometry")
    has_geometry = (
        _as_objects(geometry_text) != "" if geometry_text is not None else np.zeros(n, bool)
    )
    use_point = ~has_geometry
    if "lon" in raw.columns and "lat" in raw.columns:
        point_problems = problems.only(use_point)
        lon = _numbers(raw.columns["lon"], "lon", point_problems, required=True)
        lat = _numbers(raw.columns["lat"], "lat", point_problems, required=True)
        lon_text, lat_text = raw.columns["lon"], raw.columns["lat"]
        ok_lon = np.isfinite(lon)
        ok_lat = np.isfinite(lat)
        problems.flag(
            use_point & ok_lon & ~((lon >= -180) & (lon <= 180)),
            "lon",
            lambda i: f"{_shown(lon_text[i])} is outside -180..180 (is the file in WGS84 degrees?)",
        )
        problems.flag(
            use_point & ok_lat & ~((lat >= -90) & (lat <= 90)),
            "lat",
            lambda i: f"{_shown(lat_text[i])} is outside -90..90 (is the file in WGS84 degrees?)",
        )
        points = shapely.points(np.where(ok_lon, lon, 0.0), np.where(ok_lat, lat, 0.0))
        geometries[use_point] = points[use_point]
    else:
        problems.flag(
            use_point,
            "geometry",
            lambda i: "is empty (give a geometry, or lon and lat columns)",
        )
    if geometry_text is not None and has_geometry.any():
        _parse_geometries(geometry_text, has_geometry, geometries, problems, _LOCATION_TYPES)
    return geometries


def _parse_geometries(
    texts: list[str],
    given: BoolArray,
    out: ObjectArray,
    problems: _Problems,
    allowed: tuple[tuple[int, ...], str],
) -> None:
    """Parse the given WKT/GeoJSON cells into ``out``, flagging any that is unreadable, of a
    type outside ``allowed`` (shapely type ids and how to name them), empty, beyond WGS84's
    range or invalid."""
    type_ids_allowed, type_names = allowed
    array = _as_objects(texts)
    is_json = np.fromiter(
        map(operator.methodcaller("startswith", "{"), texts), dtype=bool, count=len(texts)
    )
    json_rows = given & is_json
    wkt_rows = given & ~is_json
    parsed = np.empty(len(texts), dtype=object)
    if wkt_rows.any():
        parsed[wkt_rows] = shapely.from_wkt(array[wkt_rows], on_invalid="ignore")
    if json_rows.any():
        parsed[json_rows] = shapely.from_geojson(array[json_rows], on_invalid="ignore")
    unreadable = given & shapely.is_missing(parsed)
    problems.flag(
        unreadable,
        "geometry",
        lambda i: f"{_shown(texts[i])} is not readable as {'GeoJSON' if is_json[i] else 'WKT'}",
    )
    readable = given & ~unreadable
    type_ids = shapely.get_type_id(parsed)
    wrong_type = readable & ~np.isin(type_ids, type_ids_allowed)
    problems.flag(
        wrong_type,
        "geometry",
        lambda i: f"a {parsed[i].geom_type} is not {type_names}",
    )
    usable = readable & ~wrong_type
    empty = usable & shapely.is_empty(parsed)
    problems.flag(empty, "geometry", lambda i: "is an empty geometry")
    usable &= ~empty
    if not usable.any():
        return
    candidates = np.empty(len(texts), dtype=object)
    candidates[usable] = shapely.force_2d(parsed[usable])
    bounds = shapely.bounds(candidates)
    inside = (
        (bounds[:, 0] >= -180)
        & (bounds[:, 2] <= 180)
        & (bounds[:, 1] >= -90)
        & (bounds[:, 3] <= 90)
    )
    outside = usable & ~inside
    problems.flag(
        outside,
        "geometry",
        lambda i: (
            "coordinates outside lon -180..180 / lat -90..90 (bbox "
            + ", ".join(f"{v:g}" for v in bounds[i])
            + "; is the file in WGS84 degrees?)"
        ),
    )
    usable &= ~outside
    invalid = usable & ~shapely.is_valid(candidates)
    problems.flag(
        invalid,
        "geometry",
        lambda i: f"invalid geometry: {shapely.is_valid_reason(candidates[i])}",
    )
    usable &= ~invalid
    out[usable] = candidates[usable]


# ---------------------------------------------------------------------------------------------
# Per-kind conversion of raw text columns to COPY columns


@dataclass
class _RawBatch:
    """Text cells of one batch, stripped; '' is an empty cell."""

    positions: IntArray
    columns: dict[str, list[str]]
    stop: tuple[int, str, str] | None = None
    """A structural problem (wrong field count, not a Feature) at this row; rows stop there."""

    def __len__(self) -> int:
        return int(self.positions.size)


def _convert(kind: Kind, raw: _RawBatch, problems: _Problems) -> RowBatch:
    if raw.stop is not None:
        problems.flag_row(*raw.stop)
    if kind == "parcels":
        columns = _convert_parcels(raw, problems)
    elif kind == "zoning":
        columns = _convert_zoning(raw, problems)
    elif kind == "sales":
        columns = _convert_sales(raw, problems)
    else:
        columns = _convert_assessments(raw, problems)
    problems.raise_first()
    return RowBatch(positions=raw.positions, columns=columns)


def _convert_parcels(raw: _RawBatch, problems: _Problems) -> dict[str, list[Any]]:
    cells = raw.columns
    out: dict[str, list[Any]] = {"parcel_id": _parcel_ids(cells, problems, Parcel)}
    for name in ("address", "zip_code", "neighborhood", "property_class"):
        if name in cells:
            out[name] = _text(
                cells[name], name, problems, required=False, max_length=_max_length(Parcel, name)
            )
    numeric: dict[str, dict[str, Any]] = {
        "year_built": {"minimum": 0, "maximum": MAX_YEAR_BUILT, "integer": True},
        "living_area_sqft": {"minimum": 0},
        "lot_size_sqft": {"minimum": 0},
        "bedrooms": {"minimum": 0, "maximum": MAX_BEDROOMS, "integer": True},
        "bathrooms": {"minimum": 0},
        **{
            c.name: {"minimum": c.minimum, "maximum": c.maximum, "integer": c.integer}
            for c in EXTRA_CHARACTERISTICS
        },
    }
    for name, limits in numeric.items():
        if name in cells:
            values = _numbers(cells[name], name, problems, required=False, **limits)
            out[name] = _nullable(values, integer=bool(limits.get("integer")))
    geometries = _parcel_locations(raw, problems)
    problems.raise_first()  # rows with a problem have no geometry to compute columns from
    out.update(location_columns(geometries))
    return out


def _parcel_ids(cells: dict[str, Any], problems: _Problems, model: type[Any]) -> list[Any]:
    """The required key every file shares, bounded by its table's column length."""
    return _text(
        cells["parcel_id"],
        "parcel_id",
        problems,
        required=True,
        max_length=_max_length(model, "parcel_id"),
    )


def _convert_zoning(raw: _RawBatch, problems: _Problems) -> dict[str, list[Any]]:
    cells = raw.columns
    out: dict[str, list[Any]] = {
        "feature": raw.positions.tolist(),
        "zone_code": _text(
            cells["zone_code"],
            "zone_code",
            problems,
            required=True,
            max_length=_max_length(Zone, "zone_code"),
        ),
    }
    if "description" in cells:
        out["description"] = _text(
            cells["description"],
            "description",
            problems,
            required=False,
            max_length=_max_length(Zone, "description"),
        )
    texts = cells["geometry"]
    given = _as_objects(texts) != ""
    problems.flag(~given, "geometry", lambda i: "is empty (a zone needs its polygon)")
    geometries = np.empty(len(raw), dtype=object)
    _parse_geometries(texts, given, geometries, problems, _ZONE_TYPES)
    problems.raise_first()
    located = location_columns(geometries)
    out.update({name: located[name] for name in ZONE_COLUMNS if name in located})
    return out


def _convert_sales(raw: _RawBatch, problems: _Problems) -> dict[str, list[Any]]:
    cells = raw.columns
    out: dict[str, list[Any]] = {
        "parcel_id": _parcel_ids(cells, problems, Sale),
        "sale_date": _dates(cells["sale_date"], "sale_date", problems).tolist(),
        "sale_price": _numbers(
            cells["sale_price"], "sale_price", problems, required=True, positive=True
        ).tolist(),
    }
    if "arms_length" in cells:
        out["arms_length"] = _booleans(cells["arms_length"], "arms_length", problems, default=True)
    return out


def _convert_assessments(raw: _RawBatch, problems: _Problems) -> dict[str, list[Any]]:
    cells = raw.columns
    out: dict[str, list[Any]] = {
        "parcel_id": _parcel_ids(cells, problems, Assessment),
        "tax_year": _nullable(
            _numbers(
                cells["tax_year"],
                "tax_year",
                problems,
                required=True,
                minimum=TAX_YEARS[0],
                maximum=TAX_YEARS[1],
                integer=True,
            ),
            integer=True,
        ),
    }
    for name in ("land_value", "improvement_value"):
        if name in cells:
            out[name] = _nullable(_numbers(cells[name], name, problems, required=False, minimum=0))
    out["assessed_value"] = _numbers(
        cells["assessed_value"], "assessed_value", problems, required=True, minimum=0
    ).tolist()
    return out


def _carried_columns(kind: Kind, present: Collection[str]) -> set[str]:
    """Table columns a file with these columns fills (parcels: always the location ones)."""
    carried = {name for name, _ in _TABLES[kind].columns if name in present}
    if kind == "parcels":
        carried.update(LOCATION_COLUMNS)
    if kind == "zoning":
        carried.update(ZONE_COLUMNS)
    return carried


def _missing_columns(kind: Kind, present: Collection[str]) -> list[str]:
    missing = [name for name in _TABLES[kind].required if name not in present]
    if kind == "parcels" and "geometry" not in present:
        missing += [name for name in ("lon", "lat") if name not in present]
    return missing


def _missing_message(missing: list[str], present: Iterable[str]) -> str:
    hint = " (or a geometry column)" if {"lon", "lat"} & set(missing) else ""
    shown = ", ".join(present) or "nothing"
    return f"required column(s) missing{hint}; the file has: {shown}"


# ---------------------------------------------------------------------------------------------
# File sources


class _Source(Protocol):
    name: str
    present: frozenset[str]
    total: int | None

    def describe(self, position: int) -> str: ...

    def next_batch(self) -> RowBatch | None: ...

    def close(self) -> None: ...


def _open_source(kind: Kind, path: Path, batch_size: int) -> _Source:
    """CSV, or for parcels and zoning a GeoJSON FeatureCollection (recognised by its '{')."""
    with path.open("rb") as probe:
        head = probe.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        if kind not in ("parcels", "zoning"):
            raise DataFileError(str(path), "1", "file", f"{kind} must be CSV, not JSON")
        return _GeoJsonSource(kind, path, batch_size)
    return _CsvSource(kind, path, batch_size)


def _count_lines(path: Path) -> int:
    """Lines in the file, by a binary scan: ~0.1 s per 100 MB, for the progress total."""
    lines = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _first_undecodable_line(path: Path) -> int:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _line_breaks(row: list[str]) -> int:
    return sum(cell.count("\n") + cell.count("\r") - cell.count("\r\n") for cell in row)


class _CsvSource:
    def __init__(self, kind: Kind, path: Path, batch_size: int) -> None:
        self.kind = kind
        self.name = str(path)
        self.batch_size = batch_size
        # A parcel's WKT can be far longer than csv's 128 KiB default field limit.
        csv.field_size_limit(max(csv.field_size_limit(), 64 << 20))
        self.file: IO[str] = path.open(newline="", encoding="utf-8-sig")
        try:
            self.reader = csv.reader(self.file)
            header = self._read(lambda: next(self.reader, None))
            if header is None or not any(cell.strip() for cell in header):
                raise DataFileError(self.name, "1", "header", "the file has no header row")
            names = [cell.strip().lower() for cell in header]
            seen: dict[str, int] = {}
            for position, name in enumerate(names):
                if name and name in seen:
                    raise DataFileError(self.name, "1", name, "column appears twice in the header")
                seen[name] = position
            wanted = _FILE_COLUMNS[kind]
            self.present = frozenset(name for name in wanted if name in seen)
            missing = _missing_columns(kind, self.present)
            if missing:
                raise DataFileError(
                    self.name,
                    "1",
                    ", ".join(missing),
                    _missing_message(missing, [n for n in names if n]),
                )
            self.getters = {name: operator.itemgetter(seen[name]) for name in self.present}
            self.header = names
            self.total: int | None = max(_count_lines(path) - 1, 0)
        except BaseException:
            self.file.close()
            raise

    def describe(self, position: int) -> str:
        return str(position)

    def close(self) -> None:
        self.file.close()

    def _read(self, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except UnicodeDecodeError:
            bad = _first_undecodable_line(Path(self.name))
            raise DataFileError(self.name, str(bad), "row", "is not valid UTF-8 text") from None
        except csv.Error as exc:
            line = str(self.reader.line_num)
            raise DataFileError(self.name, line, "row", f"unreadable CSV: {exc}") from None

    def next_batch(self) -> RowBatch | None:
        start = self.reader.line_num
        rows: list[list[str]] = self._read(
            lambda: list(itertools.islice(self.reader, self.batch_size))
        )
        if not rows:
            return None
        lines = self._line_numbers(rows, start)
        widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        blank = widths == 0
        if blank.any():
            rows = list(itertools.compress(rows, ~blank))
            lines, widths = lines[~blank], widths[~blank]
            if not rows:
                return RowBatch(positions=lines, columns={})
        stop = None
        wrong = widths != len(self.header)
        if wrong.any():
            index = int(np.argmax(wrong))
            width = int(widths[index])
            if width < len(self.header):
                column = self.header[width] or "row"
                problem = (
                    f"is missing (the row has {counted(width, 'field')}, "
                    f"the header {len(self.header)})"
                )
            else:
                column = "row"
                problem = (
                    f"has {counted(width, 'field')} but the header has {len(self.header)} "
                    "(an unquoted comma?)"
                )
            stop = (index, column, problem)
        checked = len(rows) if stop is None else stop[0]
        columns = {
            name: list(map(str.strip, map(getter, rows[:checked])))
            for name, getter in self.getters.items()
        }
        raw = _RawBatch(positions=lines[:checked], columns=columns, stop=stop)
        return _convert(self.kind, raw, _Problems(self.name, lines, str))

    def _line_numbers(self, rows: list[list[str]], start: int) -> IntArray:
        """File line of each row. Nearly always one line per row; when a quoted cell holds a
        line break, count the breaks (only then is there per-row work)."""
        if self.reader.line_num - start == len(rows):
            return np.arange(start + 1, start + 1 + len(rows), dtype=np.int64)
        spans = np.fromiter((1 + _line_breaks(row) for row in rows), np.int64, len(rows))
        return start + 1 + np.concatenate(([0], np.cumsum(spans)[:-1]))


class _GeoJsonSource:
    """A parcels or zoning FeatureCollection. ``json`` has no streaming parser, so the
    document is read whole; features are still validated and copied in batches."""

    def __init__(self, kind: Kind, path: Path, batch_size: int) -> None:
        self.kind = kind
        self.name = str(path)
        self.batch_size = batch_size
        self.offset = 0
        try:
            with path.open(encoding="utf-8-sig") as f:
                document = json.load(f)
        except UnicodeDecodeError:
            bad = _first_undecodable_line(path)
            raise DataFileError(self.name, str(bad), "file", "is not valid UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise DataFileError(self.name, str(exc.lineno), "json", exc.msg) from None
        if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
            raise DataFileError(self.name, "1", "type", "expected a GeoJSON FeatureCollection")
        crs = json.dumps(document.get("crs") or "")
        if crs != '""' and not any(tag in crs for tag in ("4326", "CRS84")):
            raise DataFileError(
                self.name, "1", "crs", f"{crs} is not WGS84 lon/lat (EPSG:4326 / CRS84)"
            )
        features = document.get("features")
        if not isinstance(features, list):
            raise DataFileError(self.name, "1", "features", "expected a list of features")
        self.features: list[Any] = features
        self.total: int | None = len(features)
        keys: set[str] = {"geometry"}
        for feature in features:
            properties = feature.get("properties") if isinstance(feature, dict) else None
            if isinstance(properties, dict):
                keys.update(str(k).strip().lower() for k in properties)
        self.present = frozenset(name for name in _FILE_COLUMNS[kind] if name in keys)
        missing = [name for name in _TABLES[kind].required if name not in self.present]
        if missing and features:
            raise DataFileError(
                self.name,
                "features",
                ", ".join(missing),
                "required propert(y/ies) missing from every feature",
            )

    def describe(self, position: int) -> str:
        return f"features[{position}]"

    def close(self) -> None:
        self.features = []

    def next_batch(self) -> RowBatch | None:
        chunk = self.features[self.offset : self.offset + self.batch_size]
        if not chunk:
            return None
        first = self.offset
        self.offset += len(chunk)
        wanted = [name for name in self.present if name != "geometry"]
        columns: dict[str, list[str]] = {name: [] for name in (*wanted, "geometry")}
        stop = None
        for index, feature in enumerate(chunk):
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                stop = (index, "feature", "is not a GeoJSON Feature")
                break
            properties = feature.get("properties") or {}
            if not isinstance(properties, dict):
                stop = (index, "properties", "is not an object")
                break
            cells = {str(k).strip().lower(): v for k, v in properties.items()}
            for name in wanted:
                columns[name].append(_property_text(cells.get(name)))
            geometry = feature.get("geometry")
            columns["geometry"].append(json.dumps(geometry) if geometry else "")
        count = len(columns["geometry"])
        positions = np.arange(first, first + count, dtype=np.int64)
        raw = _RawBatch(positions=positions, columns=columns, stop=stop)
        problems = _Problems(self.name, np.arange(first, first + len(chunk)), self.describe)
        return _convert(self.kind, raw, problems)


def _property_text(value: Any) -> str:
    """GeoJSON properties as the CSV text they stand for, so one set of checks serves both."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KINDS",
    "LOCATION_COLUMNS",
    "ZONE_COLUMNS",
    "DataFileError",
    "ImportReport",
    "Kind",
    "ProgressCallback",
    "RowBatch",
    "UnknownParcelsError",
    "check_county_id",
    "copy_upsert",
    "import_file",
    "location_columns",
]
