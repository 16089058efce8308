"""Websocket hardening: init required and timed, tokens re-checked, origins, quotas."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import revoke_token
from app.db import create_session_factory
from tests.builders import issue_token
from tests.conftest import RunningApp, serve_app
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS, bearer

FEED = "subscription { jobsUpdated { id } }"
PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]


async def connect(app: RunningApp, protocol: str, **kwargs: Any) -> Any:
    return await websockets.connect(app.ws_url, subprotocols=[protocol], **kwargs)


async def init(ws: Any, token: str | None) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "connection_init", "payload": bearer(token)}))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reply


async def start(ws: Any, protocol: str, op_id: str, query: str = FEED) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    payload = {"query": query, "variables": {}}
    await ws.send(json.dumps({"id": op_id, "type": kind, "payload": payload}))


async def closed_code(ws: Any) -> int | None:
    """Read until the server closes; the close code it sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_connection_that_never_initialises_is_closed(
    auth_server: RunningApp, protocol: str
) -> None:
    async with await connect(auth_server, protocol) as ws:
        assert await closed_code(ws) == 4408


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscribing_without_init_is_refused(auth_server: RunningApp, protocol: str) -> None:
    async with await connect(auth_server, protocol) as ws:
        await start(ws, protocol, "1")
        assert await closed_code(ws) == 4401


async def test_bad_token_closes_4403_or_sends_connection_error(auth_server: RunningApp) -> None:
    async with await connect(auth_server, TRANSPORT_WS) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": bearer("tf_" + "x" * 30)}))
        assert await closed_code(ws) == 4403
    async with await connect(auth_server, LEGACY_WS) as ws:
        reply = await init(ws, "tf_" + "x" * 30)
        assert reply["type"] == "connection_error"
        assert reply["payload"]["code"] == "UNAUTHENTICATED"
        assert await closed_code(ws) is not None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_token_revoked_mid_connection_is_cut_off(
    auth_server: RunningApp, engine: AsyncEngine, protocol: str
) -> None:
    token = await issue_token(engine, "dora", ["report:run"])
    async with await connect(auth_server, protocol) as ws:
        assert (await init(ws, token))["type"] == "connection_ack"
        await start(ws, protocol, "1")
        await revoke_token(create_session_factory(engine), "dora")
        if protocol == LEGACY_WS:
            # The subscription may be refused on its own first (the revocation raced its
            # start); either way, no job data, then connection_error.
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            while message["type"] != "connection_error":
                assert not (message.get("payload") or {}).get("data"), message
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert await closed_code(ws) == 4403


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_foreign_origin_is_refused_at_the_handshake(
    auth_server: RunningApp, engine: AsyncEngine, protocol: str
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(auth_server, protocol, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    token = await issue_token(engine, "erin", ["report:read"])
    own_origin = auth_server.url
    async with await connect(auth_server, protocol, origin=own_origin) as ws:
        assert (await init(ws, token))["type"] == "connection_ack"


async def test_allowed_origins_setting_admits_a_listed_site(
    auth_settings: Any, engine: AsyncEngine
) -> None:
    settings = auth_settings.model_copy(update={"allowed_origins": "https://app.county.gov"})
    token = await issue_token(engine, "fay", ["report:read"])
    async with serve_app(settings) as app:
        async with await connect(app, TRANSPORT_WS, origin="https://app.county.gov") as ws:
            assert (await init(ws, token))["type"] == "connection_ack"
        with pytest.raises(websockets.InvalidStatus):
            await connect(app, TRANSPORT_WS, origin="https://evil.example")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_too_many_subscriptions_on_one_connection(
    auth_server: RunningApp, engine: AsyncEngine, protocol: str
) -> None:
    token = await issue_token(engine, "gus", ["report:read"])
    async with await connect(auth_server, protocol) as ws:
        assert (await init(ws, token))["type"] == "connection_ack"
        for op_id in ("1", "2", "3", "4"):
            await start(ws, protocol, op_id)
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "error" and message["id"] == "4"
    assert "limit" in json.dumps(message["payload"])
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else [payload]
    assert errors[0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


async def test_too_many_subscriptions_per_token_across_connections(
    auth_server: RunningApp, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "hal", ["report:read"])
    bus = auth_server.app.state.bus
    sockets = []
    try:
        for _ in range(3):
            ws = await connect(auth_server, TRANSPORT_WS)
            sockets.append(ws)
            assert (await init(ws, token))["type"] == "connection_ack"
        for i in range(5):
            await start(sockets[i % 2], TRANSPORT_WS, f"op{i}")
        for _ in range(500):
            if bus.subscriber_count >= 5:
                break
            await asyncio.sleep(0.01)
        assert bus.subscriber_count == 5
        await start(sockets[2], TRANSPORT_WS, "extra")
        message = json.loads(await asyncio.wait_for(sockets[2].recv(), 10))
        assert message["payload"]["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    finally:
        for ws in sockets:
            await ws.close()
