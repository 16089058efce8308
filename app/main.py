"""The ASGI app: GraphQL (HTTP, GraphiQL, websockets), metrics, health, result files."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import hmac
import inspect
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, cast

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, execute
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import DisableIntrospection
from strawberry.http import process_result
from strawberry.subscriptions import GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from app.auth import (
    AuthUnavailable,
    TokenCache,
    authenticate,
    bearer_token,
    request_bearer_token,
)
from app.config import Settings
from app.cors import CORS
from app.dashboard import dashboard
from app.db import HotRows, create_engine, create_session_factory
from app.documents import DocumentCache, Entry, QueryLimits, checked_documents, operation_named
from app.downloads import DownloadSigner, result_file, signing_secret
from app.events import EventBus
from app.graphiql import graphiql_page
from app.http_subscriptions import (
    CONTENT_TYPE,
    SUBSCRIPTION_PROTOCOLS,
    end_when_revoked,
    token_check,
)
from app.limits import BodySizeLimit, SubscriptionQuota, error_body
from app.metrics import Metrics
from app.websocket_handlers import BoundedWebSocketAdapter, LegacyWSHandler, TransportWSHandler
from app.websocket_server import raise_message_limit
from jobs.access import ANONYMOUS_ADMIN
from jobs.batched_reads import BatchedReads
from jobs.lifecycle import Lifecycle
from jobs.listing import MAX_PAGE
from jobs.registry import metric_kinds
from resolvers.context import Context
from resolvers.live_delivery import results_untouched
from resolvers.query_executor import CompletedObjects, QueryExecutor, basic_resolvers
from resolvers.rendered_jobs import RenderedJobs
from resolvers.shared_events import SharedEvents
from schema.errors import Schema
from schema.job import Job
from schema.schema import build_schema

log = logging.getLogger(__name__)


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with authentication over HTTP and both websocket protocols.

    Every document goes through app.documents (parsed, measured and validated once per
    distinct text); every malformed request is a 400 with a JSON `errors` body.
    """

    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = BoundedWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, settings: Settings) -> None:
        schema = build_schema(extensions=[] if settings.introspection else [DisableIntrospection])
        self.documents = DocumentCache(
            schema._schema, QueryLimits.of(settings, MAX_PAGE), settings.document_cache_size
        )
        schema.extensions = (*schema.extensions, checked_documents(self.documents))
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            connection_init_wait_timeout=dt.timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            allowed_origins=settings.origins,
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
        )
        self.settings = settings
        self.basic_resolvers = basic_resolvers(schema)
        """Resolvers the short way calls without resolve info (resolvers.query_executor)."""
        self.completed = CompletedObjects(shared=(Job,))
        """Jobs' completions, reused while the object is (resolvers.rendered_jobs keeps it)."""
        self.live_delivery = results_untouched(schema)
        """Live subscription events may go straight from the bus (resolvers.live_delivery)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response: ASGIApp | None = None
        try:
            if scope["method"] == "POST" and _plain_json(scope["headers"]):
                body = await read_body(receive)
                response = await self._direct(request, body)
                if response is None:  # the view reads the body as it came
                    request = Request(scope, replay(body, receive))
            if response is None:
                response = cast(Response, await self.run(request))
        except HTTPException as exc:
            code = HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
            response = JSONResponse(error_body(exc.reason, code), status_code=exc.status_code)
        except AuthUnavailable:
            response = unavailable()
        await response(scope, receive, send)

    async def _direct(self, request: Request, body: bytes) -> ASGIApp | None:
        """A plain JSON POST of a document the cache knows valid runs straight on graphql-core.

        For such a request Strawberry's view and its extension hooks have nothing left to
        do (the document is parsed, measured and validated; no stream, batch or upload), yet
        built and ran more objects than executing a small query did. The result is processed
        as the view processes it: the schema's error handling, the same JSON, status 200.
        Anything else returns None and goes the whole way.
        """
        try:
            data = self.decode_json(body)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("extensions") is not None:
            return None
        query, variables, name = data.get("query"), data.get("variables"), data.get("operationName")
        if not (
            isinstance(query, str)
            and isinstance(variables, dict | None)
            and isinstance(name, str | None)
        ):
            return None
        entry = self.documents.runnable(query, name, variables)
        if entry is None:
            return None
        document = entry.document
        context = await self._context(request)
        schema = self.schema
        assert isinstance(schema, Schema)
        try:
            outcome = execute(
                schema._schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=name,
                executor_class=QueryExecutor,
                is_awaitable=cast(Any, optimized_is_awaitable),
                basic_resolvers=self.basic_resolvers,
                completed=self.completed if self._reuses(entry, name) else None,
            )
            result = await outcome if inspect.isawaitable(outcome) else outcome
            data_out, errors = result.data, result.errors
        except Exception as exc:  # as Strawberry's own execute: an error in the result
            data_out, errors = None, [GraphQLError(str(exc), original_error=exc)]
        if errors:
            schema._process_errors(errors)
        answer = process_result(ExecutionResult(data=data_out, errors=errors))
        return JSONAnswer(self.encode_json(answer).encode())

    @staticmethod
    def _reuses(entry: Entry, name: str | None) -> bool:
        """A query with no directive may reuse completed objects; a mutation's answer is
        built anew, as it reports a change."""
        if entry.directives:
            return False
        chosen = operation_named(entry.document, name)
        return chosen is not None and chosen.operation is OperationType.QUERY

    def encode_json(self, data: object) -> str:
        """Strawberry's JSON (`json.dumps` with compact separators), from one encoder built
        once rather than one per response."""
        return COMPACT_JSON.encode(data)

    def decode_json(self, data: str | bytes) -> object:
        """JSON as the client sent it; anything json.loads cannot take is a JSONDecodeError.

        Strawberry turns that into a 400 (HTTP) or a 4400 close (websockets); left alone,
        a body that is not UTF-8, nests past Python's recursion limit or holds a number of
        more than 4300 digits would end in a 500 or a dead connection.
        """
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            raise
        except UnicodeDecodeError:
            raise json.JSONDecodeError("the body is not UTF-8 text", "", 0) from None
        except RecursionError:
            raise json.JSONDecodeError("the JSON nests too deeply", "", 0) from None
        except ValueError as exc:
            raise json.JSONDecodeError(f"the JSON cannot be read: {exc}", "", 0) from None

    def parse_json(self, data: str | bytes) -> Any:
        """A body, or GET's `variables`/`extensions`: a JSON object (a list for a batch)."""
        try:
            value = self.decode_json(data)
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"Unable to parse request body as JSON: {exc.msg}") from None
        if not isinstance(value, dict | list):
            raise HTTPException(400, f"expected a JSON object, not {type(value).__name__}")
        return value

    def parse_query_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """GET's parameters; `variables=null` (some clients send it) means none."""
        given = {k: v for k, v in params.items() if not (k in NULLABLE and v == "null")}
        return super().parse_query_params(given)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await self._context(request)

    async def _context(self, request: Request | WebSocket) -> Context:
        state = request.app.state
        context: Context = state.new_context(request=request)
        if isinstance(request, WebSocket):
            request.state.guard = asyncio.create_task(self._guard(context))
        elif not self.settings.auth_disabled:
            context.token = request_bearer_token(request.scope["headers"])
            context.caller = await state.tokens.caller(context.token)
        return context

    async def create_websocket_response(
        self, request: WebSocket, subprotocol: str | None
    ) -> WebSocket:
        request.state.subprotocol = subprotocol
        request.state.max_message_bytes = self.settings.ws_init_max_bytes
        return await super().create_websocket_response(request, subprotocol)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """Accept `connection_init` only with a valid token (close 4403 / connection_error).

        Then, and only then, the connection may send messages up to MAX_BODY_BYTES.
        """
        ws = context.request
        assert isinstance(ws, WebSocket)
        if self.settings.auth_disabled:
            context.caller = ANONYMOUS_ADMIN
        else:
            params = context.connection_params or {}
            token = params.get("token")
            context.token = bearer_token(params) or (token if isinstance(token, str) else None)
            try:
                context.caller = await authenticate(context.sessions, context.token)
            except AuthUnavailable:
                raise ConnectionRejectionError(
                    {
                        "message": "the database is unavailable; try again shortly",
                        "code": "SERVICE_UNAVAILABLE",
                    }
                ) from None
            if context.caller is None:
                raise ConnectionRejectionError(
                    {"message": "send a valid token in connection_init", "code": "UNAUTHENTICATED"}
                )
        context.initialised = True
        raise_message_limit(ws, self.settings.max_body_bytes)
        return None

    async def _guard(self, context: Context) -> None:
        """Close a websocket that never initialises, or whose token is revoked while open.

        Strawberry enforces the init timeout for graphql-transport-ws only; this covers the
        legacy protocol too, and re-checks the token (in the database itself, not the
        token cache) so a revoked one is cut off within WS_AUTH_RECHECK_SECONDS even while
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
            except AuthUnavailable as exc:
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
        return graphiql_page(request)


NULLABLE = ("variables", "extensions")
JSON = "application/json"
JSON_BYTES = JSON.encode()
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
STREAMED = ("multipart/", "text/event-stream")
"""`Accept` values that may ask for a streamed response: the view decides those."""
HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
"""`extensions.code` of the view's HTTP-level refusals."""
STATIC_DIR = Path(__file__).with_name("static")


