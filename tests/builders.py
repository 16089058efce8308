"""Test data in one place."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import create_token, revoke_token
from app.config import Settings
from app.db import CoreRows, create_session_factory
from app.demo_data import DemoCounty, generate_county, load_demo_county
from jobs.access import Caller
from jobs.context import RunContext
from jobs.lifecycle import Lifecycle
from jobs.registry import KINDS
from jobs.spec import JobKind
from jobs.validation_reads import ValidationReads

TEST_COUNTY = "TESTCO"
ROLL = {"report_type": "assessment_roll", "county_id": TEST_COUNTY}


async def load_small_county(engine: AsyncEngine, parcels: int = 400, seed: int = 7) -> str:
    await load_demo_county(engine, TEST_COUNTY, parcels, seed=seed)
    return TEST_COUNTY


async def issue_token(
    engine: AsyncEngine,
    name: str,
    permissions: list[str],
    *,
    revoked: bool = False,
    team: str | None = None,
) -> str:
    """A token as `terrafusion token create` makes it (and revokes it, if asked)."""
    sessions = create_session_factory(engine)
    token = await create_token(sessions, name, permissions, team)
    if revoked:
        await revoke_token(sessions, name)
    return token


async def finished_report(
    lifecycle: Lifecycle,
    results_dir: Path,
    caller: Caller,
    files: dict[str, tuple[str, str]],
    visibility: str = "PRIVATE",
) -> str:
    """A COMPLETED report job whose result lists `files` (name -> (content type, text)),
    written where a worker would write them."""
    snap = await lifecycle.submit(JobKind.REPORT, {**ROLL, "visibility": visibility}, caller)
    job_id, run = uuid.UUID(snap["id"]), uuid.uuid4()
    folder = results_dir / str(job_id)
    folder.mkdir(parents=True)
    listed = []
    for name, (content_type, content) in files.items():
        (folder / name).write_text(content)
        listed.append(
            {
                "name": name,
                "url": f"/results/{job_id}/{name}",
                "content_type": content_type,
                "size_bytes": len(content.encode()),
            }
        )
    spec = KINDS[JobKind.REPORT]
    await lifecycle.start(spec, job_id, run)
    await lifecycle.complete(spec, job_id, run, {"files": listed})
    return str(job_id)


async def compute(
    engine: AsyncEngine, settings: Settings, kind: JobKind, raw: dict[str, Any]
) -> dict[str, Any]:
    """A kind's validation then its compute, called directly (no queue, no worker): the
    numbers a job would report, for tests of the numerics on real data in the real database.
    `raw` is the lifecycle's input (snake_case keys, `parameters` as a dict)."""
    spec = KINDS[kind]
    sessions = create_session_factory(engine)
    async with ValidationReads(CoreRows(sessions), sessions) as reads:
        valid = await spec.validate(reads, raw, settings)

    async def progress(
        step: str, processed: int | None, total: int | None, percent: float | None
    ) -> None:
        return None

    ctx = RunContext(
        job_id=uuid.uuid4(),
        kind=kind,
        county_id=valid.county_id,
        parameters=valid.parameters,
        columns=valid.columns,
        sessions=sessions,
        rows=CoreRows(sessions),
        results_dir=settings.resolved_results_dir,
        report_progress=progress,
    )
    return await spec.compute(ctx)


async def ratio_study(
    engine: AsyncEngine, settings: Settings, county: str, **parameters: Any
) -> dict[str, Any]:
    """A sales ratio study's result, computed directly (`parameters` in snake_case)."""
    return await compute(
        engine,
        settings,
        JobKind.REPORT,
        {
            "county_id": county,
            "report_type": "sales_ratio_study",
            "parameters": {"sales_ratio_study": parameters},
        },
    )


def result_text(settings: Settings, result: dict[str, Any], suffix: str) -> str:
    """The text of the one result file whose name ends with `suffix`."""
    (file,) = [f for f in result["files"] if f["name"].endswith(suffix)]
    return (settings.resolved_results_dir / file["url"].removeprefix("/results/")).read_text()


MARKET_GROUPS: dict[str, tuple[float, float, tuple[str, ...]]] = {
    # group: (price per sqft on MARKET_BASE_DATE, annual log trend, its neighborhoods)
    "value": (150.0, 0.02, ("Hilltop", "Eastside", "South End", "Fern Hill")),
    "steady": (260.0, 0.02, ("Downtown", "Lincoln", "Westgate", "Oakland Heights")),
    "rising": (260.0, 0.12, ("Stadium", "North End", "Proctor", "Firwood")),
}
"""Three known market areas of the demo county's twelve neighborhoods: two share a price level
and differ in trend, two share a trend and differ in price level."""
MARKET_BASE_DATE = np.datetime64("2023-01-01", "D")
MARKET_SIGMA = 0.08


def market_area_county(county_id: str, n_parcels: int, *, seed: int = 11) -> DemoCounty:
    """The demo county with every sale of a building repriced as its group's price per sqft
    (MARKET_GROUPS) times its living area, trended from MARKET_BASE_DATE, with lognormal noise;
    sales without a living area keep their demo prices."""
    county = generate_county(county_id, n_parcels, seed=seed)
    sales, parcels = county.sales, county.parcels
    hood = parcels.neighborhood[sales.parcel_index]
    level, trend = np.full(len(sales), np.nan), np.full(len(sales), np.nan)
    for group_level, group_trend, names in MARKET_GROUPS.values():
        member = np.isin(hood, names)
        level[member], trend[member] = group_level, group_trend
    area = parcels.living_area_sqft[sales.parcel_index]
    years = (sales.sale_date - MARKET_BASE_DATE).astype(np.float64) / 365.2425
    rng = np.random.default_rng([seed, 15])
    price = level * area * np.exp(trend * years + MARKET_SIGMA * rng.standard_normal(len(sales)))
    priced = np.isfinite(price)
    sale_price = np.where(priced, np.round(np.nan_to_num(price), -2), sales.sale_price)
    return dataclasses.replace(county, sales=dataclasses.replace(sales, sale_price=sale_price))
