"""A page served from another origin uses the API in real Chromium, as a front-end would.

Only the browser enforces CORS, so only a browser proves it: with the page's origin in
ALLOWED_ORIGINS it lists counties, starts a ratio study, follows it over the websocket and
downloads the HTML report from its absolute signed URL; with the origin not allowed, the
browser blocks the same query.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from app.config import Settings
from app.embedded import free_port
from tests.builders import issue_token
from tests.chromium_pages import FLAGS, WIDE, ConsoleLog, chromium_path
from tests.conftest import WorkerControl, serve_app

FRONT_END = """
async ({ api, token, county }) => {
  const auth = { Authorization: `Bearer ${token}` };
  const post = async (query, variables) => {
    const response = await fetch(`${api}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...auth },
      body: JSON.stringify({ query, variables }),
    });
    return response.json();
  };
  const counties = await post("{ counties { countyId } }");
  const started = await post(
    `mutation ($c: String!) {
       runReport(input: {countyId: $c, reportType: SALES_RATIO_STUDY}) { id }
     }`,
    { c: county },
  );
  const id = started.data.runReport.id;
  const followed = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${api.replace("http", "ws")}/graphql`, "graphql-transport-ws");
    const statuses = [];
    let last = null;
    ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: auth }));
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        ws.send(JSON.stringify({
          id: "1",
          type: "subscribe",
          payload: {
            query: `subscription ($id: ID!) { jobUpdated(id: $id) {
                      status ... on ReportJob { result { files { name url contentType } } } } }`,
            variables: { id },
          },
        }));
      } else if (message.type === "next") {
        last = message.payload.data.jobUpdated;
        statuses.push(last.status);
      } else if (message.type === "complete") {
        ws.close(1000);
        resolve({ statuses, last });
      } else if (message.type === "error") {
        reject(new Error(JSON.stringify(message.payload)));
      }
    };
    ws.onclose = (event) => reject(new Error(`websocket closed ${event.code}`));
  });
  const report = followed.last.result.files.find((f) => f.contentType.startsWith("text/html"));
  const download = await fetch(report.url);
  return {
    counties: counties.data.counties.map((c) => c.countyId),
    statuses: followed.statuses,
    url: report.url,
    downloadStatus: download.status,
    downloadType: download.headers.get("content-type"),
    body: await download.text(),
  };
}
"""

BLOCKED = """
async ({ api, token }) => {
  try {
    const response = await fetch(`${api}/graphql`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "{ counties { countyId } }" }),
    });
    return { read: await response.text() };
  } catch (error) {
    return { blocked: String(error) };
  }
}
"""


@contextlib.asynccontextmanager
async def other_origin() -> AsyncIterator[str]:
    """A plain page on another port of 127.0.0.1: another origin to the browser."""

    async def page(_request: Request) -> HTMLResponse:
        return HTMLResponse(
            '<!doctype html><link rel="icon" href="data:,"><title>county front-end</title>'
        )

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/", page)]), port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=FLAGS)
        yield chromium
        await chromium.close()


async def _run_in_page(browser: Browser, origin: str, script: str, args: dict[str, Any]) -> Any:
    context = await browser.new_context(viewport=WIDE)
    try:
        page = await context.new_page()
        page.set_default_timeout(60_000)
        console = ConsoleLog()
        console.watch(page)
        await page.goto(f"{origin}/")
        return await page.evaluate(script, args), console.errors
    finally:
        await context.close()


async def test_an_allowed_origin_runs_a_study_follows_it_and_downloads_its_report(
    browser: Browser,
    auth_settings: Settings,
    engine: AsyncEngine,
    county: str,
    worker: WorkerControl,
) -> None:
    token = await issue_token(engine, "front-end", ["report:run"])
    async with other_origin() as origin:
        settings = auth_settings.model_copy(update={"allowed_origins": origin})
        async with serve_app(settings) as api:
            await worker.start()
            args = {"api": api.url, "token": token, "county": county}
            seen, errors = await _run_in_page(browser, origin, FRONT_END, args)
    assert seen["counties"] == [county]
    assert seen["statuses"][-1] == "COMPLETED", seen["statuses"]
    assert seen["url"].startswith(f"{api.url}/results/") and token not in seen["url"]
    assert seen["downloadStatus"] == 200
    assert seen["downloadType"].startswith("text/html")
    assert "<html" in seen["body"].lower() and county in seen["body"]
    assert errors == []


async def test_an_origin_not_allowed_is_blocked_by_the_browser(
    browser: Browser, auth_settings: Settings, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "front-end", ["report:run"])
    async with other_origin() as origin:
        settings = auth_settings.model_copy(update={"allowed_origins": "https://elsewhere.example"})
        async with serve_app(settings) as api:
            seen, errors = await _run_in_page(
                browser, origin, BLOCKED, {"api": api.url, "token": token}
            )
    assert "blocked" in seen, seen
    assert any("CORS" in e for e in errors), errors
