"""A plain JSON POST of a document the cache already knows valid skips Strawberry's view
(app.main.GraphQLApp._direct); its answers must be exactly those of the whole way: data,
nulls, errors with their codes and paths, mutations, and refusals without a token."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers

from app.auth import create_token
from app.db import create_session_factory
from app.main import JSON, STREAMED, GraphQLApp, _plain_json
from tests.conftest import RunningApp
from tests.graphql_client import gql_data

JOB = "query($id: ID!) { job(id: $id) { id status progress { percent } } }"
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { id status } }"
RICH = """
query($id: ID!, $first: Int!) {
  one: job(id: $id) { ...shared ... on ReportJob { reportType parameters { __typename } } }
  again: node(id: $id) { __typename ... on Job { ...shared } }
  jobs(first: $first) { totalCount edges { cursor node { ...shared } } pageInfo { hasNextPage } }
  counties { countyId }
}
fragment shared on Job { id kind status version changeCursor createdAt progress { percent } }
"""
REFERENCE = re.compile(r"[0-9a-f]{12}")


def _view(server: RunningApp) -> GraphQLApp:
    return next(r.app for r in server.app.routes if isinstance(getattr(r, "app", None), GraphQLApp))  # type: ignore[attr-defined]


class Counted:
    """How many requests went the whole way through Strawberry's view."""

    def __init__(self, view: GraphQLApp) -> None:
        self.calls = 0
        original = view.run

        async def run(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await original(*args, **kwargs)

        view.run = run  # type: ignore[method-assign]


async def _twice(
    server: RunningApp, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> list[tuple[int, str]]:
    answers = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            response = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
            answers.append((response.status_code, REFERENCE.sub("<ref>", response.text)))
    return answers


async def test_repeated_documents_answer_as_the_whole_way_does(
    app_server: RunningApp, county: str
) -> None:
    counted = Counted(_view(app_server))
    submitted = await gql_data(
        app_server.url,
        "mutation($input: RunReportInput!) { runReport(input: $input) { id } }",
        {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": county}},
    )
    job_id = submitted["runReport"]["id"]
    cases = [
        (JOB, {"id": job_id}),
        (JOB, {"id": str(uuid.uuid4())}),
        (JOB, {"id": "not-a-uuid"}),
        (CANCEL, {"id": str(uuid.uuid4())}),
        (RICH, {"id": job_id, "first": 3}),
        (RICH, {"id": job_id, "first": -1}),
    ]
    seen: set[str] = set()
    for query, variables in cases:
        before = counted.calls
        first, *again = await _twice(app_server, query, variables, {})
        assert all(answer == first for answer in again), (query, variables, first, again)
        # Only a document's first request goes the whole way (it fills the cache).
        assert counted.calls - before == (0 if query in seen else 1), (query, variables)
        seen.add(query)
    assert '"job":null' in (await _twice(app_server, JOB, {"id": str(uuid.uuid4())}, {}))[0][1]
    assert '"BAD_USER_INPUT"' in (await _twice(app_server, JOB, {"id": "x"}, {}))[0][1]
    rich = (await _twice(app_server, RICH, {"id": job_id, "first": 3}, {}))[0][1]
    assert rich.count(job_id[:8]) >= 3 and '"counties"' in rich


def test_no_document_can_ask_for_incremental_delivery(app_server: RunningApp) -> None:
    """The short way runs graphql-core's plain executor (resolvers.query_executor): only
    right while the schema has neither `@defer` nor `@stream`."""
    schema = _view(app_server).schema._schema  # type: ignore[attr-defined]
    assert schema.get_directive("defer") is None
    assert schema.get_directive("stream") is None


async def test_without_a_token_the_answers_match_too(
    auth_server: RunningApp, engine: AsyncEngine
) -> None:
    counted = Counted(_view(auth_server))
    token = await create_token(create_session_factory(engine), "direct-reader", ["report:read"])
    for whole_way, headers in ((1, {}), (0, {"Authorization": f"Bearer {token}"})):
        before = counted.calls
        first, *again = await _twice(auth_server, JOB, {"id": str(uuid.uuid4())}, headers)
        assert all(answer == first for answer in again), (headers, first, again)
        assert counted.calls - before == whole_way
    unauthenticated = (await _twice(auth_server, JOB, {"id": str(uuid.uuid4())}, {}))[0][1]
    assert "UNAUTHENTICATED" in unauthenticated


def test_the_short_way_is_taken_only_for_plain_json_as_starlette_reads_the_headers() -> None:
    """`_plain_json` reads the raw headers; it must decide as Starlette's Headers would."""
    cases: list[list[tuple[bytes, bytes]]] = [
        [(b"content-type", b"application/json")],
        [(b"content-type", b"Application/JSON; charset=utf-8")],
        [(b"content-type", b"  application/json  ")],
        [(b"content-type", b"application/json"), (b"content-type", b"text/plain")],
        [(b"content-type", b"text/plain"), (b"content-type", b"application/json")],
        [(b"content-type", b"application/graphql-response+json")],
        [(b"content-type", b"multipart/form-data; boundary=x")],
        [],
        [(b"accept", b"application/json"), (b"content-type", b"application/json")],
        [(b"content-type", b"application/json"), (b"accept", b"multipart/mixed")],
        [(b"content-type", b"application/json"), (b"accept", b"text/event-stream")],
        [(b"content-type", b"application/json"), (b"accept", b"*/*"), (b"accept", b"multipart/")],
        [(b"content-type", b"application/json"), (b"accept", b"")],
    ]
    for raw in cases:
        headers = Headers(raw=raw)
        json_body = headers.get("content-type", "").partition(";")[0].strip().lower() == JSON
        streamed = any(stream in headers.get("accept", "") for stream in STREAMED)
        expected = json_body and not streamed
        assert _plain_json(raw) is expected, raw
