"""The ASGI app: GraphQL (HTTP, GraphiQL, websockets), metrics, health, result files."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL
from strawberry.types.unset import UNSET

from app.auth import TOKEN_PATTERN, authenticate, bearer_token
from app.config import Settings
from app.dashboard import dashboard
from app.db import create_engine, create_session_factory
from app.events import EventBus
from app.http_subscriptions import (
    CONTENT_TYPE,
    SUBSCRIPTION_PROTOCOLS,
    end_when_revoked,
    token_check,
)
from app.limits import BodySizeLimit, SubscriptionQuota, query_limits
from app.metrics import Metrics
from jobs.access import ANONYMOUS_ADMIN
from jobs.lifecycle import Lifecycle
from jobs.registry import metric_kinds
from resolvers.context import Context
from schema.schema import build_schema

log = logging.getLogger(__name__)


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with authentication over HTTP and both websocket protocols."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(extensions=query_limits(settings)),
            graphql_ide="graphiql" if settings.graphiql else None,
            connection_init_wait_timeout=dt.timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            allowed_origins=settings.origins,
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
        )
        self.settings = settings

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.app.state
        context = Context(
            request=request,
            settings=state.settings,
            sessions=state.sessions,
            lifecycle=state.lifecycle,
            bus=state.bus,
            quota=state.quota,
        )
        if isinstance(request, WebSocket):
            request.state.guard = asyncio.create_task(self._guard(context))
        elif not self.settings.auth_disabled:
            context.token = bearer_token(request.headers)
            context.caller = await authenticate(context.sessions, context.token)
        return context

    async def create_websocket_response(
        self, request: WebSocket, subprotocol: str | None
    ) -> WebSocket:
        request.state.subprotocol = subprotocol
        return await super().create_websocket_response(request, subprotocol)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Accept `connection_init` only with a valid token (close 4403 / connection_error)."""
        if self.settings.auth_disabled:
            context.caller = ANONYMOUS_ADMIN
            context.initialised = True
            return None
        params = context.connection_params or {}
        token = params.get("token")
        context.token = bearer_token(params) or (token if isinstance(token, str) else None)
        context.caller = await authenticate(context.sessions, context.token)
        if context.caller is None:
            raise ConnectionRejectionError(
                {"message": "send a valid token in connection_init", "code": "UNAUTHENTICATED"}
            )
        context.initialised = True
        return None

    async def _guard(self, context: Context) -> None:
        """Close a websocket that never initialises, or whose token is revoked while open.

        Strawberry enforces the init timeout for graphql-transport-ws only; this covers the
        legacy protocol too, and re-checks the token so a revoked one is cut off even while
        its subscriptions just wait for events.
        """
        ws = context.request
        assert isinstance(ws, WebSocket)
        await asyncio.sleep(self.settings.ws_init_timeout_seconds)
        if not context.initialised and _open(ws):
            # graphql-transport-ws sockets Strawberry closes itself at the same moment: a
            # second close here made its own fail and log a traceback for each one.
            if getattr(ws.state, "subprotocol", None) == GRAPHQL_WS_PROTOCOL:
                await _close(ws, 4408, "connection initialisation timeout")
            return
        if self.settings.auth_disabled:
            return
        while _open(ws):
            await asyncio.sleep(self.settings.ws_auth_recheck_seconds)
            try:
                caller = await authenticate(context.sessions, context.token)
            except (OSError, DBAPIError) as exc:
                log.warning("could not re-check a websocket's token now: %s", exc)
                continue
            if caller is None and _open(ws):
                await _close(ws, 4403, "Forbidden")
                return

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response | WebSocket:
        try:
            return await super().run(request, context, root_value)
        finally:
            guard = (
                getattr(request.state, "guard", None) if isinstance(request, WebSocket) else None
            )
            if guard is not None:
                guard.cancel()

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        """A multipart subscription stream ends when its token is revoked, as a websocket does."""
        if headers.get("Content-Type") == CONTENT_TYPE and not self.settings.auth_disabled:
            still_valid = token_check(request.app.state.sessions, bearer_token(request.headers))
            stream = end_when_revoked(
                stream, still_valid, self.settings.ws_auth_recheck_seconds, self.encode_json_string
            )
        return await super().create_streaming_response(request, stream, sub_response, headers)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL; with `?token=`, every request and subscription it sends carries it.

        Its scripts and styles are served from /static/graphiql (the same files, byte for
        byte, so the page's integrity hashes still hold): an office network that cannot
        reach unpkg.com still gets a working GraphiQL.
        """
        html = self.graphql_ide_html
        for remote, local in GRAPHIQL_ASSETS.items():
            html = html.replace(f"https://unpkg.com/{remote}", f"/static/graphiql/{local}")
        token = request.query_params.get("token", "")
        if TOKEN_PATTERN.match(token):
            headers = json.dumps({"Authorization": f"Bearer {token}"})
            html = html.replace("const defaultHeaders = {};", f"const defaultHeaders = {headers};")
            html = html.replace(
                "subscriptionUrl,\n",
                "subscriptionUrl,\n        wsConnectionParams: defaultHeaders,\n",
            )
        return HTMLResponse(html)


GRAPHIQL_ASSETS = {
    "react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "react-dom@18.2.0/umd/react-dom.production.min.js": "react-dom.production.min.js",
    "js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": "plugin-explorer.umd.js",
}
"""Strawberry's GraphiQL page's CDN files -> our copies in app/static/graphiql."""
STATIC_DIR = Path(__file__).with_name("static")


def _open(ws: WebSocket) -> bool:
    return WebSocketState.DISCONNECTED not in (ws.client_state, ws.application_state)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close as each protocol expects: the legacy one hears `connection_error` first."""
    with contextlib.suppress(RuntimeError, OSError):
        if getattr(ws.state, "subprotocol", None) == GRAPHQL_WS_PROTOCOL:
            await ws.send_json({"type": "connection_error", "payload": {"message": reason}})
        await ws.close(code=code, reason=reason)


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        await state.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503
    )


