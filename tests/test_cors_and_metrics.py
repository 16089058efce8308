"""CORS over real HTTP for the ALLOWED_ORIGINS; /metrics behind METRICS_TOKEN; token cache."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import revoke_token
from app.config import Settings
from app.db import create_session_factory
from tests.builders import issue_token
from tests.conftest import serve_app
from tests.graphql_client import bearer

ALLOWED = "https://app.county.example"
PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type,accept",
}
ROUTES = ["/graphql", "/healthz", "/metrics", "/results/00000000-0000-0000-0000-000000000000/x"]


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.mark.parametrize("allowed_origins", [ALLOWED, "*"])
async def test_allowed_origins_get_preflight_204_and_cors_headers_on_every_route(
    auth_settings: Settings, engine: AsyncEngine, allowed_origins: str
) -> None:
    settings = auth_settings.model_copy(update={"allowed_origins": allowed_origins})
    token = await issue_token(engine, "ann", ["report:read"])
    async with serve_app(settings) as app, httpx.AsyncClient(base_url=app.url) as client:
        for route in ROUTES:
            preflight = await client.options(route, headers={"origin": ALLOWED, **PREFLIGHT})
            assert preflight.status_code == 204, (route, preflight.text)
            headers = cors_headers(preflight)
            assert headers["access-control-allow-origin"] in (ALLOWED, "*")
            assert set(headers["access-control-allow-methods"].split(", ")) >= {"GET", "POST"}
            allowed_headers = headers["access-control-allow-headers"].lower()
            assert {"authorization", "content-type", "accept"} <= set(allowed_headers.split(", "))
        query = await client.post(
            "/graphql",
            json={"query": "{ counties { countyId } }"},
            headers={"origin": ALLOWED, **bearer(token)},
        )
    assert query.json() == {"data": {"counties": []}}
    assert query.headers["access-control-allow-origin"] in (ALLOWED, "*")


async def test_other_origins_get_no_cors_headers(auth_settings: Settings) -> None:
    settings = auth_settings.model_copy(update={"allowed_origins": ALLOWED})
    evil = "https://evil.example"
    async with serve_app(settings) as app, httpx.AsyncClient(base_url=app.url) as client:
        for route in ROUTES:
            preflight = await client.options(route, headers={"origin": evil, **PREFLIGHT})
            assert preflight.status_code == 403 and not cors_headers(preflight), route
        query = await client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"origin": evil}
        )
    assert query.status_code == 200 and not cors_headers(query)


async def test_metrics_can_require_a_token(auth_settings: Settings) -> None:
    settings = auth_settings.model_copy(update={"metrics_token": "m-secret-1234"})
    async with serve_app(settings) as app, httpx.AsyncClient(base_url=app.url) as client:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers=bearer("m-secret-12345"))
        scraped = await client.get("/metrics", headers=bearer("m-secret-1234"))
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert scraped.status_code == 200 and "report_jobs_submitted_total" in scraped.text


@pytest.mark.parametrize(
    ("cache_seconds", "recheck_seconds"),
    [
        (1.0, 10.0),  # within TOKEN_CACHE_SECONDS
        (10.0, 1.0),  # never longer than WS_AUTH_RECHECK_SECONDS, whatever the cache says
    ],
)
async def test_a_revoked_token_stops_over_http_within_the_bound(
    auth_settings: Settings, engine: AsyncEngine, cache_seconds: float, recheck_seconds: float
) -> None:
    settings = auth_settings.model_copy(
        update={"token_cache_seconds": cache_seconds, "ws_auth_recheck_seconds": recheck_seconds}
    )
    bound = min(cache_seconds, recheck_seconds)
    token = await issue_token(engine, "cal", ["report:read"])
    query = {"query": "{ counties { countyId } }"}
    async with serve_app(settings) as app, httpx.AsyncClient(base_url=app.url) as client:
        assert (await client.post("/graphql", json=query, headers=bearer(token))).json() == {
            "data": {"counties": []}
        }
        await revoke_token(create_session_factory(engine), "cal")
        revoked_at = time.monotonic()
        while True:
            # Judged by when the request left: the answer may arrive late on a loaded machine.
            sent = time.monotonic()
            body = (await client.post("/graphql", json=query, headers=bearer(token))).json()
            if body.get("errors"):
                break
            assert sent - revoked_at < bound + 0.1, "still served past the bound"
            await asyncio.sleep(0.05)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
