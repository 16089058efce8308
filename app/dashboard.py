"""The jobs dashboard at `/`: static ES modules in app/static/dashboard, served as package data.

The page talks to the server through the public GraphQL API only (and reads result files
from their URLs), so it needs nothing from this module but its HTML.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

INDEX = Path(__file__).with_name("static") / "dashboard" / "index.html"
HEADERS = {
    "Cache-Control": "no-cache",
    # Its own scripts, styles and API only: nothing inline, nothing from elsewhere.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


async def dashboard(request: Request) -> Response:
    return FileResponse(INDEX, media_type="text/html", headers=HEADERS)