async def result_file(request: Request) -> Response:
    """Stream one of a job's files; only names the job's result lists are served.

    It needs the token that may read the job (the header, or `?token=` so a browser link
    works): 401 without a valid one, 404 for a job the caller may not see, as for no job.
    """
    settings: Settings = request.app.state.settings
    caller = ANONYMOUS_ADMIN
    if not settings.auth_disabled:
        token = bearer_token(request.headers) or request.query_params.get("token")
        found = await authenticate(request.app.state.sessions, token)
        if found is None:
            return PlainTextResponse(
                "a valid token is required", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        caller = found
    name = request.path_params["name"]
    try:
        job_id = uuid.UUID(request.path_params["job_id"])
    except ValueError:
        return PlainTextResponse("not found", status_code=404)
    snap = await request.app.state.lifecycle.get(job_id, caller=caller)
    files = _result_files(snap["result"]) if snap and snap.get("result") else []
    match = next((f for f in files if f["name"] == name), None)
    path = settings.resolved_results_dir / str(job_id) / name
    if match is None or not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type=match["content_type"], filename=name)


def _result_files(result: dict[str, Any]) -> list[dict[str, Any]]:
    files = list(result.get("files") or [])
    if isinstance(result.get("file"), dict):
        files.append(result["file"])
    return files


def create_app(settings: Settings) -> Starlette:
    """`settings` must carry resolved database and Redis URLs (see app.services)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url or "")
        redis: ArqRedis = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
        sessions = create_session_factory(engine)
        bus = EventBus(redis, settings.events_channel, sessions)
        await bus.start()
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = sessions
        app.state.redis = redis
        app.state.bus = bus
        app.state.metrics = Metrics(CollectorRegistry(), metric_kinds())
        app.state.lifecycle = Lifecycle(app.state.sessions, redis, settings, app.state.metrics)
        app.state.quota = SubscriptionQuota(settings.max_subscriptions_per_token)
        try:
            yield
        finally:
            await bus.stop()
            await redis.aclose()
            await engine.dispose()

    graphql = GraphQLApp(settings)
    return Starlette(
        routes=[
            Route("/", dashboard),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/results/{job_id}/{name}", result_file),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)],
    )
