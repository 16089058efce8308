"""The change log and the resumable feed: ordered numbers, replay, the seam, expiry, pruning."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from jobs import change_feed
from jobs.access import ANONYMOUS_ADMIN
from jobs.change_feed import read_changes
from jobs.changes import CHANGE_LOCK, encode_cursor, next_change_seq, with_change_log
from jobs.lifecycle import parse_job_id
from jobs.maintenance import maintain
from jobs.registry import KINDS
from jobs.spec import JobKind
from jobs.table import JobStatus
from tests.builders import issue_token
from tests.conftest import RunningApp, WorkerControl, serve_app
from tests.graphql_client import bearer, gql, gql_data, subscribe
from tests.test_job_flow import mutation

ROLL = {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"}
FEED = """subscription($after: String) {
  jobsUpdated(after: $after) { id status version changeCursor }
}"""
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { id status changeCursor } }"


async def submit(app: RunningApp, token: str | None = None) -> dict[str, Any]:
    body = await gql(app.url, mutation("runReport"), {"input": ROLL}, **bearer(token))
    assert "errors" not in body, body
    job: dict[str, Any] = body["data"]["runReport"]
    return job


async def log_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT * FROM job_changes ORDER BY seq"))
        return [dict(r) for r in result.mappings()]


async def feed_until(sub: Any, done: Any, timeout: float = 60) -> list[dict[str, Any]]:
    """Feed events until `done(events)` holds."""
    events: list[dict[str, Any]] = []
    while not done(events):
        payload = await sub.next(timeout=timeout)
        assert payload is not None and "errors" not in payload, payload
        events.append(payload["data"]["jobsUpdated"])
    return events


async def refusal(sub: Any) -> dict[str, Any]:
    """The error a subscription is refused with."""
    payload = await sub.next()
    assert payload is not None and payload.get("data") is None, payload
    (error,) = payload["errors"]
    assert "Traceback" not in str(error)
    return dict(error)


def finals_of(events: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(e["id"] for e in events if e["status"] in FINAL)


async def test_every_state_change_is_logged_with_its_job_and_the_job_knows_its_cursor(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    job = await submit(app_server)
    await worker.start()
    async with subscribe(app_server.ws_url, FEED, {"after": job["changeCursor"]}) as sub:
        events = await feed_until(sub, lambda ev: bool(finals_of(ev)))
    rows = await log_rows(engine)
    assert [r["status"] for r in rows] == ["PENDING", "RUNNING", "COMPLETED"]
    assert {str(r["job_id"]) for r in rows} == {job["id"]}
    assert {(r["kind"], r["county_id"], r["owner"]) for r in rows} == {
        ("REPORT", "TESTCO", "anonymous")
    }
    assert [r["version"] for r in rows] == sorted(r["version"] for r in rows)
    assert job["changeCursor"] == encode_cursor(rows[0]["seq"])
    # Progress ticks are published but not logged: the job has more versions than changes.
    final = (
        await gql_data(
            app_server.url,
            "query($id: ID!) { job(id: $id) { version changeCursor } }",
            {"id": job["id"]},
        )
    )["job"]
    assert final["changeCursor"] == encode_cursor(rows[-1]["seq"]) == events[-1]["changeCursor"]
    assert final["version"] > len(rows)


async def test_writers_commit_in_parallel_and_a_reader_waits_for_one_in_flight_never_skipping_it(
    app_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    held_job, other_job = await submit(app_server), await submit(app_server)
    lifecycle = app_server.app.state.lifecycle
    spec = KINDS[JobKind.REPORT]
    model = spec.model
    before = (await log_rows(engine))[-1]["seq"]
    async with lifecycle.sessions.begin() as held:
        change = (
            update(model)
            .where(model.id == parse_job_id(held_job["id"]))
            .values(message="held open", version=model.version + 1, change_seq=next_change_seq())
        )
        held_seq = (await held.execute(with_change_log(spec, change))).one().change_seq
        async with engine.connect() as probe:
            # Writers share the lock; a reader's exclusive turn waits for this one.
            assert await probe.scalar(
                text(f"SELECT pg_try_advisory_xact_lock_shared({CHANGE_LOCK})")
            )
            assert not await probe.scalar(text(f"SELECT pg_try_advisory_xact_lock({CHANGE_LOCK})"))
        # A second writer does not queue behind the open transaction: it commits a higher
        # number first.
        cancelled = await asyncio.wait_for(
            lifecycle.cancel(parse_job_id(other_job["id"]), ANONYMOUS_ADMIN), timeout=30
        )
        assert cancelled["change_seq"] == held_seq + 1
        # So a reader must not move past it yet: it waits for the writer in flight.
        reading = asyncio.create_task(read_changes(lifecycle.sessions, before))
        done, _ = await asyncio.wait({reading}, timeout=0.5)
        assert not done
    page = await reading
    assert [(s["id"], s["change_seq"]) for s in page.snapshots] == [
        (held_job["id"], held_seq),
        (other_job["id"], held_seq + 1),
    ]
    assert page.complete and page.position == held_seq + 1
    # A compare-and-set that matches nothing takes neither the lock nor a number.
    missed = await lifecycle.transition(
        spec, parse_job_id(other_job["id"]), [JobStatus.RUNNING], message="too late"
    )
    assert missed is None
    assert (await submit(app_server))["changeCursor"] == encode_cursor(held_seq + 2)


async def test_many_writers_at_once_leave_a_log_a_reader_replays_without_a_gap(
    app_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    """Writers committing in parallel, readers reading meanwhile: every change a reader
    passes is one it delivered, so a replay from any position it reported misses none."""
    jobs = [await submit(app_server) for _ in range(8)]
    lifecycle = app_server.app.state.lifecycle
    spec = KINDS[JobKind.REPORT]
    start = min(int(job["changeCursor"], 16) for job in jobs)
    delivered: dict[str, int] = {}
    positions: list[int] = []

    async def writer(job: dict[str, Any]) -> None:
        for n in range(15):
            snap = await lifecycle.transition(
                spec, parse_job_id(job["id"]), [JobStatus.PENDING], message=f"change {n}"
            )
            assert snap is not None

    async def reader(stop: asyncio.Event) -> None:
        position = start
        while True:
            last = stop.is_set()
            page = await read_changes(lifecycle.sessions, position)
            for snap in page.snapshots:
                assert snap["change_seq"] > position
                delivered[snap["id"]] = max(delivered.get(snap["id"], 0), snap["change_seq"])
            positions.append(page.position)
            position = page.position
            if last and page.complete:
                return

    stop = asyncio.Event()
    reading = asyncio.create_task(reader(stop))
    await asyncio.gather(*(writer(job) for job in jobs))
    stop.set()
    await reading
    rows = await log_rows(engine)
    latest = {str(r["job_id"]): r["seq"] for r in rows if r["seq"] > start}
    assert delivered == latest
    assert positions == sorted(positions)


async def test_a_client_resuming_after_an_api_restart_gets_exactly_what_it_missed(
    settings: Settings, engine: AsyncEngine, worker: WorkerControl, county: str
) -> None:
    async with serve_app(settings) as first_api:
        ids = [(await submit(first_api))["id"] for _ in range(4)]
        async with subscribe(first_api.ws_url, FEED, {"after": encode_cursor(0)}) as sub:
            seen = await feed_until(sub, lambda ev: {e["id"] for e in ev} == set(ids))
    last_cursor = seen[-1]["changeCursor"]
    assert [e["status"] for e in seen] == ["PENDING"] * 4
    # The API is down: the jobs run and finish with nobody listening.
    await worker.start()
    for _ in range(600):
        if [r["status"] for r in await log_rows(engine)].count("COMPLETED") == 4:
            break
        await asyncio.sleep(0.1)
    async with (
        serve_app(settings) as second_api,
        subscribe(second_api.ws_url, FEED, {"after": last_cursor}) as sub,
    ):
        replayed = await feed_until(sub, lambda ev: len(ev) == 4)
        live_job = await submit(second_api)
        (live,) = await feed_until(sub, lambda ev: len(ev) == 1)
    assert sorted(e["id"] for e in replayed) == sorted(ids)
    assert {e["status"] for e in replayed} == {"COMPLETED"}
    cursors = [e["changeCursor"] for e in replayed]
    assert cursors == sorted(cursors) and cursors[0] > last_cursor
    assert live["id"] == live_job["id"] and live["status"] == "PENDING"
    assert live["changeCursor"] > cursors[-1]


async def test_replay_shows_only_the_callers_own_jobs(
    auth_server: RunningApp, engine: AsyncEngine, county: str
) -> None:
    alice = await issue_token(engine, "alice", ["report:run"])
    bob = await issue_token(engine, "bob", ["report:run"])
    admin = await issue_token(engine, "root", ["admin"])
    start = await submit(auth_server, bob)
    alices = [(await submit(auth_server, alice))["id"] for _ in range(3)]
    bobs = [(await submit(auth_server, bob))["id"] for _ in range(2)]
    cursor = {"after": start["changeCursor"]}
    async with subscribe(auth_server.ws_url, FEED, cursor, init_payload=bearer(bob)) as sub:
        as_bob = await feed_until(sub, lambda ev: len(ev) == 2)
        # Alice's next change is live, and Bob must not see it either: his own comes next.
        await submit(auth_server, alice)
        last = await submit(auth_server, bob)
        (after_replay,) = await feed_until(sub, lambda ev: len(ev) == 1)
    assert [e["id"] for e in as_bob] == bobs
    assert after_replay["id"] == last["id"]
    async with subscribe(auth_server.ws_url, FEED, cursor, init_payload=bearer(admin)) as sub:
        as_admin = await feed_until(sub, lambda ev: len(ev) == 7)
    assert {e["id"] for e in as_admin} >= set(alices) | set(bobs)
    polled = await gql(
        auth_server.url,
        "query($c: String) { jobs(changedAfter: $c) { edges { node { id } } } }",
        {"c": start["changeCursor"]},
        **bearer(bob),
    )
    assert [e["node"]["id"] for e in polled["data"]["jobs"]["edges"]] == [*bobs, last["id"]]


async def test_changes_made_while_the_replay_runs_arrive_once(
    app_server: RunningApp,
    worker: WorkerControl,
    county: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(change_feed, "PAGE", 3)
    ids = {(await submit(app_server))["id"] for _ in range(24)}
    await worker.start()
    async with subscribe(app_server.ws_url, FEED, {"after": encode_cursor(0)}) as sub:
        events = await feed_until(sub, lambda ev: set(finals_of(ev)) == ids, timeout=120)
    assert set(finals_of(events).values()) == {1}
    assert {e["id"] for e in events} == ids
    cursors = [e["changeCursor"] for e in events]
    assert cursors == sorted(cursors)
    versions = [(e["id"], e["version"]) for e in events]
    assert len(versions) == len(set(versions))
    for job in ids:
        mine = [v for j, v in versions if j == job]
        assert mine == sorted(mine)


async def test_polling_jobs_changed_after_a_cursor(app_server: RunningApp, county: str) -> None:
    first = await submit(app_server)
    later = [(await submit(app_server))["id"] for _ in range(3)]
    cancelled = (await gql_data(app_server.url, CANCEL, {"id": first["id"]}))["cancelJob"]
    query = """query($c: String, $after: String) {
      jobs(changedAfter: $c, first: 2, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id changeCursor } }
      }
    }"""
    page = (await gql_data(app_server.url, query, {"c": first["changeCursor"]}))["jobs"]
    assert page["totalCount"] == 4 and page["pageInfo"]["hasNextPage"]
    assert [e["node"]["id"] for e in page["edges"]] == later[:2]
    assert all(e["cursor"] == e["node"]["changeCursor"] for e in page["edges"])
    end = page["pageInfo"]["endCursor"]
    rest = (await gql_data(app_server.url, query, {"c": first["changeCursor"], "after": end}))[
        "jobs"
    ]
    assert [e["node"]["id"] for e in rest["edges"]] == [later[2], first["id"]]
    assert rest["edges"][-1]["node"]["changeCursor"] == cancelled["changeCursor"]
    assert not rest["pageInfo"]["hasNextPage"]
    quiet = await gql_data(app_server.url, query, {"c": rest["pageInfo"]["endCursor"]})
    assert quiet["jobs"]["edges"] == [] and quiet["jobs"]["totalCount"] == 0
    ordered = await gql(
        app_server.url,
        "query($c: String) { jobs(changedAfter: $c, orderBy: {field: UPDATED}) { totalCount } }",
        {"c": first["changeCursor"]},
    )
    assert ordered["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "orderBy"}


@pytest.mark.parametrize("cursor", ["12", "not a cursor", "zzzzzzzzzzzzzzzz"])
async def test_a_malformed_cursor_is_bad_user_input(app_server: RunningApp, cursor: str) -> None:
    body = await gql(
        app_server.url, "query($c: String) { jobs(changedAfter: $c) { totalCount } }", {"c": cursor}
    )
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "changedAfter"}
    async with subscribe(app_server.ws_url, FEED, {"after": cursor}) as sub:
        assert (await refusal(sub))["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}


async def test_pruning_keeps_the_log_bounded_and_old_cursors_expire(
    app_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    old = await submit(app_server)
    for _ in range(3):
        await submit(app_server)
    recent = await submit(app_server)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE job_changes SET changed_at = now() - interval '100 hours' WHERE seq < :s"),
            {"s": int(recent["changeCursor"], 16) - 1},
        )
    lifecycle = app_server.app.state.lifecycle
    tally = await maintain(lifecycle, sweep=True)
    assert tally.pruned == 3
    assert [r["seq"] for r in await log_rows(engine)] == [
        int(recent["changeCursor"], 16) - 1,
        int(recent["changeCursor"], 16),
    ]
    scraped = generate_latest(lifecycle.metrics.registry).decode()
    assert "job_change_log_rows 2.0" in scraped
    assert "job_change_log_oldest_change_age_seconds" in scraped
    body = await gql(
        app_server.url,
        "query($c: String) { jobs(changedAfter: $c) { totalCount } }",
        {"c": old["changeCursor"]},
    )
    assert body["errors"][0]["extensions"]["code"] == "CURSOR_EXPIRED"
    assert "EVENT_RETENTION_HOURS=72" in body["errors"][0]["message"]
    async with subscribe(app_server.ws_url, FEED, {"after": old["changeCursor"]}) as sub:
        assert (await refusal(sub))["extensions"]["code"] == "CURSOR_EXPIRED"
    # The oldest kept change's predecessor still resumes: nothing after it is gone.
    edge = encode_cursor(int(recent["changeCursor"], 16) - 2)
    async with subscribe(app_server.ws_url, FEED, {"after": edge}) as sub:
        replayed = await feed_until(sub, lambda ev: len(ev) == 2)
    assert replayed[-1]["id"] == recent["id"]
