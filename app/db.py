"""One engine and one session factory per process, built from the settings."""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

import asyncpg
from sqlalchemy import Executable, event
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
T = TypeVar("T")


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
    sessions: SessionFactory, statement: Executable, params: Mapping[str, Any]
) -> Any | None:
    """The one row `statement` selects or returns (None if none).

    One round trip: a Core statement (the caller keeps one object per query, so SQLAlchemy's
    compiled cache answers at once) on a pooled connection outside any transaction, with no
    session, identity map or ORM loading around it.
    """
    async with autocommit_connection(sessions) as conn:
        return (await conn.execute(statement, params)).one_or_none()


class RowReader(Protocol):
    async def one(self, statement: Executable, params: Mapping[str, Any]) -> Any | None: ...

    async def all(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        """Every row `statement` selects, in the order the server sends them."""
        ...


class RowWriter(RowReader, Protocol):
    async def count(self, statement: Executable, params: Mapping[str, Any]) -> int:
        """Run a data-modifying statement without RETURNING; the rows it changed."""
        ...


class CoreRows:
    """Statements on the process's engine, each on an autocommit connection: what scripts
    read rows with, and how the API writes its transitions."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    async def one(self, statement: Executable, params: Mapping[str, Any]) -> Any | None:
        """The one row `statement` selects or returns (None if none)."""
        return await read_row(self.sessions, statement, params)

    async def all(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        async with autocommit_connection(self.sessions) as conn:
            return list((await conn.execute(statement, params)).all())

    async def count(self, statement: Executable, params: Mapping[str, Any]) -> int:
        async with autocommit_connection(self.sessions) as conn:
            result = await conn.execute(statement, params)
        return int(result.rowcount)  # type: ignore[attr-defined]


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not answer a hot read; callers answer SERVICE_UNAVAILABLE (an
    OSError, as a refused connection is)."""


class HotRows:
    """The hottest statements on asyncpg's own pool: the API's read of a job by id (every
    `job(id)` request), a submission's validation reads and its INSERT, the worker's claim,
    progress, heartbeat and finish.

    SQLAlchemy's checkout, execution context and result wrapping cost about 0.5 ms of CPU
    per statement, eight times asyncpg's `fetchrow` of the same row: most of a small query's
    time. Each statement is still a Core statement, compiled once by the engine's own
    dialect to its SQL and parameter order (an `IN` of constants expanded as SQLAlchemy
    expands it); every value goes through its column type's bind processor as SQLAlchemy
    sends it (JSON serialized by the type), and the constants compiled into the statement
    are bound as compiled. Rows decode as the engine decodes them (JSON and JSONB by
    `json.loads`; every other column type our tables use asyncpg and SQLAlchemy give alike,
    which tests/test_hot_rows.py checks column by column). The pool opens connections only
    when statements need them and keeps at most `size`.

    Only for statements built once and kept (a module's, or a `Lifecycle` template): each
    distinct statement object is compiled and kept for the pool's life.
    """

    def __init__(self, engine: AsyncEngine, size: int) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        assert not args, "SQLAlchemy's asyncpg dialect gives asyncpg.connect keywords only"
        self._connect_args: dict[str, Any] = dict(kwargs)
        self._dialect = engine.dialect
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._compiled: dict[Executable, Compiled] = {}

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            **self._connect_args,
            min_size=0,
            max_size=self._size,
            init=_json_codecs,
            reset=_nothing_to_reset,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _on_connection(self, call: Callable[[asyncpg.Connection[Any]], Awaitable[T]]) -> T:
        """`call` on a pooled connection, its outages answered as `_unavailable` says.

        A connection whose server process was terminated (a failover, an operator's
        pg_terminate_backend) can be handed out in the middle of consuming the server's
        farewell: asyncpg refuses it with an InternalClientError ("another operation is in
        progress"). That is an outage too, and the connection is closed rather than given
        back: returned without asyncpg's reset statement (`_nothing_to_reset`), it would
        stay in the pool and refuse every statement sent on it.

        Plain `try` blocks rather than context managers: every hot statement passes here, and
        two generator-based context managers around the pool's own cost more than the
        statement's own Python."""
        pool = self._pool
        assert pool is not None, "HotRows.start() first"
        try:
            conn = await pool.acquire()
            try:
                return await call(conn)
            except asyncpg.InternalClientError:
                conn.terminate()
                raise
            finally:
                await pool.release(conn)
        except OUTAGES as exc:
            raise _unavailable(exc) from exc

    def _compile(self, statement: Executable) -> Compiled:
        found = self._compiled.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self._dialect)  # type: ignore[attr-defined]
            unbound = {name: None for name, bind in compiled.binds.items() if bind.required}
            expanded = compiled.construct_expanded_state(unbound)
            parents = {
                name: parent
                for parent, names in (expanded.parameter_expansion or {}).items()
                for name in names
            }
            plan = []
            for name in expanded.positiontup or ():
                bind = compiled.binds[parents.get(name, name)]
                process = bind.type.dialect_impl(self._dialect).bind_processor(self._dialect)
                if name in unbound:
                    plan.append(Param(name, process, None))
                else:
                    value = expanded.parameters[name]
                    plan.append(Param(None, None, process(value) if process else value))
            columns = getattr(statement, "exported_columns", ())
            names = [str(column.key) for column in columns] or ["_"]
            row: Any = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
            found = self._compiled[statement] = Compiled(expanded.statement, tuple(plan), row._make)
        return found

    @staticmethod
    def _args(compiled: Compiled, params: Mapping[str, Any]) -> list[Any]:
        args = []
        for name, process, constant in compiled.params:
            if name is None:
                args.append(constant)
            else:
                value = params[name]
                args.append(process(value) if process else value)
        return args

    async def one(self, statement: Executable, params: Mapping[str, Any]) -> Any | None:
        """The row as a named tuple of the statement's column names: its columns read as
        attributes, as a SQLAlchemy Row's do, at the cost of a tuple's."""
        compiled = self._compile(statement)
        args = self._args(compiled, params)
        record = await self._on_connection(lambda conn: conn.fetchrow(compiled.sql, *args))
        return None if record is None else compiled.row(record.values())

    async def all(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        """Every row, each a named tuple as `one` gives it."""
        compiled = self._compile(statement)
        args = self._args(compiled, params)
        records = await self._on_connection(lambda conn: conn.fetch(compiled.sql, *args))
        make = compiled.row
        return [make(record.values()) for record in records]

    async def count(self, statement: Executable, params: Mapping[str, Any]) -> int:
        """Run a data-modifying statement without RETURNING; the rows it changed (from the
        server's command tag, as the engine's rowcount)."""
        compiled = self._compile(statement)
        args = self._args(compiled, params)
        tag = await self._on_connection(lambda conn: conn.execute(compiled.sql, *args))
        return int(tag.rsplit(" ", 1)[-1])


NOT_ANSWERING = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
)
OUTAGES = (*NOT_ANSWERING, asyncpg.OperatorInterventionError)
"""A server that is unreachable, gone or shutting down."""


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    """An outage as the engine's outages are answered: an OSError the callers know
    (SERVICE_UNAVAILABLE, a transient run failure)."""
    if isinstance(exc, NOT_ANSWERING):
        return DatabaseUnavailable(f"PostgreSQL did not answer: {exc}")
    return DatabaseUnavailable(f"PostgreSQL is shutting down: {exc}")


class Param(NamedTuple):
    name: str | None
    """The caller's parameter, or None for a constant compiled into the statement."""
    process: Callable[[Any], Any] | None
    """The column type's bind processor for the caller's value."""
    constant: Any


class Compiled(NamedTuple):
    sql: str
    params: tuple[Param, ...]
    """Where each of the statement's $1, $2, ... comes from."""
    row: Callable[[Iterable[Any]], Any]


async def _nothing_to_reset(conn: asyncpg.Connection[Any]) -> None:
    """A single statement outside a transaction leaves no session state (no LISTEN, SET or
    cursor; an advisory lock it took is a transaction's, gone with it), so a connection
    goes back to the pool without asyncpg's reset statement, a round trip that doubled each
    read's cost. asyncpg still rolls back a transaction left open."""


async def _json_codecs(conn: asyncpg.Connection[Any]) -> None:
    """JSON values arrive as text, already serialized by the column type (as SQLAlchemy's
    own codec takes them), and are decoded as the engine decodes them."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=str, decoder=json.loads, schema="pg_catalog", format="text"
        )
