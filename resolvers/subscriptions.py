"""Subscriptions: the current row first, then every change, from the process's event bus.

A caller sees only the jobs it may see (`Caller.sees`), and holds at most the per-token
quota of subscriptions at once.
"""

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from jobs.lifecycle import is_final, parse_job_id
from jobs.spec import JobKind
from jobs.table import JobStatus
from resolvers.context import Info
from resolvers.errors import client_errors, user_error
from schema.job import Job
from schema.job_types import job_from_snapshot


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The job's current state, then each change; completes after a final status."
    )
    async def job_updated(self, info: Info, id: strawberry.ID) -> AsyncGenerator[Job, None]:
        context = info.context
        with client_errors():
            caller = await context.current_caller()
            job_id = parse_job_id(id)
            context.quota.acquire(caller.name)
        key = str(job_id)
        lifecycle = context.lifecycle
        try:
            # Subscribe before reading the row, so no change between the two is lost.
            with context.bus.subscribe(lambda event: event.get("id") == key) as events:
                snap = await lifecycle.get(job_id, caller=caller)
                if snap is None:
                    raise user_error(f"no job with id {key}", "NOT_FOUND")
                version = snap["version"]
                yield job_from_snapshot(snap)
                while not is_final(snap):
                    event = await events.get()
                    if event.get("resync"):
                        fresh = await lifecycle.get(job_id, caller=caller)
                        if fresh is None:
                            return
                        event = fresh
                    if event["version"] <= version:
                        continue
                    snap, version = dict(event), event["version"]
                    yield job_from_snapshot(snap)
        finally:
            context.quota.release(caller.name)

    @strawberry.subscription(description="Every change to jobs matching the filters.")
    async def jobs_updated(
        self,
        info: Info,
        kind: JobKind | None = None,
        county_id: str | None = None,
        status: JobStatus | None = None,
    ) -> AsyncGenerator[Job, None]:
        context = info.context
        with client_errors():
            caller = await context.current_caller()
            if kind is not None:
                caller.require(kind, "read")
            context.quota.acquire(caller.name)

        def wants(event: dict[str, Any]) -> bool:
            return (
                caller.sees_event(event)
                and (kind is None or event.get("kind") == kind.value)
                and (county_id is None or event.get("county_id") == county_id)
                and (status is None or event.get("status") == status.value)
            )

        latest: dict[str, int] = {}
        try:
            with context.bus.subscribe(wants) as events:  # type: ignore[arg-type]
                async for event in events:
                    if event.get("resync"):
                        continue
                    if event["version"] <= latest.get(event["id"], 0):
                        continue
                    latest[event["id"]] = event["version"]
                    yield job_from_snapshot(dict(event))
        finally:
            context.quota.release(caller.name)
