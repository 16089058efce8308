"""CORS for every HTTP route: pages on the `ALLOWED_ORIGINS` may call the API.

The same setting admits those pages' websockets (Strawberry checks the handshake's
Origin). A preflight from an allowed origin is answered 204 here with the methods and the
headers clients send (`Authorization`, `Content-Type`, and `Accept`, whose value for Apollo's
multipart subscriptions browsers do not safelist); an allowed origin's other
requests get `Access-Control-Allow-Origin` on their response. Any other origin gets no
CORS header at all (its preflight a 403), so the browser keeps its page out. Starlette's
CORSMiddleware answers preflights 200 and sends its allowed-methods header to every
origin, hence this small one.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.limits import error_body

METHODS = "GET, POST, OPTIONS"
HEADERS = "Authorization, Content-Type, Accept"
"""Accept too: Apollo's multipart subscriptions send one a browser does not safelist."""
MAX_AGE = "600"


def normalize(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class CORS:
    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.any = "*" in origins
        self.origins = {normalize(o) for o in origins if o != "*"}

    def allowed(self, origin: str) -> bool:
        return self.any or normalize(origin) in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if not self.allowed(origin):
            if preflight:
                refusal = JSONResponse(
                    error_body(f"origin {origin} is not in ALLOWED_ORIGINS", "FORBIDDEN"),
                    status_code=403,
                )
                await refusal(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        allow = {"Access-Control-Allow-Origin": "*" if self.any else origin, "Vary": "Origin"}
        if preflight:
            response = Response(
                status_code=204,
                headers={
                    **allow,
                    "Access-Control-Allow-Methods": METHODS,
                    "Access-Control-Allow-Headers": HEADERS,
                    "Access-Control-Max-Age": MAX_AGE,
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for key, value in allow.items():
                    response_headers.append(key, value)
                response_headers.append("Access-Control-Expose-Headers", "Content-Disposition")
            await send(message)

        await self.app(scope, receive, send_with_cors)
