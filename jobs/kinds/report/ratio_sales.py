"""The ratio study's sales and the count of sales each step of its selection left out, in one
binary COPY.

Why not `jobs.sales_data.load_sales` plus a count: the study reads four columns of each sale
(and the one class column it groups by, if any), not the nine every kind may need, and its
exclusion counts were a second pass over the same joined sales. Here one query returns every
sale recorded in the window with a flags field saying which steps it passed (arm's-length, a
tax-year assessment, the class/ZIP/neighbourhood filters); the study's rows are those that
passed all, in the same order, and the counts come from the same flags. The parcel id is sent
as it is stored (no zero padding to a fixed width, which cost a string rewrite per row and a
scan of the county's sales for the longest id); rows whose ids all have one length, the
usual case, are read as one structured array, others are located by their length words.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ARRAY,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import Assessment, Parcel, Sale
from jobs.sales_data import COPY_SIGNATURE, EPOCH, class_values, parcel_id_text

ARMS_LENGTH = 1
ASSESSED = 2
FILTERED_IN = 4
ALL_STEPS = ARMS_LENGTH | ASSESSED | FILTERED_IN
"""Bits of a row's flags: the steps of the selection the sale passed."""


@dataclass(frozen=True)
class StudySales:
    parcel_id: npt.NDArray[np.object_]
    sale_date: npt.NDArray[np.datetime64]
    sale_price: npt.NDArray[np.float64]
    assessed_value: npt.NDArray[np.float64]
    group_values: npt.NDArray[np.object_] | None
    """The class column grouped by (None where the parcel has no value), if one was asked for."""
    recorded: int
    """Sales in the window with a positive price and a known parcel."""
    arms_length: int
    """Of those, the arm's-length ones (all of them when the study takes any sale)."""
    assessed: int
    """Of those, the ones whose parcel has an assessment of the tax year."""

    def __len__(self) -> int:
        return int(self.sale_price.size)

    def group(self) -> npt.NDArray[np.object_]:
        """The group labels, as `SalesColumns.group` makes them."""
        if self.group_values is None:
            raise ValueError("no class column was read")
        return np.where(self.group_values == None, "(none)", self.group_values)  # noqa: E711


async def load_study_sales(
    session: AsyncSession,
    county_id: str,
    *,
    date_from: dt.date,
    date_to: dt.date,
    tax_year: int,
    group_column: str | None,
    property_class: str | None = None,
    zip_codes: Sequence[str] | None = None,
    neighborhoods: Sequence[str] | None = None,
    arms_length_only: bool = True,
) -> StudySales:
    """The sales `load_sales` returns for the same selection (same rows, same order: by sale
    date, then parcel id), with the counts behind the study's exclusions."""
    conn = await session.connection()
    categories = (
        (await class_values(conn, county_id, (group_column,)))[group_column]
        if group_column is not None
        else None
    )
    arm = Sale.arms_length.is_(True) if arms_length_only else true()
    filters = []
    if property_class is not None:
        filters.append(Parcel.property_class == property_class)
    if zip_codes:
        filters.append(Parcel.zip_code.in_(zip_codes))
    if neighborhoods:
        filters.append(Parcel.neighborhood.in_(neighborhoods))
    flags = (
        cast(arm, Integer)
        + literal(ASSESSED) * cast(Assessment.parcel_id.is_not(None), Integer)
        + (
            literal(FILTERED_IN) * cast(and_(*filters).is_(True), Integer)
            if filters
            else literal(FILTERED_IN)
        )
    )
    columns: list[Any] = [
        (Sale.sale_date - EPOCH).label("sale_day"),
        cast(Sale.sale_price, Float),
        func.coalesce(cast(Assessment.assessed_value, Float), literal_column("'NaN'::float8")),
        flags.label("flags"),
    ]
    if group_column is not None:
        columns.append(
            func.coalesce(
                func.array_position(
                    bindparam("group_values", categories, type_=ARRAY(String)),
                    getattr(Parcel, group_column),
                ),
                0,
            )
        )
    # Last, so that every field before it has a fixed width.
    columns.append(Sale.parcel_id)
    query = (
        select(*columns)
        .join(Parcel, and_(Parcel.county_id == Sale.county_id, Parcel.parcel_id == Sale.parcel_id))
        .outerjoin(
            Assessment,
            and_(
                Assessment.county_id == Sale.county_id,
                Assessment.parcel_id == Sale.parcel_id,
                Assessment.tax_year == tax_year,
            ),
        )
        .where(
            Sale.county_id == county_id,
            Sale.sale_price > 0,
            Sale.sale_date >= date_from,
            Sale.sale_date <= date_to,
        )
        .order_by(Sale.sale_date, Sale.parcel_id)
    )
    data = await _copy_bytes(conn, query)
    fixed: list[tuple[str, str]] = [
        ("sale_day", ">i4"),
        ("sale_price", ">f8"),
        ("assessed_value", ">f8"),
        ("flags", ">i4"),
        *([("group_code", ">i4")] if group_column is not None else []),
    ]
    rows, ids = _rows_with_trailing_text(data, fixed)
    flag = rows["flags"]
    passed_arm = (flag & ARMS_LENGTH) != 0
    passed_assessed = passed_arm & ((flag & ASSESSED) != 0)
    selected = flag == ALL_STEPS
    if selected.all():
        chosen: slice | npt.NDArray[np.bool_] = slice(None)
    else:
        chosen = selected
    rows, ids = rows[chosen], ids[chosen]
    group_values = None
    if categories is not None:
        codes = rows["group_code"]
        if (codes == 0).any():
            # A class value appeared between reading the values and the rows: read both again.
            return await load_study_sales(
                session,
                county_id,
                date_from=date_from,
                date_to=date_to,
                tax_year=tax_year,
                group_column=group_column,
                property_class=property_class,
                zip_codes=zip_codes,
                neighborhoods=neighborhoods,
                arms_length_only=arms_length_only,
            )
        group_values = np.array([None, *categories], dtype=object)[codes]
    return StudySales(
        parcel_id=parcel_id_text(ids),
        sale_date=rows["sale_day"].astype(np.int64).astype("datetime64[D]"),
        sale_price=rows["sale_price"].astype(np.float64),
        assessed_value=rows["assessed_value"].astype(np.float64),
        group_values=group_values,
        recorded=int(flag.size),
        arms_length=int(np.count_nonzero(passed_arm)),
        assessed=int(np.count_nonzero(passed_assessed)),
    )


