"""Where finished job files are kept: a folder API and workers share, or an S3 bucket.

Writers always write into the worker's own folder (`RunContext.job_dir`): a GeoPackage is
SQLite and a zipped Shapefile ends in a directory written last, so neither can be sent to
a bucket byte by byte as it grows. With `RESULTS_STORAGE=s3://bucket/prefix` each finished
file is then streamed from that folder into a multipart upload, one part
(`S3_PART_SIZE_MIB`) in memory at a time, and the folder is emptied: an API on another
machine reads only the bucket, handing out presigned links to it. An upload that fails or
is stopped is aborted, and a run that does not complete removes what it uploaded, so no
object and no unfinished upload is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
from botocore.config import Config

from app.config import Settings

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class UploadStopped(Exception):
    """The run was stopped (cancelled, timed out, worker stopping) while uploading."""


def content_disposition(name: str, inline: bool) -> str:
    """As browsers expect it; a name outside ASCII goes in `filename*`."""
    kind = "inline" if inline else "attachment"
    quoted = quote(name)
    if quoted != name:
        return f"{kind}; filename*=utf-8''{quoted}"
    return f'{kind}; filename="{name}"'


class ResultStore:
    """`RESULTS_DIR`: the files stay where the writers put them; API and workers share it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: uuid.UUID | str) -> Path:
        return self.root / str(job_id)

    async def publish(self, job_id: uuid.UUID, files: Sequence[Mapping[str, Any]]) -> None:
        """Make a finished run's `files` (its result's entries) downloadable."""

    async def remove(self, job_id: uuid.UUID) -> None:
        """Everything a job's runs left: after a failed or cancelled run, and on retention."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    async def locate(self, job_id: str, name: str, content_type: str, inline: bool) -> Path | str:
        """A local file to stream, or the URL to send the client to; KeyError if neither."""
        path = self.folder(job_id) / name
        # A symlink (the file's or its folder's) would serve whatever it points at.
        if path.resolve() != path or not path.is_file():
            raise KeyError(name)
        return path


class S3Store(ResultStore):
    """`s3://bucket/prefix`: objects `<prefix>/<job id>/<name>`; `root` is only scratch."""

    def __init__(self, settings: Settings, root: Path) -> None:
        super().__init__(root)
        location = settings.results_storage.removeprefix("s3://")
        self.bucket, _, prefix = location.partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.part_size = settings.s3_part_size_mib * MIB
        self.url_ttl_seconds = settings.s3_url_ttl_seconds
        style = settings.s3_addressing_style or ("path" if settings.s3_endpoint_url else "virtual")
        secret, session_token = settings.aws_secret_access_key, settings.aws_session_token
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            aws_session_token=session_token.get_secret_value() if session_token else None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": style},
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def key(self, job_id: uuid.UUID | str, name: str) -> str:
        return f"{self.prefix}{job_id}/{name}"

    async def publish(self, job_id: uuid.UUID, files: Sequence[Mapping[str, Any]]) -> None:
        stop = threading.Event()
        upload = asyncio.to_thread(self._upload_files, job_id, files, stop)
        uploading = asyncio.ensure_future(upload)
        try:
            await asyncio.shield(uploading)
        except asyncio.CancelledError:
            # A thread cannot be cancelled: it stops before its next part and aborts the
            # upload, and only then does the run unwind (and remove what was uploaded).
            stop.set()
            await asyncio.wait([uploading])
            # The thread's own end (UploadStopped, as a rule) gives way to the cancellation;
            # retrieved here so asyncio does not log it as an exception nobody saw.
            uploading.exception()
            raise
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def _upload_files(
        self, job_id: uuid.UUID, files: Sequence[Mapping[str, Any]], stop: threading.Event
    ) -> None:
        for file in files:
            name = str(file["name"])
            with (self.folder(job_id) / name).open("rb") as source:
                self.upload(self.key(job_id, name), source, str(file["content_type"]), stop)

    def upload(
        self,
        key: str,
        source: IO[bytes],
        content_type: str,
        stop: threading.Event | None = None,
    ) -> None:
        """Stream `source` to `key`: one PUT if it fits in a part, else a multipart upload
        (every part `part_size` but the last), aborted if anything goes wrong."""
        part = _read_part(source, self.part_size)
        if len(part) < self.part_size:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=part, ContentType=content_type)
            return
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            while part:
                if stop is not None and stop.is_set():
                    raise UploadStopped(key)
                number = len(parts) + 1
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                part = _read_part(source, self.part_size)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception as exc:
                # remove() aborts whatever is still open under the job when it runs.
                log.warning("could not abort the upload of %s: %s", key, exc)
            raise

    async def remove(self, job_id: uuid.UUID) -> None:
        await super().remove(job_id)
        await asyncio.to_thread(self._remove_objects, job_id)

    def _remove_objects(self, job_id: uuid.UUID) -> None:
        prefix = self.key(job_id, "")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            keys = [item["Key"] for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
                )
        # A worker that died mid-upload could abort nothing.
        uploads = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for listing in uploads:
            for upload in listing.get("Uploads", []):
                with contextlib.suppress(self.client.exceptions.NoSuchUpload):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )

    async def locate(self, job_id: str, name: str, content_type: str, inline: bool) -> Path | str:
        return await asyncio.to_thread(
            self.client.generate_presigned_url,
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(job_id, name),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": content_disposition(name, inline),
                "ResponseCacheControl": "private, max-age=0",
            },
            ExpiresIn=self.url_ttl_seconds,
        )


def _read_part(source: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of `source`."""
    chunks, left = [], size
    while left:
        chunk = source.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def result_files(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The files a result lists: `files`, and a GIS export's one `file`."""
    files = list(result.get("files") or [])
    if isinstance(result.get("file"), dict):
        files.append(result["file"])
    return files


def open_store(settings: Settings) -> ResultStore:
    """The store `RESULTS_STORAGE` names; the results folder is the S3 store's scratch."""
    if settings.results_storage == "local":
        return ResultStore(settings.resolved_results_dir)
    return S3Store(settings, settings.resolved_results_dir)