def _plain_json(headers: list[tuple[bytes, bytes]]) -> bool:
    """A JSON body and no streamed answer asked for, read off the raw ASGI headers (names
    lower-case by the spec; the first of a repeated header counts, as Starlette's `get`):
    one pass, no decoding of the headers the check does not need."""
    content_type = accept = None
    for name, value in headers:
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"accept" and accept is None:
            accept = value
    if content_type is None:
        return False
    if content_type.partition(b";")[0].strip().lower() != JSON_BYTES:
        return False
    wanted = (accept or b"").decode("latin-1")
    return not any(stream in wanted for stream in STREAMED)


async def read_body(receive: Receive) -> bytes:
    """The request's whole body, read as Starlette's `Request.body` reads it (empty chunks
    skipped, other message types ignored, a disconnect is ClientDisconnect), without the
    async generator and context manager it reads through."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if not message.get("more_body", False):
                if not chunks:
                    return bytes(chunk)
                chunks.append(chunk)
                return b"".join(chunks)
            if chunk:
                chunks.append(chunk)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` (already read) as the request's one message first."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class JSONAnswer:
    """A 200 JSON response, sent as Starlette's `Response(body, media_type=JSON)` sends it
    (the same two messages, the same headers in the same order) without its header logic."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", str(len(self.body)).encode()), (b"content-type", JSON_BYTES)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def unavailable() -> Response:
    return JSONResponse(
        error_body(
            "the database or queue is unavailable; try again shortly", "SERVICE_UNAVAILABLE"
        ),
        status_code=503,
        headers={"Retry-After": "2"},
    )


