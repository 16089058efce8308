"""A plain JSON POST of a document the cache already knows valid skips Strawberry's view
(app.main.GraphQLApp._direct); its answers must be exactly those of the whole way: data,
nulls, errors with their codes and paths, mutations, and refusals without a token."""

from __future__ import annotations

import enum
import inspect
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import strawberry
from graphql import GraphQLObjectType, Undefined, execute, parse
from graphql.execution import Executor
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.auth import create_token
from app.db import create_session_factory
from app.main import JSON, STREAMED, GraphQLApp, JSONAnswer, _plain_json, read_body, replay
from resolvers.query_executor import CompletedObjects, QueryExecutor, basic_resolvers
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


async def test_a_body_sent_in_chunks_answers_as_one_body_does(
    app_server: RunningApp, county: str
) -> None:
    """Chunked bodies, empty chunks among them, read by `read_body`: the first request of a
    document goes the whole way on the body replayed to the view, the next ones the short
    way; every answer is the one a body sent whole gets."""
    job_id = (
        await gql_data(
            app_server.url,
            "mutation($input: RunReportInput!) { runReport(input: $input) { id } }",
            {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": county}},
        )
    )["runReport"]["id"]
    query = JOB.replace("percent", "percent step")  # a document not yet in the cache
    body = json.dumps({"query": query, "variables": {"id": job_id}}).encode()
    counted = Counted(_view(app_server))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]
            yield b""

    async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as client:
        chunked = []
        for _ in range(3):
            response = await client.post("/graphql", content=chunks(), headers=JSON_HEADERS)
            assert response.request.headers.get("transfer-encoding") == "chunked"
            chunked.append((response.status_code, response.headers.raw, response.text))
        whole = await client.post("/graphql", content=body, headers=JSON_HEADERS)
    assert counted.calls == 1
    assert '"step"' in whole.text and job_id in whole.text
    for status, headers, text in chunked:
        assert (status, text) == (whole.status_code, whole.text)
        assert [h for h in headers if h[0] != b"date"] == [
            h for h in whole.headers.raw if h[0] != b"date"
        ]


def _scope(headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/graphql", "headers": headers or []}


async def test_read_body_reads_what_starlette_reads() -> None:
    sequences: list[list[dict[str, Any]]] = [
        [{"type": "http.request", "body": b"{}"}],
        [{"type": "http.request"}],
        [{"type": "http.request", "body": b"", "more_body": False}],
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "other"},
            {"type": "http.request", "body": b"bc", "more_body": True},
            {"type": "http.request", "body": b"d"},
        ],
        [
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": False},
        ],
        [{"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"}],
    ]
    for messages in sequences:
        answers = []
        for read in (read_body, lambda receive: Request(_scope(), receive).body()):
            pending = iter(messages)

            async def receive() -> Any:
                return next(pending)  # noqa: B023

            try:
                answers.append(await read(receive))
            except ClientDisconnect:
                answers.append("disconnected")
        assert answers[0] == answers[1], messages
        assert type(answers[0]) is type(answers[1])


async def test_replay_gives_the_body_once_then_the_connection() -> None:
    later = [{"type": "http.disconnect"}]

    async def receive() -> Any:
        return later.pop()

    replayed = replay(b"body", receive)
    assert await Request(_scope(), replayed).body() == b"body"
    assert await replayed() == {"type": "http.disconnect"}


async def test_the_short_ways_response_is_starlettes() -> None:
    for body in (b'{"data":{"job":null}}', b"", "é".encode()):
        sent: list[list[Any]] = [[], []]
        answers = (JSONAnswer(body), Response(body, media_type=JSON))
        for answer, out in zip(answers, sent, strict=True):

            async def send(message: Any) -> None:
                out.append(message)  # noqa: B023

            await answer(_scope(), _no_receive, send)
        assert sent[0] == sent[1]


async def _no_receive() -> Any:
    raise AssertionError("a response does not read the request")


JSON_HEADERS = {"content-type": "application/json"}


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Leaves:
    text: str
    maybe: str | None
    number: int
    ratio: float
    ident: strawberry.ID
    colour: Colour
    colours: list[Colour]

    @strawberry.field
    def computed(self, info: strawberry.Info) -> str:
        return f"{self.text}:{info.field_name}"


@strawberry.type
class LeafQuery:
    @strawberry.field
    def leaves(self) -> list[Leaves | None]:
        good = dict(text="a", maybe=None, number=1, ratio=-0.0, ident="x", colour=Colour.BLUE)
        bad: list[dict[str, Any]] = [
            {"text": None},
            {"number": "one"},
            {"number": 2**40},
            {"ratio": float("nan")},
            {"colour": "green"},
            {"colour": "RED"},
            {"text": ValueError("an exception as a value")},
            {"maybe": 3},
            {"ident": 7},
        ]
        return [Leaves(**{**good, "colours": [Colour.RED]}), None] + [
            Leaves(**{**good, "colours": [], **b}) for b in bad
        ]


