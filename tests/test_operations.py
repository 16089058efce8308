"""GraphiQL, metrics, health, result files, cancel and retry."""

from __future__ import annotations

import datetime as dt
import re

import httpx

from app.config import Settings
from app.embedded import free_port
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import gql, gql_data, subscribe
from tests.test_job_flow import WATCH, mutation

ROLL = {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"}


async def get(app: RunningApp, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=app.url) as client:
        return await client.get(path, headers=headers)


async def test_graphiql_page_is_served(app_server: RunningApp) -> None:
    response = await get(app_server, "/graphql", accept="text/html")
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_graphiql_needs_no_internet(app_server: RunningApp) -> None:
    page = (await get(app_server, "/graphql", accept="text/html")).text
    assert "unpkg.com" not in page and "https://" not in page.replace("https://github", "")
    assets = re.findall(r'(?:src|href)="(/static/graphiql/[^"]+)"', page)
    assert len(assets) == 8
    for asset in assets:
        response = await get(app_server, asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 300


async def test_healthz_reports_both_services(app_server: RunningApp) -> None:
    response = await get(app_server, "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_counties_lists_what_data_exists(app_server: RunningApp, county: str) -> None:
    data = await gql_data(
        app_server.url,
        "{ counties { countyId parcelCount saleCount firstSaleDate lastSaleDate taxYears } }",
    )
    (row,) = data["counties"]
    assert row["countyId"] == county
    assert row["parcelCount"] == 400
    assert row["saleCount"] > 0 and row["firstSaleDate"] < row["lastSaleDate"]
    assert row["taxYears"] == sorted(row["taxYears"]) and row["taxYears"]


async def test_metrics_count_submissions_in_the_api_and_outcomes_in_the_worker(
    app_server: RunningApp, settings: Settings, county: str
) -> None:
    job = (await gql_data(app_server.url, mutation("runReport"), {"input": ROLL}))["runReport"]
    text = (await get(app_server, "/metrics")).text
    assert (
        'report_jobs_submitted_total{county_id="TESTCO",report_type="assessment_roll",'
        'status_on_submit="PENDING"} 1.0' in text
    )
    for name in ("market_analysis", "gis_export", "valuation"):
        assert f"# TYPE {name}_jobs_submitted_total counter" in text
    port = free_port()
    worker = WorkerControl(settings.model_copy(update={"worker_metrics_port": port}))
    await worker.start()
    try:
        async with subscribe(app_server.ws_url, WATCH, {"id": job["id"]}) as sub:
            events = await sub.collect(timeout=120)
        assert events[-1]["data"]["jobUpdated"]["status"] == "COMPLETED"
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        await worker.stop()
    labels = 'county_id="TESTCO",report_type="assessment_roll"'
    assert f"report_jobs_completed_total{{{labels}}} 1.0" in scraped
    assert f"report_processing_duration_seconds_count{{{labels}}} 1.0" in scraped


async def test_result_files_are_only_the_jobs_own(app_server: RunningApp) -> None:
    missing = await get(app_server, "/results/00000000-0000-0000-0000-000000000000/x.csv")
    assert missing.status_code == 404
    traversal = await get(app_server, "/results/not-a-uuid/..%2F..%2Fetc%2Fpasswd")
    assert traversal.status_code == 404


async def test_cancel_a_pending_job_then_retry_it(
    app_server: RunningApp, worker: WorkerControl, county: str
) -> None:
    job = (await gql_data(app_server.url, mutation("runReport"), {"input": ROLL}))["runReport"]
    cancel = "mutation($id: ID!) { cancelJob(id: $id) { id status attempts lastRetryAt } }"
    cancelled = (await gql_data(app_server.url, cancel, {"id": job["id"]}))["cancelJob"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["lastRetryAt"] is None
    again = await gql(app_server.url, cancel, {"id": job["id"]})
    assert again["errors"][0]["extensions"]["code"] == "INVALID_JOB_STATE"
    await worker.start()
    retry = "mutation($id: ID!) { retryJob(id: $id) { id status createdAt lastRetryAt } }"
    retried = (await gql_data(app_server.url, retry, {"id": job["id"]}))["retryJob"]
    assert retried["status"] == "PENDING"
    retried_at = dt.datetime.fromisoformat(retried["lastRetryAt"])
    assert dt.datetime.fromisoformat(retried["createdAt"]) < retried_at
    async with subscribe(app_server.ws_url, WATCH, {"id": job["id"]}) as sub:
        events = await sub.collect(timeout=120)
    final = events[-1]["data"]["jobUpdated"]
    assert final["status"] == "COMPLETED"
    assert final["attempts"] == 1
    done = await gql_data(
        app_server.url, "query($id: ID!) { job(id: $id) { lastRetryAt } }", {"id": job["id"]}
    )
    assert dt.datetime.fromisoformat(done["job"]["lastRetryAt"]) == retried_at


async def test_cancel_unknown_job_is_not_found(app_server: RunningApp) -> None:
    body = await gql(
        app_server.url,
        'mutation { cancelJob(id: "00000000-0000-0000-0000-000000000000") { id } }',
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_unknown_job_is_null(app_server: RunningApp) -> None:
    data = await gql_data(
        app_server.url, '{ job(id: "00000000-0000-0000-0000-000000000000") { id } }'
    )
    assert data == {"job": None}


async def test_jobs_connection_pages_newest_first(app_server: RunningApp, county: str) -> None:
    ids = [
        (await gql_data(app_server.url, mutation("runReport"), {"input": ROLL}))["runReport"]["id"]
        for _ in range(3)
    ]
    page_query = """query($after: String) { jobs(first: 2, after: $after, kind: REPORT) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status } } } }"""
    first = (await gql_data(app_server.url, page_query))["jobs"]
    assert first["totalCount"] == 3 and first["pageInfo"]["hasNextPage"]
    second = (
        await gql_data(app_server.url, page_query, {"after": first["pageInfo"]["endCursor"]})
    )["jobs"]
    assert not second["pageInfo"]["hasNextPage"]
    seen = [e["node"]["id"] for e in first["edges"] + second["edges"]]
    assert seen == list(reversed(ids))
