"""The dashboard at `/`, in real Chromium, against the real app, worker, PostgreSQL and Redis.

What an assessor does: signs in, starts a study from the generated form, watches it run,
reads the statistics the API computed, opens the report, draws an export's map; a bad
input is shown next to its field; a server restart leaves no row stuck.
Screenshots land in test-artifacts/dashboard/ (not committed).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.demo_data import load_county
from app.embedded import free_port
from jobs.kinds.valuation.table import ValuationJobRow
from tests.builders import MARKET_GROUPS, issue_token, market_area_county
from tests.chromium_pages import FLAGS, WIDE, ConsoleLog, at_both_widths, chromium_path
from tests.conftest import RunningApp, WorkerControl, serve_app
from tests.graphql_client import bearer, gql

JOB_URL = re.compile(r"#/jobs/([0-9a-f-]{36})$")

PROGRESS_RECORDER = """() => {
  window.__progress = [];
  new MutationObserver(() => {
    const bar = document.querySelector(".job-view [role=progressbar]");
    if (!bar) return;
    const value = Number(bar.getAttribute("aria-valuenow"));
    if (window.__progress.at(-1) !== value) window.__progress.push(value);
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=FLAGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=WIDE)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    yield page
    await context.close()


@pytest.fixture
async def console(page: Page) -> ConsoleLog:
    """The page's console errors, which every test expects to stay empty."""
    log = ConsoleLog()
    log.watch(page)
    return log


@pytest.fixture
async def token(engine: AsyncEngine) -> str:
    return await issue_token(engine, "assessor", ["admin"])


async def api(app: RunningApp, token: str, query: str, **variables: Any) -> Any:
    body = await gql(app.url, query, variables, **bearer(token))
    assert "errors" not in body, body
    return body["data"]


async def choose(page: Page, path: str, value: str) -> None:
    """Pick `value` of the enum field at `path`: a select, or a checkbox of a list."""
    holder = page.locator(f'[data-path="{path}"]')
    if await holder.locator("input[type=checkbox]").count():
        await holder.locator(f'input[value="{value}"]').check()
    else:
        await holder.locator("select").first.select_option(value)


async def signed_in(page: Page, app: RunningApp, token: str) -> None:
    """Open the quick start's URL: signed in, and the token gone from the address bar."""
    await page.goto(f"{app.url}/#token={token}")
    await page.get_by_role("heading", name="Jobs").wait_for()
    assert token not in page.url
    assert await page.evaluate("sessionStorage.getItem('terrafusion.token')") == token
    assert await page.evaluate("localStorage.length") == 0


async def test_dashboard_is_served_with_its_scripts(app_server: RunningApp) -> None:
    async with httpx.AsyncClient(base_url=app_server.url) as client:
        page = await client.get("/")
        client_js = await client.get("/static/dashboard/vendor/graphql-ws/client.js")
        license_text = await client.get("/static/dashboard/vendor/graphql-ws/LICENSE.md")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/dashboard/main.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client_js.status_code == 200
    assert "javascript" in client_js.headers["content-type"]
    assert "function createClient" in client_js.text
    assert "MIT License" in license_text.text


async def test_ratio_study_from_the_form_live_to_its_statistics_and_report(
    page: Page,
    console: ConsoleLog,
    auth_server: RunningApp,
    county: str,
    token: str,
    worker: WorkerControl,
) -> None:

    await page.goto(f"{auth_server.url}/")
    await page.get_by_label("API token").fill("tf_not-a-real-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("that token was not accepted").wait_for()
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Jobs").wait_for()
    assert await page.evaluate("sessionStorage.getItem('terrafusion.token')") == token

    await page.get_by_role("link", name="Start a job").first.click()
    await page.get_by_role("link", name="Report").click()
    await choose(page, "reportType", "SALES_RATIO_STUDY")
    assert await page.locator('[data-path="countyId"] input').input_value() == county
    await page.evaluate(PROGRESS_RECORDER)
    await page.get_by_role("button", name="Start Report").click()
    await page.wait_for_url(JOB_URL)
    job_id = JOB_URL.search(page.url).group(1)  # type: ignore[union-attr]
    await page.locator(".job-view .badge", has_text="PENDING").wait_for()

    await worker.start()
    await page.locator(".job-view .badge", has_text="COMPLETED").wait_for(timeout=60_000)
    await page.locator(".ratio-study svg.chart").wait_for()

    seen = await page.evaluate("window.__progress")
    assert seen[0] < 100 and seen[-1] == 100, seen
    assert any(0 < value < 100 for value in seen), f"the bar never moved between: {seen}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"

    data = await api(
        auth_server,
        token,
        "query($id: ID!) { reportJob(id: $id) { result { ratioStudy { overall {"
        " medianRatio cod prd prb standards { statistic passes } } } } } }",
        id=job_id,
    )
    overall = data["reportJob"]["result"]["ratioStudy"]["overall"]
    verdicts = {c["statistic"]: c["passes"] for c in overall["standards"]}
    for stat, check, digits in (
        ("cod", "cod", 2),
        ("prd", "prd", 3),
        ("prb", "prb", 3),
        ("medianRatio", "median_ratio", 3),
    ):
        row = page.locator(f'.ratio-study tr[data-stat="{stat}"]')
        cell = row.locator("td.num")
        assert float(await cell.get_attribute("data-value") or "nan") == overall[stat]
        assert await cell.inner_text() == f"{overall[stat]:.{digits}f}"
        shown = await row.locator(".iaao [data-passes]").get_attribute("data-passes")
        assert shown == str(verdicts[check]).lower(), (stat, shown, verdicts)
    dots = await page.locator(".ratio-study svg.chart path.dots").first.get_attribute("d")
    assert dots and dots.count("M") > 0

    async with page.context.expect_page() as opened:
        await page.get_by_role("link", name=re.compile(r"\.html$")).click()
    report = await opened.value
    heading = await report.locator("h1").inner_text()
    assert heading.startswith("Sales ratio study") and county in heading, heading
    await report.close()

    await at_both_widths(page, "ratio-study")
    await page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f'tr[data-job="{job_id}"]')
    await row.wait_for()
    assert await row.get_attribute("data-status") == "COMPLETED"
    await at_both_widths(page, "jobs-list")
    assert console.errors == []


async def test_gis_export_is_drawn_as_a_map_with_a_scale_bar(
    page: Page,
    console: ConsoleLog,
    auth_server: RunningApp,
    county: str,
    token: str,
    worker: WorkerControl,
) -> None:
    await worker.start()
    await signed_in(page, auth_server, token)
    await page.goto(f"{auth_server.url}/#/new/runGisExport")
    await choose(page, "exportFormat", "GEOJSON")
    await choose(page, "layers", "PARCELS")
    await page.get_by_role("button", name="Start Gis Export").click()
    await page.wait_for_url(JOB_URL)
    job_id = JOB_URL.search(page.url).group(1)  # type: ignore[union-attr]
    await page.locator(".map-box svg.map path.parcels").wait_for(timeout=60_000)

    data = await api(
        auth_server,
        token,
        "query($id: ID!) { gisExportJob(id: $id) { result { recordCount } } }",
        id=job_id,
    )
    drawn = await page.locator(".map-box svg.map path.parcels").get_attribute("d")
    assert drawn is not None
    assert drawn.count("Z") == data["gisExportJob"]["result"]["recordCount"] > 0
    scale = await page.locator(".map-box .scale-bar text").text_content() or ""
    assert re.fullmatch(r"\d+ (m|km)", scale), scale
    await at_both_widths(page, "gis-export-map")
    assert console.errors == []


async def test_unknown_county_is_shown_next_to_its_field_and_nothing_is_created(
    page: Page, console: ConsoleLog, auth_server: RunningApp, county: str, token: str
) -> None:
    await signed_in(page, auth_server, token)
    await page.goto(f"{auth_server.url}/#/new/runReport")
    await choose(page, "reportType", "SALES_RATIO_STUDY")
    county_input = page.locator('[data-path="countyId"] input')
    await county_input.fill("NOWHERE")
    await page.get_by_role("button", name="Start Report").click()

    error = page.locator('[data-path="countyId"] > .field-error')
    await error.wait_for()
    assert "unknown county 'NOWHERE'" in await error.inner_text()
    assert await county_input.get_attribute("aria-invalid") == "true"
    assert (await county_input.get_attribute("aria-describedby") or "").endswith(
        await error.get_attribute("id") or "-"
    )
    assert "#/new/runReport" in page.url
    listed = await api(auth_server, token, "{ jobs { totalCount } }")
    assert listed["jobs"]["totalCount"] == 0
    assert console.errors == []


async def test_list_pages_filters_and_cancels_by_keyboard_and_counties_show_their_data(
    page: Page, console: ConsoleLog, auth_server: RunningApp, county: str, token: str
) -> None:
    start = "mutation($c: String!) { runValuation(input: {countyId: $c}) { id } }"
    created = await asyncio.gather(*(api(auth_server, token, start, c=county) for _ in range(27)))
    ids = [c["runValuation"]["id"] for c in created]
    await signed_in(page, auth_server, token)
    await page.get_by_text("25 of 27 jobs shown").wait_for()
    assert await page.locator("tr[data-job]").count() == 25
    await page.get_by_role("button", name="Load more").click()
    await page.get_by_text("27 of 27 jobs shown").wait_for()
    assert await page.locator("tr[data-job]").count() == 27

    await page.get_by_label("Search").fill(ids[0][:8])
    assert await page.locator("tr[data-job]").count() == 1
    cancel = page.get_by_role("button", name=f"Cancel job {ids[0]}")
    await cancel.focus()
    await page.keyboard.press("Enter")
    await page.locator(f'tr[data-job="{ids[0]}"][data-status="CANCELLED"]').wait_for()
    data = await api(auth_server, token, "query($id: ID!) { job(id: $id) { status } }", id=ids[0])
    assert data["job"]["status"] == "CANCELLED"
    await page.get_by_label("Search").fill("")

    await page.get_by_label("Status").select_option("CANCELLED")
    await page.get_by_text("1 of 1 jobs shown").wait_for()
    assert await page.locator("tr[data-job]").get_attribute("data-job") == ids[0]

    await page.get_by_role("link", name="Counties").click()
    row = page.locator(f'tr[data-county="{county}"]')
    counties = await api(auth_server, token, "{ counties { countyId parcelCount saleCount } }")
    known = next(c for c in counties["counties"] if c["countyId"] == county)
    cells = await row.locator("td.num").all_inner_texts()
    assert cells == [f"{known['parcelCount']:,}", f"{known['saleCount']:,}"]
    assert console.errors == []


async def _status_in_database(engine: AsyncEngine, job_id: str) -> str | None:
    """The job's status in PostgreSQL itself, while no API server is up to ask."""
    async with engine.connect() as conn:
        status = await conn.scalar(
            select(ValuationJobRow.status).where(ValuationJobRow.id == uuid.UUID(job_id))
        )
    return None if status is None else str(status)


async def test_a_job_that_finishes_while_the_server_is_down_shows_completed_on_reconnect(
    page: Page,
    console: ConsoleLog,
    auth_settings: Settings,
    engine: AsyncEngine,
    county: str,
    token: str,
    worker: WorkerControl,
) -> None:
    port = free_port()
    sent: list[dict[str, Any]] = []
    relists: list[str] = []

    async with serve_app(auth_settings, port) as app:
        await signed_in(page, app, token)
        await page.locator("#connection", has_text="live").wait_for()
        created = await api(
            app,
            token,
            "mutation($c: String!) { runValuation(input: {countyId: $c}) { id } }",
            c=county,
        )
        job_id = created["runValuation"]["id"]
        row = page.locator(f'tr[data-job="{job_id}"]')
        await row.wait_for()
        assert await row.get_attribute("data-status") == "PENDING"
        seen = await api(app, token, "query($id: ID!) { job(id: $id) { changeCursor } }", id=job_id)
        await page.evaluate("window.__sameDocument = true")

    await page.locator("#connection", has_text="reconnecting").wait_for()
    await worker.start()
    for _ in range(600):
        if await _status_in_database(engine, job_id) == "COMPLETED":
            break
        await asyncio.sleep(0.1)
    assert await _status_in_database(engine, job_id) == "COMPLETED"
    assert await row.get_attribute("data-status") == "PENDING"

    page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda frame: sent.append(json.loads(frame))),
    )

    def count_relists(request: Any) -> None:
        if request.method == "POST" and "query Jobs" in (request.post_data or ""):
            relists.append(request.url)

    page.on("request", count_relists)
    async with serve_app(auth_settings, port):
        await page.locator(f'tr[data-job="{job_id}"][data-status="COMPLETED"]').wait_for()
        assert await page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        await page.locator("#connection", has_text="live").wait_for()

    resubscribed = [
        m["payload"]["variables"]
        for m in sent
        if m.get("type") == "subscribe" and "jobsUpdated" in m["payload"]["query"]
    ]
    assert resubscribed, sent
    # The feed resumed from the last change it saw, and the server replayed the rest: no
    # re-reading of the list was needed.
    assert resubscribed[0]["after"] == seen["job"]["changeCursor"], resubscribed
    assert relists == []
    lost_connection = re.compile(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED")
    assert [e for e in console.errors if not lost_connection.search(e)] == []


async def test_an_out_of_range_parameter_is_shown_next_to_it_and_nothing_is_created(
    page: Page, console: ConsoleLog, auth_server: RunningApp, county: str, token: str
) -> None:
    await signed_in(page, auth_server, token)
    await page.goto(f"{auth_server.url}/#/new/runReport")
    await page.locator('[data-path="reportType"] select').select_option("SALES_RATIO_STUDY")
    path = "parameters.salesRatioStudy.iqrFactor"
    factor = page.locator(f'[data-path="{path}"] input')
    assert await factor.input_value() == "1.5", "the schema's default is filled in"
    await factor.fill("0")
    await page.get_by_role("button", name="Start Report").click()

    error = page.locator(f'[data-path="{path}"] > .field-error')
    await error.wait_for()
    assert (await error.inner_text()).startswith(f"{path}:")
    assert await factor.get_attribute("aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.closest('[data-path]').dataset.path") == path
    listed = await api(auth_server, token, "{ jobs { totalCount } }")
    assert listed["jobs"]["totalCount"] == 0
    assert console.errors == []


async def test_market_areas_are_tabled_and_drawn(
    page: Page,
    console: ConsoleLog,
    auth_server: RunningApp,
    engine: AsyncEngine,
    token: str,
    worker: WorkerControl,
) -> None:
    await load_county(engine, market_area_county("MKTAREA", 3000))
    await worker.start()
    await signed_in(page, auth_server, token)
    await page.goto(f"{auth_server.url}/#/new/runMarketAnalysis")
    await choose(page, "analysisType", "COMPARABLE_MARKET_AREA")
    assert await page.locator('[data-path="countyId"] input').input_value() == "MKTAREA"
    await page.get_by_role("button", name="Start Market Analysis").click()
    await page.wait_for_url(JOB_URL)
    await page.locator(".market-areas svg.map path.area").first.wait_for(timeout=60_000)

    rows = page.locator(".market-areas tr[data-area]")
    assert await rows.count() == 3
    # The cheapest area first: the "value" group of tests/builders.py.
    cheapest = await rows.first.locator("td").first.text_content() or ""
    assert sorted(cheapest.split(", ")) == sorted(MARKET_GROUPS["value"][2])
    # One coloured path per area, in the colour of its row's swatch.
    drawn = page.locator(".market-areas svg.map path.area")
    assert [await drawn.nth(i).get_attribute("data-feature") for i in range(3)] == [
        "MA-1",
        "MA-2",
        "MA-3",
    ]
    fills = {await drawn.nth(i).get_attribute("fill") for i in range(3)}
    assert len(fills) == 3
    warning = await page.locator(".market ul.warnings li").first.text_content() or ""
    assert warning.endswith("sales without a living area left out"), warning
    await at_both_widths(page, "market-areas")
    assert console.errors == []
