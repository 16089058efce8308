"""The GraphiQL page: our own assets only, no inline script, no token in the HTML.

The scripts are the unmodified npm files in app/static/graphiql (served by the app, so an
office network without internet access gets a working GraphiQL); `page.js` wires them up
and takes an API token from the URL fragment (`/graphql#token=tf_…`), which browsers
never send to a server. The page opens with `default-document.graphql`, example
operations. Its Content-Security-Policy allows this origin's scripts and styles only;
it may not be framed (clickjacking) and sends no Referer.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

ASSETS = "/static/graphiql"
STYLES = ("graphiql.min.css", "plugin-explorer.css", "page.css")
SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "plugin-explorer.umd.js",
    "page.js",
)
DEFAULT_DOCUMENT = "default-document.graphql"


def _page() -> str:
    links = "\n".join(f'    <link rel="stylesheet" href="{ASSETS}/{s}" />' for s in STYLES)
    scripts = "\n".join(f'    <script src="{ASSETS}/{s}"></script>' for s in SCRIPTS)
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>TerraFusion Jobs · GraphiQL</title>
{links}
  </head>
  <body>
    <div id="graphiql" data-default-document="{ASSETS}/{DEFAULT_DOCUMENT}">Loading…</div>
{scripts}
  </body>
</html>
"""


PAGE = _page()


def security_headers(request: Request) -> dict[str, str]:
    """The page's headers; `connect-src` names this host's websocket URLs explicitly."""
    host = request.url.netloc
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def graphiql_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE, headers=security_headers(request))
