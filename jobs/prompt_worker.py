"""arq's worker, starting the next queued job as soon as one of its slots frees.

Why: arq reads the queue once per `poll_delay` and, in that read, starts jobs only into the
slots free at that moment; a slot freed just after waits idle for the next read. With
`max_jobs` 4 and a 0.1 s poll, a worker ran at most about 40 short jobs a second however
idle its CPU was (measured: 37 jobs/s, the worker process busy a fifth of the time). Here a
finished job wakes the poll at once, so the slots stay full while jobs are queued, and an idle
worker still reads the queue only once per `poll_delay`.

A read of the queue returns the jobs still running too (arq removes a job from the queue when
it ends), and arq's `start_jobs` spends four Redis round trips (WATCH, EXISTS, ZSCORE, then
MULTI/EXEC or UNWATCH) on each, taken or not; with a read at every freed slot, that was most
of what a worker said to Redis. `start_jobs` here drops the jobs running in this worker, asks
Redis in one round trip which of the rest run elsewhere, and claims each of the others in one
round trip: a script that makes arq's own checks (not in progress, still queued, due) and sets
arq's in-progress key, atomically as arq's transaction did.

It overrides three of arq's methods (`_poll_iteration`, `_release_sem_dec_counter_on_complete`,
`start_jobs`); `tests/test_prompt_worker.py` fails if arq stops calling them as this relies on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq import Worker
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from redis.commands.core import AsyncScript

CHECK_BATCH = 16
"""Queued ids asked about per round trip, until enough may start to fill the free slots."""

CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
return score
"""
"""arq's claim of a queued job (its `start_jobs` transaction) as one script: KEYS are the
job's in-progress key and the queue, ARGV the job id, now and the in-progress time in ms;
the job's score if it is claimed, nil if it runs elsewhere, has ended or is not yet due."""


class PromptWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot_freed = asyncio.Event()
        self._claim_script: AsyncScript | None = None

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _poll_iteration(self) -> None:
        """arq's read of the queue, again at each freed slot until `poll_delay` has passed
        (arq's loop then reads again at once, as this took the whole delay)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_delay_s
        while True:
            # Cleared before the read: a slot freed during it reads the queue again at once.
            self._slot_freed.clear()
            await super()._poll_iteration()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that
            # arrives as the event is set, and the worker then polls on after being stopped.
            try:
                async with asyncio.timeout(remaining):
                    await self._slot_freed.wait()
            except TimeoutError:
                return

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `start_jobs`, for the queued ids that are not already running, each claimed
        in one round trip."""
        free = self.max_jobs - self.job_counter
        if free <= 0:
            return
        others = [j for j in job_ids if not self._running_here(j)]
        startable: list[bytes] = []
        for first in range(0, len(others), CHECK_BATCH):
            if len(startable) >= free:
                break
            batch = others[first : first + CHECK_BATCH]
            async with self.pool.pipeline(transaction=False) as pipe:
                for queued in batch:
                    pipe.exists(in_progress_key_prefix + queued.decode())
                running = await pipe.execute()
            startable.extend(j for j, busy in zip(batch, running, strict=True) if not busy)
        for job_id_b in startable:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            job_id = job_id_b.decode()
            # A slot given back unused, with arq's own release: no job ended, so no wake-up.
            try:
                score = await self._claim(job_id)
            except BaseException:
                super()._release_sem_dec_counter_on_complete()
                raise
            if score is None:  # started elsewhere, ended, or queued again for later
                super()._release_sem_dec_counter_on_complete()
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _claim(self, job_id: str) -> bytes | None:
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(CLAIM)
        in_progress_ms = int(self.in_progress_timeout_s * 1000)
        score: bytes | None = await self._claim_script(
            keys=[in_progress_key_prefix + job_id, self.queue_name],
            args=[job_id, timestamp_ms(), in_progress_ms],
        )
        return score

    def _running_here(self, job_id: bytes) -> bool:
        task = self.tasks.get(job_id.decode())
        return task is not None and not task.done()
