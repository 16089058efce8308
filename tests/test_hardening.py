"""Query limits, body size, input sizes, GraphiQL with a token, and the token CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.builders import issue_token
from tests.conftest import RunningApp, serve_app
from tests.graphql_client import bearer, gql
from tests.test_job_flow import mutation

ROOT = Path(__file__).resolve().parents[1]
JOB_TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")


@pytest.fixture
async def admin(engine: AsyncEngine) -> dict[str, str]:
    return bearer(await issue_token(engine, "root", ["admin"]))


def code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


async def test_query_depth_aliases_and_tokens_are_limited(
    auth_server: RunningApp, admin: dict[str, str]
) -> None:
    deep = "{ jobs { edges { node { ... on ReportJob { result { ratioStudy { overall "
    deep += "{ medianRatioCi { lower } } } } } } } } }"
    body = await gql(auth_server.url, deep, None, **admin)
    assert "errors" not in body, body
    too_deep = "{ jobs " + "{ edges " * 20 + "{ id }" + " }" * 21
    body = await gql(auth_server.url, too_deep, None, **admin)
    assert body.get("data") is None
    assert any("depth" in e["message"] for e in body["errors"]), body
    aliases = "{ " + " ".join(f"c{i}: __typename" for i in range(500)) + " }"
    body = await gql(auth_server.url, aliases, None, **admin)
    assert body["data"] is None and "aliases" in body["errors"][0]["message"]
    tokens = "{ counties { " + " ".join(["countyId"] * 3000) + " } }"
    body = await gql(auth_server.url, tokens, None, **admin)
    assert body.get("data") is None and "tokens" in body["errors"][0]["message"]


async def test_oversized_body_is_refused_before_parsing(auth_server: RunningApp) -> None:
    huge = b'{"query": "{ counties { countyId } }", "pad": "' + b"x" * 3_000_000 + b'"}'
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as client:
        declared = await client.post(
            "/graphql", content=huge, headers={"content-type": "application/json"}
        )

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(huge), 65536):
                yield huge[start : start + 65536]

        streamed = await client.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
    assert declared.status_code == 413
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"reportType": "ASSESSMENT_ROLL", "countyId": "C" * 65}, "countyId"),
        ({"reportType": "R" * 200, "countyId": "TESTCO"}, "reportType"),
        (
            {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO", "idempotencyKey": "k" * 256},
            "idempotencyKey",
        ),
        (
            {
                "reportType": "SALES_RATIO_STUDY",
                "countyId": "TESTCO",
                "parameters": {"salesRatioStudy": {"sales": {"zipCodes": ["98001"] * 101}}},
            },
            "parameters.salesRatioStudy.sales.zipCodes",
        ),
        ({"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO", "priority": 10}, "priority"),
    ],
)
async def test_oversized_inputs_are_bad_user_input_and_store_nothing(
    auth_server: RunningApp,
    admin: dict[str, str],
    engine: AsyncEngine,
    county: str,
    input: dict[str, Any],
    field: str,
) -> None:
    body = await gql(auth_server.url, mutation("runReport"), {"input": input}, **admin)
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == field
    async with engine.connect() as conn:
        for table in JOB_TABLES:
            assert await conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0


async def test_gis_export_layers_and_vertices_are_bounded(
    auth_server: RunningApp, admin: dict[str, str], county: str
) -> None:
    ring = [[-100 + i * 1e-5, 40.0] for i in range(10_001)] + [[-100, 40.0]]
    for extra, field in [
        ({"layers": ["PARCELS"] * 17}, "layers"),
        (
            {
                "layers": ["PARCELS"],
                "areaOfInterest": {"geometry": {"type": "Polygon", "coordinates": [ring]}},
            },
            "areaOfInterest.geometry",
        ),
    ]:
        variables = {"input": {"exportFormat": "GEOJSON", "countyId": county, **extra}}
        body = await gql(auth_server.url, mutation("runGisExport"), variables, **admin)
        assert code(body) == "BAD_USER_INPUT", body
        assert body["errors"][0]["extensions"]["field"].startswith(field)


async def test_graphiql_and_introspection_can_be_turned_off(
    auth_settings: Settings, engine: AsyncEngine
) -> None:
    settings = auth_settings.model_copy(update={"graphiql": False, "introspection": False})
    headers = bearer(await issue_token(engine, "root", ["admin"]))
    async with serve_app(settings) as app:
        async with httpx.AsyncClient(base_url=app.url) as client:
            page = await client.get("/graphql", headers={"accept": "text/html"})
        body = await gql(app.url, "{ __schema { types { name } } }", None, **headers)
    assert page.status_code == 404
    assert "introspection" in body["errors"][0]["message"].lower()


def terrafusion(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url or ""}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "token", *args, "--data-dir", str(settings.data_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_token_cli_creates_lists_and_revokes(
    auth_server: RunningApp, auth_settings: Settings
) -> None:
    created = terrafusion(auth_settings, "create", "--name", "ivy", "--permissions", "report:run")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("tf_")
    body = await gql(auth_server.url, "{ counties { countyId } }", None, **bearer(token))
    assert "errors" not in body, body
    teamed = terrafusion(
        auth_settings, "create", "--name", "ira", "--permissions", "report:read", "--team", "north"
    )
    assert teamed.returncode == 0 and "team north" in teamed.stdout, teamed.stderr
    listed = terrafusion(auth_settings, "list")
    assert "ivy\treport:run\tno team" in listed.stdout and token not in listed.stdout
    assert "ira\treport:read\tteam north" in listed.stdout
    bad_team = terrafusion(
        auth_settings, "create", "--name", "y", "--permissions", "report:run", "--team", "a b"
    )
    assert bad_team.returncode == 1 and "team must be" in bad_team.stderr
    unknown = terrafusion(auth_settings, "create", "--name", "x", "--permissions", "report:fly")
    assert unknown.returncode == 1 and "report:fly" in unknown.stderr
    assert terrafusion(auth_settings, "revoke", "ivy").returncode == 0
    # Refused once the API's token cache (TOKEN_CACHE_SECONDS) lets the answer go.
    deadline = time.monotonic() + auth_settings.token_cache_seconds + 1
    while (
        body := await gql(auth_server.url, "{ counties { countyId } }", None, **bearer(token))
    ).get("data"):
        assert time.monotonic() < deadline, "a revoked token still works"
        await asyncio.sleep(0.05)
    assert code(body) == "UNAUTHENTICATED"
    assert "revoked" in terrafusion(auth_settings, "list").stdout
