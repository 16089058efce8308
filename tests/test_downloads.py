"""Result-file links: absolute, signed, short-lived, and never carrying an API token."""

from __future__ import annotations

import os
import stat
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.downloads import SECRET_FILE, DownloadSigner, signing_secret
from app.logs import redact
from jobs.access import Caller
from tests.builders import finished_report, issue_token
from tests.conftest import RunningApp, serve_app
from tests.graphql_client import bearer, gql

ANN = Caller.of("ann", ["report:run"])
FILES = {
    "roll.csv": ("text/csv", "parcel_id,value\nP1,100\n"),
    "report.html": ("text/html; charset=utf-8", "<!doctype html><h1>Ratio study</h1>"),
}
QUERY = """query($id: ID!) { reportJob(id: $id) { result { files { name url contentType } } } }"""


async def file_urls(app: RunningApp, job_id: str, token: str, **headers: str) -> dict[str, str]:
    body = await gql(app.url, QUERY, {"id": job_id}, **bearer(token), **headers)
    assert "errors" not in body, body
    return {f["name"]: f["url"] for f in body["data"]["reportJob"]["result"]["files"]}


async def fetch(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url, headers=headers)


@pytest.fixture
async def ann(engine: AsyncEngine) -> str:
    return await issue_token(engine, "ann", ["report:run"])


@pytest.fixture
async def job(auth_server: RunningApp, auth_settings: Settings, county: str) -> str:
    lifecycle = auth_server.app.state.lifecycle
    return await finished_report(lifecycle, auth_settings.resolved_results_dir, ANN, FILES)


async def test_a_signed_url_downloads_with_no_header_and_never_holds_the_token(
    auth_server: RunningApp, job: str, ann: str
) -> None:
    urls = await file_urls(auth_server, job, ann)
    for name, url in urls.items():
        assert url.startswith(f"{auth_server.url}/results/{job}/{name}?"), url
        assert ann not in url and "token" not in url
    # The link is a capability for its lifetime: logs (uvicorn's access log) never show it.
    assert "signature=[redacted]" in redact(f'"GET {urls["roll.csv"]} HTTP/1.1" 200')
    csv = await fetch(urls["roll.csv"])
    assert csv.status_code == 200 and csv.text == FILES["roll.csv"][1]
    assert csv.headers["content-disposition"].startswith("attachment")
    html = await fetch(urls["report.html"])
    assert html.status_code == 200 and "Ratio study" in html.text
    assert html.headers["content-disposition"].startswith("inline")
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.headers["referrer-policy"] == "no-referrer"
    # API clients keep their header; a token in the query string is not a credential.
    assert (await fetch(f"{auth_server.url}/results/{job}/roll.csv", **bearer(ann))).is_success
    by_query = await fetch(f"{auth_server.url}/results/{job}/roll.csv?token={ann}")
    assert by_query.status_code == 401


def tampered(url: str) -> list[str]:
    """The same link with one byte of its signature, of its expiry, of its name changed."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    signature, expires = query["signature"][0], query["expires"][0]
    flip = "A" if signature[5] != "A" else "B"
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return [
        f"{base}?expires={expires}&signature={signature[:5]}{flip}{signature[6:]}",
        f"{base}?expires={int(expires) + 1}&signature={signature}",
        f"{base.replace('roll.csv', 'roll.csw')}?expires={expires}&signature={signature}",
        f"{base}?expires={expires}",
    ]


async def test_a_changed_expired_or_foreign_link_is_refused(
    auth_server: RunningApp, auth_settings: Settings, job: str, ann: str
) -> None:
    url = (await file_urls(auth_server, job, ann))["roll.csv"]
    for bad in tampered(url):
        assert (await fetch(bad)).status_code in (403, 404), bad
    signer: DownloadSigner = auth_server.app.state.signer
    an_hour_ago = time.time() - 3600
    expired = auth_server.url + signer.signed_path(job, "roll.csv", now=an_hour_ago)
    response = await fetch(expired)
    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await finished_report(
        auth_server.app.state.lifecycle, auth_settings.resolved_results_dir, ANN, FILES
    )
    query = urlsplit(url).query
    assert (await fetch(f"{auth_server.url}/results/{other}/roll.csv?{query}")).status_code == 403


async def test_a_listed_file_that_is_a_symlink_is_not_served(
    auth_server: RunningApp, auth_settings: Settings, job: str, ann: str, tmp_path: Any
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for download")
    path = auth_settings.resolved_results_dir / job / "roll.csv"
    path.unlink()
    path.symlink_to(secret)
    url = (await file_urls(auth_server, job, ann))["roll.csv"]
    assert (await fetch(url)).status_code == 404
    assert (await fetch(url.split("?")[0], **bearer(ann))).status_code == 404


async def test_public_url_sets_the_links_origin(
    auth_settings: Settings, engine: AsyncEngine, county: str, ann: str
) -> None:
    settings = auth_settings.model_copy(update={"public_url": "https://jobs.county.example/"})
    async with serve_app(settings) as app:
        job = await finished_report(
            app.app.state.lifecycle, settings.resolved_results_dir, ANN, FILES
        )
        urls = await file_urls(app, job, ann)
    assert urls["roll.csv"].startswith(f"https://jobs.county.example/results/{job}/roll.csv?")


async def test_the_signing_secret_is_made_once_and_kept_private(settings: Settings) -> None:
    first = signing_secret(settings)
    path = settings.data_dir / SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing_secret(settings) == first and len(first) >= 32
    given = settings.model_copy(update={"url_signing_secret": "from-the-environment"})
    assert signing_secret(given) == b"from-the-environment"


async def test_a_link_signed_before_a_restart_still_works(
    auth_settings: Settings, engine: AsyncEngine, county: str, ann: str
) -> None:
    async with serve_app(auth_settings) as app:
        job = await finished_report(
            app.app.state.lifecycle, auth_settings.resolved_results_dir, ANN, FILES
        )
        url = (await file_urls(app, job, ann))["roll.csv"]
        path_and_query = url.split(app.url, 1)[1]
    async with serve_app(auth_settings) as restarted:
        response = await fetch(restarted.url + path_and_query)
    assert response.status_code == 200 and response.text == FILES["roll.csv"][1]
