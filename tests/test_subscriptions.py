"""Subscriptions: one Redis connection per API process, late subscribers, the feed."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from app.config import Settings
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import TRANSPORT_WS, gql_data, subscribe
from tests.test_job_flow import WATCH, mutation

ROLL = {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"}


async def submit_roll(app: RunningApp) -> str:
    job = (await gql_data(app.url, mutation("runReport"), {"input": ROLL}))["runReport"]
    return str(job["id"])


async def wait_for_subscribers(app: RunningApp, count: int) -> None:
    """A feed sends nothing until something changes, so wait until the server holds it."""
    for _ in range(500):
        if app.app.state.bus.subscriber_count >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"server never held {count} subscriptions")


async def test_fifty_subscribers_share_one_redis_subscription(
    app_server: RunningApp, worker: WorkerControl, county: str, redis: Redis, settings: Settings
) -> None:
    job_id = await submit_roll(app_server)
    async with contextlib.AsyncExitStack() as stack:
        subs = [
            await stack.enter_async_context(subscribe(app_server.ws_url, WATCH, {"id": job_id}))
            for _ in range(50)
        ]
        firsts = await asyncio.gather(*(s.next() for s in subs))
        assert {f["data"]["jobUpdated"]["status"] for f in firsts} == {"PENDING"}
        # 50 websocket subscribers, one Redis subscription: the process's listener.
        numsub = dict(await redis.pubsub_numsub(settings.events_channel))
        assert numsub[settings.events_channel] == 1
        assert app_server.app.state.bus.subscriber_count == 50
        await worker.start()
        finals = await asyncio.gather(*(s.collect(timeout=120) for s in subs))
    for events in finals:
        assert events[-1]["data"]["jobUpdated"]["status"] == "COMPLETED"
    assert dict(await redis.pubsub_numsub(settings.events_channel))[settings.events_channel] == 1


async def test_late_subscriber_gets_the_final_state_and_completes(
    app_server: RunningApp, worker: WorkerControl, county: str
) -> None:
    job_id = await submit_roll(app_server)
    await worker.start()
    async with subscribe(app_server.ws_url, WATCH, {"id": job_id}) as sub:
        events = await sub.collect(timeout=120)
    if len(events) > 1:
        # It subscribed while the job still ran: it must still end on the final event.
        assert events[-1]["data"]["jobUpdated"]["status"] == "COMPLETED"
    async with subscribe(app_server.ws_url, WATCH, {"id": job_id}) as sub:
        events = await sub.collect(timeout=30)
    assert [e["data"]["jobUpdated"]["status"] for e in events] == ["COMPLETED"]


async def test_jobs_feed_filters_by_kind_and_sees_the_whole_run(
    app_server: RunningApp, worker: WorkerControl, county: str
) -> None:
    feed_query = (
        """subscription { jobsUpdated(kind: REPORT, countyId: "TESTCO") { id status version } }"""
    )
    async with subscribe(app_server.ws_url, feed_query, protocol=TRANSPORT_WS) as feed:
        await wait_for_subscribers(app_server, 1)
        other = await gql_data(
            app_server.url,
            mutation("runMarketAnalysis"),
            {"input": {"analysisType": "PRICE_TREND", "countyId": county}},
        )
        job_id = await submit_roll(app_server)
        await worker.start()
        seen = []
        while True:
            event = (await feed.next(timeout=60))["data"]["jobsUpdated"]  # type: ignore[index]
            seen.append(event)
            if event["id"] == job_id and event["status"] == "COMPLETED":
                break
    assert other["runMarketAnalysis"]["id"] not in {e["id"] for e in seen}
    statuses = [e["status"] for e in seen if e["id"] == job_id]
    assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED" and "RUNNING" in statuses
    assert statuses.count("COMPLETED") == 1
