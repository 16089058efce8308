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
