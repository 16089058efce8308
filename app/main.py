"""The ASGI app: GraphQL (HTTP, GraphiQL, websockets), metrics, health, result files."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.config import Settings
from app.db import create_engine, create_session_factory
from app.events import EventBus
from app.metrics import Metrics
from jobs.lifecycle import Lifecycle
from jobs.registry import metric_kinds
from resolvers.context import Context
from schema.schema import build_schema


class GraphQLApp(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.app.state
        return Context(
            request=request,
            settings=state.settings,
            sessions=state.sessions,
            lifecycle=state.lifecycle,
            bus=state.bus,
        )


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
    """Stream one of a job's files; only names the job's result lists are served."""
    name = request.path_params["name"]
    try:
        job_id = uuid.UUID(request.path_params["job_id"])
    except ValueError:
        return PlainTextResponse("not found", status_code=404)
    snap = await request.app.state.lifecycle.get(job_id)
    files = _result_files(snap["result"]) if snap and snap.get("result") else []
    match = next((f for f in files if f["name"] == name), None)
    settings: Settings = request.app.state.settings
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
        bus = EventBus(redis, settings.events_channel)
        await bus.start()
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessions = create_session_factory(engine)
        app.state.redis = redis
        app.state.bus = bus
        app.state.metrics = Metrics(CollectorRegistry(), metric_kinds())
        app.state.lifecycle = Lifecycle(app.state.sessions, redis, settings, app.state.metrics)
        try:
            yield
        finally:
            await bus.stop()
            await redis.aclose()
            await engine.dispose()

    graphql = GraphQLApp(build_schema(), graphql_ide="graphiql")
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/results/{job_id}/{name}", result_file),
        ],
        lifespan=lifespan,
    )
