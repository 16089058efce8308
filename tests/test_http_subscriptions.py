"""Subscriptions over Apollo's multipart HTTP protocol: what the websocket does, over HTTP.

The current state first, every change, the end after a final status; the same tokens,
per-token quota and query limits; a token revoked mid-stream ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import revoke_token
from app.db import create_session_factory
from jobs.spec import JobKind
from tests.builders import issue_token
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import MultipartSubscription, bearer, gql_data, http_subscribe
from tests.test_auth_matrix import ALICE, ROLL
from tests.test_job_flow import WATCH
from tests.test_subscriptions import submit_roll, wait_for_subscribers

FEED = "subscription { jobsUpdated { id status } }"
STATUS = "subscription ($id: ID!) { jobUpdated(id: $id) { id status } }"


async def test_a_job_watched_over_http_from_current_state_to_completed(
    app_server: RunningApp, worker: WorkerControl, county: str
) -> None:
    job_id = await submit_roll(app_server)
    async with http_subscribe(app_server.url, WATCH, {"id": job_id}) as sub:
        first = await sub.next()
        assert first is not None
        assert first["data"]["jobUpdated"]["status"] == "PENDING"
        await worker.start()
        rest = await sub.collect(timeout=120)
        assert await sub.ended()
    updates = [p["data"]["jobUpdated"] for p in [first, *rest]]
    assert {u["id"] for u in updates} == {job_id}
    assert updates[-1]["status"] == "COMPLETED"
    assert updates[-1]["result"]["assessmentRoll"]["parcelCount"] > 0
    versions = [u["version"] for u in updates]
    assert versions == sorted(set(versions))
    query = "query($id: ID!) { job(id: $id) { version } }"
    assert (await gql_data(app_server.url, query, {"id": job_id}))["job"]["version"] == versions[-1]


async def test_a_subscription_in_the_url_streams_too(app_server: RunningApp, county: str) -> None:
    job_id = await submit_roll(app_server)
    async with http_subscribe(app_server.url, STATUS, {"id": job_id}, method="GET") as sub:
        first = await sub.next()
    assert first == {"data": {"jobUpdated": {"id": job_id, "status": "PENDING"}}}


def error_code(payload: dict[str, object] | None) -> object:
    assert payload is not None and payload.get("errors"), payload
    return payload["errors"][0]["extensions"]["code"]  # type: ignore[index]


async def test_http_subscriptions_need_a_token_that_may_see_the_job(
    auth_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    job_id = str((await auth_server.app.state.lifecycle.submit(JobKind.REPORT, ROLL, ALICE))["id"])
    alice = await issue_token(engine, ALICE.name, ["report:run"])
    bob = await issue_token(engine, "bob", ["report:run"])
    revoked = await issue_token(engine, "rex", ["admin"], revoked=True)
    for headers, code in (({}, "UNAUTHENTICATED"), (bearer(revoked), "UNAUTHENTICATED")):
        async with http_subscribe(auth_server.url, STATUS, {"id": job_id}, **headers) as sub:
            assert error_code(await sub.next()) == code
            assert await sub.next() is None
    async with http_subscribe(auth_server.url, STATUS, {"id": job_id}, **bearer(bob)) as sub:
        assert error_code(await sub.next()) == "NOT_FOUND"
        assert await sub.next() is None
    async with http_subscribe(auth_server.url, STATUS, {"id": job_id}, **bearer(alice)) as sub:
        first = await sub.next()
        assert first is not None and first["data"]["jobUpdated"]["status"] == "PENDING"


async def test_a_token_revoked_mid_stream_ends_the_stream(
    auth_server: RunningApp, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "dora", ["report:run"])
    async with http_subscribe(auth_server.url, FEED, **bearer(token)) as sub:
        await wait_for_subscribers(auth_server, 1)
        await revoke_token(create_session_factory(engine), "dora")
        part = await sub.part(timeout=10)
        assert part is not None and part["payload"] is None
        assert part["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await sub.part() is None
        assert await sub.ended()
    for _ in range(500):
        if auth_server.app.state.bus.subscriber_count == 0:
            break
        await asyncio.sleep(0.01)
    assert auth_server.app.state.bus.subscriber_count == 0


async def test_the_per_token_quota_counts_http_streams_and_frees_closed_ones(
    auth_server: RunningApp, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "hal", ["report:read"])
    bus = auth_server.app.state.bus
    async with contextlib.AsyncExitStack() as stack:
        held: list[MultipartSubscription] = []
        for _ in range(5):  # auth_settings: MAX_SUBSCRIPTIONS_PER_TOKEN=5
            held.append(
                await stack.enter_async_context(
                    http_subscribe(auth_server.url, FEED, **bearer(token))
                )
            )
        await wait_for_subscribers(auth_server, 5)
        async with http_subscribe(auth_server.url, FEED, **bearer(token)) as extra:
            assert error_code(await extra.next()) == "TOO_MANY_SUBSCRIPTIONS"
            assert await extra.next() is None
        await held[0].response.aclose()
        for _ in range(500):
            if bus.subscriber_count == 4:
                break
            await asyncio.sleep(0.01)
        assert bus.subscriber_count == 4
        async with http_subscribe(auth_server.url, FEED, **bearer(token)):
            await wait_for_subscribers(auth_server, 5)


async def test_query_limits_hold_for_http_subscriptions(
    auth_server: RunningApp, engine: AsyncEngine
) -> None:
    token = await issue_token(engine, "ivy", ["report:read"])
    aliases = " ".join(f"a{i}: id" for i in range(40))  # auth_settings: MAX_ALIASES=30
    query = f"subscription {{ jobsUpdated {{ {aliases} }} }}"
    async with http_subscribe(auth_server.url, query, **bearer(token)) as sub:
        payload = await sub.next()
        assert payload is not None and payload.get("data") is None
        assert "aliases" in payload["errors"][0]["message"]
        assert await sub.next() is None
    assert auth_server.app.state.bus.subscriber_count == 0


async def test_a_subscription_without_a_stream_and_a_query_on_one_are_refused(
    app_server: RunningApp,
) -> None:
    async with httpx.AsyncClient(base_url=app_server.url) as client:
        plain = await client.post("/graphql", json={"query": FEED})
    assert plain.status_code == 400
    assert "subscriptions are not allowed" in plain.text
    async with http_subscribe(app_server.url, "{ counties { countyId } }") as sub:
        payload = await sub.next()
        assert error_code(payload) == "BAD_USER_INPUT"
        assert "Accept: application/json" in payload["errors"][0]["message"]  # type: ignore[index]
        assert await sub.next() is None
