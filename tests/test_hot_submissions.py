"""The API validates and INSERTs a submission, and runs a client's cancel and retry, on
asyncpg's own pool (app.db.HotRows as `Lifecycle.rows` and `Lifecycle.writes`, read by
jobs.validation_reads.ValidationReads). Each must do exactly what the engine's way does: the
same row, column by column and type by type, the same change-log rows, snapshots and events
in the same order, and the same refusals (field and message) for bad input."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings
from app.db import CoreRows, DatabaseUnavailable, HotRows, RowReader, create_session_factory
from app.demo_data import load_demo_county
from app.models import Assessment
from jobs.access import ANONYMOUS_ADMIN
from jobs.county_data import (
    _one_parcel,
    _tax_years,
    require_county,
    require_county_and_tax_year,
    require_tax_year,
)
from jobs.spec import BadInput, JobKind
from jobs.validation_reads import ValidationReads
from tests.hot_pools import (
    change_log,
    lifecycles,
    received_events,
    stable,
    whole_row,
)


def _valid(county: str) -> list[tuple[JobKind, dict[str, Any]]]:
    """An input of every kind, each validation reading what that kind reads."""
    return [
        (JobKind.REPORT, {"report_type": "assessment_roll", "county_id": county}),
        (
            JobKind.REPORT,
            {
                "report_type": "sales_ratio_study",
                "county_id": county,
                "parameters": {"sales_ratio_study": {}},
                "name": "  named \u2013 \u00e9  ",
                "description": "with a description",
                "priority": 3,
                "retention_days": 9,
                "visibility": "COUNTY",
            },
        ),
        (JobKind.MARKET_ANALYSIS, {"analysis_type": "price_trend", "county_id": county}),
        (
            JobKind.GIS_EXPORT,
            {"county_id": county, "export_format": "GeoJSON", "layers": ["PARCELS", "ASSESSMENTS"]},
        ),
        (JobKind.VALUATION, {"county_id": county}),
    ]


def _refused(county: str) -> list[tuple[JobKind, dict[str, Any]]]:
    """Inputs every validation read must refuse, each in its own words."""
    return [
        (JobKind.REPORT, {"report_type": "assessment_roll", "county_id": "NOWHERE"}),
        (
            JobKind.REPORT,
            {
                "report_type": "assessment_roll",
                "county_id": county,
                "parameters": {"assessment_roll": {"tax_year": 1850}},
            },
        ),
        (JobKind.MARKET_ANALYSIS, {"analysis_type": "price_trend", "county_id": "NOWHERE"}),
        (
            JobKind.GIS_EXPORT,
            {"county_id": county, "export_format": "GeoJSON", "layers": ["ZONING"]},
        ),
        (
            JobKind.GIS_EXPORT,
            {
                "county_id": county,
                "export_format": "GeoJSON",
                "layers": ["ASSESSMENTS"],
                "parameters": {"tax_year": 1850},
            },
        ),
        (JobKind.VALUATION, {"county_id": county, "property_id": "no-such-parcel"}),
        (JobKind.VALUATION, {"county_id": "NOWHERE"}),
    ]


async def test_a_submission_writes_on_the_hot_pool_what_it_writes_on_the_engine(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis, hot: HotRows
) -> None:
    client = Redis.from_url(settings.redis_url or "")
    pubsub = client.pubsub()
    await pubsub.subscribe(settings.events_channel)
    try:
        answers: list[list[Any]] = [[], []]
        ids: list[list[str]] = [[], []]
        for n, lifecycle in enumerate(lifecycles(engine, arq_redis, settings, hot)):
            for kind, raw in _valid(county):
                snap = await lifecycle.submit(kind, raw, ANONYMOUS_ADMIN)
                ids[n].append(snap["id"])
                answers[n].append(stable(snap))
                answers[n].append(await whole_row(engine, snap["id"], kind))
                answers[n].append(await change_log(engine, snap["id"]))
                queued = await arq_redis.zscore(settings.queue_name, snap["id"])
                answers[n].append(await arq_redis.exists(f"arq:job:{snap['id']}"))
                answers[n].append(queued is not None)
        assert answers[0] == answers[1]
        assert [a["status"] for a in answers[1][::5]] == ["PENDING"] * len(_valid(county))
        assert answers[1][3:5] == [1, True]
        received = await received_events(pubsub)
        events = [[stable(e) for e in received if e["id"] in run] for run in ids]
        assert events[0] == events[1] and len(events[1]) == len(_valid(county))
        assert [e["id"] for e in received if e["id"] in ids[1]] == ids[1]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_bad_input_is_refused_alike(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis, hot: HotRows
) -> None:
    refusals: list[list[tuple[str, str]]] = [[], []]
    for n, lifecycle in enumerate(lifecycles(engine, arq_redis, settings, hot)):
        for kind, raw in _refused(county):
            with pytest.raises(BadInput) as caught:
                await lifecycle.submit(kind, raw, ANONYMOUS_ADMIN)
            refusals[n].append((caught.value.field, caught.value.message))
    assert refusals[0] == refusals[1]
    assert f"counties with data: {county}" in refusals[1][0][1]
    assert refusals[1][1][0] == "parameters.assessmentRoll.taxYear"


async def test_a_submission_on_the_hot_pool_checks_out_no_engine_connection(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis, hot: HotRows
) -> None:
    """The mechanism itself: validation's reads and the INSERT leave the engine alone."""
    checkouts: list[object] = []

    def count(*args: object) -> None:
        checkouts.append(args)

    core, fast = lifecycles(engine, arq_redis, settings, hot)
    roll = {"report_type": "assessment_roll", "county_id": county}
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", count)
    try:
        await fast.submit(JobKind.REPORT, roll, ANONYMOUS_ADMIN)
        assert checkouts == []
        await core.submit(JobKind.REPORT, roll, ANONYMOUS_ADMIN)
        assert checkouts, "the engine's way checks out its connections"
    finally:
        event.remove(pool, "checkout", count)