async def _copy_bytes(conn: AsyncConnection, query: Any) -> bytearray:
    """The query's rows as one binary COPY stream, with its header and trailer."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    positional = compiled.positiontup or []
    args = [compiled.params[name] for name in positional]
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    data = bytearray()

    async def receive(chunk: bytes) -> None:
        data.extend(chunk)

    await driver.copy_from_query(str(compiled), *args, output=receive, format="binary")
    if not data.startswith(COPY_SIGNATURE):
        raise RuntimeError("not a binary COPY stream")
    return data


def _rows_with_trailing_text(
    data: bytearray, fixed: list[tuple[str, str]]
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.bytes_]]:
    """The fixed-width fields of each row (big-endian, none NULL) and its last field, a
    non-NULL text, as zero-padded bytes (a text never holds a zero byte).

    Each row is a field count, then a length word before each field. When every text has the
    length of the first row's, the rows are one structured array over the buffer; that holds
    exactly when every row's text length word reads that length (a row of another length is
    the first to misalign, and its own length word is still read at its true place). Otherwise
    the rows are walked by their length words once, and gathered.
    """
    start = len(COPY_SIGNATURE) + 8 + int.from_bytes(data[15:19], "big")
    end = len(data) - 2  # the trailer: a field count of -1
    if data[end:] != b"\xff\xff":
        raise RuntimeError("binary COPY stream without its trailer")
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind in fixed:
        fields += [(f"{name}_length", ">i4"), (name, kind)]
    prefix = np.dtype([*fields, ("text_length", ">i4")])
    expected_count = len(fixed) + 1
    if end == start:
        return np.zeros(0, dtype=prefix), np.zeros(0, dtype="S1")
    first = int.from_bytes(data[start + prefix.itemsize - 4 : start + prefix.itemsize], "big")
    if first > 0:
        uniform = np.dtype([*prefix.descr, ("text", f"S{first}")])
        if (end - start) % uniform.itemsize == 0:
            rows = np.frombuffer(
                data, dtype=uniform, count=(end - start) // uniform.itemsize, offset=start
            )
            if (rows["text_length"] == first).all() and (rows["count"] == expected_count).all():
                return rows, rows["text"]
    starts = array("q")
    position = start
    text_at = prefix.itemsize - 4
    while position < end:
        starts.append(position)
        length = int.from_bytes(data[position + text_at : position + text_at + 4], "big")
        if length < 0:
            raise RuntimeError("a NULL text in a binary COPY row")
        position += prefix.itemsize + length
    if position != end:
        raise RuntimeError("binary COPY rows do not end at the trailer")
    octets = np.frombuffer(data, dtype=np.uint8)
    at = np.frombuffer(starts, dtype=np.int64)
    rows = octets[at[:, None] + np.arange(prefix.itemsize)].view(prefix).reshape(-1)
    if (rows["count"] != expected_count).any():
        raise RuntimeError("binary COPY rows are not of the expected fields")
    lengths = rows["text_length"].astype(np.int64)
    width = max(int(lengths.max()), 1)
    offsets = np.arange(width)
    gather = at[:, None] + prefix.itemsize + offsets
    inside = offsets < lengths[:, None]
    text = np.where(inside, octets[np.where(inside, gather, 0)], 0).astype(np.uint8)
    return rows, text.view(f"S{width}").reshape(-1)
