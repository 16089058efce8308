"""A live subscription's events sent straight from the bus are the frames the normal path sends.

Each test runs, side by side on one real server, connections on the live path and
connections on the normal one (`?normal` in their URL: the server offers those no immediate
send, so their operations get no outlet and run exactly the code that ran before the live
path existed), receiving the same real events, and compares the raw frames they get, byte
for byte, in both protocols. The live connections' immediate sends are counted, so each
test also shows which events took the live path.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import websockets

from app.websocket_server import SEND_NOW, BoundedWebSocketProtocol
from jobs.access import Caller
from jobs.lifecycle import Lifecycle
from jobs.registry import KINDS
from jobs.spec import JobKind
from resolvers.shared_events import envelope
from tests.builders import ROLL
from tests.conftest import RunningApp
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS
from tests.test_job_flow import WATCH
from tests.test_shared_subscriptions import counters
from tests.test_subscriptions import wait_for_subscribers

REPORT = KINDS[JobKind.REPORT]
FEED = (
    "subscription($k: JobKind) { jobsUpdated(kind: $k) { id status version progress { percent } } }"
)
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)


@pytest.fixture
def live_sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Immediate sends per live connection (by its client's `?name`); `?normal` connections
    get none offered."""
    sends: Counter[str] = Counter()
    connect = BoundedWebSocketProtocol.handle_connect

    def handle_connect(self: BoundedWebSocketProtocol, event: Any) -> None:
        connect(self, event)
        scope = self.scope
        name = scope["query_string"].decode()
        if name == "normal":
            del scope["extensions"][SEND_NOW]
            return
        send = scope["extensions"][SEND_NOW]["text"]

        def counted(text: str) -> bool:
            sent: bool = send(text)
            sends[name] += sent
            return sent

        scope["extensions"][SEND_NOW] = {"text": counted}

    monkeypatch.setattr(BoundedWebSocketProtocol, "handle_connect", handle_connect)
    yield sends


