"""The two servers the API benchmarks compare, each in a process of its own, and their clients.

Ours is `app.main.create_app` under uvicorn as `terrafusion serve` runs it (its uvicorn
options, the heap settled once up), without the access log. The bare baseline is the least
code that serves the same facts: a Starlette app with an asyncpg pool that reads the same
job row for `POST /graphql` and for a websocket's first message, and one Redis pub/sub
listener (the same redis-py client ours uses) that sends every message on the events
channel, as it came, to every open websocket. Both run under the same uvicorn (uvloop,
httptools), one process each, so the difference is our code, not the server.

The clients are plain asyncio: HTTP/1.1 keep-alive over raw streams (a Python client library
would cost more CPU than the servers it measures, and both share two cores), and the
`websockets` library speaking graphql-transport-ws. Every load stays on 127.0.0.1 and is
bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRANSPORT_WS = "graphql-transport-ws"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# The servers (module-level functions: they are the targets of spawned processes)


def _quiet() -> None:
    """Closing a thousand websockets at once makes the servers log a traceback for each send
    that met a closed socket; those are the benchmark's doing, not findings."""
    logging.disable(logging.ERROR)


def _serve_ours(settings_json: str, port: int) -> None:
    """As `terrafusion serve` runs the app: its uvicorn options, the heap settled once up."""
    import uvicorn

    from app.config import Settings
    from app.main import create_app, settle_heap
    from app.websocket_server import server_options

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                settle_heap()

    settings = Settings.model_validate_json(settings_json)
    _quiet()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **server_options(settings),
    )
    Server(config).run()


def bare_app(database_url: str, redis_url: str, channel: str) -> Any:
    """Starlette + asyncpg + one Redis listener: the baseline, with nothing of ours in it."""
    import asyncpg
    from redis.asyncio import Redis
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    sql = "SELECT report_id, status, progress_percent FROM report_jobs WHERE report_id = $1"
    state: dict[str, Any] = {}
    sockets: set[WebSocket] = set()

    def as_job(row: Any) -> dict[str, Any]:
        return {
            "id": str(row["report_id"]),
            "status": row["status"],
            "progress": {"percent": row["progress_percent"]},
        }

    async def query(request: Request) -> JSONResponse:
        body = await request.json()
        row = await state["pool"].fetchrow(sql, body["variables"]["id"])
        return JSONResponse({"data": {"job": as_job(row) if row else None}})

    async def listen() -> None:
        pubsub = state["redis"].pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(channel)
        state["listening"].set()
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None or message["type"] != "message":
                continue
            data = message["data"]
            for ws in list(sockets):
                with contextlib.suppress(Exception):
                    await ws.send_text(data)

    async def feed(ws: WebSocket) -> None:
        await ws.accept()
        first = json.loads(await ws.receive_text())
        row = await state["pool"].fetchrow(sql, first["id"])
        await ws.send_text(json.dumps({"job": as_job(row) if row else None, "version": 0}))
        sockets.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(ws)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        state["pool"] = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
        state["redis"] = Redis.from_url(redis_url, decode_responses=True)
        state["listening"] = asyncio.Event()
        task = asyncio.create_task(listen())
        await asyncio.wait_for(state["listening"].wait(), 10)
        try:
            yield
        finally:
            task.cancel()
            await state["redis"].aclose()
            await state["pool"].close()

    return Starlette(
        routes=[Route("/graphql", query, methods=["POST"]), WebSocketRoute("/ws", feed)],
        lifespan=lifespan,
    )


