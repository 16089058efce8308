"""The arq worker: picks a job id, runs its kind's compute, records the outcome.

Built from the same `Settings` as the API, so both agree on queue and channel names.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from typing import Any

from arq import func
from arq.connections import RedisSettings
from prometheus_client import CollectorRegistry, start_http_server

from app.config import Settings
from app.db import create_engine, create_session_factory
from app.metrics import Metrics
from jobs.context import JobCancelled, RunContext
from jobs.lifecycle import RUN_JOB, Lifecycle
from jobs.registry import KINDS, metric_kinds
from jobs.spec import BadInput, JobFailure, JobKind

log = logging.getLogger(__name__)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    engine = create_engine(settings.database_url or "", pool_size=settings.worker_max_jobs + 2)
    metrics = Metrics(CollectorRegistry(), metric_kinds())
    if settings.worker_metrics_port:
        try:
            start_http_server(settings.worker_metrics_port, registry=metrics.registry)
        except OSError as exc:
            log.warning("worker metrics port %s unavailable: %s", settings.worker_metrics_port, exc)
    ctx["engine"] = engine
    ctx["lifecycle"] = Lifecycle(create_session_factory(engine), ctx["redis"], settings, metrics)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "engine" in ctx:
        await ctx["engine"].dispose()


def _remove_files(run: RunContext) -> None:
    shutil.rmtree(run.job_dir, ignore_errors=True)


async def run_job(ctx: dict[str, Any], kind: str, job_id: str) -> str:
    lifecycle: Lifecycle = ctx["lifecycle"]
    settings: Settings = ctx["settings"]
    spec = KINDS[JobKind(kind)]
    jid = uuid.UUID(job_id)
    snap = await lifecycle.start(spec, jid)
    if snap is None:
        # Not PENDING any more: cancelled before it started, or a duplicate delivery.
        return "skipped"
    metrics = lifecycle.metrics.kind(spec.kind.value)
    labels = (snap["county_id"], snap["fields"].get(spec.type_label) or "")
    last_report = 0.0
    last_step: str | None = None

    async def report(
        step: str, processed: int | None, total: int | None, percent: float | None
    ) -> None:
        nonlocal last_report, last_step
        now = time.monotonic()
        if percent is None:
            percent = 100.0 * processed / total if processed is not None and total else 0.0
        if step == last_step and now - last_report < settings.progress_min_interval_seconds:
            return
        last_report, last_step = now, step
        updated = await lifecycle.progress(spec, jid, step, processed, total, min(percent, 99.9))
        if updated is None:
            raise JobCancelled(job_id)

    run = RunContext(
        job_id=jid,
        kind=spec.kind,
        county_id=snap["county_id"],
        parameters=snap["parameters"],
        columns=snap["fields"],
        sessions=lifecycle.sessions,
        results_dir=settings.resolved_results_dir,
        report_progress=report,
    )
    started = time.monotonic()
    try:
        result = await spec.compute(run)
    except JobCancelled:
        _remove_files(run)
        return "cancelled"
    except (JobFailure, BadInput) as exc:
        code = exc.code if isinstance(exc, JobFailure) else "INVALID_INPUT"
        _remove_files(run)
        await lifecycle.fail(spec, jid, code, str(exc))
        metrics.failed.labels(*labels, code).inc()
        return "failed"
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("job %s (%s) crashed; reference %s", job_id, kind, reference)
        _remove_files(run)
        await lifecycle.fail(
            spec, jid, "INTERNAL_ERROR", f"the job failed unexpectedly (reference {reference})"
        )
        metrics.failed.labels(*labels, "INTERNAL_ERROR").inc()
        return "failed"
    done = await lifecycle.complete(spec, jid, result)
    if done is None:
        _remove_files(run)
        return "cancelled"
    metrics.completed.labels(*labels).inc()
    metrics.duration.labels(*labels).observe(time.monotonic() - started)
    return "completed"


def worker_settings(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`; `overrides` lets tests ask for burst mode."""
    options: dict[str, Any] = {
        "functions": [func(run_job, name=RUN_JOB)],  # type: ignore[arg-type]
        "queue_name": settings.queue_name,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url or ""),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": settings.job_timeout_seconds,
        "keep_result": 0,
        "max_tries": 5,
        "poll_delay": 0.1,
    }
    options.update(overrides)
    return options
