"""What arq keeps in Redis for one of our jobs, and how a dead worker's share of it is freed.

arq marks a job it claims with `arq:in-progress:<id>` (no owner, only a TTL) and keeps its
`arq:job:<id>` and queue entry until the run ends. A worker killed after that claim but
before `Lifecycle.start` committed RUNNING leaves the row PENDING while those keys live on
for the whole in-progress TTL (the job timeout plus margins: an hour by default), and arq
refuses to enqueue the job again meanwhile. The key's age is known from its TTL, since every
worker sets it to the same length; a claim older than the stale window whose row is still
PENDING belongs to no live worker (a live one commits RUNNING moments after claiming).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.exceptions import WatchError

from app.config import Settings

ARQ_TIMEOUT_MARGIN_SECONDS = 120
"""arq's own job timeout is a backstop past ours, so run_job can record TIMEOUT itself."""
ARQ_IN_PROGRESS_MARGIN_SECONDS = 10
"""arq's in-progress TTL: its longest function timeout plus this (arq.worker.Worker)."""


def arq_job_timeout(settings: Settings) -> int:
    return settings.job_timeout_seconds + ARQ_TIMEOUT_MARGIN_SECONDS


def in_progress_ttl_ms(settings: Settings) -> int:
    return (arq_job_timeout(settings) + ARQ_IN_PROGRESS_MARGIN_SECONDS) * 1000


async def held_by_arq(redis: ArqRedis, job_ids: Iterable[uuid.UUID]) -> list[bool]:
    """Whether arq already holds each job (its job or result key exists), in one pipelined
    round trip: arq refuses to enqueue those, and asking it one job at a time costs a
    WATCHed transaction each, which for hundreds of queued jobs kept a worker's loop busy."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(job_key_prefix + str(job_id), result_key_prefix + str(job_id))
        counts: list[int] = await pipe.execute()
    return [count > 0 for count in counts]


async def forget(redis: ArqRedis, settings: Settings, job_id: uuid.UUID) -> None:
    """Drop arq's record of a run that is over (its worker is gone), so it can be enqueued."""
    key = str(job_id)
    await redis.delete(in_progress_key_prefix + key, job_key_prefix + key, retry_key_prefix + key)
    await redis.zrem(settings.queue_name, key)


async def release_dead_claims(
    redis: ArqRedis, settings: Settings, job_ids: Iterable[uuid.UUID]
) -> list[uuid.UUID]:
    """Free the arq claims on these PENDING jobs that are older than the stale window.

    One pipelined PTTL for all of them; then, per dead claim, a WATCHed transaction, so a
    claim that ends or is taken afresh meanwhile is left alone. Should the claiming worker
    be alive after all (stopped, not dead), `Lifecycle.start` lets only one run begin.
    """
    ids = list(job_ids)
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.pttl(in_progress_key_prefix + str(job_id))
        ttls: list[int] = await pipe.execute()
    oldest_live_ms = in_progress_ttl_ms(settings) - settings.stale_after_seconds * 1000
    released = []
    for job_id, ttl in zip(ids, ttls, strict=True):
        if 0 <= ttl < oldest_live_ms and await _release(redis, settings, job_id, oldest_live_ms):
            released.append(job_id)
    return released


async def _release(
    redis: ArqRedis, settings: Settings, job_id: uuid.UUID, oldest_live_ms: float
) -> bool:
    key = str(job_id)
    in_progress = in_progress_key_prefix + key
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.watch(in_progress)
        ttl = await pipe.pttl(in_progress)
        if not 0 <= ttl < oldest_live_ms:
            await pipe.reset()
            return False
        pipe.multi()
        pipe.delete(in_progress, job_key_prefix + key, retry_key_prefix + key)
        pipe.zrem(settings.queue_name, key)
        try:
            await pipe.execute()
        except WatchError:
            return False
    return True
