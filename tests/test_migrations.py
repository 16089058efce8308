"""Alembic builds the schema from an empty database, and the models have not drifted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from app.migrate import check, upgrade
from app.models import Base

ROOT = Path(__file__).resolve().parents[1]


async def _tables(url: str) -> set[str]:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database,
    )
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


def test_upgrade_builds_every_table_and_check_reports_no_drift(empty_database: str) -> None:
    upgrade(empty_database)
    tables = asyncio.run(_tables(empty_database))
    assert set(Base.metadata.tables) <= tables
    assert {"report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs"} <= tables
    check(empty_database)


def test_alembic_command_line_upgrades_head(empty_database: str) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "report_jobs" in asyncio.run(_tables(empty_database))
