"""Malformed requests are JSON GraphQL errors with a code, never a 500, never a traceback.

HTTP-level refusals (not JSON, not UTF-8, nested past the parser, a subscription over
POST) are 400 with an `errors` body; inputs JSON allows but nothing may store (NaN,
Infinity, lone surrogates, dates that overflow in UTC) are BAD_USER_INPUT naming the
field; a database that cannot look a token up is SERVICE_UNAVAILABLE.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.embedded import free_port
from tests.builders import issue_token
from tests.conftest import RunningApp, serve_app
from tests.graphql_client import bearer
from tests.test_job_flow import mutation

JOB_TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")
DEEP = "[" * 100_000 + "]" * 100_000
COUNTIES = "{ counties { countyId } }"
RUN = mutation("runReport")


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not noisy, [r.getMessage() for r in noisy]


@pytest.fixture
async def admin(engine: AsyncEngine) -> dict[str, str]:
    return bearer(await issue_token(engine, "root", ["admin"]))


HTTP_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "deeply nested JSON body",
        {"content": '{"query": "' + COUNTIES + '", "variables": ' + DEEP + "}"},
        "nests too deeply",
    ),
    (
        "deeply nested variables over GET",
        {"method": "GET", "params": {"query": COUNTIES, "variables": "[" * 5000 + "]" * 5000}},
        "nests too deeply",
    ),
    (
        "a body that is not UTF-8",
        {"content": b'{"query": "{ counties { countyId } }", "x": "\xff\xfe\xfa"}'},
        "not UTF-8",
    ),
    ("a number of 5000 digits", {"content": '{"query": "x", "v": ' + "9" * 5000 + "}"}, "JSON"),
    ("not JSON at all", {"content": "query { counties }"}, "JSON"),
    ("a body that is JSON null", {"content": "null"}, "JSON object"),
    ("a body that is a number", {"content": "5"}, "JSON object"),
    (
        "a subscription sent over POST",
        {"json": {"query": "subscription { jobsUpdated { id } }"}},
        "ubscriptions",
    ),
    ("no query", {"json": {"variables": {}}}, "No GraphQL query"),
]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("PUT", "/graphql", 405), ("GET", "/nope", 404), ("DELETE", "/healthz", 405)],
)
async def test_refused_methods_and_routes_are_json_too(
    auth_server: RunningApp, method: str, path: str, status: int
) -> None:
    async with httpx.AsyncClient(base_url=auth_server.url) as client:
        response = await client.request(method, path)
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] in ("METHOD_NOT_ALLOWED", "NOT_FOUND")


@pytest.mark.parametrize(("case", "sent", "says"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
async def test_malformed_requests_are_400_with_a_json_error(
    auth_server: RunningApp,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    case: str,
    sent: dict[str, Any],
    says: str,
) -> None:
    caplog.set_level(logging.INFO)
    options = dict(sent)
    method = options.pop("method", "POST")
    headers = {**admin, "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as client:
        response = await client.request(method, "/graphql", headers=headers, **options)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert says in error["message"], error
    no_tracebacks(caplog)


ROLL = {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"}
STUDY = {"reportType": "SALES_RATIO_STUDY", "countyId": "TESTCO"}


def forged_cursor(at: str) -> str:
    """A `jobs(after:)` cursor in the listing's own format, for a date of our choosing."""
    fields = ["CREATED", "DESC", at, "00000000-0000-0000-0000-000000000000"]
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


INPUT_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "NaN in parameters",
        RUN,
        {"input": {**ROLL, "parameters": {"assessmentRoll": {"taxYear": float("nan")}}}},
        "input.parameters.assessmentRoll.taxYear",
    ),
    (
        "Infinity in a list",
        RUN,
        {"input": {**STUDY, "parameters": {"salesRatioStudy": {"x": [1, float("-inf")]}}}},
        "input.parameters.salesRatioStudy.x[1]",
    ),
    (
        "a lone surrogate in a string",
        RUN,
        {"input": {**STUDY, "countyId": "TEST\ud800CO"}},
        "input.countyId",
    ),
    (
        "a lone surrogate in a key",
        RUN,
        {"input": {**STUDY, "parameters": {"\udfff": 1}}},
        "input.parameters",
    ),
    (
        "scheduledFor that overflows in UTC",
        RUN,
        {"input": {**ROLL, "scheduledFor": "0001-01-01T00:00:00+14:00"}},
        "scheduledFor",
    ),
    (
        "a jobs cursor whose date overflows",
        "query($after: String) { jobs(after: $after) { totalCount } }",
        {"after": forged_cursor("9999-12-31T23:59:59-14:00")},
        "after",
    ),
    (
        "an enum value graphql-core's suggestions trip over",
        mutation("runGisExport"),
        {"input": {"exportFormat": "CSV", "countyId": "TESTCO", "layers": ["LİX"]}},
        "layers[0]",
    ),
    (
        "a createdAfter that overflows",
        "query($t: DateTime) { jobs(createdAfter: $t) { totalCount } }",
        {"t": "0001-01-01T00:00:00+14:00"},
        "createdAfter",
    ),
]


@pytest.mark.parametrize(
    ("case", "query", "variables", "field"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES]
)
async def test_inputs_nothing_can_store_are_bad_user_input_naming_the_field(
    auth_server: RunningApp,
    admin: dict[str, str],
    engine: AsyncEngine,
    county: str,
    caplog: pytest.LogCaptureFixture,
    case: str,
    query: str,
    variables: dict[str, Any],
    field: str,
) -> None:
    caplog.set_level(logging.INFO)
    # json.dumps writes NaN/Infinity and \\ud800 escapes, as a careless client would.
    body = json.dumps({"query": query, "variables": variables})
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as client:
        response = await client.post(
            "/graphql", content=body, headers={**admin, "content-type": "application/json"}
        )
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert field in error["message"], error
    async with engine.connect() as conn:
        for table in JOB_TABLES:
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0
    no_tracebacks(caplog)


async def test_a_database_down_during_token_lookup_is_service_unavailable(
    auth_settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The API's database is a port nothing listens on: every lookup is refused."""
    token = await issue_token(engine, "root", ["admin"])
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    settings = auth_settings.model_copy(update={"database_url": down})
    async with serve_app(settings) as app, httpx.AsyncClient(base_url=app.url) as client:
        query = await client.post("/graphql", json={"query": COUNTIES}, headers=bearer(token))
        file = await client.get(
            "/results/00000000-0000-0000-0000-000000000000/x.csv", headers=bearer(token)
        )
    for response in (query, file):
        assert response.status_code == 503, response.text
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    no_tracebacks(caplog)


async def test_get_with_variables_null_means_no_variables(auth_server: RunningApp) -> None:
    async with httpx.AsyncClient(base_url=auth_server.url) as client:
        response = await client.get(
            "/graphql", params={"query": "{ __typename }", "variables": "null"}
        )
    assert response.json() == {"data": {"__typename": "Query"}}
