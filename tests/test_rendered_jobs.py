"""A `job(id)` answer reuses the object built from its row while the row stays the same
(resolvers.rendered_jobs); it must answer exactly as building it afresh would, also when
the row changes in a way `==` cannot see (no version bump; 0.0 to -0.0, 1 to 1.0 or true
inside JSON), and the comparison must walk every column where such a change can hide."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import ARRAY, JSON, Float, Numeric, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import HotRows
from jobs.lifecycle import row_by_id, snapshot
from jobs.registry import KINDS
from jobs.spec import JobKind
from resolvers.rendered_jobs import RenderedJobs, loose_columns, same_values
from schema.job_types import job_from_snapshot
from tests.conftest import RunningApp
from tests.graphql_client import gql_data

QUERY = (
    "query($id: ID!) { job(id: $id) { id status version message changeCursor createdAt "
    "progress { percent step } ... on ReportJob { result { summary } } } }"
)


async def _answer(server: RunningApp, job_id: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/graphql", json={"query": QUERY, "variables": {"id": job_id}})
    assert response.status_code == 200
    return response.text


async def _submit(server: RunningApp, county: str) -> str:
    submitted = await gql_data(
        server.url,
        "mutation($input: RunReportInput!) { runReport(input: $input) { id } }",
        {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": county}},
    )
    return str(submitted["runReport"]["id"])


async def _set(engine: AsyncEngine, job_id: str, sql: str, **values: Any) -> None:
    """Change the row behind the API's back: no version bump, no change-log entry."""
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE report_jobs SET {sql} WHERE report_id = :id"), {"id": job_id, **values}
        )


async def test_a_row_changed_unseen_by_equality_answers_afresh(
    app_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    job_id = await _submit(app_server, county)
    first = await _answer(app_server, job_id)
    assert await _answer(app_server, job_id) == first
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("progress_percent = :p", {"p": 0.0}, '"percent":0.0'),
        ("progress_percent = :p", {"p": -0.0}, '"percent":-0.0'),
        ("progress_percent = :p", {"p": 0.0}, '"percent":0.0'),
        ("result_json = CAST(:r AS jsonb)", {"r": '{"files": [], "summary": {"n": 1}}'}, '{"n":1}'),
        (
            "result_json = CAST(:r AS jsonb)",
            {"r": '{"files": [], "summary": {"n": 1.0}}'},
            '{"n":1.0}',
        ),
        (
            "result_json = CAST(:r AS jsonb)",
            {"r": '{"files": [], "summary": {"n": true}}'},
            '{"n":true}',
        ),
        ("message = :m", {"m": "changed"}, '"message":"changed"'),
    ]
    for sql, values, expected in steps:
        await _set(engine, job_id, sql, **values)
        answers = [await _answer(app_server, job_id) for _ in range(3)]
        assert expected in answers[0], (sql, values, answers[0])
        assert answers[1:] == answers[:1] * 2, (sql, values, answers)
        assert (
            json.loads(answers[0])["data"]["job"]["version"]
            == json.loads(first)["data"]["job"]["version"]
        )


async def test_the_kept_object_is_the_one_built_afresh(
    app_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    """The same object for the same row read twice; a changed row builds a new one, equal
    to a fresh build."""
    job_id = await _submit(app_server, county)
    spec = KINDS[JobKind.REPORT]
    rows = HotRows(engine, size=1)
    await rows.start()
    try:
        rendered = RenderedJobs(size=2)
        read = await rows.one(row_by_id(spec), {"id": uuid.UUID(job_id)})
        again = await rows.one(row_by_id(spec), {"id": uuid.UUID(job_id)})
        built = rendered.job(spec, read)
        assert built == job_from_snapshot(snapshot(spec, read))
        assert rendered.job(spec, again) is built
        await _set(engine, job_id, "progress_percent = :p", p=12.5)
        changed = await rows.one(row_by_id(spec), {"id": uuid.UUID(job_id)})
        rebuilt = rendered.job(spec, changed)
        assert rebuilt is not built
        assert rebuilt == job_from_snapshot(snapshot(spec, changed))
        assert rebuilt.progress is not None and rebuilt.progress.percent == 12.5
    finally:
        await rows.close()


def test_every_column_equality_may_deceive_is_walked() -> None:
    """JSON, arrays, floats and decimals: each kind's, by its column types."""
    for spec in KINDS.values():
        columns = list(row_by_id(spec).exported_columns)
        deceiving = {
            i
            for i, column in enumerate(columns)
            if isinstance(column.type, JSON | ARRAY | Float | Numeric)
        }
        assert deceiving, spec.kind
        assert deceiving <= set(loose_columns(spec)), spec.kind


def test_alike_means_printing_alike() -> None:
    utc = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    alike: list[tuple[Any, Any]] = [
        (
            {"a": [1, 2.5, None, "x"], "b": {"c": True}},
            {"a": [1, 2.5, None, "x"], "b": {"c": True}},
        ),
        (0.0, 0.0),
        (-0.0, -0.0),
        (utc, utc.replace()),
        (Decimal("1.50"), Decimal("1.50")),
        (None, None),
    ]
    unlike: list[tuple[Any, Any]] = [
        (1, 1.0),
        (1, True),
        (0.0, -0.0),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({"a": [1]}, {"a": [1.0]}),
        ({"a": {"b": 0.0}}, {"a": {"b": -0.0}}),
        ([1, 2], [1, 2, 3]),
        (utc, utc.astimezone(dt.timezone(dt.timedelta(hours=1)))),
        (Decimal("1.5"), Decimal("1.50")),
        ("1", 1),
        (float("nan"), float("nan")),
    ]
    for a, b in alike:
        assert same_values(a, b), (a, b)
    for a, b in unlike:
        assert not same_values(a, b), (a, b)
        assert not same_values(b, a), (b, a)