def _open(ws: WebSocket) -> bool:
    return WebSocketState.DISCONNECTED not in (ws.client_state, ws.application_state)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close as each protocol expects: the legacy one hears `connection_error` first."""
    with contextlib.suppress(RuntimeError, OSError):
        if getattr(ws.state, "subprotocol", None) == GRAPHQL_WS_PROTOCOL:
            await ws.send_json({"type": "connection_error", "payload": {"message": reason}})
        await ws.close(code=code, reason=reason)


async def metrics(request: Request) -> Response:
    """Prometheus text; with METRICS_TOKEN set, only for `Authorization: Bearer <it>`."""
    expected = request.app.state.settings.metrics_token
    if expected and not hmac.compare_digest(
        (bearer_token(request.headers) or "").encode(), expected.encode()
    ):
        return JSONResponse(
            error_body("send METRICS_TOKEN as Authorization: Bearer <token>", "UNAUTHENTICATED"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
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


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method a route lacks), as JSON."""
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
    return JSONResponse(
        error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
    )


async def outage(request: Request, exc: Exception) -> Response:
    """PostgreSQL or Redis unreachable outside GraphQL (file lookups): 503, retry."""
    log.warning("service unavailable on %s: %s", request.url.path, exc)
    return unavailable()


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug: the client gets a JSON reference to quote, the log the traceback under it."""
    reference = uuid.uuid4().hex[:12]
    log.error("internal error ref=%s on %s", reference, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body(f"internal server error (reference {reference})", "INTERNAL_SERVER_ERROR"),
        status_code=500,
    )


YOUNG_OBJECTS_PER_COLLECTION = 20_000
"""New container objects between two collections of the youngest generation (700 by
default): a small request allocates over a thousand that die with it, so the default ran
a collection on nearly every request; a short-lived request's garbage is freed by
reference counting anyway, and the older generations keep their default pace."""


def settle_heap() -> None:
    """Move everything alive once the server is up out of the garbage collector's reach.

    The schema, the ORM mappers and every imported module are hundreds of thousands of
    objects that live as long as the process; the collector walked them all on each of its
    full passes, about a third of a small request's CPU under load. Frozen, they are never
    walked again; what requests allocate is collected as before. For a serving process
    only (`terrafusion serve`): objects frozen are never freed by the cycle collector.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION)


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
        app.state.reads = BatchedReads(sessions)
        app.state.shared = SharedEvents(
            app.state.metrics.subscription_executions, app.state.metrics.subscription_results
        )
        bus.after_dispatch.append(app.state.shared.settle)
        # A job read by id, a submission's validation reads and INSERT, and a client's
        # cancel or retry: each one statement on asyncpg's own pool.
        rows = HotRows(engine, settings.hot_read_pool_size)
        await rows.start()
        app.state.lifecycle = Lifecycle(
            app.state.sessions, redis, settings, app.state.metrics, rows=rows, writes=rows
        )
        app.state.quota = SubscriptionQuota(settings.max_subscriptions_per_token)
        # Never longer than a websocket's re-check: a revoked token stops everywhere within
        # WS_AUTH_RECHECK_SECONDS, whatever TOKEN_CACHE_SECONDS says.
        app.state.tokens = TokenCache(
            app.state.sessions,
            min(settings.token_cache_seconds, settings.ws_auth_recheck_seconds),
        )
        app.state.signer = DownloadSigner(
            signing_secret(settings), settings.download_url_ttl_seconds
        )
        # Every request's context holds the same services: looked up once, not per request.
        app.state.new_context = functools.partial(
            Context,
            settings=settings,
            sessions=sessions,
            lifecycle=app.state.lifecycle,
            bus=bus,
            quota=app.state.quota,
            tokens=app.state.tokens,
            signer=app.state.signer,
            reads=app.state.reads,
            shared=app.state.shared,
            rendered=RenderedJobs(),
        )
        try:
            yield
        finally:
            await bus.stop()
            await rows.close()
            await redis.aclose()
            await engine.dispose()

    graphql = GraphQLApp(settings)
    return Starlette(
        routes=[
            Route("/", dashboard),
            Route("/graphql", graphql),  # the view answers other methods: JSON 405
            WebSocketRoute("/graphql", graphql),
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/results/{job_id}/{name}", result_file),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(CORS, origins=settings.origins),
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            StarletteHTTPException: http_error,
            OSError: outage,
            DBAPIError: outage,
            RedisError: outage,
            Exception: internal_error,
        },
    )
