"""The ratio study's one-query load (`load_study_sales`) answers as the two it replaced did:
`load_sales` for the rows (same sales, same order, same values, same group labels) and the
exclusions' aggregate query for the counts, on a demo county with parcel ids of mixed lengths
and non-ASCII ids, sales without a tax-year assessment, non-arm's-length sales and parcels
without class values; and rows whose ids all have one length read as those of mixed lengths."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db import create_session_factory
from jobs.kinds.report.ratio_sales import StudySales, load_study_sales
from jobs.sales_data import SalesColumns, load_sales
from tests.builders import load_small_county

TAX_YEAR = 2024
WINDOW = (dt.date(2023, 1, 1), dt.date(2023, 12, 31))

EXCLUSIONS_SQL = """
SELECT count(*), count(*) FILTER (WHERE {arm}),
       count(*) FILTER (WHERE {arm} AND a.parcel_id IS NOT NULL)
FROM sales s JOIN parcels p ON p.county_id = s.county_id AND p.parcel_id = s.parcel_id
LEFT JOIN assessments a ON a.county_id = s.county_id AND a.parcel_id = s.parcel_id
  AND a.tax_year = :year
WHERE s.county_id = :county AND s.sale_price > 0 AND s.sale_date BETWEEN :start AND :stop
"""


ODD_IDS = ["7", "A-1", "ÉTÉ-001", "x" * 40, "P 12 ", "ñ", "0042-0042-0042", "Z9", 'q,"r']


async def add_parcels(engine: AsyncEngine, county: str, ids: list[str]) -> None:
    """Copies of the first parcels sold in the window (with their sales) under `ids`; of
    every four, the second has no class values, the third no assessment and the fourth's
    sales are not arm's-length."""
    async with engine.begin() as conn:
        source = (
            await conn.execute(
                text(
                    "SELECT DISTINCT s.parcel_id FROM sales s WHERE s.county_id = :c "
                    "AND s.sale_date BETWEEN :a AND :b ORDER BY 1 LIMIT :n"
                ),
                {"c": county, "a": WINDOW[0], "b": WINDOW[1], "n": len(ids)},
            )
        ).scalars()
        pairs = list(zip(source, ids, strict=True))
        parcel_columns = [
            c
            for c in (
                await conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'parcels' AND column_name NOT IN ('id', 'parcel_id')"
                    )
                )
            ).scalars()
        ]
        listed = ", ".join(parcel_columns)
        for position, (old, new) in enumerate(pairs):
            params = {"c": county, "old": old, "new": new}
            await conn.execute(
                text(
                    f"INSERT INTO parcels (parcel_id, {listed}) SELECT :new, {listed} "
                    "FROM parcels WHERE county_id = :c AND parcel_id = :old"
                ),
                params,
            )
            if position % 3 == 1:
                await conn.execute(
                    text(
                        "UPDATE parcels SET neighborhood = NULL, zip_code = NULL, "
                        "property_class = NULL WHERE county_id = :c AND parcel_id = :new"
                    ),
                    params,
                )
            await conn.execute(
                text(
                    "INSERT INTO sales (county_id, parcel_id, sale_date, sale_price, arms_length) "
                    "SELECT county_id, :new, sale_date, sale_price, position % 4 <> 3 "
                    "FROM sales, (SELECT CAST(:p AS int) AS position) AS k "
                    "WHERE county_id = :c AND parcel_id = :old"
                ),
                {**params, "p": position},
            )
            if position % 4 != 2:
                await conn.execute(
                    text(
                        "INSERT INTO assessments (county_id, parcel_id, tax_year, land_value, "
                        "improvement_value, assessed_value) SELECT county_id, :new, tax_year, "
                        "land_value, improvement_value, assessed_value FROM assessments "
                        "WHERE county_id = :c AND parcel_id = :old"
                    ),
                    params,
                )


