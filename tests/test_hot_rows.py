"""The API reads a job by id on asyncpg's own pool (app.db.HotRows); it must read exactly
what SQLAlchemy's Core read of the same statement gives, column by column and type by type,
for every kind's table with every column filled, and for none (a missing row)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db import CoreRows, DatabaseUnavailable, HotRows, create_session_factory
from jobs.lifecycle import row_by_id, snapshot
from jobs.registry import KINDS
from jobs.spec import JobKind, KindSpec

WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
DOCUMENT = {
    "nested": {"list": [1, 2.5, "\u00e9 \u2013 \u2713", None, True]},
    "big": 2**53 + 1,
    "empty": {},
}


def _value(column: Any, n: int) -> Any:
    """A non-null value of the column's type, different per column (`n`)."""
    kind = column.type
    if isinstance(kind, JSONB):
        return {**DOCUMENT, "n": n}
    if isinstance(kind, ARRAY):
        return [f"item{n}", "second"]
    if isinstance(kind, Uuid):
        return uuid.uuid4()
    if isinstance(kind, DateTime):
        return WHEN + dt.timedelta(seconds=n)
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, BigInteger):
        return 2**40 + n
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, Float):
        return n + 0.125
    if isinstance(kind, String | Text):
        return f"v{n}"[: kind.length or None]
    raise AssertionError(f"no test value for {column.name}: {kind!r}; add one")


async def _insert_full_row(engine: AsyncEngine, spec: KindSpec) -> uuid.UUID:
    table = spec.model.__table__
    values = {column.name: _value(column, n) for n, column in enumerate(table.columns)}
    async with engine.begin() as conn:
        await conn.execute(table.insert().values(values))
    return values[spec.model.id_column]  # type: ignore[no-any-return]


@pytest.fixture
async def hot_rows(engine: AsyncEngine) -> Any:
    rows = HotRows(engine, size=2)
    await rows.start()
    yield rows
    await rows.close()


@pytest.mark.parametrize("kind", list(JobKind))
async def test_a_full_row_reads_as_sqlalchemy_reads_it(
    engine: AsyncEngine, hot_rows: HotRows, kind: JobKind
) -> None:
    spec = KINDS[kind]
    job_id = await _insert_full_row(engine, spec)
    core = await CoreRows(create_session_factory(engine)).one(row_by_id(spec), {"id": job_id})
    hot = await hot_rows.one(row_by_id(spec), {"id": job_id})
    assert core is not None and hot is not None
    assert hot._fields == tuple(core._fields)
    for name in core._fields:
        ours, theirs = getattr(hot, name), getattr(core, name)
        assert (name, ours, type(ours)) == (name, theirs, type(theirs))
    assert all(getattr(hot, name) is not None for name in hot._fields)
    assert snapshot(spec, hot) == snapshot(spec, core)


async def test_a_missing_row_is_none(hot_rows: HotRows) -> None:
    spec = KINDS[JobKind.REPORT]
    assert await hot_rows.one(row_by_id(spec), {"id": uuid.uuid4()}) is None


async def test_an_unreachable_server_is_unavailable_not_a_crash(engine: AsyncEngine) -> None:
    """What the API answers SERVICE_UNAVAILABLE to (an OSError, as the engine's outages)."""
    closed = engine.url.set(host="127.0.0.1", port=9, query={})
    dead = create_async_engine(closed)
    rows = HotRows(dead, size=1)
    await rows.start()
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await rows.one(row_by_id(KINDS[JobKind.REPORT]), {"id": uuid.uuid4()})
        assert isinstance(caught.value, OSError)
    finally:
        await rows.close()
        await dead.dispose()


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (ConnectionResetError("reset"), "PostgreSQL did not answer: reset"),
        (asyncpg.InterfaceError("gone"), "PostgreSQL did not answer: gone"),
        (asyncpg.InternalClientError("busy"), "PostgreSQL did not answer: busy"),
        (asyncpg.ConnectionFailureError("lost"), "PostgreSQL did not answer: lost"),
        (asyncpg.AdminShutdownError("stopping"), "PostgreSQL is shutting down: stopping"),
    ],
)
async def test_an_outage_on_a_connection_is_unavailable_and_the_pool_serves_on(
    hot_rows: HotRows, engine: AsyncEngine, raised: Exception, said: str
) -> None:
    """Whatever fails on the connection is answered as an outage; a connection asyncpg
    refused mid-farewell (InternalClientError) is closed, any other goes back; the pool
    keeps serving."""
    backends: set[int] = set()

    async def failing(conn: Any) -> None:
        backends.add(conn.get_server_pid())
        raise raised

    for _ in range(3):  # more than the pool's two connections: none is lost
        with pytest.raises(DatabaseUnavailable) as caught:
            await hot_rows._on_connection(failing)
        assert str(caught.value) == said and caught.value.__cause__ is raised
    terminated = isinstance(raised, asyncpg.InternalClientError)
    expected = 0 if terminated else len(backends)
    for _ in range(100):
        async with engine.connect() as conn:
            alive = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": list(backends)},
            )
        if alive == expected:
            break
        await asyncio.sleep(0.05)
    assert alive == expected, (backends, alive)
    assert await hot_rows.one(row_by_id(KINDS[JobKind.REPORT]), {"id": uuid.uuid4()}) is None


async def test_a_statement_error_is_the_callers_and_the_connection_goes_back(
    hot_rows: HotRows,
) -> None:
    for _ in range(3):
        with pytest.raises(asyncpg.UndefinedTableError):
            await hot_rows.one(text("SELECT * FROM no_such_table"), {})
    assert await hot_rows.one(row_by_id(KINDS[JobKind.REPORT]), {"id": uuid.uuid4()}) is None
