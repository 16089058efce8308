"""Alembic builds the schema from an empty database, and the models have not drifted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from alembic import command
from app.migrate import alembic_config, check, upgrade
from app.models import Base
from jobs.kinds.report.params import SalesRatioStudyParams

ROOT = Path(__file__).resolve().parents[1]


async def _sql(url: str, statement: str, *args: object) -> list[asyncpg.Record]:
    """Run one statement; the host may be a unix socket named in the URL's query (embedded)."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database,
    )
    try:
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


async def _tables(url: str) -> set[str]:
    rows = await _sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
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


REPORT_ROW = "SELECT parameters_json, result_json FROM report_jobs"


def test_typed_api_revision_keeps_older_jobs_readable(empty_database: str) -> None:
    """Jobs written before the typed API: flat sales filters and standards as a map of
    verdicts. After the upgrade they have the new shapes, with the ranges the job judged by."""
    upgrade(empty_database, "7cb31132d355")  # before the change log, which backfills it
    study = {
        "tax_year": 2024,
        "sale_date_from": "2023-01-01",
        "sale_date_to": None,
        "property_class": "commercial",
        "arms_length_only": True,
        "cod_standard": None,
        "group_by": "none",
        "trim": "iqr",
        "iqr_factor": 1.5,
    }
    stats = {"median_ratio": 0.95, "cod": 17.0, "prd": 1.01, "prb": 0.01}
    verdicts = {"level": True, "cod": True, "prd": True, "prb": True}
    result = {"ratio_study": {"overall": {**stats, "standards": verdicts}, "groups": []}}
    asyncio.run(
        _sql(
            empty_database,
            "INSERT INTO report_jobs (report_id, county_id, report_type, parameters_json,"
            " result_json) VALUES ($1, 'C', 'sales_ratio_study', $2::jsonb, $3::jsonb)",
            uuid.uuid4(),
            json.dumps(study),
            json.dumps(result),
        )
    )
    upgrade(empty_database)
    (row,) = asyncio.run(_sql(empty_database, REPORT_ROW))
    parameters, stored = json.loads(row[0]), json.loads(row[1])
    assert parameters["sales"] == {
        "sale_date_from": "2023-01-01",
        "sale_date_to": None,
        "property_class": "commercial",
        "zip_codes": None,
        "neighborhoods": None,
        "arms_length_only": True,
    }
    assert "sale_date_from" not in parameters and parameters["tax_year"] == 2024
    checks = {c["statistic"]: c for c in stored["ratio_study"]["overall"]["standards"]}
    # "commercial" is judged as income property: COD 5-20, so 17 passed.
    assert checks["cod"] == {
        "standard": "uniformity",
        "statistic": "cod",
        "value": 17.0,
        "lower": 5.0,
        "upper": 20.0,
        "passes": True,
    }
    assert (checks["median_ratio"]["lower"], checks["median_ratio"]["upper"]) == (0.9, 1.1)
    assert SalesRatioStudyParams.model_validate(parameters).sales.property_class == "commercial"

    command.downgrade(alembic_config(empty_database), "5a1f0c7e9d2b")
    (row,) = asyncio.run(_sql(empty_database, REPORT_ROW))
    assert json.loads(row[0]) == study
    assert json.loads(row[1]) == result