async def test_basic_fields_complete_without_info_as_with_it() -> None:
    """The short way's own completion of basic scalar and enum fields gives the data and
    the errors (messages, paths, locations) graphql-core's completion gives."""
    schema = strawberry.Schema(query=LeafQuery)
    document = parse(
        "{ leaves { text maybe number ratio ident colour colours computed again: text } }"
    )
    resolvers = basic_resolvers(schema)
    leaves = schema._schema.type_map["Leaves"]
    assert isinstance(leaves, GraphQLObjectType)
    assert {f.resolve for n, f in leaves.fields.items() if n != "computed"} <= resolvers
    assert leaves.fields["computed"].resolve not in resolvers

    def run(executor_class: Any, **extra: Any) -> Any:
        result = execute(schema._schema, document, executor_class=executor_class, **extra)
        assert not inspect.isawaitable(result)
        return (result.data, [e.formatted for e in result.errors or ()])

    short = run(QueryExecutor, basic_resolvers=resolvers)
    assert short == run(QueryExecutor, basic_resolvers=frozenset())
    assert short == run(Executor)
    assert short[0] is not None and short[0]["leaves"][0]["computed"] == "a:computed"
    assert len(short[1]) >= 6, short


@strawberry.type
class Inner:
    n: int


@strawberry.type
class Thing:
    name: str
    inner: Inner

    @strawberry.field
    def counted(self) -> int:
        CALLS.append(self.name)
        return len(CALLS)


CALLS: list[str] = []


@strawberry.type
class ThingQuery:
    @strawberry.field
    def thing(self, info: strawberry.Info) -> Thing | None:
        thing: Thing | None = info.context["thing"]
        return thing


async def test_a_root_objects_completion_is_reused_only_when_it_reads_the_object_alone() -> None:
    schema = strawberry.Schema(query=ThingQuery)
    resolvers = basic_resolvers(schema)
    plain = parse("{ thing { __typename name inner { n } } }")
    computed = parse("{ thing { name counted } }")
    store = CompletedObjects(shared=(Thing,))

    def run(document: Any, thing: Any, kept: CompletedObjects = store) -> Any:
        result = execute(
            schema._schema,
            document,
            context_value={"thing": thing},
            executor_class=QueryExecutor,
            basic_resolvers=resolvers,
            completed=kept,
        )
        assert not inspect.isawaitable(result)
        return result

    one = Thing(name="one", inner=Inner(n=1))
    first, again = run(plain, one), run(plain, one)
    assert first.data == {"thing": {"__typename": "Thing", "name": "one", "inner": {"n": 1}}}
    assert again.data == first.data and again.data["thing"] is first.data["thing"], "reused"
    # Another object (a changed row makes one) is completed anew.
    two = Thing(name="two", inner=Inner(n=2))
    assert run(plain, two).data == {
        "thing": {"__typename": "Thing", "name": "two", "inner": {"n": 2}}
    }
    # A resolver in the subtree: completed every time, never kept.
    CALLS.clear()
    assert [run(computed, one).data["thing"]["counted"] for _ in range(3)] == [1, 2, 3]
    # An error in the subtree: reported every time, never kept.
    broken = Thing(name=None, inner=Inner(n=3))  # type: ignore[arg-type]
    for _ in range(2):
        result = run(plain, broken)
        assert result.data == {"thing": None}
        assert result.errors and "non-nullable" in result.errors[0].message
    # Only objects of the shared types are kept (a fresh object each request would only
    # fill the store).
    other = CompletedObjects(shared=(Inner,))
    field = plain.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    run(plain, one, other)
    assert other.get(field, one) is Undefined
    assert store.get(field, one) is first.data["thing"]


async def test_reused_completions_follow_the_row_and_the_variables(
    app_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    submitted = await gql_data(
        app_server.url,
        "mutation($input: RunReportInput!) { runReport(input: $input) { id } }",
        {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": county}},
    )
    job_id = submitted["runReport"]["id"]
    first, *again = await _twice(app_server, JOB, {"id": job_id}, {})
    assert all(answer == first for answer in again)
    async with engine.begin() as conn:
        await conn.execute(
            sql("UPDATE report_jobs SET progress_percent = 61.5 WHERE report_id = :i"),
            {"i": job_id},
        )
    moved = await _twice(app_server, JOB, {"id": job_id}, {})
    assert all('"percent":61.5' in body for _, body in moved), moved
    # A directive makes the fields depend on the variables: such a document reuses nothing.
    maybe = "query($id: ID!, $x: Boolean!) { job(id: $id) { id status @include(if: $x) } }"
    for shown in (True, False, True):
        answers = await _twice(app_server, maybe, {"id": job_id, "x": shown}, {})
        assert all(('"status"' in body) is shown for _, body in answers), (shown, answers)