async def both(
    engine: AsyncEngine, county: str, group_column: str | None, **selection: Any
) -> tuple[StudySales, SalesColumns]:
    async with create_session_factory(engine)() as session:
        return await read_both(session, county, group_column, **selection)


async def read_both(
    session: AsyncSession, county: str, group_column: str | None, **selection: Any
) -> tuple[StudySales, SalesColumns]:
    """The study's sales and `load_sales`'s for the same selection, on one session."""
    study = await load_study_sales(
        session,
        county,
        date_from=WINDOW[0],
        date_to=WINDOW[1],
        tax_year=TAX_YEAR,
        group_column=group_column,
        **selection,
    )
    sales = await load_sales(
        session, county, date_from=WINDOW[0], date_to=WINDOW[1], tax_year=TAX_YEAR, **selection
    )
    return study, sales


def assert_same_rows(study: StudySales, sales: SalesColumns, group_column: str | None) -> None:
    assert len(study) == len(sales) > 0
    assert study.parcel_id.tolist() == sales.parcel_id.tolist()
    assert np.array_equal(study.sale_date, sales.sale_date)
    assert study.sale_price.tobytes() == sales.sale_price.tobytes()
    assert study.assessed_value.tobytes() == sales.assessed_value.tobytes()
    if group_column is None:
        assert study.group_values is None
    else:
        assert study.group().tolist() == sales.group(group_column).tolist()


SELECTIONS: list[tuple[str | None, dict[str, Any]]] = [
    (None, {}),
    ("neighborhood", {}),
    ("zip_code", {"arms_length_only": False}),
    ("property_class", {"neighborhoods": ["Downtown", "Hilltop"]}),
    (None, {"property_class": "residential", "zip_codes": ["98402", "98403", "98405"]}),
]


@pytest.mark.parametrize(("group_column", "selection"), SELECTIONS)
async def test_rows_and_counts_equal_load_sales_and_the_exclusions_query(
    engine: AsyncEngine, group_column: str | None, selection: dict[str, Any]
) -> None:
    county = await load_small_county(engine, parcels=600)
    await add_parcels(engine, county, ODD_IDS)
    study, sales = await both(engine, county, group_column, **selection)
    assert_same_rows(study, sales, group_column)
    if group_column is None and not selection:
        assert {"7", "A-1", "P 12 ", "ñ", 'q,"r'} <= set(study.parcel_id.tolist())

    arm = "s.arms_length" if selection.get("arms_length_only", True) else "true"
    async with engine.connect() as conn:
        recorded, arm_count, assessed = (
            await conn.execute(
                text(EXCLUSIONS_SQL.format(arm=arm)),
                {"year": TAX_YEAR, "county": county, "start": WINDOW[0], "stop": WINDOW[1]},
            )
        ).one()
    assert (study.recorded, study.arms_length, study.assessed) == (recorded, arm_count, assessed)
    assert recorded > arm_count or arm == "true"
    assert arm_count > assessed


async def test_ids_of_one_length_read_as_mixed_ones(engine: AsyncEngine) -> None:
    """The demo county's ids all have one length (one structured array over the stream);
    with one longer id added, the same sales are read by walking the rows."""
    county = await load_small_county(engine, parcels=300)
    uniform, sales = await both(engine, county, "neighborhood")
    assert len({len(p.encode()) for p in uniform.parcel_id.tolist()}) == 1
    assert_same_rows(uniform, sales, "neighborhood")
    await add_parcels(engine, county, [uniform.parcel_id[0] + "é"])
    mixed, sales = await both(engine, county, "neighborhood")
    assert_same_rows(mixed, sales, "neighborhood")
    assert len({len(p.encode()) for p in mixed.parcel_id.tolist()}) == 2


ORDER_IDS = ["B", "a", "é", "e", "E-2", "Ā", "ÿ", "ﬀ", "😀", "a b", "A", "AB", "ab", "Z", "z9"]
"""Ids whose byte order, code point order and a linguistic order disagree (case, accents,
multi-byte characters, a prefix before its extensions)."""