async def test_validation_reads_read_as_the_engine_reads(
    engine: AsyncEngine, county: str, hot: HotRows
) -> None:
    core = CoreRows(create_session_factory(engine))
    for statement in (_one_parcel(), _tax_years()):
        for place in (county, "NOWHERE"):
            theirs = await core.all(statement, {"county_id": place})
            ours = await hot.all(statement, {"county_id": place})
            assert [[(v, type(v)) for v in row] for row in ours] == [
                [(v, type(v)) for v in row] for row in theirs
            ]
    assert len(await hot.all(_tax_years(), {"county_id": county})) >= 1


async def test_cancel_and_retry_on_the_hot_pool_as_on_the_engine(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis, hot: HotRows
) -> None:
    answers: list[list[Any]] = [[], []]
    roll = {"report_type": "assessment_roll", "county_id": county}
    for n, lifecycle in enumerate(lifecycles(engine, arq_redis, settings, hot)):
        job_id = (await lifecycle.submit(JobKind.REPORT, roll, ANONYMOUS_ADMIN))["id"]
        answers[n].append(stable(await lifecycle.cancel(uuid.UUID(job_id), ANONYMOUS_ADMIN)))
        answers[n].append(await whole_row(engine, job_id))
        answers[n].append(stable(await lifecycle.retry(uuid.UUID(job_id), ANONYMOUS_ADMIN)))
        answers[n].append(await whole_row(engine, job_id))
        answers[n].append(await change_log(engine, job_id))
    assert answers[0] == answers[1]
    assert [answers[1][0]["status"], answers[1][2]["status"]] == ["CANCELLED", "PENDING"]


async def test_an_unreachable_server_refuses_a_submission_as_unavailable(
    engine: AsyncEngine, settings: Settings, arq_redis: ArqRedis
) -> None:
    """An OSError, which the API answers SERVICE_UNAVAILABLE, as the engine's outages."""
    dead = create_async_engine(engine.url.set(host="127.0.0.1", port=9, query={}))
    rows = HotRows(dead, size=1)
    await rows.start()
    try:
        _, fast = lifecycles(engine, arq_redis, settings, rows)
        roll = {"report_type": "assessment_roll", "county_id": "TESTCO"}
        with pytest.raises(DatabaseUnavailable) as caught:
            await fast.submit(JobKind.REPORT, roll, ANONYMOUS_ADMIN)
        assert isinstance(caught.value, OSError)
    finally:
        await rows.close()
        await dead.dispose()


async def test_the_one_read_county_check_refuses_as_the_two_reads_did(
    engine: AsyncEngine, county: str, hot: HotRows
) -> None:
    """`require_county_and_tax_year` against `require_county` then `require_tax_year`, on
    every case each can refuse: no such county, a county without assessments, a tax year
    it has no assessments for; and the year each picks when none is asked for."""
    await load_demo_county(engine, "BAREYEARS", 5, seed=2)
    async with engine.begin() as conn:
        await conn.execute(delete(Assessment).where(Assessment.county_id == "BAREYEARS"))
    sessions = create_session_factory(engine)
    years = await CoreRows(sessions).all(_tax_years(), {"county_id": county})
    cases = [
        (place, year)
        for place in (county, "BAREYEARS", "NOWHERE")
        for year in (None, years[0][0], years[-1][0], 1850)
    ]
    for reader in (hot, CoreRows(sessions)):
        for place, year in cases:
            async with ValidationReads(reader, sessions) as reads:
                one = await _outcome(require_county_and_tax_year(reads, place, year, "p.taxYear"))
                two = await _outcome(_two_reads(reads, reader, place, year, "p.taxYear"))
            assert one == two, (place, year)
            if place == county and year != 1850:
                assert one == ("year", year or years[-1][0])
            else:
                assert one[0] == "refused", (place, year)


async def _outcome(check: Awaitable[int]) -> tuple[str, Any]:
    try:
        return "year", await check
    except BadInput as exc:
        return "refused", (exc.field, exc.message)


async def _two_reads(
    reads: ValidationReads, rows: RowReader, county_id: str, tax_year: int | None, field: str
) -> int:
    """The county check as validation made it before: two reads."""
    await require_county(reads, county_id)
    return await require_tax_year(rows, county_id, tax_year, field)
