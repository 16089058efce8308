"""What keeps jobs moving when processes die: run by every worker on a short arq cron.

- reap: a RUNNING job whose worker stopped beating (SIGKILL, a lost machine) runs again, or
  fails WORKER_LOST once it has used its attempts, within `stale_after` plus one tick;
- dispatch: a PENDING job that is due but not in the queue (scheduled for now, or queued in a
  Redis that restarted empty) is enqueued; arq refuses duplicates, so this is idempotent;
  one whose arq claim is older than `stale_after` (its worker died between arq's claim and
  RUNNING: jobs.arq_claims) has that claim freed and is enqueued again;
- schedules: every schedule that is due creates its job (jobs.schedules); every worker may
  try, and the key on schedule and due time lets one job through;
- sweep: finished jobs past their expiry go, with their files, and publish nothing; the
  change log drops what is older than EVENT_RETENTION_HOURS, and its size goes to /metrics.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select

from app.auth import caller_named
from jobs.access import ANONYMOUS_ADMIN, Caller
from jobs.arq_claims import forget, held_by_arq, release_dead_claims
from jobs.changes import log_size, prune
from jobs.idempotency import forget_expired
from jobs.lifecycle import Lifecycle
from jobs.registry import KINDS
from jobs.schedules import run_due_schedules
from jobs.table import FINAL_STATUSES, JobStatus

log = logging.getLogger(__name__)

DISPATCH_BATCH = 500
SWEEP_BATCH = 500


@dataclass
class Tally:
    requeued: int = 0
    lost: int = 0
    dispatched: int = 0
    reclaimed: int = 0
    swept: int = 0
    pruned: int = 0
    scheduled: int = 0


async def reap_lost(lifecycle: Lifecycle, tally: Tally) -> None:
    settings = lifecycle.settings
    cutoff = func.now() - dt.timedelta(seconds=settings.stale_after_seconds)
    for spec in KINDS.values():
        model = spec.model
        async with lifecycle.sessions() as session:
            stale = (
                await session.execute(
                    select(model.id, model.attempts).where(
                        model.status == JobStatus.RUNNING.value, model.heartbeat_at < cutoff
                    )
                )
            ).all()
        for job_id, attempts in stale:
            still_stale = [model.heartbeat_at < cutoff]
            if attempts >= settings.max_attempts:
                snap = await lifecycle.fail(
                    spec,
                    job_id,
                    "WORKER_LOST",
                    f"the worker running this job stopped responding; gave up after {attempts} "
                    "attempts",
                    where=still_stale,
                )
                tally.lost += snap is not None
                continue
            snap = await lifecycle.requeue(
                spec, job_id, "worker lost; running again", where=still_stale
            )
            if snap is None:
                continue
            # The dead run's arq bookkeeping would block re-enqueueing under the same id.
            await forget(lifecycle.redis, settings, job_id)
            await lifecycle.enqueue(spec.kind, job_id, snap["priority"])
            tally.requeued += 1


async def dispatch_due(lifecycle: Lifecycle, tally: Tally) -> None:
    settings = lifecycle.settings
    cutoff = func.now() - dt.timedelta(seconds=settings.stale_after_seconds)
    for spec in KINDS.values():
        model = spec.model
        async with lifecycle.sessions() as session:
            due = (
                await session.execute(
                    select(model.id, model.priority, model.updated_at < cutoff)
                    .where(
                        model.status == JobStatus.PENDING.value,
                        or_(model.scheduled_for.is_(None), model.scheduled_for <= func.now()),
                    )
                    .order_by(model.priority.desc(), model.created_at)
                    .limit(DISPATCH_BATCH)
                )
            ).all()
        # Only a row unchanged for the stale window can hold a claim that old.
        refused = {}
        held = await held_by_arq(lifecycle.redis, [job_id for job_id, _, _ in due]) if due else []
        for (job_id, priority, quiet), queued in zip(due, held, strict=True):
            # A job arq already holds is refused by `enqueue` too; asked first, all at once.
            if not queued and await lifecycle.enqueue(spec.kind, job_id, priority):
                tally.dispatched += 1
            elif quiet:
                refused[job_id] = priority
        for job_id in await release_dead_claims(lifecycle.redis, settings, refused):
            tally.reclaimed += 1
            tally.dispatched += await lifecycle.enqueue(spec.kind, job_id, refused[job_id])


async def sweep_expired(lifecycle: Lifecycle, tally: Tally) -> None:
    window = dt.timedelta(hours=lifecycle.settings.idempotency_window_hours)
    for spec in KINDS.values():
        model = spec.model
        expired = [
            model.status.in_([s.value for s in FINAL_STATUSES]),
            model.expires_at < func.now(),
        ]
        while True:
            async with lifecycle.sessions() as session:
                due = list(
                    (
                        await session.scalars(select(model.id).where(*expired).limit(SWEEP_BATCH))
                    ).all()
                )
            # Files first: a job whose files could not be removed (its bucket unreachable)
            # stays, to be swept again, rather than leave objects nothing refers to.
            removed = []
            for job_id in due:
                try:
                    await lifecycle.store.remove(job_id)
                except Exception as exc:
                    log.warning("expired job %s kept: its files not removed: %s", job_id, exc)
                else:
                    removed.append(job_id)
            if removed:
                async with lifecycle.sessions.begin() as session:
                    gone = await session.scalars(
                        delete(model).where(model.id.in_(removed), *expired).returning(model.id)
                    )
                    tally.swept += len(gone.all())
            if len(due) < SWEEP_BATCH or not removed:
                break
    async with lifecycle.sessions.begin() as session:
        await forget_expired(session, window)
    retention = dt.timedelta(hours=lifecycle.settings.event_retention_hours)
    tally.pruned += await prune(lifecycle.sessions, retention)
    size = await log_size(lifecycle.sessions)
    lifecycle.metrics.change_log_rows.set(size.rows)
    lifecycle.metrics.change_log_oldest_seconds.set(size.oldest_age_seconds)


async def run_schedules(lifecycle: Lifecycle, tally: Tally) -> None:
    async def owner(name: str | None) -> Caller | None:
        if lifecycle.settings.auth_disabled:
            return ANONYMOUS_ADMIN
        return await caller_named(lifecycle.sessions, name)

    tally.scheduled += await run_due_schedules(lifecycle, owner)


async def maintain(lifecycle: Lifecycle, *, sweep: bool) -> Tally:
    tally = Tally()
    await reap_lost(lifecycle, tally)
    await run_schedules(lifecycle, tally)
    await dispatch_due(lifecycle, tally)
    if sweep:
        await sweep_expired(lifecycle, tally)
    # Routine work (due jobs enqueued, expired ones swept, the log pruned) is DEBUG;
    # lost workers are news.
    if tally.requeued or tally.lost or tally.reclaimed:
        log.warning(
            "maintenance: jobs whose worker stopped responding: %d queued again, %d failed "
            "WORKER_LOST, %d freed from a dead worker's claim before they started",
            tally.requeued,
            tally.lost,
            tally.reclaimed,
        )
    log.debug("maintenance: %s", tally)
    return tally
