"""Subscribers alike share one execution per event; subscribers unlike do not.

Observed through a real server: real websocket clients of both protocols, real job
transitions published by the lifecycle, and the server's own /metrics counters of
executions and results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_session_factory
from jobs.access import Caller
from jobs.batched_reads import BatchedReads
from jobs.lifecycle import Lifecycle
from jobs.registry import KINDS
from jobs.spec import JobKind
from resolvers.shared_events import SharedEvents
from tests.builders import ROLL, issue_token
from tests.conftest import RunningApp
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS, bearer, subscribe
from tests.test_job_flow import WATCH
from tests.test_subscriptions import wait_for_subscribers

FEED = "subscription($k: JobKind) { jobsUpdated(kind: $k) { id status version } }"
REPORT = KINDS[JobKind.REPORT]


async def counters(app: RunningApp) -> tuple[float, float]:
    """(executions, results) of subscription events, as the server's /metrics says."""
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
        text = (await client.get("/metrics")).text
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return (
        found["graphql_subscription_executions_total"],
        found["graphql_subscription_results_total"],
    )


async def submit(app: RunningApp, caller: Caller, visibility: str = "PRIVATE") -> uuid.UUID:
    lifecycle: Lifecycle = app.app.state.lifecycle
    snap = await lifecycle.submit(JobKind.REPORT, {**ROLL, "visibility": visibility}, caller)
    return uuid.UUID(snap["id"])


async def test_forty_watchers_of_one_job_share_one_execution_per_event(
    app_server: RunningApp, county: str
) -> None:
    job_id = await submit(app_server, Caller.of("anonymous", ["admin"]))
    lifecycle: Lifecycle = app_server.app.state.lifecycle
    protocols = [TRANSPORT_WS, LEGACY_WS] * 20
    async with contextlib.AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(
                subscribe(app_server.ws_url, WATCH, {"id": str(job_id)}, protocol=protocol)
            )
            for protocol in protocols
        ]
        firsts = await asyncio.gather(*(s.next() for s in subs))
        assert {f["data"]["jobUpdated"]["status"] for f in firsts} == {"PENDING"}  # type: ignore[index]

        run = uuid.uuid4()
        before = await counters(app_server)
        await lifecycle.start(REPORT, job_id, run)
        running = await asyncio.gather(*(s.next() for s in subs))
        after = await counters(app_server)
        assert after[0] - before[0] == 1  # one execution ...
        assert after[1] - before[1] == 40  # ... for forty subscribers
        assert all(r == running[0] for r in running)
        assert running[0]["data"]["jobUpdated"]["status"] == "RUNNING"  # type: ignore[index]

        files = [{"name": "roll.csv", "url": f"/results/{job_id}/roll.csv"}]
        listed = [{**f, "content_type": "text/csv", "size_bytes": 3} for f in files]
        await lifecycle.complete(REPORT, job_id, run, {"files": listed})
        finals = await asyncio.gather(*(s.collect() for s in subs))
        done = await counters(app_server)
    assert done[0] - after[0] == 1 and done[1] - after[1] == 40
    assert all(len(events) == 1 and events == finals[0] for events in finals)
    final = finals[0][0]["data"]["jobUpdated"]
    assert final["status"] == "COMPLETED"
    # The file link is the server's own absolute, signed one, as without sharing.
    url = final["result"]["files"][0]["url"]
    assert url.startswith(app_server.url + f"/results/{job_id}/roll.csv?expires=")


async def test_subscribers_unlike_in_visibility_or_variables_do_not_share(
    auth_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    ann, bob = Caller.of("ann", ["report:run"], "north"), Caller.of("bob", ["report:run"], "north")
    tokens = {
        name: await issue_token(engine, name, permissions, team=team)
        for name, permissions, team in [
            ("ann", ["report:run"], "north"),
            ("bob", ["report:run"], "north"),
            ("root1", ["admin"], None),
            ("root2", ["admin"], None),
        ]
    }
    assert ann.visibility_key != bob.visibility_key
    job_id = await submit(auth_server, ann, visibility="TEAM")
    subscribers: list[tuple[str, dict[str, Any]]] = [
        ("root1", {"k": "REPORT"}),
        ("root2", {"k": "REPORT"}),  # another admin, same variables: shares root1's
        ("root1", {}),  # other variables
        ("ann", {"k": "REPORT"}),  # other visibility
        ("bob", {"k": "REPORT"}),  # the same team, but bob is not ann
    ]
    async with contextlib.AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(
                subscribe(auth_server.ws_url, FEED, variables, init_payload=bearer(tokens[name]))
            )
            for name, variables in subscribers
        ]
        await wait_for_subscribers(auth_server, len(subs))
        before = await counters(auth_server)
        await auth_server.app.state.lifecycle.start(REPORT, job_id, uuid.uuid4())
        events = await asyncio.gather(*(s.next() for s in subs))
        after = await counters(auth_server)
    assert {e["data"]["jobsUpdated"]["status"] for e in events} == {"RUNNING"}  # type: ignore[index]
    assert after[1] - before[1] == 5
    assert after[0] - before[0] == 4  # five subscribers, four distinct execution keys


async def test_subscribers_arriving_together_cost_one_read(
    engine: AsyncEngine, county: str, app_server: RunningApp
) -> None:
    job_id = await submit(app_server, Caller.of("ann", ["report:run"]))
    reads = BatchedReads(create_session_factory(engine))
    ann, eve = Caller.of("ann", ["report:read"]), Caller.of("eve", ["report:read"])
    found = await asyncio.gather(*(reads.get(job_id, caller=ann) for _ in range(50)))
    assert reads.reads == 1
    assert all(snap is found[0] for snap in found)  # one snapshot, shared by all of them
    assert found[0] is not None and found[0]["id"] == str(job_id)
    # Per caller: the private job of ann is nobody else's; an unknown id is nobody's.
    other = await asyncio.gather(reads.get(job_id, caller=eve), reads.get(uuid.uuid4(), caller=ann))
    assert other == [None, None] and reads.reads == 2


def test_a_shared_result_is_sent_as_the_json_strawberry_would_write() -> None:
    from graphql import ExecutionResult
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    executions, results = (Counter(n, n, registry=registry) for n in ("e", "r"))
    shared = SharedEvents(executions, results)
    data = {"jobUpdated": {"id": "x", "status": "RUNNING", "name": 'a "quoted" é'}}
    result = ExecutionResult(data=data)
    event = shared.of({"id": "x"})
    shared.keep(event, ("key",), result)
    for message in (
        {"id": "7", "type": "next", "payload": {"data": data}},
        {"type": "data", "id": "op-1", "payload": {"data": data}},
    ):
        assert shared.message_text(message) == json.dumps(message, separators=(",", ":"))
    # Not a shared result, or not only data: encoded as usual.
    assert shared.message_text({"id": "7", "type": "next", "payload": {"data": dict(data)}}) is None
    with_errors = {"data": data, "errors": [{"message": "no"}]}
    assert shared.message_text({"id": "7", "type": "next", "payload": with_errors}) is None
