"""GraphiQL in real Chromium: the token from the URL fragment, a strict CSP, the examples."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import parse, validate
from playwright.async_api import Browser, Page, Request, WebSocket, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from app.graphiql import DEFAULT_DOCUMENT
from app.main import STATIC_DIR
from schema.schema import build_schema
from tests.builders import issue_token
from tests.chromium_pages import FLAGS, WIDE, chromium_path
from tests.conftest import RunningApp

EDITOR = ".graphiql-query-editor .CodeMirror"


async def test_graphiql_page_headers_forbid_framing_sniffing_and_foreign_scripts(
    auth_server: RunningApp,
) -> None:
    async with httpx.AsyncClient(base_url=auth_server.url) as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
    headers = page.headers
    policy = dict(
        part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "tf_" not in page.text


async def until(page: Page, expression: str) -> None:
    """Poll an expression over the DevTools protocol: Playwright's wait_for_function would
    evaluate it with `eval`, which the page's CSP (rightly) refuses."""
    for _ in range(400):
        if await page.evaluate(expression):
            return
        await page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {expression}")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=FLAGS)
        yield chromium
        await chromium.close()


async def test_graphiql_sends_the_fragment_token_and_opens_with_the_examples(
    auth_server: RunningApp, engine: AsyncEngine, browser: Browser
) -> None:
    token = await issue_token(engine, "root", ["admin"])
    context = await browser.new_context(viewport=WIDE)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    requests: list[Request] = []
    console: list[str] = []
    frames: list[str] = []
    page.on("request", lambda request: requests.append(request))
    page.on("console", lambda message: console.append(message.text))

    def on_websocket(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: frames.append(str(payload)))

    page.on("websocket", on_websocket)
    try:
        # GraphiQL asks for the schema on load, over HTTP, with the page's headers.
        async with page.expect_response(lambda r: r.url.endswith("/graphql")):
            await page.goto(f"{auth_server.url}/graphql#token={token}")
        await until(page, f"document.querySelector('{EDITOR}')?.CodeMirror.getValue().length > 0")
        editor = await page.evaluate(f"document.querySelector('{EDITOR}').CodeMirror.getValue()")
        href = page.url
        # Run a subscription from the editor: GraphiQL opens a websocket for it.
        await page.evaluate(
            f"document.querySelector('{EDITOR}')"
            ".CodeMirror.setValue('subscription { jobsUpdated { id } }')"
        )
        await until(page, "location.search.includes('jobsUpdated')")  # GraphiQL has it
        await page.click(".graphiql-execute-button")
        for _ in range(400):
            if frames:
                break
            await page.wait_for_timeout(50)
    finally:
        await context.close()
    posts = [r for r in requests if r.url.endswith("/graphql") and r.method == "POST"]
    assert posts, [r.url for r in requests]
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in posts)
    assert all(token not in r.url for r in requests)
    assert "#token" not in href  # taken out of the address bar and the history
    assert "query Counties" in editor and "subscription WatchJob" in editor
    assert not [line for line in console if "Content Security Policy" in line], console
    assert json.loads(frames[0]) == {
        "type": "connection_init",
        "payload": {"Authorization": f"Bearer {token}"},
    }


def test_the_example_operations_are_valid_against_the_schema() -> None:
    """GraphiQL opens with them: a schema change that breaks one must show here."""
    text = (STATIC_DIR / "graphiql" / DEFAULT_DOCUMENT).read_text()
    assert validate(build_schema()._schema, parse(text)) == []
