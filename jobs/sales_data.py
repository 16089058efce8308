"""Sales of a county as numpy columns, with the parcel (and assessment) facts jobs need.

One query per job, fetched once into arrays, so every statistic after it is vectorised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ARRAY,
    Float,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.models import Assessment, Parcel, Sale

GROUP_COLUMNS = ("property_class", "neighborhood", "zip_code")
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class SalesColumns:
    parcel_id: npt.NDArray[np.object_]
    sale_date: npt.NDArray[np.datetime64]
    sale_price: npt.NDArray[np.float64]
    arms_length: npt.NDArray[np.bool_]
    living_area_sqft: npt.NDArray[np.float64]
    property_class: npt.NDArray[np.object_]
    neighborhood: npt.NDArray[np.object_]
    zip_code: npt.NDArray[np.object_]
    assessed_value: npt.NDArray[np.float64]
    """NaN where no assessment was joined (no tax year asked for)."""

    def __len__(self) -> int:
        return int(self.sale_price.size)

    def group(self, name: str) -> npt.NDArray[np.object_]:
        if name not in GROUP_COLUMNS:
            raise ValueError(f"cannot group by {name!r}")
        values: npt.NDArray[np.object_] = getattr(self, name)
        return np.where(values == None, "(none)", values)  # noqa: E711


async def load_sales(
    session: AsyncSession,
    county_id: str,
    *,
    date_from: dt.date | None,
    date_to: dt.date | None,
    property_class: str | None = None,
    zip_codes: Sequence[str] | None = None,
    neighborhoods: Sequence[str] | None = None,
    arms_length_only: bool = True,
    tax_year: int | None = None,
) -> SalesColumns:
    """Valid sales (positive price, known parcel); with `tax_year`, only assessed ones.

    Read column-wise: the rows come as one binary COPY of fixed-width fields (the parcel id
    zero-padded to the longest, the parcel's classes as numbers into the county's few
    distinct values, NULL floats as NaN), which numpy reads as one structured array. A
    million sales never become a million Python tuples (BENCHMARKS.md, finding 2).
    """
    conn = await session.connection()
    categories = await class_values(conn, county_id)
    longest = (
        select(func.coalesce(func.max(func.octet_length(Sale.parcel_id)), 1))
        .where(Sale.county_id == county_id)
        .scalar_subquery()
    )
    padded_id = func.decode(
        func.rpad(func.encode(func.convert_to(Sale.parcel_id, "UTF8"), "hex"), longest * 2, "0"),
        "hex",
    )
    columns: list[Any] = [
        padded_id,
        # Days since 1970, which numpy reads as datetime64[D] directly.
        (Sale.sale_date - EPOCH).label("sale_day"),
        cast(Sale.sale_price, Float),
        Sale.arms_length,
        func.coalesce(cast(Parcel.living_area_sqft, Float), literal_column("'NaN'::float8")),
        *(
            func.coalesce(
                func.array_position(
                    bindparam(f"{name}_values", values, type_=ARRAY(String)), getattr(Parcel, name)
                ),
                0,
            )
            for name, values in categories.items()
        ),
    ]
    query = select(*columns).join(
        Parcel, and_(Parcel.county_id == Sale.county_id, Parcel.parcel_id == Sale.parcel_id)
    )
    if tax_year is not None:
        query = query.add_columns(cast(Assessment.assessed_value, Float)).join(
            Assessment,
            and_(
                Assessment.county_id == Sale.county_id,
                Assessment.parcel_id == Sale.parcel_id,
                Assessment.tax_year == tax_year,
            ),
        )
    query = query.where(Sale.county_id == county_id, Sale.sale_price > 0)
    if date_from is not None:
        query = query.where(Sale.sale_date >= date_from)
    if date_to is not None:
        query = query.where(Sale.sale_date <= date_to)
    if property_class is not None:
        query = query.where(Parcel.property_class == property_class)
    if zip_codes:
        query = query.where(Parcel.zip_code.in_(zip_codes))
    if neighborhoods:
        query = query.where(Parcel.neighborhood.in_(neighborhoods))
    if arms_length_only:
        query = query.where(Sale.arms_length.is_(True))
    query = query.order_by(Sale.sale_date, Sale.parcel_id)
    rows = await _copy_rows(conn, query, assessed=tax_year is not None)
    if rows is None:
        # A parcel class appeared between reading the classes and the rows: read both again.
        return await load_sales(
            session,
            county_id,
            date_from=date_from,
            date_to=date_to,
            property_class=property_class,
            zip_codes=zip_codes,
            neighborhoods=neighborhoods,
            arms_length_only=arms_length_only,
            tax_year=tax_year,
        )

    def labels(name: str) -> npt.NDArray[np.object_]:
        # Code 0 never occurs (see `_copy_rows`); code k is the k-th distinct value.
        values = np.array([None, *categories[name]], dtype=object)
        return values[rows[name]]  # type: ignore[no-any-return]

    n = len(rows)
    return SalesColumns(
        parcel_id=parcel_id_text(rows["parcel_id"]),
        sale_date=rows["sale_day"].astype(np.int64).astype("datetime64[D]"),
        sale_price=rows["sale_price"].astype(np.float64),
        arms_length=rows["arms_length"].astype(bool),
        living_area_sqft=rows["living_area_sqft"].astype(np.float64),
        property_class=labels("property_class"),
        neighborhood=labels("neighborhood"),
        zip_code=labels("zip_code"),
        assessed_value=(
            rows["assessed_value"].astype(np.float64)
            if tax_year is not None
            else np.full(n, np.nan)
        ),
    )


async def class_values(
    conn: AsyncConnection, county_id: str, names: Sequence[str] = GROUP_COLUMNS
) -> dict[str, list[str | None]]:
    """The county's distinct values (NULL included) of each of the named class columns of its
    parcels (`GROUP_COLUMNS` by default).

    One scan with a grouping set per column, hashed: `array_agg(DISTINCT ...)` sorted every
    parcel once per column (about a second for a million parcels).
    """
    columns = [getattr(Parcel, name) for name in names]
    query = (
        select(func.grouping(*columns).label("level"), *columns)
        .where(Parcel.county_id == county_id)
        .group_by(func.grouping_sets(*columns))
    )
    found: dict[str, list[str | None]] = {name: [] for name in names}
    for row in (await conn.execute(query)).all():
        # grouping() has a bit set for each column a row does not group by: the one unset
        # bit names the row's column (the first column is the highest bit).
        for position, name in enumerate(names):
            if not row.level >> (len(names) - 1 - position) & 1:
                found[name].append(row[position + 1])
    return found


COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


async def _copy_rows(
    conn: AsyncConnection, query: Select[Any], *, assessed: bool
) -> npt.NDArray[np.void] | None:
    """The query's rows as one structured array (big-endian, as COPY sends them); None when
    a class value was missing from the county's list (a concurrent import)."""
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
    start = len(COPY_SIGNATURE) + 8 + int.from_bytes(data[15:19], "big")
    if len(data) - start <= 2:
        width = 1
    else:
        width = int.from_bytes(data[start + 2 : start + 6], "big", signed=True)
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind in [
        ("parcel_id", f"S{width}"),
        ("sale_day", ">i4"),
        ("sale_price", ">f8"),
        ("arms_length", "?"),
        ("living_area_sqft", ">f8"),
        *((name, ">i4") for name in GROUP_COLUMNS),
        *([("assessed_value", ">f8")] if assessed else []),
    ]:
        fields += [(f"{name}_length", ">i4"), (name, kind)]
    dtype = np.dtype(fields)
    end = len(data) - 2  # the trailer: a field count of -1
    rows = np.frombuffer(data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start)
    if (end - start) % dtype.itemsize or data[end:] != b"\xff\xff":
        raise RuntimeError("binary COPY rows are not of the expected fixed width")
    if any((rows[name] == 0).any() for name in GROUP_COLUMNS):
        return None
    return rows


def parcel_id_text(padded: npt.NDArray[np.bytes_]) -> npt.NDArray[np.object_]:
    """Zero-padded UTF-8 ids -> str objects; ASCII ids (the usual) without a Python loop."""
    width = padded.dtype.itemsize
    octets = np.frombuffer(padded.tobytes(), dtype=np.uint8)
    if octets.size and octets.max() < 0x80:
        text = octets.astype(np.uint32).view(f"<U{width}")
        return text.astype(object)  # type: ignore[no-any-return]
    return np.array([value.decode("utf-8") for value in padded.tolist()], dtype=object)
