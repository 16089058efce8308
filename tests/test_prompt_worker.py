"""PromptWorker starts a queued job as soon as a slot frees, not at arq's next poll, and an
idle one still reads the queue once per poll delay; both against the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import Worker, func
from arq.connections import ArqRedis, RedisSettings

from app.config import Settings
from jobs.prompt_worker import PromptWorker


class Recorder:
    def __init__(self) -> None:
        self.done: list[str] = []
        self.running = 0
        self.most_at_once = 0

    async def job(self, ctx: dict[str, Any], name: str) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0)
        self.running -= 1
        self.done.append(name)


def _worker(settings: Settings, recorder: Recorder, poll_delay: float) -> PromptWorker:
    return PromptWorker(
        functions=[func(recorder.job, name="record")],  # type: ignore[arg-type]
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(settings.redis_url or ""),
        max_jobs=1,
        poll_delay=poll_delay,
        keep_result=0,
        handle_signals=False,
    )


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[list[PromptWorker]]:
    """Workers the test starts; stopped and closed after it."""
    started: list[PromptWorker] = []
    yield started
    for worker in started:
        await worker.close()


class Reads:
    """Reads of the queue finished by any worker (arq's `_poll_iteration` returning)."""

    count = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    counter = Reads()
    arqs_poll = Worker._poll_iteration

    async def counted(self: Worker) -> None:
        await arqs_poll(self)
        counter.count += 1

    monkeypatch.setattr(Worker, "_poll_iteration", counted)
    return counter


async def _main(worker: PromptWorker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.main())


async def test_a_freed_slot_starts_the_next_queued_job_before_the_next_poll(
    settings: Settings, arq_redis: ArqRedis, running: list[PromptWorker]
) -> None:
    names = [f"job-{i}" for i in range(3)]
    for name in names:
        await arq_redis.enqueue_job(
            "record", name, _queue_name=settings.queue_name, _job_id=uuid.uuid4().hex
        )
    recorder = Recorder()
    # One slot and a poll delay far beyond the test: stock arq runs one job in its first
    # poll (the others find the slot taken) and reads the queue again an hour later.
    worker = _worker(settings, recorder, poll_delay=3600)
    running.append(worker)
    task = await _main(worker)
    try:
        async with asyncio.timeout(30):
            while len(recorder.done) < len(names):
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(recorder.done) == names
    assert recorder.most_at_once == 1, "max_jobs still bounds the jobs run at once"


async def test_an_idle_worker_reads_the_queue_once_per_poll_delay(
    settings: Settings, running: list[PromptWorker], reads: Reads
) -> None:
    worker = _worker(settings, Recorder(), poll_delay=0.25)
    running.append(worker)
    task = await _main(worker)
    await asyncio.sleep(1.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 1.5 s at one read per 0.25 s is 6 or 7 reads (arq's own loop would make the same);
    # a worker that read again without a freed slot would make thousands.
    assert 3 <= reads.count <= 8


async def test_a_worker_stopped_as_a_slot_frees_stops(
    settings: Settings, running: list[PromptWorker], reads: Reads
) -> None:
    worker = _worker(settings, Recorder(), poll_delay=3600)
    running.append(worker)
    task = await _main(worker)
    async with asyncio.timeout(30):
        while reads.count < 1:
            await asyncio.sleep(0.01)
    # From the end of the read to the wait for a freed slot there is no await that yields.
    await asyncio.sleep(0)
    # A slot frees and the worker is stopped in the same turn of the loop: the stop must
    # win (with `asyncio.wait_for` on Python 3.11 it was lost and the worker polled on).
    worker._slot_freed.set()
    task.cancel()
    await asyncio.wait([task], timeout=10)
    assert task.done(), "the stopped worker went on polling"
    assert task.cancelled()


async def test_two_workers_run_each_job_once_and_none_before_it_is_due(
    settings: Settings, arq_redis: ArqRedis, running: list[PromptWorker]
) -> None:
    names = [f"job-{i}" for i in range(40)]
    for name in names:
        await arq_redis.enqueue_job(
            "record", name, _queue_name=settings.queue_name, _job_id=uuid.uuid4().hex
        )
    await arq_redis.enqueue_job("record", "later", _queue_name=settings.queue_name, _defer_by=3600)
    recorder = Recorder()
    workers = [_worker(settings, recorder, poll_delay=0.05) for _ in range(2)]
    running.extend(workers)
    tasks = [await _main(worker) for worker in workers]
    try:
        async with asyncio.timeout(30):
            while len(recorder.done) < len(names):
                await asyncio.sleep(0.02)
        # A few more reads of the queue by both: the deferred job is still not due.
        await asyncio.sleep(0.3)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    assert sorted(recorder.done) == sorted(names), "each job once, the deferred one not yet"
    assert await arq_redis.zcard(settings.queue_name) == 1
