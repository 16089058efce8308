"""What a kind's input validation reads the database with."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import RowReader, SessionFactory, autocommit


class ValidationReads:
    """The reads of one validation (a submission's, or a saved template's check).

    Every submission validates, most of them with a small read or two (the county has
    parcels; its tax years). On a SQLAlchemy session those cost more CPU than the server
    spends on them: the connection checkout, the autocommit execution options, the session and the
    execution context around each. `scalars` runs such a statement (built once and kept by
    its module) on the process's row reader instead, which in the API is its own asyncpg
    pool (app.db.HotRows), with the same SQL and the same values. A kind's other reads take
    `session()`: an autocommit session as validation always had, opened the first time one
    is asked for and closed with this object.
    """

    def __init__(self, rows: RowReader, sessions: SessionFactory) -> None:
        self._rows = rows
        self._sessions = sessions
        self._opened = contextlib.AsyncExitStack()
        self._session: AsyncSession | None = None

    async def one(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """The row of a kept statement that always returns one (a select of subqueries)."""
        return await self._rows.one(statement, params)

    async def scalars(self, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
        """The first column of every row of a kept statement."""
        return [row[0] for row in await self._rows.all(statement, params)]

    async def session(self) -> AsyncSession:
        if self._session is None:
            self._session = await self._opened.enter_async_context(autocommit(self._sessions))
        return self._session

    async def __aenter__(self) -> ValidationReads:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._opened.__aexit__(exc_type, exc, traceback)
