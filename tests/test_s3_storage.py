"""RESULTS_STORAGE=s3://…: against a real S3 HTTP server (moto's standalone server mode).

The worker and the API are given folders of their own, so nothing can pass between them
but the bucket, as on two machines.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.demo_data import load_demo_county
from jobs.maintenance import Tally, sweep_expired
from jobs.storage import MIB, S3Store, UploadStopped, open_store
from tests.conftest import RunningApp, WorkerControl, _free_port, serve_app
from tests.graphql_client import gql_data, subscribe
from tests.test_job_flow import WATCH, mutation

PREFIX = "county-results/v1"
PARCELS = 80_000
"""Enough for an assessment roll of more than one 5 MiB part (about 95 bytes a row)."""
ROLL = {"reportType": "ASSESSMENT_ROLL", "countyId": "S3CO"}
FILES = "query($id: ID!) { job(id: $id) { ... on ReportJob { result { files { name url sizeBytes rowCount contentType } } } } }"  # noqa: E501


@dataclass(frozen=True)
class S3Server:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server as a process of its own on a free loopback port."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)
    yield S3Server(url, process)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> str:
    return s3_server.url


@contextmanager
def stalled(server: S3Server) -> Iterator[None]:
    """S3 that answers nothing (its process stopped) until the block ends, as a hung
    endpoint would: requests already sent wait for their answer, none is refused."""
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: str) -> Settings:
    """The worker's settings: a fresh bucket, 5 MiB parts."""
    bucket = f"tf-{uuid.uuid4().hex[:12]}"
    updated = settings.model_copy(
        update={
            "results_storage": f"s3://{bucket}/{PREFIX}",
            "s3_endpoint_url": s3_endpoint,
            "aws_access_key_id": "tf-test-key",
            "aws_secret_access_key": SecretStr("tf-test-secret"),
            "s3_part_size_mib": 5,
        }
    )
    bucket_client(updated).create_bucket(Bucket=bucket)
    return updated


def bucket_client(settings: Settings) -> Any:
    secret = settings.aws_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )


def store_of(settings: Settings) -> S3Store:
    store = open_store(settings)
    assert isinstance(store, S3Store)
    return store


def objects(settings: Settings) -> list[dict[str, Any]]:
    store = store_of(settings)
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return list(listing.get("Contents", []))


def open_uploads(settings: Settings) -> list[dict[str, Any]]:
    store = store_of(settings)
    return list(store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []))


@pytest.fixture
async def s3_app(
    s3_settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    """The API on "another machine": its own folder, links that expire in 2 s."""
    api = s3_settings.model_copy(
        update={"results_dir": tmp_path / "api-machine", "download_url_ttl_seconds": 2}
    )
    async with serve_app(api) as running:
        yield running


async def run_roll(app: RunningApp, worker: WorkerControl) -> dict[str, Any]:
    job = (await gql_data(app.url, mutation("runReport"), {"input": ROLL}))["runReport"]
    async with subscribe(app.ws_url, WATCH, {"id": job["id"]}) as sub:
        await worker.start()
        events = await sub.collect(timeout=120)
    final: dict[str, Any] = events[-1]["data"]["jobUpdated"]
    return final


async def test_a_report_is_uploaded_in_parts_downloaded_by_its_link_and_swept(
    s3_settings: Settings, s3_app: RunningApp, engine: AsyncEngine
) -> None:
    await load_demo_county(engine, "S3CO", PARCELS, seed=5)
    worker = WorkerControl(s3_settings)
    try:
        done = await run_roll(s3_app, worker)
    finally:
        await worker.stop()
    assert done["status"] == "COMPLETED", done
    (file,) = done["result"]["files"]
    size = file["sizeBytes"]
    assert size > 5 * MIB
    # The worker's folder is only scratch: emptied once the upload completed.
    assert not (s3_settings.resolved_results_dir / done["id"]).exists()

    key = f"{PREFIX}/{done['id']}/{file['name']}"
    (stored,) = objects(s3_settings)
    assert stored["Key"] == key and stored["Size"] == size
    store = store_of(s3_settings)
    head = store.client.head_object(Bucket=store.bucket, Key=key, PartNumber=1)
    parts = math.ceil(size / (5 * MIB))
    assert parts >= 2 and head["PartsCount"] == parts
    assert head["ContentLength"] == 5 * MIB
    assert stored["ETag"].strip('"').endswith(f"-{parts}")
    assert open_uploads(s3_settings) == []

    # The GraphQL link goes through the API's access check, then to a presigned GET.
    url = (await gql_data(s3_app.url, FILES, {"id": done["id"]}))["job"]["result"]["files"][0]
    link = url["url"]
    async with httpx.AsyncClient(timeout=30) as client:
        hop = await client.get(link)
        assert hop.status_code == 307, hop.text
        presigned = hop.headers["location"]
        assert presigned.startswith(f"{s3_settings.s3_endpoint_url}/{store.bucket}/{key}?")
        query = parse_qs(urlsplit(presigned).query)
        assert query["X-Amz-Expires"] == [str(s3_settings.s3_url_ttl_seconds)]
        assert "tf-test-secret" not in presigned
        got = await client.get(presigned)
    assert got.status_code == 200
    assert got.headers["content-disposition"] == f'attachment; filename="{file["name"]}"'
    assert got.headers["content-type"].startswith("text/csv")
    body = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    assert got.content == body and len(body) == size
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert len(rows) - 1 == file["rowCount"] == PARCELS

    # The link expires (DOWNLOAD_URL_TTL_SECONDS is 2 here): the API refuses it.
    expires = int(parse_qs(urlsplit(link).query)["expires"][0])
    await asyncio.sleep(max(0.0, expires + 1 - time.time()))
    async with httpx.AsyncClient(timeout=30) as client:
        late = await client.get(link)
    assert late.status_code == 403 and "expired" in late.json()["errors"][0]["message"]

    # Retention: the expired job goes, and its object with it.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE report_jobs SET expires_at = now() - interval '1 day' WHERE report_id = :i"
            ),
            {"i": done["id"]},
        )
    tally = Tally()
    await sweep_expired(s3_app.app.state.lifecycle, tally)
    assert tally.swept == 1
    assert objects(s3_settings) == []
    assert (await gql_data(s3_app.url, FILES, {"id": done["id"]}))["job"] is None


