"""The HTTP token cache: requests that miss on one token at once share one lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers

from app.auth import TokenCache, bearer_token, request_bearer_token, revoke_token
from app.db import create_session_factory
from tests.builders import issue_token


@pytest.fixture
def token_reads(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the engine sends that reads the token table, as it is sent."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_tokens" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_fifty_requests_missing_at_once_read_the_token_once(
    engine: AsyncEngine, token_reads: list[str]
) -> None:
    token = await issue_token(engine, "flock", ["report:read"])
    sessions = create_session_factory(engine)
    reads = token_reads
    cache = TokenCache(sessions, ttl=60)
    callers = await asyncio.gather(*(cache.caller(token) for _ in range(50)))
    assert len(reads) == 1
    assert {c.name for c in callers if c is not None} == {"flock"} and None not in callers
    # Answered from the cache afterwards, and a second token is looked up on its own.
    other = await issue_token(engine, "other", ["report:read"])
    assert (await cache.caller(token)) == callers[0]
    found = await cache.caller(other)
    assert found is not None and found.name == "other" and len(reads) == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_lookup(
    engine: AsyncEngine,
) -> None:
    token = await issue_token(engine, "leaver", ["report:read"])
    cache = TokenCache(create_session_factory(engine), ttl=60)
    leaving = asyncio.ensure_future(cache.caller(token))
    staying = asyncio.ensure_future(cache.caller(token))
    await asyncio.sleep(0)  # both are waiting on the one lookup
    leaving.cancel()
    caller = await staying
    assert caller is not None and caller.name == "leaver"
    assert leaving.cancelled()


async def test_a_refusal_is_shared_and_the_next_miss_asks_again(
    engine: AsyncEngine, token_reads: list[str]
) -> None:
    token = await issue_token(engine, "gone", ["report:read"])
    sessions = create_session_factory(engine)
    await revoke_token(sessions, "gone")
    reads = token_reads
    cache = TokenCache(sessions, ttl=0.2)
    assert await asyncio.gather(*(cache.caller(token) for _ in range(10))) == [None] * 10
    assert len(reads) == 1
    await asyncio.sleep(0.3)  # the answer's time runs out
    assert await cache.caller(token) is None and len(reads) == 2


def test_a_requests_token_is_read_off_its_raw_headers_as_from_starlettes() -> None:
    token = "tf_" + "a" * 30
    cases: list[list[tuple[bytes, bytes]]] = [
        [],
        [(b"authorization", f"Bearer {token}".encode())],
        [(b"authorization", f"  bearer   {token}  ".encode())],
        [(b"Authorization", f"BEARER {token}".encode())],
        [(b"authorization", b"Basic dXNlcjpwYXNz"), (b"authorization", f"Bearer {token}".encode())],
        [(b"authorization", b"Bearer "), (b"authorization", b"Bearer second")],
        [(b"authorization", b"Bearer"), (b"x-authorization", f"Bearer {token}".encode())],
        [(b"authorization", "Bearer tf_\u00e9\u00ff".encode("latin-1"))],
        [(b"authorization", f"Bearer {token} extra".encode())],
    ]
    for raw in cases:
        assert request_bearer_token(raw) == bearer_token(Headers(raw=raw)), raw
