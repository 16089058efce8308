"""GraphQL over real HTTP and real websockets, speaking both subscription protocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


async def gql(
    base_url: str, query: str, variables: dict[str, Any] | None = None, **headers: str
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str | None) -> dict[str, str]:
    """The HTTP headers, or the `connection_init` payload, that carry `token`."""
    return {"Authorization": f"Bearer {token}"} if token else {}


async def gql_data(base_url: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = await gql(base_url, query, variables)
    assert "errors" not in body, body
    return body["data"]


class WsSubscription:
    """One subscription on its own websocket; `next()` returns payloads, None when complete."""

    def __init__(self, ws: Any, protocol: str, op_id: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.op_id = op_id

    async def next(self, timeout: float = 30) -> dict[str, Any] | None:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            kind = message.get("type")
            if kind in ("ka", "ping", "pong"):
                if kind == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                continue
            if kind in ("next", "data"):
                payload: dict[str, Any] = message["payload"]
                return payload
            if kind == "complete":
                return None
            if kind == "error":
                raise AssertionError(f"subscription error: {message}")
            raise AssertionError(f"unexpected message: {message}")

    async def collect(self, timeout: float = 60) -> list[dict[str, Any]]:
        """Every payload until the server completes the subscription."""
        payloads = []
        while (payload := await self.next(timeout)) is not None:
            payloads.append(payload)
        return payloads


@asynccontextmanager
async def subscribe(
    ws_url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    protocol: str = TRANSPORT_WS,
    init_payload: dict[str, Any] | None = None,
) -> AsyncIterator[WsSubscription]:
    async with websockets.connect(ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": init_payload or {}}))
        while True:
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if ack["type"] == "connection_ack":
                break
            assert ack["type"] == "ka", ack
        start = "subscribe" if protocol == TRANSPORT_WS else "start"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": start,
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )
        yield WsSubscription(ws, protocol, "1")


MULTIPART_ACCEPT = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'
"""The `Accept` header Apollo Client sends for a subscription over HTTP."""
BOUNDARY = b"\r\n--graphql"


class MultipartSubscription:
    """One subscription read from a `multipart/mixed` HTTP response, part by part."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_bytes()
        self._buffer = b""
        self.heartbeats = 0

    async def part(self, timeout: float = 30) -> dict[str, Any] | None:
        """The next part (heartbeats counted, not returned); None after the closing boundary.

        `timeout` bounds the wait for it, heartbeats or not.
        """
        async with asyncio.timeout(timeout):
            return await self._part()

    async def _part(self) -> dict[str, Any] | None:
        while True:
            end = self._buffer.find(BOUNDARY)
            if end >= 0:
                message, self._buffer = self._buffer[:end], self._buffer[end + len(BOUNDARY) :]
                head, _, body = message.partition(b"\r\n\r\n")
                if not body.strip():
                    continue
                assert b"content-type: application/json" in head.lower(), head
                part: dict[str, Any] = json.loads(body)
                if part == {}:
                    self.heartbeats += 1
                    continue
                return part
            if self._buffer.startswith(b"--"):
                return None
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                raise AssertionError(f"no closing boundary: {self._buffer!r}") from None

    async def next(self, timeout: float = 30) -> dict[str, Any] | None:
        """The next execution result (`{data, errors}`); None when the server completes."""
        part = await self.part(timeout)
        if part is None:
            return None
        assert part.get("payload") is not None, f"transport error: {part}"
        payload: dict[str, Any] = part["payload"]
        return payload

    async def collect(self, timeout: float = 60) -> list[dict[str, Any]]:
        payloads = []
        while (payload := await self.next(timeout)) is not None:
            payloads.append(payload)
        return payloads

    async def ended(self, timeout: float = 10) -> bool:
        """Whether the server ends the HTTP response after the closing boundary."""

        async def rest() -> bytes:
            return b"".join([chunk async for chunk in self._chunks])

        tail = self._buffer + await asyncio.wait_for(rest(), timeout)
        return tail.strip(b"-\r\n") == b""


@asynccontextmanager
async def http_subscribe(
    base_url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    method: str = "POST",
    **headers: str,
) -> AsyncIterator[MultipartSubscription]:
    """A subscription over Apollo's multipart HTTP protocol, as Apollo Client sends it
    (POST), or with the operation in the URL (GET)."""
    operation = {"query": query, "variables": json.dumps(variables or {})}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream(
            method,
            "/graphql",
            json={"query": query, "variables": variables or {}} if method == "POST" else None,
            params=operation if method == "GET" else None,
            headers={"Accept": MULTIPART_ACCEPT, **headers},
        ) as response,
    ):
        assert response.status_code == 200, response.status_code
        content_type = response.headers["content-type"]
        assert content_type.startswith("multipart/mixed;boundary=graphql"), content_type
        yield MultipartSubscription(response)