class RawSubscriber:
    """One websocket whose frames are kept as the server sent them."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.frames: list[str] = []

    async def start(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": op_id, "type": kind, "payload": payload}))

    async def stop(self, op_id: str) -> None:
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.ws.send(json.dumps({"id": op_id, "type": kind}))

    async def until(self, kind: str, op_id: str = "1", count: int = 1) -> None:
        """Read frames until `count` more of `kind` for `op_id` have come."""
        kinds = {"next": ("next", "data"), "complete": ("complete",)}[kind]
        while count:
            text = await asyncio.wait_for(self.ws.recv(), 30)
            self.frames.append(text)
            message = json.loads(text)
            assert message.get("type") not in ("error", "connection_error"), message
            if message.get("type") in kinds and message.get("id") == op_id:
                count -= 1


@asynccontextmanager
async def raw_subscriber(url: str, protocol: str) -> AsyncIterator[RawSubscriber]:
    async with websockets.connect(url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        yield RawSubscriber(ws, protocol)


async def pairs(stack: AsyncExitStack, app: RunningApp) -> dict[str, dict[str, RawSubscriber]]:
    """For each protocol, a connection on the live path and one on the normal path."""
    found: dict[str, dict[str, RawSubscriber]] = {}
    for protocol in PROTOCOLS:
        found[protocol] = {
            path: await stack.enter_async_context(raw_subscriber(f"{app.ws_url}?{name}", protocol))
            for path, name in (("live", live_name(protocol)), ("normal", "normal"))
        }
    return found


def live_name(protocol: str) -> str:
    return f"live{PROTOCOLS.index(protocol)}"


async def submit(app: RunningApp) -> uuid.UUID:
    lifecycle: Lifecycle = app.app.state.lifecycle
    snap = await lifecycle.submit(JobKind.REPORT, ROLL, Caller.of("anonymous", ["admin"]))
    return uuid.UUID(snap["id"])


async def run_job(lifecycle: Lifecycle, job_id: uuid.UUID, ticks: int) -> None:
    """Started, `ticks` progress ticks, completed: each event published as workers do."""
    run = uuid.uuid4()
    await lifecycle.start(REPORT, job_id, run)
    for tick in range(ticks):
        await lifecycle.progress(REPORT, job_id, run, "computing", tick, ticks, 10.0 * tick)
    await lifecycle.complete(REPORT, job_id, run, {"files": []})


async def test_job_updated_frames_are_the_normal_paths_in_both_protocols(
    app_server: RunningApp, county: str, live_sends: Counter[str]
) -> None:
    job_id = await submit(app_server)
    async with AsyncExitStack() as stack:
        subscribers = await pairs(stack, app_server)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.start("1", WATCH, {"id": str(job_id)})
                await sub.until("next")
        await run_job(app_server.app.state.lifecycle, job_id, ticks=3)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.until("complete")
    for protocol, pair in subscribers.items():
        live, normal = pair["live"].frames, pair["normal"].frames
        assert live == normal
        kinds = [json.loads(frame)["type"] for frame in live]
        data = "next" if protocol == TRANSPORT_WS else "data"
        assert kinds == [data] * 6 + ["complete"]  # first state, start, 3 ticks, completed
        statuses = [json.loads(f)["payload"]["data"]["jobUpdated"]["status"] for f in live[:-1]]
        assert statuses == ["PENDING"] + ["RUNNING"] * 4 + ["COMPLETED"]
        # The start and the ticks went out live; the first state and the final one (which
        # completes the subscription) took the normal path.
        assert live_sends[live_name(protocol)] == 4
    assert set(live_sends) == {live_name(p) for p in PROTOCOLS}


async def test_jobs_updated_frames_are_the_normal_paths_in_both_protocols(
    app_server: RunningApp, county: str, live_sends: Counter[str]
) -> None:
    async with AsyncExitStack() as stack:
        subscribers = await pairs(stack, app_server)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.start("feed", FEED, {"k": "REPORT"})
        await wait_for_subscribers(app_server, 4)
        job_id = await submit(app_server)
        await run_job(app_server.app.state.lifecycle, job_id, ticks=2)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.until("next", "feed", count=5)  # submitted, started, 2 ticks, done
    for protocol, pair in subscribers.items():
        assert pair["live"].frames == pair["normal"].frames
        statuses = [
            json.loads(frame)["payload"]["data"]["jobsUpdated"]["status"]
            for frame in pair["live"].frames
        ]
        assert statuses == ["PENDING"] + ["RUNNING"] * 3 + ["COMPLETED"]
        # A feed does not end on a final status: every event but the first went out live
        # (a subscription's executor, which the live path asks, is known from its first).
        assert live_sends[live_name(protocol)] == 4


async def test_an_operation_stopped_by_its_client_gets_nothing_more_on_either_path(
    app_server: RunningApp, county: str, live_sends: Counter[str]
) -> None:
    job_id = await submit(app_server)
    lifecycle: Lifecycle = app_server.app.state.lifecycle
    run = uuid.uuid4()
    async with AsyncExitStack() as stack:
        subscribers = await pairs(stack, app_server)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.start("1", WATCH, {"id": str(job_id)})
                await sub.until("next")
        await lifecycle.start(REPORT, job_id, run)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.until("next")
                await sub.stop("1")
                if sub.protocol == LEGACY_WS:  # the legacy protocol confirms a stop
                    await sub.until("complete")
                # A second operation on the connection: anything more for the first would
                # come before this one's first state and its first change.
                await sub.start("2", WATCH, {"id": str(job_id)})
                await sub.until("next", "2")
        await lifecycle.progress(REPORT, job_id, run, "computing", 1, 2, 50.0)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.until("next", "2")
    for protocol, pair in subscribers.items():
        live, normal = pair["live"].frames, pair["normal"].frames
        assert live == normal
        ids = [json.loads(frame)["id"] for frame in live]
        expected = ["1", "1", "1", "2", "2"] if protocol == LEGACY_WS else ["1", "1", "2", "2"]
        assert ids == expected
        assert live_sends[live_name(protocol)] == 2  # the start for "1", the tick for "2"


async def test_a_live_event_whose_execution_fails_goes_the_normal_way(
    app_server: RunningApp, county: str, live_sends: Counter[str]
) -> None:
    """An event the selection cannot be executed on: each subscriber gets its own errors,
    as before, and the event costs one execution per subscriber, as before (the one the
    live path ran is the spare a normal path takes)."""
    job_id = await submit(app_server)
    lifecycle: Lifecycle = app_server.app.state.lifecycle
    async with AsyncExitStack() as stack:
        subscribers = await pairs(stack, app_server)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.start("1", WATCH, {"id": str(job_id)})
                await sub.until("next")
        first = json.loads(subscribers[TRANSPORT_WS]["live"].frames[0])["payload"]["data"]
        snap = await lifecycle.get(job_id, JobKind.REPORT)
        assert snap is not None and first["jobUpdated"]["version"] == snap["version"]
        before = await counters(app_server)
        broken = {**snap, "version": snap["version"] + 1, "progress": {"percent": "a lot"}}
        await lifecycle.publish(broken, logged=False)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.until("next")
        after = await counters(app_server)
    assert (after[0] - before[0], after[1] - before[1]) == (4, 4)  # executions, results
    for protocol, pair in subscribers.items():
        live, normal = pair["live"].frames, pair["normal"].frames
        assert live == normal
        errors = json.loads(live[-1])["payload"]["errors"]
        assert [error["path"] for error in errors] == [["jobUpdated", "progress", "percent"]]
        assert live_sends[live_name(protocol)] == 0


async def test_the_immediate_send_writes_only_when_uvicorns_send_would_not_wait(
    monkeypatch: pytest.MonkeyPatch, app_server: RunningApp
) -> None:
    """Pins the uvicorn internals app.websocket_server reads: the send that does not wait
    writes what the client reads as one message, and writes nothing on a paused or a closed
    connection."""
    protocols: list[BoundedWebSocketProtocol] = []
    connect = BoundedWebSocketProtocol.handle_connect

    def handle_connect(self: BoundedWebSocketProtocol, event: Any) -> None:
        protocols.append(self)
        connect(self, event)

    monkeypatch.setattr(BoundedWebSocketProtocol, "handle_connect", handle_connect)
    async with raw_subscriber(app_server.ws_url, TRANSPORT_WS) as sub:
        (server,) = protocols
        server.pause_writing()
        assert server.send_text_now('{"type":"ping"}') is False
        server.resume_writing()
        assert server.send_text_now('{"type":"ping","payload":{"é":1}}') is True
        assert await asyncio.wait_for(sub.ws.recv(), 10) == '{"type":"ping","payload":{"é":1}}'
    await wait_for_subscribers_gone(server)
    assert server.send_text_now('{"type":"ping"}') is False


async def wait_for_subscribers_gone(server: BoundedWebSocketProtocol) -> None:
    for _ in range(500):
        if server.disconnected or server.close_sent:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never saw the connection close")


def test_an_envelope_is_the_message_as_strawberry_encodes_it() -> None:
    payload = {"data": {"jobUpdated": {"id": "x", "name": 'a "quoted" é\n'}}}
    for message in (
        {"id": 'op "7" é', "type": "next", "payload": payload},
        {"type": "data", "id": "op-1", "payload": payload},
        {"payload": payload, "id": "last"},
    ):
        before, after = envelope({**message, "payload": None})
        text = json.dumps(payload, separators=(",", ":"))
        assert before + text + after == json.dumps(message, separators=(",", ":"))


async def test_a_malformed_event_ends_the_subscription_as_it_always_did(
    app_server: RunningApp, county: str, live_sends: Counter[str]
) -> None:
    """An event without a version: the reader meets it as before, on both paths alike,
    and the bus goes on for everyone else."""
    job_id = await submit(app_server)
    lifecycle: Lifecycle = app_server.app.state.lifecycle
    async with AsyncExitStack() as stack:
        subscribers = await pairs(stack, app_server)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.start("1", WATCH, {"id": str(job_id)})
                await sub.until("next")
        snap = await lifecycle.get(job_id, JobKind.REPORT)
        assert snap is not None
        await lifecycle.publish({"id": str(job_id), "change_seq": snap["change_seq"]}, logged=False)
        for pair in subscribers.values():
            for sub in pair.values():
                await sub.until("complete")
        watcher = await stack.enter_async_context(
            raw_subscriber(f"{app_server.ws_url}?watcher", LEGACY_WS)
        )
        await watcher.start("after", WATCH, {"id": str(job_id)})
        await watcher.until("next", "after")
        await lifecycle.start(REPORT, job_id, uuid.uuid4())
        await watcher.until("next", "after")
    for protocol, pair in subscribers.items():
        live, normal = (blank_references(pair[path].frames) for path in ("live", "normal"))
        assert live == normal
        ended = json.loads(live[1])
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert json.loads(live[2])["type"] == "complete" and len(live) == 3
        assert live_sends[live_name(protocol)] == 0
    assert len(watcher.frames) == 2 and live_sends["watcher"] == 1


def blank_references(frames: list[str]) -> list[str]:
    """The frames with each internal error's reference (its own for every error) blanked."""
    return [re.sub(r"\b[0-9a-f]{12}\b", "<reference>", frame) for frame in frames]
