"""One engine and one session factory per process, built from the settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]


def async_url(url: str) -> str:
    """Accept the standard `postgresql://` form users paste and pick asyncpg ourselves."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(async_url(url), pool_size=pool_size, max_overflow=10)
    event.listen(engine.sync_engine.pool, "checkout", _discard_closed)
    return engine


def _discard_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out no connection the server has already closed, without a round trip.

    `pool_pre_ping` would cost BEGIN, an empty statement and ROLLBACK on every checkout (a
    job checks out about nine times). A server that terminates a backend or stops says so
    on the socket, and asyncpg marks the connection closed as soon as the event loop reads
    that; raising DisconnectionError here makes the pool drop it and connect afresh. A
    connection that dies between this check and its statement fails that statement as a
    disconnect, which invalidates the whole pool and which callers treat as transient
    (the worker retries the job, the API answers SERVICE_UNAVAILABLE).
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def autocommit_connection(sessions: SessionFactory) -> AsyncIterator[AsyncConnection]:
    """A Core connection whose every statement is a transaction of its own (see `autocommit`).

    For a hot read that needs no ORM: no session, no identity map, no BEGIN or ROLLBACK.
    """
    engine: AsyncEngine = sessions.kw["bind"]
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@contextlib.asynccontextmanager
async def autocommit(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session whose every statement is a transaction of its own, without the BEGIN and
    COMMIT (or ROLLBACK) round trips around it: asyncpg then opens no transaction at all.

    For a unit of work that is one statement (the same atomicity as `sessions.begin()`),
    and for reads, which under READ COMMITTED see a snapshot per statement anyway. Never for
    several writes that must stand or fall together: those need `sessions.begin()`.
    """
    async with autocommit_connection(sessions) as conn, sessions(bind=conn) as session:
        yield session


async def read_row(
    sessions: SessionFactory, statement: Select[Any], params: Mapping[str, Any]
) -> Any | None:
    """The one row `statement` selects (None if none), for the API's hottest reads.

    One round trip: a Core statement (the caller keeps one object per query, so SQLAlchemy's
    compiled cache answers at once) on a pooled connection outside any transaction, with no
    session, identity map or ORM loading around it.
    """
    async with autocommit_connection(sessions) as conn:
        return (await conn.execute(statement, params)).one_or_none()
