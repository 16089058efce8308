"""The arq worker: claims a job, runs its kind's compute, records the outcome.

Built from the same `Settings` as the API, so both agree on queue and channel names. While a
job runs, a heartbeat proves the worker alive and notices a lost claim (the job was
cancelled, or declared lost and re-run elsewhere): the computation is then cancelled within
one heartbeat interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from arq import Retry, cron, func
from arq.connections import RedisSettings
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError as BotoHTTPClientError
from prometheus_client import CollectorRegistry, start_http_server
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.config import Settings
from app.db import HotRows, create_engine, create_session_factory
from app.metrics import Metrics
from jobs.arq_claims import arq_job_timeout
from jobs.context import JobCancelled, RunContext
from jobs.lifecycle import RUN_JOB, Lifecycle
from jobs.maintenance import maintain
from jobs.prompt_worker import PromptWorker
from jobs.registry import KINDS, metric_kinds
from jobs.spec import BadInput, JobFailure, JobKind, KindSpec
from jobs.storage import result_files

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    BotoConnectionError,
    BotoHTTPClientError,
)
"""Failures of the connection to the database, Redis or the S3 store (botocore retried its
own requests already): worth running the job again."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT_ERRORS)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    engine = create_engine(settings.database_url or "", pool_size=settings.worker_max_jobs + 4)
    metrics = Metrics(CollectorRegistry(), metric_kinds())
    if settings.worker_metrics_port:
        try:
            start_http_server(settings.worker_metrics_port, registry=metrics.registry)
        except OSError as exc:
            log.warning("worker metrics port %s unavailable: %s", settings.worker_metrics_port, exc)
    # The claim, progress, heartbeat and finish of every run, and a run's kept reads
    # (RunContext.rows), on asyncpg's own pool: mostly one statement per running job at a
    # time; a coalesced progress write or a heartbeat beside a read waits its turn at most.
    writes = HotRows(engine, settings.worker_max_jobs + 2)
    await writes.start()
    ctx["engine"] = engine
    ctx["writes"] = writes
    ctx["lifecycle"] = Lifecycle(
        create_session_factory(engine), ctx["redis"], settings, metrics, writes=writes
    )
    ctx["last_sweep"] = 0.0
    log.info(
        "worker ready: queue %s, up to %d jobs at once",
        settings.queue_name,
        settings.worker_max_jobs,
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    if "writes" in ctx:
        await ctx["writes"].close()
    if "engine" in ctx:
        await ctx["engine"].dispose()
    log.info("worker stopped")


async def maintenance(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    now = time.monotonic()
    sweep = now - ctx["last_sweep"] >= settings.sweep_interval_seconds
    await maintain(ctx["lifecycle"], sweep=sweep)
    if sweep:
        ctx["last_sweep"] = now


Progress = tuple[str, int | None, int | None, float]


class _Run:
    """One claimed run of a job: its progress reporting and its heartbeat.

    Progress is coalesced: at most one write (an UPDATE and an event) per
    `progress_min_interval_seconds`. A report inside the interval is kept, the latest one
    winning, and written when the interval ends, unless the job finishes first: its final
    transition replaces the progress anyway. The interval starts with the run, whose start
    already wrote "starting", so a job shorter than the interval writes no progress at all.
    """

    def __init__(self, lifecycle: Lifecycle, spec: KindSpec, job_id: uuid.UUID) -> None:
        self.lifecycle = lifecycle
        self.spec = spec
        self.job_id = job_id
        self.token = uuid.uuid4()
        self.claim_lost = False
        self.computing: asyncio.Task[Any] | None = None
        self._last_write = time.monotonic()
        self._pending: Progress | None = None
        self._flush: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()
        """Held by a progress write, so the final transition never overtakes one."""

    async def report(
        self, step: str, processed: int | None, total: int | None, percent: float | None
    ) -> None:
        if percent is None:
            percent = 100.0 * processed / total if processed is not None and total else 0.0
        progress = (step, processed, total, min(percent, 99.9))
        wait = self._last_write + self.lifecycle.settings.progress_min_interval_seconds
        wait -= time.monotonic()
        if wait > 0:
            self._pending = progress
            if self._flush is None:
                self._flush = asyncio.create_task(self._write_later(wait))
            return
        self._pending = None
        if not await self._write(progress):
            raise JobCancelled(str(self.job_id))

    async def _write(self, progress: Progress) -> bool:
        """Write one progress value; False once the run has lost its claim."""
        async with self._writing:
            self._last_write = time.monotonic()
            updated = await self.lifecycle.progress(self.spec, self.job_id, self.token, *progress)
        if updated is None:
            self.claim_lost = True
        return updated is not None

    async def _write_later(self, wait: float) -> None:
        try:
            await asyncio.sleep(wait)
            progress, self._pending = self._pending, None
            if progress is None:
                return
            try:
                # Shielded: `settle` may cancel this task, never a write under way.
                alive = await asyncio.shield(self._write(progress))
            except Exception as exc:
                log.warning("progress of job %s not written: %s", self.job_id, exc)
                return
            if not alive and self.computing is not None:
                self.computing.cancel()
        finally:
            self._flush = None

    async def outcome(self, computing: asyncio.Task[Any], timeout: float) -> Any:
        """The computation's result (or its exception), once no progress write is left: the
        run's final transition must come after every progress event."""
        try:
            return await asyncio.wait_for(computing, timeout)
        finally:
            self._pending = None
            if self._flush is not None:
                self._flush.cancel()
            async with self._writing:
                pass

    async def beat(self, computing: asyncio.Task[Any]) -> None:
        interval = self.lifecycle.settings.heartbeat_interval_seconds
        while not computing.done():
            await asyncio.sleep(interval)
            try:
                alive = await self.lifecycle.heartbeat(self.spec, self.job_id, self.token)
            except Exception as exc:
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)
                continue
            if not alive:
                self.claim_lost = True
                computing.cancel()
                return


async def _remove_files(lifecycle: Lifecycle, run: RunContext) -> None:
    """What the run wrote or uploaded; shielded, so a stopping worker still cleans up."""
    try:
        await asyncio.shield(lifecycle.store.remove(run.job_id))
    except Exception as exc:
        # The retention sweep removes it with the job.
        log.warning("files of job %s not removed: %s", run.job_id, exc)


async def _compute_and_store(lifecycle: Lifecycle, spec: KindSpec, run: RunContext) -> Any:
    """The kind's computation, then its files into the result store: the upload is part of
    the run, so the heartbeat, the timeout and a cancel cover it too."""
    result = await spec.compute(run)
    await lifecycle.store.publish(run.job_id, result_files(result))
    return result


async def run_job(ctx: dict[str, Any], kind: str, job_id: str) -> str:
    lifecycle: Lifecycle = ctx["lifecycle"]
    settings: Settings = ctx["settings"]
    spec = KINDS[JobKind(kind)]
    claim = _Run(lifecycle, spec, uuid.UUID(job_id))
    snap = await lifecycle.start(spec, claim.job_id, claim.token)
    if snap is None:
        # Not PENDING and due: cancelled, scheduled later, or a duplicate delivery.
        log.debug("job %s (%s) not started: no longer pending and due", job_id, kind)
        return "skipped"
    log.info(
        "job %s (%s, county %s) started, attempt %d",
        job_id,
        kind,
        snap["county_id"],
        snap["attempts"],
    )
    metrics = lifecycle.metrics.kind(spec.kind.value)
    labels = (snap["county_id"], snap["fields"].get(spec.type_label) or "")
    run = RunContext(
        job_id=claim.job_id,
        kind=spec.kind,
        county_id=snap["county_id"],
        parameters=snap["parameters"],
        columns=snap["fields"],
        sessions=lifecycle.sessions,
        rows=lifecycle.writes,
        results_dir=settings.resolved_results_dir,
        report_progress=claim.report,
    )
    started = time.monotonic()
    computing = asyncio.ensure_future(_compute_and_store(lifecycle, spec, run))
    claim.computing = computing
    heartbeat = asyncio.create_task(claim.beat(computing))
    try:
        result = await claim.outcome(computing, settings.job_timeout_seconds)
    except TimeoutError:
        await _remove_files(lifecycle, run)
        message = f"the job ran longer than {settings.job_timeout_seconds} s and was stopped"
        await lifecycle.fail(spec, claim.job_id, "TIMEOUT", message, token=claim.token)
        metrics.failed.labels(*labels, "TIMEOUT").inc()
        log.warning("job %s (%s) failed: TIMEOUT: %s", job_id, kind, message)
        return "failed"
    except (JobCancelled, asyncio.CancelledError):
        await _remove_files(lifecycle, run)
        if claim.claim_lost:
            log.info("job %s (%s) stopped: cancelled, or running elsewhere now", job_id, kind)
            return "cancelled"
        log.info("job %s (%s) handed back: the worker is stopping", job_id, kind)
        # The worker itself is stopping: hand the job back so the next worker starts it
        # at once, instead of waiting for the reaper to notice a silent heartbeat.
        with contextlib.suppress(Exception):
            await asyncio.shield(
                lifecycle.requeue(
                    spec,
                    claim.job_id,
                    "worker stopped; queued again",
                    where=[spec.model.run_token == claim.token],
                )
            )
        raise
    except (JobFailure, BadInput) as exc:
        code = exc.code if isinstance(exc, JobFailure) else "INVALID_INPUT"
        await _remove_files(lifecycle, run)
        await lifecycle.fail(spec, claim.job_id, code, str(exc), token=claim.token)
        metrics.failed.labels(*labels, code).inc()
        log.info("job %s (%s) failed: %s: %s", job_id, kind, code, exc)
        return "failed"
    except Exception as exc:
        await _remove_files(lifecycle, run)
        if is_transient(exc):
            return await _retry_later(lifecycle, spec, claim, snap["attempts"], exc, labels)
        reference = uuid.uuid4().hex[:12]
        log.exception("job %s (%s) failed: INTERNAL_ERROR, reference %s", job_id, kind, reference)
        await lifecycle.fail(
            spec,
            claim.job_id,
            "INTERNAL_ERROR",
            f"the job failed unexpectedly (reference {reference})",
            token=claim.token,
        )
        metrics.failed.labels(*labels, "INTERNAL_ERROR").inc()
        return "failed"
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    done = await lifecycle.complete(spec, claim.job_id, claim.token, result)
    if done is None:
        await _remove_files(lifecycle, run)
        log.info("job %s (%s) stopped: cancelled as it finished", job_id, kind)
        return "cancelled"
    elapsed = time.monotonic() - started
    metrics.completed.labels(*labels).inc()
    metrics.duration.labels(*labels).observe(elapsed)
    log.info("job %s (%s) completed in %.1f s", job_id, kind, elapsed)
    return "completed"


async def _retry_later(
    lifecycle: Lifecycle,
    spec: KindSpec,
    claim: _Run,
    attempts: int,
    exc: BaseException,
    labels: tuple[str, str],
) -> str:
    """A database or Redis hiccup: run again with exponential backoff, up to max_attempts."""
    settings = lifecycle.settings
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    if attempts >= settings.max_attempts:
        log.warning(
            "job %s (%s) failed: TRANSIENT_ERROR after %d attempts: %s",
            claim.job_id,
            spec.kind.value,
            attempts,
            reason,
        )
        await lifecycle.fail(
            spec,
            claim.job_id,
            "TRANSIENT_ERROR",
            f"gave up after {attempts} attempts; last error: {reason}",
            token=claim.token,
        )
        lifecycle.metrics.kind(spec.kind.value).failed.labels(*labels, "TRANSIENT_ERROR").inc()
        return "failed"
    delay = settings.retry_backoff_seconds * 2 ** (attempts - 1)
    log.warning("job %s hit a transient error (%s); retrying in %.1fs", claim.job_id, reason, delay)
    try:
        await lifecycle.requeue(
            spec,
            claim.job_id,
            f"retrying in {delay:g}s after: {reason}",
            where=[spec.model.run_token == claim.token],
        )
    except Exception as requeue_error:
        # PostgreSQL itself is away: the row stays RUNNING and the reaper re-runs the job
        # once its heartbeat is stale, so nothing is lost.
        log.warning("could not requeue job %s: %s", claim.job_id, requeue_error)
    raise Retry(defer=delay)


async def run_worker(settings: Settings, **overrides: Any) -> None:
    """Run an arq worker until cancelled, starting it afresh whenever Redis goes away.

    arq's poll loop ends on a lost Redis connection; a worker that then exited would leave
    its machine idle after every Redis restart.
    """
    delay = 0.5
    while True:
        worker = PromptWorker(**worker_settings(settings, handle_signals=False, **overrides))
        try:
            await worker.main()
            return
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("worker lost Redis (%s); starting again in %.1fs", exc, delay)
        finally:
            with contextlib.suppress(Exception):
                await worker.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


def worker_settings(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`; `overrides` lets tests ask for burst mode."""
    tick = settings.maintenance_interval_seconds
    options: dict[str, Any] = {
        "functions": [func(run_job, name=RUN_JOB)],  # type: ignore[arg-type]
        "cron_jobs": [
            cron(
                maintenance,  # type: ignore[arg-type]
                second=set(range(0, 60, tick)),
                run_at_startup=True,
                unique=True,
                timeout=60,
            )
        ],
        "queue_name": settings.queue_name,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or ""),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": settings.worker_max_jobs,
        # run_job enforces the job timeout itself, so it can record it; this is a backstop.
        "job_timeout": arq_job_timeout(settings),
        "keep_result": 0,
        "max_tries": settings.max_attempts + 2,
        "poll_delay": 0.1,
    }
    options.update(overrides)
    return options