def _serve_bare(database_url: str, redis_url: str, channel: str, port: int) -> None:
    import uvicorn

    _quiet()
    uvicorn.run(
        bare_app(database_url, redis_url, channel),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process on a loopback port; its CPU time and RSS read from /proc."""

    process: multiprocessing.process.BaseProcess
    port: int

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(15)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def start_server(target: Callable[..., None], *args: Any) -> Server:
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=target, args=(*args, port), daemon=True
    )
    process.start()
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if not process.is_alive() or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server {target.__name__} did not start")
        time.sleep(0.05)
    return Server(process, port)


def start_ours(settings: Any) -> Server:
    return start_server(_serve_ours, settings.model_dump_json())


def start_bare(database_url: str, redis_url: str, channel: str) -> Server:
    return start_server(_serve_bare, database_url, redis_url, channel)


# ---------------------------------------------------------------------------------------------
# HTTP load: N keep-alive connections, each sending the next request when the last one ended


@dataclass
class HttpLoad:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.latencies)

    @property
    def p99_ms(self) -> float:
        return 1000 * statistics.quantiles(self.latencies, n=100)[98]


def http_request(port: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        "POST /graphql HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def http_load(
    port: int,
    request: bytes,
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
    check: Callable[[bytes], bool] = lambda body: b'"errors"' not in body,
) -> HttpLoad:
    """Closed-loop load for `warmup` + `seconds`; only requests that start after the warm-up
    count. A response that is not 200 or fails `check` is an error (and counts as one)."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                writer.write(request)
                status, body = await _read_response(reader)
                ended = time.perf_counter()
                if sent >= measure_from:
                    latencies.append(ended - sent)
                    if status != 200 or not check(body):
                        errors += 1
        finally:
            writer.close()

    await asyncio.wait_for(
        asyncio.gather(*(connection() for _ in range(connections))), warmup + seconds + 60
    )
    return HttpLoad(len(latencies), seconds, latencies, errors)


def first_response(port: int, request: bytes) -> bytes:
    async def once() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        _, body = await _read_response(reader)
        writer.close()
        return body

    return asyncio.run(once())


# ---------------------------------------------------------------------------------------------
# Websocket subscribers


@dataclass
class Subscriber:
    """One websocket with one subscription; notes when each version arrived."""

    ws: Any
    arrivals: dict[int, float] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


def version_of(message: dict[str, Any]) -> int | None:
    """The job version a message carries, in either server's shape."""
    if message.get("type") == "next":
        return int(message["payload"]["data"]["jobUpdated"]["version"])
    if "version" in message:
        return int(message["version"])
    return None


async def open_subscriber(url: str, first: list[str], *, timeout: float = 120) -> Subscriber:
    """Connect, send `first` (ours: connection_init, then subscribe), and wait for the first
    data message: the subscriber is then live."""
    import websockets

    subprotocols = [TRANSPORT_WS] if url.endswith("/graphql") else None
    ws = await websockets.connect(
        url,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        open_timeout=timeout,
        ping_interval=None,
        max_queue=None,
        compression=None,
    )
    for message in first:
        await ws.send(message)
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message.get("type") in ("connection_ack", "ping", "pong", "ka"):
            continue
        if message.get("type") == "error" or message.get("errors"):
            raise RuntimeError(f"subscription refused: {message}")
        break
    return Subscriber(ws)


def first_messages(url: str, job_id: str) -> list[str]:
    if not url.endswith("/graphql"):
        return [json.dumps({"id": job_id})]
    query = (
        "subscription($id: ID!) { jobUpdated(id: $id) { id status version progress { percent } } }"
    )
    return [
        json.dumps({"type": "connection_init", "payload": {}}),
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": job_id}},
            }
        ),
    ]


async def open_subscribers(
    url: str, job_id: str, count: int, *, concurrency: int
) -> tuple[list[Subscriber], float]:
    """`count` live subscribers, at most `concurrency` connecting at once; and the seconds
    from the first connect to the last first message."""
    gate = asyncio.Semaphore(concurrency)
    first = first_messages(url, job_id)

    async def one() -> Subscriber:
        async with gate:
            return await open_subscriber(url, first)

    started = time.perf_counter()
    subscribers = await asyncio.gather(*(one() for _ in range(count)))
    return list(subscribers), time.perf_counter() - started


def start_reading(subscribers: list[Subscriber]) -> None:
    async def read(sub: Subscriber) -> None:
        async for raw in sub.ws:
            version = version_of(json.loads(raw))
            if version is not None:
                sub.arrivals[version] = time.perf_counter()

    for sub in subscribers:
        sub.task = asyncio.create_task(read(sub))


async def close_subscribers(subscribers: list[Subscriber]) -> None:
    for sub in subscribers:
        if sub.task is not None:
            sub.task.cancel()

    async def close(sub: Subscriber) -> None:
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(sub.ws.close(), 5)

    for i in range(0, len(subscribers), 500):
        await asyncio.gather(*(close(s) for s in subscribers[i : i + 500]))
