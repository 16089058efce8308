"""Websocket messages are bounded before and after `connection_init`, measured on a real API.

The API runs as `terrafusion serve` in a process of its own, so its resident memory can be
read from /proc while real websocket clients attack it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from app.embedded import free_port
from tests.builders import issue_token
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS, bearer

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
CHUNK = "x" * MB
CHUNK_BYTES = CHUNK.encode()


class ApiProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"

    def rss(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


@pytest.fixture(scope="module")
def api(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """One API process for the module (starting one takes seconds)."""
    port = free_port()
    tmp_path = tmp_path_factory.mktemp("api")
    prefix = f"tf-test:{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "EVENTS_CHANNEL": f"{prefix}:events",
        "QUEUE_NAME": f"{prefix}:queue",
        "AUTH_DISABLED": "false",
        # A loaded machine may take seconds to push 40 x 15 MB: the size limit, not the
        # init timeout, is what these tests are about.
        "WS_INIT_TIMEOUT_SECONDS": "60",
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--no-worker", "--no-demo"]
    command += ["--port", str(port), "--data-dir", str(tmp_path)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the API exited"
            time.sleep(0.1)
        yield ApiProcess(process, port)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def peak_rss_while(api: ApiProcess, work: Any) -> tuple[int, Any]:
    """The API's largest RSS, sampled every 10 ms while `work` runs, and work's result."""
    peak = api.rss()
    task = asyncio.ensure_future(work)
    while not task.done():
        peak = max(peak, api.rss())
        await asyncio.sleep(0.01)
    return peak, task.result()


async def chunks(size_mb: int) -> AsyncIterator[str]:
    """One text message of `size_mb` MB, sent as 1 MB fragments of the same string."""
    for _ in range(size_mb):
        yield CHUNK


async def close_code(ws: Any) -> int | None:
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code  # type: ignore[no-any-return]


async def raw_oversized_init(api: ApiProcess, protocol: str, size: int) -> int:
    """Open a websocket by hand and stream one `size`-byte connection_init frame at it.

    As an attacker would: the frame header announces the whole size, the payload follows
    in 1 MB writes of one shared buffer (masked with a zero key), and the client reads
    the server's answer meanwhile. Returns the close code the server sent.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", int(api.url.rsplit(":", 1)[1]))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    prefix, suffix = b'{"type": "connection_init", "payload": {"pad": "', b'"}}'
    filler = size - len(prefix) - len(suffix)
    writer.write(struct.pack("!BBQ", 0x81, 0x80 | 127, size) + b"\0\0\0\0" + prefix)

    async def push() -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(filler // MB):
                writer.write(CHUNK_BYTES)
                await writer.drain()
            writer.write(CHUNK_BYTES[: filler % MB] + suffix)
            await writer.drain()

    pushing = asyncio.create_task(push())
    try:
        # The close frame's header and code in one read: they arrive in one segment, and
        # the reset our unread upload causes right after must not hide the code from a
        # second read (a StreamReader raises a stored error before handing out its buffer).
        frame = await asyncio.wait_for(reader.readexactly(4), 30)
        assert frame[0] == 0x88 and frame[1] & 0x7F >= 2, frame  # a close frame, sent first
        return int(struct.unpack("!H", frame[2:4])[0])
    finally:
        pushing.cancel()
        writer.close()


async def test_40_anonymous_15_mb_connection_inits_are_refused_unread(api: ApiProcess) -> None:
    protocols = [TRANSPORT_WS, LEGACY_WS] * 20
    before = api.rss()
    attack = asyncio.gather(*(raw_oversized_init(api, p, 15 * MB) for p in protocols))
    peak, codes = await peak_rss_while(api, attack)
    assert set(codes) <= {1009, 4400}, codes
    assert peak - before < 50 * MB, (before, peak)
    assert httpx.get(f"{api.url}/healthz").status_code == 200


async def test_after_init_messages_may_be_larger_but_not_past_max_body_bytes(
    api: ApiProcess, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "ann", ["report:read"])
    async with websockets.connect(api.ws_url, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": bearer(token)}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        # 200 KB: past the pre-init limit, within MAX_BODY_BYTES; an unknown job is NOT_FOUND.
        query = "subscription($id: ID!) { jobUpdated(id: $id) { id } }"
        variables = {"id": "00000000-0000-0000-0000-000000000000", "pad": "x" * 200_000}
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "next", reply
        assert reply["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND", reply
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(chunks(2))
        assert await close_code(ws) == 1009


async def test_idle_subscriptions_do_not_keep_unused_variables(
    api: ApiProcess, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "bea", ["report:read"])
    sockets = []

    async def subscribe_idle() -> None:
        for _ in range(3):
            ws = await websockets.connect(api.ws_url, subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
            sockets.append(ws)
            await ws.send(json.dumps({"type": "connection_init", "payload": bearer(token)}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for op in range(10):
                payload = {
                    "query": "subscription { jobsUpdated { id } }",
                    "variables": {"unused": "y" * 900_000},
                }
                await ws.send(json.dumps({"id": str(op), "type": "subscribe", "payload": payload}))
            # Messages are handled in order: the pong comes after all ten subscribes.
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "pong"

    try:
        before = api.rss()
        await subscribe_idle()
        after = api.rss()
        for ws in sockets:  # all 30 are alive and idle: nothing came back
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.05)
    finally:
        for ws in sockets:
            await ws.close()
    # 30 x 900 kB would be 27 MB if each subscription kept its variables.
    assert after - before < 10 * MB, (before, after)
