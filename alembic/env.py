"""Async Alembic environment.

The URL comes from `terrafusion migrate` (config attribute), else from DATABASE_URL, else
the data folder's embedded PostgreSQL, so plain `alembic upgrade head` works too.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from app import auth  # noqa: F401  (registers api_tokens on Base.metadata)
from app.config import Settings
from app.db import async_url
from app.models import Base
from app.services import open_services
from jobs import changes, idempotency, origin, registry, schedules, templates  # noqa: F401  (register their tables)

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    return open_services(Settings(), redis=False).settings.database_url or ""


def run_migrations_offline() -> None:
    context.configure(
        url=async_url(database_url()), target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(async_url(database_url()), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