TIE_DAY = dt.date(2023, 6, 15)
ASSESSED_ORDER_IDS = len(ORDER_IDS) - len(ORDER_IDS[2::4])
"""`add_parcels` leaves every fourth id, from the third, without a tax-year assessment."""


async def county_with_ties(engine: AsyncEngine) -> str:
    """The demo county plus `ORDER_IDS`, each with one sale on `TIE_DAY`, so that the order
    within the day is the parcel ids' alone."""
    county = await load_small_county(engine, parcels=300)
    await add_parcels(engine, county, ORDER_IDS)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE sales SET sale_date = :day, arms_length = true WHERE id IN (SELECT min(id) "
                "FROM sales WHERE county_id = :c AND parcel_id = ANY(:ids) "
                "AND sale_date BETWEEN :a AND :b GROUP BY parcel_id)"
            ),
            {"day": TIE_DAY, "c": county, "ids": ORDER_IDS, "a": WINDOW[0], "b": WINDOW[1]},
        )
    return county


def tied_ids(study: StudySales) -> list[str]:
    return [
        p
        for p, day in zip(study.parcel_id.tolist(), study.sale_date.tolist(), strict=True)
        if day == TIE_DAY and p in ORDER_IDS
    ]


async def test_ids_tied_on_a_date_come_in_their_collation_order(engine: AsyncEngine) -> None:
    """With many ids on one day the rows and their order are `load_sales`'s, and the tied ids
    come in the order PostgreSQL's own sort of them under the column's collation gives: the
    guard any change to how the study orders its rows (a cheaper collation, a sort outside
    the query) has to pass."""
    county = await county_with_ties(engine)
    study, sales = await both(engine, county, None)
    assert_same_rows(study, sales, None)
    async with engine.connect() as conn:
        own = (
            await conn.execute(
                text("SELECT id FROM unnest(CAST(:ids AS varchar[])) AS t(id) ORDER BY id"),
                {"ids": ORDER_IDS},
            )
        ).scalars()
        collated = list(own)
    tied = tied_ids(study)
    assert len(tied) == ASSESSED_ORDER_IDS
    assert tied == [p for p in collated if p in tied]


async def test_a_linguistic_collation_keeps_its_own_order(engine: AsyncEngine) -> None:
    """With the parcel ids under ICU's root collation (inside a transaction rolled back after)
    the study still sorts as `load_sales` does, by that collation: the tied ids in an order
    their bytes' would not give. The root collation is "und-x-icu" up to PostgreSQL 15 and
    also "unicode" from 16 (the embedded server)."""
    county = await county_with_ties(engine)
    async with engine.connect() as conn:
        root = await conn.scalar(
            text(
                "SELECT collname FROM pg_collation WHERE collname IN ('unicode', 'und-x-icu')"
                " ORDER BY collname LIMIT 1"
            )
        )
        if root is None:
            pytest.skip("this PostgreSQL has no ICU collations")
        await conn.rollback()
        transaction = await conn.begin()
        try:
            await conn.execute(
                text(f'ALTER TABLE sales ALTER COLUMN parcel_id TYPE varchar(64) COLLATE "{root}"')
            )
        except DBAPIError as exc:
            if not isinstance(exc.orig.__cause__, asyncpg.FeatureNotSupportedError):
                raise
            await transaction.rollback()
            pytest.skip(f"this PostgreSQL was built without ICU: {exc.orig.__cause__}")
        study, sales = await read_both(AsyncSession(bind=conn), county, None)
        await transaction.rollback()
    assert_same_rows(study, sales, None)
    tied = tied_ids(study)
    assert len(tied) == ASSESSED_ORDER_IDS
    assert tied != sorted(tied, key=lambda p: p.encode())
    assert tied.index("a") < tied.index("B")
