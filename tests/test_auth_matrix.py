"""Every operation by every kind of caller: allowed or refused, with the contract's codes.

Roles: no token, a malformed-looking unknown token, a revoked token, a token for another
kind (market analysis only), another user with the same permissions as the owner, the owner
of the job under test, and admin. Operations: every query, mutation and subscription (both
websocket protocols) and the result-file download.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from jobs.access import ADMIN, Caller, all_permissions, permission
from jobs.registry import KINDS
from jobs.spec import JobKind
from tests.builders import finished_report, issue_token
from tests.conftest import RunningApp
from tests.graphql_client import LEGACY_WS, TRANSPORT_WS, bearer, gql, http_subscribe

ROLL = {"report_type": "assessment_roll", "county_id": "TESTCO"}
TEAM = "assessors"
ALICE = Caller.of("alice", ["report:run"], team=TEAM)
ROLES = ("none", "bad", "revoked", "wrong_kind", "other_user", "teammate", "owner", "admin")
UNAUTH = {"none": "UNAUTHENTICATED", "bad": "UNAUTHENTICATED", "revoked": "UNAUTHENTICATED"}


def expect(**cells: str) -> dict[str, str]:
    """Expected outcome per role; the three token-less roles are UNAUTHENTICATED throughout.
    On a PRIVATE job a teammate is anyone else: `teammate` defaults to `other_user`."""
    if "other_user" in cells:
        cells.setdefault("teammate", cells["other_user"])
    return {**UNAUTH, **cells}


async def make_tokens(engine: AsyncEngine) -> dict[str, str | None]:
    return {
        "none": None,
        "bad": "tf_" + secrets.token_urlsafe(32),
        "revoked": await issue_token(engine, "revoked", ["admin"], revoked=True),
        "wrong_kind": await issue_token(engine, "carol", ["market_analysis:run"]),
        "other_user": await issue_token(engine, "bob", ["report:run"], team="appraisers"),
        "teammate": await issue_token(engine, "dave", ["report:run"], team=TEAM),
        "owner": await issue_token(engine, "alice", ["report:run"], team=TEAM),
        "admin": await issue_token(engine, "root", ["admin"]),
    }


def outcome(body: dict[str, Any], field: str) -> str:
    """`data`, `null`, or the error code of a GraphQL response."""
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    return "data" if body["data"][field] is not None else "null"


class Fixture:
    """The app, the tokens, and alice's jobs the operations act on."""

    def __init__(self, app: RunningApp, settings: Settings, tokens: dict[str, str | None]):
        self.app = app
        self.settings = settings
        self.tokens = tokens
        self.lifecycle = app.app.state.lifecycle
        self.job_id = ""
        self.visibility = "PRIVATE"

    async def alice_job(self, *, cancelled: bool = False) -> str:
        raw = {**ROLL, "visibility": self.visibility}
        snap = await self.lifecycle.submit(JobKind.REPORT, raw, ALICE)
        if cancelled:
            await self.lifecycle.cancel(uuid.UUID(snap["id"]), ALICE)
        return str(snap["id"])

    async def completed_alice_job(self) -> str:
        """A finished job with one result file, as a worker would leave it."""
        files = {"roll.csv": ("text/csv", "parcel_id,value\nP1,100\n")}
        return await finished_report(
            self.lifecycle, self.settings.resolved_results_dir, ALICE, files, self.visibility
        )

    async def query(self, role: str, query: str, field: str, **variables: Any) -> str:
        body = await gql(self.app.url, query, variables, **bearer(self.tokens[role]))
        return outcome(body, field)

    async def jobs_listing(self, role: str, kind: str | None, owner: str | None = None) -> str:
        filters = [f"kind: {kind}"] * bool(kind) + [f'owner: "{owner}"'] * bool(owner)
        args = f"({', '.join(filters)})" if filters else ""
        body = await gql(
            self.app.url,
            f"{{ jobs{args} {{ edges {{ node {{ id }} }} }} }}",
            None,
            **bearer(self.tokens[role]),
        )
        if body.get("errors"):
            return str(body["errors"][0]["extensions"]["code"])
        ids = {e["node"]["id"] for e in body["data"]["jobs"]["edges"]}
        return "visible" if self.job_id in ids else "hidden"

    async def download(self, role: str) -> str:
        async with httpx.AsyncClient(base_url=self.app.url) as client:
            response = await client.get(
                f"/results/{self.job_id}/roll.csv", headers=bearer(self.tokens[role])
            )
        return str(response.status_code)

    async def ws_first(
        self, role: str, protocol: str, query: str, variables: dict[str, Any]
    ) -> str:
        """The first thing a subscription yields: `data`, an error code, or the refusal."""
        async with websockets.connect(self.app.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps({"type": "connection_init", "payload": bearer(self.tokens[role])})
            )
            try:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"
            if reply["type"] == "connection_error":
                return "connection_error"
            assert reply["type"] == "connection_ack", reply
            start = "subscribe" if protocol == TRANSPORT_WS else "start"
            payload = {"query": query, "variables": variables}
            await ws.send(json.dumps({"id": "1", "type": start, "payload": payload}))
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return ws_outcome(message)

    async def http_first(self, role: str, query: str, variables: dict[str, Any]) -> str:
        """The first result of a subscription over multipart HTTP: `data` or an error code."""
        headers = bearer(self.tokens[role])
        async with http_subscribe(self.app.url, query, variables, **headers) as sub:
            payload = await sub.next(timeout=10)
        assert payload is not None
        return outcome(payload, "jobUpdated")

    async def feed_sees_alice(self, role: str) -> str:
        """Subscribe to the feed, then alice's job changes, then the role's own job does:
        the first event says whether alice's change reached this caller."""
        query = "subscription { jobsUpdated { id kind } }"
        async with websockets.connect(self.app.ws_url, subprotocols=[TRANSPORT_WS]) as ws:  # type: ignore[list-item]
            init = {"type": "connection_init", "payload": bearer(self.tokens[role])}
            await ws.send(json.dumps(init))
            try:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"
            assert reply["type"] == "connection_ack", reply
            before = self.app.app.state.bus.subscriber_count
            payload = {"query": query, "variables": {}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            for _ in range(500):
                if self.app.app.state.bus.subscriber_count > before:
                    break
                await asyncio.sleep(0.01)
            alice = await self.alice_job()
            kind = JobKind.MARKET_ANALYSIS if role == "wrong_kind" else JobKind.REPORT
            raw = ROLL if kind is JobKind.REPORT else {"analysis_type": "price_trend"}
            name = {"wrong_kind": "carol", "other_user": "bob", "teammate": "dave"}.get(
                role, "root"
            )
            own = Caller.of(
                name,
                ["admin"] if name == "root" else [f"{KINDS[kind].metric_prefix}:run"],
                team=TEAM if role == "teammate" else None,
            )
            await self.lifecycle.submit(kind, {**raw, "county_id": "TESTCO"}, own)
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if ws_outcome(message) != "data":
                return ws_outcome(message)
            return (
                "sees" if message["payload"]["data"]["jobsUpdated"]["id"] == alice else "filtered"
            )


def ws_outcome(message: dict[str, Any]) -> str:
    if message["type"] == "error":
        errors = message["payload"]
        errors = errors if isinstance(errors, list) else [errors]
        return str(errors[0].get("extensions", {}).get("code", "error"))
    errors = message["payload"].get("errors")
    if errors:
        return str(errors[0]["extensions"]["code"])
    return "data"


WATCH = "subscription ($id: ID!) { jobUpdated(id: $id) { id status } }"
REFUSED_TRANSPORT = {"none": "closed 4403", "bad": "closed 4403", "revoked": "closed 4403"}
REFUSED_LEGACY = dict.fromkeys(("none", "bad", "revoked"), "connection_error")

Operation = Callable[[Fixture, str], Awaitable[str]]


async def _cancel(f: Fixture, role: str) -> str:
    return await f.query(
        role,
        "mutation ($id: ID!) { cancelJob(id: $id) { id } }",
        "cancelJob",
        id=await f.alice_job(),
    )


async def _retry(f: Fixture, role: str) -> str:
    return await f.query(
        role,
        "mutation ($id: ID!) { retryJob(id: $id) { id } }",
        "retryJob",
        id=await f.alice_job(cancelled=True),
    )


MATRIX: list[tuple[str, Operation, dict[str, str]]] = [
    (
        "job(id)",
        lambda f, r: f.query(r, "query ($id: ID!) { job(id: $id) { id } }", "job", id=f.job_id),
        expect(wrong_kind="null", other_user="null", owner="data", admin="data"),
    ),
    (
        "node(id)",
        lambda f, r: f.query(r, "query ($id: ID!) { node(id: $id) { id } }", "node", id=f.job_id),
        expect(wrong_kind="null", other_user="null", owner="data", admin="data"),
    ),
    (
        "reportJob(id)",
        lambda f, r: f.query(
            r, "query ($id: ID!) { reportJob(id: $id) { id } }", "reportJob", id=f.job_id
        ),
        expect(wrong_kind="FORBIDDEN", other_user="null", owner="data", admin="data"),
    ),
    (
        "marketAnalysisJob(id)",
        lambda f, r: f.query(
            r,
            "query ($id: ID!) { marketAnalysisJob(id: $id) { id } }",
            "marketAnalysisJob",
            id=f.job_id,
        ),
        expect(wrong_kind="null", other_user="FORBIDDEN", owner="FORBIDDEN", admin="null"),
    ),
    (
        "jobs",
        lambda f, r: f.jobs_listing(r, None),
        expect(wrong_kind="hidden", other_user="hidden", owner="visible", admin="visible"),
    ),
    (
        "jobs(kind: REPORT)",
        lambda f, r: f.jobs_listing(r, "REPORT"),
        expect(wrong_kind="FORBIDDEN", other_user="hidden", owner="visible", admin="visible"),
    ),
    (
        "jobs(owner: alice)",
        lambda f, r: f.jobs_listing(r, None, owner="alice"),
        expect(wrong_kind="FORBIDDEN", other_user="FORBIDDEN", owner="visible", admin="visible"),
    ),
    (
        "counties",
        lambda f, r: f.query(r, "{ counties { countyId } }", "counties"),
        expect(wrong_kind="data", other_user="data", owner="data", admin="data"),
    ),
    (
        "runReport",
        lambda f, r: f.query(
            r,
            "mutation ($i: RunReportInput!) { runReport(input: $i) { id } }",
            "runReport",
            i={"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"},
        ),
        expect(wrong_kind="FORBIDDEN", other_user="data", owner="data", admin="data"),
    ),
    (
        "runMarketAnalysis",
        lambda f, r: f.query(
            r,
            "mutation ($i: RunMarketAnalysisInput!) { runMarketAnalysis(input: $i) { id } }",
            "runMarketAnalysis",
            i={"analysisType": "PRICE_TREND", "countyId": "TESTCO"},
        ),
        expect(wrong_kind="data", other_user="FORBIDDEN", owner="FORBIDDEN", admin="data"),
    ),
    (
        "runGisExport",
        lambda f, r: f.query(
            r,
            "mutation ($i: RunGisExportInput!) { runGisExport(input: $i) { id } }",
            "runGisExport",
            i={"exportFormat": "GEOJSON", "countyId": "TESTCO", "layers": ["PARCELS"]},
        ),
        expect(wrong_kind="FORBIDDEN", other_user="FORBIDDEN", owner="FORBIDDEN", admin="data"),
    ),
    (
        "runValuation",
        lambda f, r: f.query(
            r,
            "mutation ($i: RunValuationInput!) { runValuation(input: $i) { id } }",
            "runValuation",
            i={"countyId": "TESTCO"},
        ),
        expect(wrong_kind="FORBIDDEN", other_user="FORBIDDEN", owner="FORBIDDEN", admin="data"),
    ),
    (
        "cancelJob",
        _cancel,
        expect(wrong_kind="NOT_FOUND", other_user="NOT_FOUND", owner="data", admin="data"),
    ),
    (
        "retryJob",
        _retry,
        expect(wrong_kind="NOT_FOUND", other_user="NOT_FOUND", owner="data", admin="data"),
    ),
    (
        "jobUpdated (graphql-transport-ws)",
        lambda f, r: f.ws_first(r, TRANSPORT_WS, WATCH, {"id": f.job_id}),
        {
            **REFUSED_TRANSPORT,
            "wrong_kind": "NOT_FOUND",
            "other_user": "NOT_FOUND",
            "teammate": "NOT_FOUND",
            "owner": "data",
            "admin": "data",
        },
    ),
    (
        "jobUpdated (graphql-ws)",
        lambda f, r: f.ws_first(r, LEGACY_WS, WATCH, {"id": f.job_id}),
        {
            **REFUSED_LEGACY,
            "wrong_kind": "NOT_FOUND",
            "other_user": "NOT_FOUND",
            "teammate": "NOT_FOUND",
            "owner": "data",
            "admin": "data",
        },
    ),
    (
        "jobUpdated (multipart HTTP)",
        lambda f, r: f.http_first(r, WATCH, {"id": f.job_id}),
        expect(wrong_kind="NOT_FOUND", other_user="NOT_FOUND", owner="data", admin="data"),
    ),
    (
        "jobsUpdated(kind: REPORT) (graphql-ws)",
        lambda f, r: f.ws_first(
            r, LEGACY_WS, "subscription { jobsUpdated(kind: REPORT) { id } }", {}
        ),
        # Allowed feeds wait for changes; their first message is checked by the next row.
        {**REFUSED_LEGACY, "wrong_kind": "FORBIDDEN"},
    ),
    (
        "jobsUpdated feed (graphql-transport-ws)",
        Fixture.feed_sees_alice,
        {
            **REFUSED_TRANSPORT,
            "wrong_kind": "filtered",
            "other_user": "filtered",
            "teammate": "filtered",
            "owner": "sees",
            "admin": "sees",
        },
    ),
    (
        "GET /results/{id}/{name}",
        Fixture.download,
        {
            **dict.fromkeys(("none", "bad", "revoked"), "401"),
            "wrong_kind": "404",
            "other_user": "404",
            "teammate": "404",
            "owner": "200",
            "admin": "200",
        },
    ),
]


SHARED = {
    "job(id)": "data",
    "node(id)": "data",
    "reportJob(id)": "data",
    "jobs": "visible",
    "jobs(kind: REPORT)": "visible",
    "cancelJob": "FORBIDDEN",
    "retryJob": "FORBIDDEN",
    "jobUpdated (graphql-transport-ws)": "data",
    "jobUpdated (graphql-ws)": "data",
    "jobUpdated (multipart HTTP)": "data",
    "jobsUpdated feed (graphql-transport-ws)": "sees",
    "GET /results/{id}/{name}": "200",
}
"""What a caller that sees alice's shared job, but does not own it, gets: it reads, lists,
watches and downloads it, and may not cancel or retry it."""
SHARED_WITH = {"PRIVATE": (), "TEAM": ("teammate",), "COUNTY": ("teammate", "other_user")}
"""Who sees alice's job besides alice and admin: her team for TEAM (not bob, another team's,
nor carol, who may not read reports), everyone who may read reports for COUNTY."""


@pytest.mark.parametrize("visibility", list(SHARED_WITH))
async def test_role_operation_matrix(
    auth_server: RunningApp,
    auth_settings: Settings,
    engine: AsyncEngine,
    county: str,
    visibility: str,
) -> None:
    fixture = Fixture(auth_server, auth_settings, await make_tokens(engine))
    fixture.visibility = visibility
    fixture.job_id = await fixture.completed_alice_job()
    results: dict[tuple[str, str], tuple[str, str]] = {}
    for name, operation, cells in MATRIX:
        expected = {**cells}
        for role in SHARED_WITH[visibility]:
            if name in SHARED:
                expected[role] = SHARED[name]
        for role in ROLES:
            if role not in expected:
                continue
            results[(name, role)] = (await operation(fixture, role), expected[role])
    wrong = {cell: got for cell, got in results.items() if got[0] != got[1]}
    print(f"\nauthorization matrix: {len(results)} cells checked, {len(wrong)} wrong")
    assert not wrong, wrong
    assert len(results) >= 100


def test_a_callers_kinds_follow_its_permissions() -> None:
    """`<kind>:run` implies `<kind>:read`; admin may do everything; nothing else grants."""
    every = all_permissions()
    for n in range(2 ** len(every)):
        held = [p for i, p in enumerate(every) if n >> i & 1]
        caller = Caller.of("someone", held)
        for kind in JobKind:
            run = ADMIN in held or permission(kind, "run") in held
            read = run or permission(kind, "read") in held
            assert caller.can(kind, "run") is run, (held, kind)
            assert caller.can(kind, "read") is read, (held, kind)
        assert caller.readable_kinds() == [k for k in KINDS if caller.can(k, "read")]
