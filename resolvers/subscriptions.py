"""Subscriptions: the current row first, then every change, from the process's event bus.

A caller sees only the jobs it may see (`Caller.sees`), and holds at most the per-token
quota of subscriptions at once. `jobsUpdated(after:)` first sends the jobs still running
(their progress is not in the log), then replays, from the change log, the current state of
every matching job changed after the cursor, then goes live; the
bus is subscribed before the replay is read and `FeedPosition` drops what the replay
already covered, so nothing falls between the two and nothing comes twice.

What they yield is each state's `SharedEvent` (resolvers.shared_events), so subscribers
alike handed the same event share one execution of their selection; `jobUpdated` reads its
first row through the batch of clients subscribing at the same time (jobs.batched_reads).
Once live, a websocket subscription's events go from the bus straight to its socket when
nothing but the shared message would have been sent (resolvers.live_delivery).
"""

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from app.events import FeedPosition
from jobs.change_feed import ChangeFilter, pages, running_jobs
from jobs.changes import check_cursor, decode_cursor
from jobs.lifecycle import is_final, parse_job_id
from jobs.spec import JobKind
from jobs.table import JobStatus
from resolvers.context import Info
from resolvers.errors import client_errors, user_error
from resolvers.live_delivery import go_live
from schema.job import Job


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The job's current state, then each change; completes after a final "
        "status. The current state comes first whatever `after` says, so a resuming client "
        "needs no replay; `after` is checked, for clients that resume every feed alike."
    )
    async def job_updated(
        self, info: Info, id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[Job, None]:
        context = info.context
        with client_errors():
            caller = await context.current_caller()
            job_id = parse_job_id(id)
            if after is not None:
                decode_cursor(after, "after")
            context.quota.acquire(caller.name)
        key = str(job_id)
        feed = FeedPosition(None)
        try:
            # Subscribe before reading the row, so no change between the two is lost.
            with context.bus.subscribe(lambda event: event.get("id") == key) as events:
                snap = await context.reads.get(job_id, caller=caller)
                if snap is None:
                    raise user_error(f"no job with id {key}", "NOT_FOUND")
                current = feed.accept(snap)
                assert current is not None
                yield context.shared.root(current)
                go_live(events, feed, context.shared, ends=is_final)
                while not is_final(snap):
                    update = feed.accept(await events.get())
                    if update is not None:
                        snap = update
                        yield context.shared.root(snap)
        finally:
            context.quota.release(caller.name)

    @strawberry.subscription(
        description="Every change to jobs matching the filters. With `after` (a "
        "changeCursor): first the matching jobs still running (for their current "
        "progress), then the current state of each matching job changed since, in cursor "
        "order, then live: a client that resumes with the last cursor it got misses "
        "nothing and gets nothing twice. A cursor older than the change log keeps is "
        "refused with CURSOR_EXPIRED: list the jobs again."
    )
    async def jobs_updated(
        self,
        info: Info,
        kind: JobKind | None = None,
        county_id: str | None = None,
        status: JobStatus | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[Job, None]:
        context = info.context
        with client_errors():
            caller = await context.current_caller()
            if kind is not None:
                caller.require(kind, "read")
            start = None if after is None else decode_cursor(after, "after")
            if start is not None:
                await check_cursor(context.sessions, start, context.settings.event_retention_hours)
            context.quota.acquire(caller.name)

        def wants(event: dict[str, Any]) -> bool:
            return (
                caller.sees_event(event)
                and (kind is None or event.get("kind") == kind.value)
                and (county_id is None or event.get("county_id") == county_id)
                and (status is None or event.get("status") == status.value)
            )

        feed = FeedPosition(start)
        try:
            with context.bus.subscribe(wants) as events:  # type: ignore[arg-type]
                if start is not None:
                    where = ChangeFilter(
                        kinds=[kind] if kind else caller.readable_kinds(),
                        viewer=caller,
                        county_id=county_id,
                        status=status,
                    )
                    # Running jobs first: their progress moved without changes in the log.
                    for snap in await running_jobs(context.sessions, where, start):
                        progressed = feed.accept({**snap, "logged": False}) if wants(snap) else None
                        if progressed is not None:
                            yield context.shared.root(progressed)
                    async for page in pages(context.sessions, start, where):
                        for snap in page.snapshots:
                            replayed = feed.accept(snap) if wants(snap) else None
                            if replayed is not None:
                                yield context.shared.root(replayed)
                        feed.start(page.position)
                go_live(events, feed, context.shared)
                async for event in events:
                    live = feed.accept(event)
                    if live is not None:
                        yield context.shared.root(live)
        finally:
            context.quota.release(caller.name)
