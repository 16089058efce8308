"""Job files over HTTP: short-lived signed links for browsers, the bearer token for APIs.

A `ResultFile.url` is signed when the API resolves it (HMAC-SHA256 over job id, file name
and expiry with the server's secret), so the link works in a browser tab with no API
token in it: tokens in URLs end up in logs, browser history and Referer headers. The link
is absolute (`PUBLIC_URL`, or the scheme and host the request came to), so a page on
another origin can use it. API clients may still fetch `/results/<id>/<name>` with
`Authorization: Bearer`. The secret is `URL_SIGNING_SECRET`, or one generated once into
the data folder (mode 0600) and kept, so links survive restarts. With S3 storage the link
is the same, checked the same way, and answered by a redirect to a presigned GET of the
object (jobs.storage): our check comes first, the bucket serves the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from app.auth import AuthUnavailable, bearer_token
from app.config import Settings
from app.limits import error_body
from jobs.access import ANONYMOUS_ADMIN
from jobs.lifecycle import Lifecycle
from jobs.storage import result_files

SECRET_FILE = "url-signing.secret"
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # An HTML report is shown inline; sandboxed, it can run nothing on the API's origin.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; sandbox",
    "Cache-Control": "private, max-age=0",
}
REDIRECT_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def signing_secret(settings: Settings) -> bytes:
    """`URL_SIGNING_SECRET`, or the data folder's generated one (made on first use)."""
    if settings.url_signing_secret:
        return settings.url_signing_secret.encode()
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first; read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_bytes().strip()


@dataclass(frozen=True)
class DownloadSigner:
    secret: bytes
    ttl_seconds: int

    def _signature(self, job_id: str, name: str, expires: int) -> str:
        message = f"{job_id}\n{name}\n{expires}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def signed_path(self, job_id: str, name: str, now: float | None = None) -> str:
        """`/results/<job>/<name>?expires=…&signature=…`, valid for `ttl_seconds`."""
        expires = int(time.time() if now is None else now) + self.ttl_seconds
        query = urlencode({"expires": expires, "signature": self._signature(job_id, name, expires)})
        return f"/results/{job_id}/{quote(name)}?{query}"

    def verify(self, job_id: str, name: str, expires: str, signature: str) -> bool:
        if not (expires.isdigit() and len(expires) <= 12) or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._signature(job_id, name, int(expires)), signature)


def public_base_url(settings: Settings, connection: HTTPConnection) -> str:
    """Where clients reach this server: `PUBLIC_URL`, else the request's scheme and host."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    return f"{scheme}://{connection.url.netloc}"


def download_url(
    settings: Settings, signer: DownloadSigner, connection: HTTPConnection, job_id: str, name: str
) -> str:
    """The absolute signed link to one of a job's files, for a `ResultFile.url`."""
    return public_base_url(settings, connection) + signer.signed_path(job_id, name)


def _refusal(status: int, message: str, code: str, **headers: str) -> Response:
    return JSONResponse(error_body(message, code), status_code=status, headers=headers)


NOT_FOUND = (404, "no such file", "NOT_FOUND")


async def result_file(request: Request) -> Response:
    """Stream one of a job's files; only names the job's result lists are served.

    A valid signature is enough (403 for a bad or expired one); without one, the bearer
    token must read the job: 401 without a valid one, 404 for a job the caller may not
    see, as for no job. HTML opens in the browser, other files download.
    """
    state = request.app.state
    settings: Settings = state.settings
    name = request.path_params["name"]
    try:
        job_id = uuid.UUID(request.path_params["job_id"])
    except ValueError:
        return _refusal(*NOT_FOUND)
    params = request.query_params
    caller = ANONYMOUS_ADMIN
    if "signature" in params or "expires" in params:
        signer: DownloadSigner = state.signer
        expires, signature = params.get("expires", ""), params.get("signature", "")
        if not signer.verify(str(job_id), name, expires, signature):
            return _refusal(
                403,
                "this download link is invalid or has expired; ask the API for the file's "
                "`url` again",
                "FORBIDDEN",
            )
    elif not settings.auth_disabled:
        try:
            found = await state.tokens.caller(bearer_token(request.headers))
        except AuthUnavailable:
            return _refusal(
                503,
                "the database is unavailable; try again shortly",
                "SERVICE_UNAVAILABLE",
                **{"Retry-After": "2"},
            )
        if found is None:
            return _refusal(
                401,
                "send a valid token (Authorization: Bearer <token>) or use the file's signed `url`",
                "UNAUTHENTICATED",
                **{"WWW-Authenticate": "Bearer"},
            )
        caller = found
    lifecycle: Lifecycle = state.lifecycle
    snap = await lifecycle.get(job_id, caller=caller)
    files = result_files(snap["result"]) if snap and snap.get("result") else []
    match = next((f for f in files if f["name"] == name), None)
    if match is None:
        return _refusal(*NOT_FOUND)
    content_type = str(match["content_type"])
    inline = content_type.startswith("text/html")
    try:
        path = await lifecycle.store.locate(str(job_id), name, content_type, inline)
    except KeyError:
        return _refusal(*NOT_FOUND)
    if isinstance(path, str):
        # The bytes come from the bucket itself, by a link that works for S3_URL_TTL_SECONDS.
        return RedirectResponse(path, status_code=307, headers=REDIRECT_HEADERS)
    return FileResponse(
        path,
        media_type=content_type,
        filename=name,
        content_disposition_type="inline" if inline else "attachment",
        headers=FILE_HEADERS,
    )