async def test_a_job_that_times_out_leaves_no_object_and_no_upload(
    s3_settings: Settings, s3_app: RunningApp, engine: AsyncEngine, s3_server: S3Server
) -> None:
    # S3 hangs from before the job starts until well past its 1 s limit, so the run
    # cannot finish in time however fast the machine builds the roll: the limit strikes
    # while the roll is built or while its upload waits on S3, and either way nothing
    # may be left in the bucket once S3 answers again.
    await load_demo_county(engine, "S3CO", PARCELS, seed=5)
    limit = 1
    worker = WorkerControl(s3_settings.model_copy(update={"job_timeout_seconds": limit}))
    job = (await gql_data(s3_app.url, mutation("runReport"), {"input": ROLL}))["runReport"]
    try:
        async with subscribe(s3_app.ws_url, WATCH, {"id": job["id"]}) as sub:
            with stalled(s3_server):
                await worker.start()
                while (event := await sub.next(timeout=60)) is not None:
                    if event["data"]["jobUpdated"]["status"] == "RUNNING":
                        break
                await asyncio.sleep(3 * limit)
            events = await sub.collect(timeout=120)
    finally:
        await worker.stop()
    done = events[-1]["data"]["jobUpdated"]
    assert done["status"] == "FAILED" and done["error"]["code"] == "TIMEOUT", done
    assert objects(s3_settings) == []
    assert open_uploads(s3_settings) == []
    assert not (s3_settings.resolved_results_dir / done["id"]).exists()


class BrokenSource(io.RawIOBase):
    """A file that reads `good` bytes, then fails as a lost disk would."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise OSError("input/output error")
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


def test_an_upload_that_fails_part_way_is_aborted(s3_settings: Settings) -> None:
    store = store_of(s3_settings)
    source = io.BufferedReader(BrokenSource(7 * MIB))
    with pytest.raises(OSError, match="input/output"):
        store.upload(f"{PREFIX}/broken.csv", source, "text/csv")  # type: ignore[arg-type]
    assert open_uploads(s3_settings) == []
    assert objects(s3_settings) == []


def test_a_stopped_upload_is_aborted_before_its_next_part(s3_settings: Settings) -> None:
    store = store_of(s3_settings)
    stop = threading.Event()

    class StopsAfterFirstPart(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= store.part_size:
                stop.set()
            return super().read(size)

    with pytest.raises(UploadStopped):
        store.upload(
            f"{PREFIX}/stopped.csv", StopsAfterFirstPart(b"y" * (11 * MIB)), "text/csv", stop
        )
    assert open_uploads(s3_settings) == []
    assert objects(s3_settings) == []


def test_a_file_smaller_than_a_part_is_one_put(s3_settings: Settings) -> None:
    store = store_of(s3_settings)
    store.upload(f"{PREFIX}/small.csv", io.BytesIO(b"a,b\n1,2\n"), "text/csv")
    (stored,) = objects(s3_settings)
    assert stored["Size"] == 8 and "-" not in stored["ETag"]
    head = store.client.head_object(Bucket=store.bucket, Key=f"{PREFIX}/small.csv")
    assert head["ContentType"] == "text/csv"


def test_results_storage_is_local_or_an_s3_url() -> None:
    assert Settings(results_storage="s3://bucket/a/b").results_storage == "s3://bucket/a/b"
    assert Settings().results_storage == "local"
    for wrong in ("s3://", "/var/results", "gs://bucket"):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            Settings(results_storage=wrong)


async def test_an_unreachable_store_is_a_transient_error_and_leaves_no_scratch(
    s3_settings: Settings, s3_app: RunningApp, engine: AsyncEngine
) -> None:
    await load_demo_county(engine, "S3CO", 300, seed=5)
    closed = f"http://127.0.0.1:{_free_port()}"
    worker = WorkerControl(
        s3_settings.model_copy(update={"s3_endpoint_url": closed, "max_attempts": 1})
    )
    try:
        done = await run_roll(s3_app, worker)
    finally:
        await worker.stop()
    assert done["status"] == "FAILED", done
    assert done["error"]["code"] == "TRANSIENT_ERROR"
    assert "Could not connect to the endpoint URL" in done["error"]["message"]
    assert not (s3_settings.resolved_results_dir / done["id"]).exists()
    assert objects(s3_settings) == []
