"""Shared visibility in the change log: polling (changedAfter) and the feed's replay
(jobsUpdated(after:)) show a TEAM job to the owner's team and to nobody else; a teammate
that sees it may still not cancel it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.access import Caller
from jobs.changes import encode_cursor
from jobs.spec import JobKind
from tests.builders import issue_token
from tests.conftest import RunningApp
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS, bearer, gql, subscribe

ROLL = {"report_type": "assessment_roll", "county_id": "TESTCO"}
POLL = """query($after: String!) { jobs(changedAfter: $after) {
  edges { node { id visibility } } } }"""
REPLAY = "subscription($after: String!) { jobsUpdated(after: $after) { id visibility } }"


async def polled(app: RunningApp, token: str, after: str) -> list[str]:
    body = await gql(app.url, POLL, {"after": after}, **bearer(token))
    assert "errors" not in body, body
    return [edge["node"]["id"] for edge in body["data"]["jobs"]["edges"]]


async def first_replayed(app: RunningApp, token: str, after: str, protocol: str) -> str:
    async with subscribe(
        app.ws_url, REPLAY, {"after": after}, protocol=protocol, init_payload=bearer(token)
    ) as sub:
        message = await sub.next(timeout=20)
    assert message is not None and "errors" not in message, message
    return str(message["data"]["jobsUpdated"]["id"])


async def test_team_job_reaches_the_team_only_in_polls_and_replays(
    auth_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    tokens = {
        name: await issue_token(engine, name, ["report:run"], team=team)
        for name, team in (("ann", "north"), ("ned", "north"), ("sue", "south"))
    }
    lifecycle = auth_server.app.state.lifecycle
    ann = Caller.of("ann", ["report:run"], team="north")
    sue = Caller.of("sue", ["report:run"], team="south")
    start = await lifecycle.submit(JobKind.REPORT, ROLL, Caller.of("root", ["admin"]))
    after = encode_cursor(int(start["change_seq"]))
    shared = await lifecycle.submit(JobKind.REPORT, {**ROLL, "visibility": "TEAM"}, ann)
    own = await lifecycle.submit(JobKind.REPORT, ROLL, sue)

    assert await polled(auth_server, tokens["ned"], after) == [shared["id"]]
    assert await polled(auth_server, tokens["sue"], after) == [own["id"]]
    assert await polled(auth_server, tokens["ann"], after) == [shared["id"]]
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        assert await first_replayed(auth_server, tokens["ned"], after, protocol) == shared["id"]
        assert await first_replayed(auth_server, tokens["sue"], after, protocol) == own["id"]

    body: dict[str, Any] = await gql(
        auth_server.url,
        "mutation($id: ID!) { cancelJob(id: $id) { id } }",
        {"id": shared["id"]},
        **bearer(tokens["ned"]),
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "only they or an admin" in body["errors"][0]["message"]
    still = await lifecycle.get(uuid.UUID(shared["id"]))
    assert still is not None and still["status"] == "PENDING"
