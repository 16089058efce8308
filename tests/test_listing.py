"""`jobs` ordering, filters and cursors, and Relay's `node(id:)`, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from jobs.access import Caller
from jobs.spec import JobKind
from tests.conftest import RunningApp
from tests.graphql_client import gql, gql_data
from tests.test_auth_matrix import ROLL

PAGE = """query($first: Int, $after: String, $orderBy: JobOrder, $createdAfter: DateTime,
                 $createdBefore: DateTime, $owner: String) {
  jobs(first: $first, after: $after, orderBy: $orderBy, createdAfter: $createdAfter,
       createdBefore: $createdBefore, owner: $owner) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status createdAt } }
  }
}"""


async def page(app: RunningApp, **variables: Any) -> dict[str, Any]:
    data = await gql_data(app.url, PAGE, variables)
    return dict(data["jobs"])


def ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def all_pages(app: RunningApp, order: dict[str, str]) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        connection = await page(app, first=1, after=after, orderBy=order)
        seen += ids(connection)
        if not connection["pageInfo"]["hasNextPage"]:
            return seen
        after = connection["pageInfo"]["endCursor"]


async def submit_three(app: RunningApp) -> list[dict[str, Any]]:
    """Jobs a (alice), b (bob), c (alice), created in that order."""
    lifecycle = app.app.state.lifecycle
    return [
        await lifecycle.submit(JobKind.REPORT, ROLL, Caller.of(name, ["report:run"]))
        for name in ("alice", "bob", "alice")
    ]


async def test_jobs_in_each_order_and_cursors_follow_it(
    app_server: RunningApp, county: str
) -> None:
    a, b, c = (job["id"] for job in await submit_three(app_server))
    created_asc = {"field": "CREATED", "direction": "ASC"}
    first = await page(app_server, first=2, orderBy=created_asc)
    assert ids(first) == [a, b] and first["pageInfo"]["hasNextPage"]
    rest = await page(
        app_server, first=2, after=first["pageInfo"]["endCursor"], orderBy=created_asc
    )
    assert ids(rest) == [c] and not rest["pageInfo"]["hasNextPage"]
    assert ids(await page(app_server)) == [c, b, a]

    await app_server.app.state.lifecycle.cancel(uuid.UUID(a), Caller.of("alice", ["report:run"]))
    assert await all_pages(app_server, {"field": "UPDATED", "direction": "DESC"}) == [a, c, b]
    assert await all_pages(app_server, {"field": "UPDATED", "direction": "ASC"}) == [b, c, a]
    assert await all_pages(app_server, {"field": "CREATED", "direction": "DESC"}) == [c, b, a]

    body = await gql(
        app_server.url,
        PAGE,
        {"after": first["pageInfo"]["endCursor"], "orderBy": {"field": "UPDATED"}},
    )
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "after"
    assert "orderBy {field: CREATED, direction: ASC}" in error["message"]


async def test_created_window_and_owner_filters(app_server: RunningApp, county: str) -> None:
    a, b, c = await submit_three(app_server)
    window = await page(app_server, createdAfter=b["created_at"], createdBefore=c["created_at"])
    assert ids(window) == [b["id"]] and window["totalCount"] == 1
    assert ids(await page(app_server, createdAfter=b["created_at"])) == [c["id"], b["id"]]
    alices = await page(app_server, owner="alice")
    assert ids(alices) == [c["id"], a["id"]] and alices["totalCount"] == 2
    assert ids(await page(app_server, owner="nobody")) == []

    body = await gql(app_server.url, PAGE, {"createdAfter": "2026-01-01T00:00:00"})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "createdAfter"
    assert "UTC offset" in error["message"]


NODE = """query($id: ID!) { node(id: $id) { __typename id ... on Job { status }
                                          ... on ReportJob { reportType } } }"""


async def test_node_resolves_any_job_by_its_uuid(app_server: RunningApp, county: str) -> None:
    job = (await submit_three(app_server))[0]
    node = (await gql_data(app_server.url, NODE, {"id": job["id"]}))["node"]
    assert node["__typename"] == "ReportJob"
    assert node["id"] == job["id"] == str(uuid.UUID(job["id"]))
    assert node["status"] == "PENDING"
    unknown = await gql_data(app_server.url, NODE, {"id": str(uuid.uuid4())})
    assert unknown == {"node": None}
    body = await gql(app_server.url, NODE, {"id": "not-a-uuid"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
