"""The job lifecycle, written once for every kind.

validate -> insert PENDING -> enqueue -> RUNNING -> progress -> COMPLETED | FAILED | CANCELLED.
Every transition is a compare-and-set UPDATE (`WHERE status IN :expected`), so arq's
at-least-once delivery can never move a finished job back, and a cancelled job stays
cancelled. Every change bumps `version` and is published to Redis after its commit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import func, update

from app.config import Settings
from app.db import SessionFactory
from app.metrics import Metrics
from jobs.registry import KINDS
from jobs.spec import BadInput, JobKind, KindSpec
from jobs.table import FINAL_STATUSES, JobStatus

log = logging.getLogger(__name__)

RUN_JOB = "run_job"


class JobNotFound(LookupError):
    pass


class InvalidJobState(Exception):
    """The job exists but its status does not allow the operation (e.g. cancel a finished job)."""


def parse_job_id(value: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadInput(field, f"{value!r} is not a UUID") from None


def snapshot(spec: KindSpec, row: Any) -> dict[str, Any]:
    """The JSON form of a job row: what queries render and what events carry."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "kind": spec.kind.value,
        "id": str(row.id),
        "county_id": row.county_id,
        "status": row.status,
        "message": row.message,
        "parameters": row.parameters_json,
        "priority": row.priority,
        "attempts": row.attempts,
        "version": row.version,
        "progress": {
            "percent": row.progress_percent,
            "step": row.progress_step,
            "processed": row.progress_processed,
            "total": row.progress_total,
        },
        "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
        "result": row.result_json,
        "fields": {name: getattr(row, name) for name in spec.kind_columns},
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
    }


def is_final(snap: Mapping[str, Any]) -> bool:
    return JobStatus(snap["status"]) in FINAL_STATUSES


class Lifecycle:
    """Job state changes for one process (API or worker), over its DB sessions and Redis."""

    def __init__(
        self, sessions: SessionFactory, redis: ArqRedis, settings: Settings, metrics: Metrics
    ) -> None:
        self.sessions = sessions
        self.redis = redis
        self.settings = settings
        self.metrics = metrics

    # -- submit ---------------------------------------------------------------------------

    async def submit(self, kind: JobKind, raw_input: Mapping[str, Any]) -> dict[str, Any]:
        """Validate, insert PENDING, enqueue. Bad input raises BadInput and writes nothing."""
        spec = KINDS[kind]
        async with self.sessions() as session:
            valid = await spec.validate(session, raw_input, self.settings)
        async with self.sessions.begin() as session:
            row = spec.model(
                county_id=valid.county_id, parameters_json=valid.parameters, **valid.columns
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            snap = snapshot(spec, row)
        job_id = row.id
        try:
            await self.enqueue(kind, job_id)
        except Exception:
            # The queue is unreachable: the client must not be told a job exists that no
            # worker will ever see, so the row goes too.
            async with self.sessions.begin() as session:
                await session.delete(await session.get(spec.model, job_id))
            raise
        await self.publish(snap)
        self.metrics.kind(kind).submitted.labels(
            valid.county_id, valid.columns.get(spec.type_label, ""), snap["status"]
        ).inc()
        return snap

    async def enqueue(self, kind: JobKind, job_id: uuid.UUID) -> None:
        await self.redis.enqueue_job(
            RUN_JOB,
            kind.value,
            str(job_id),
            _job_id=str(job_id),
            _queue_name=self.settings.queue_name,
        )

    # -- read ------------------------------------------------------------------------------

    async def find(
        self, job_id: uuid.UUID, kind: JobKind | None = None
    ) -> tuple[KindSpec, Any] | None:
        specs = [KINDS[kind]] if kind else list(KINDS.values())
        async with self.sessions() as session:
            for spec in specs:
                row = await session.get(spec.model, job_id)
                if row is not None:
                    return spec, row
        return None

    async def get(self, job_id: uuid.UUID, kind: JobKind | None = None) -> dict[str, Any] | None:
        found = await self.find(job_id, kind)
        return snapshot(*found) if found else None

    # -- transitions -----------------------------------------------------------------------

    async def transition(
        self,
        spec: KindSpec,
        job_id: uuid.UUID,
        expected: Collection[JobStatus],
        **values: Any,
    ) -> dict[str, Any] | None:
        """Compare-and-set: apply `values` only while the status is one of `expected`.

        Returns the new snapshot, already published, or None when the job was not in an
        expected status (someone else moved it first).
        """
        model = spec.model
        stmt = (
            update(model)
            .where(model.id == job_id, model.status.in_([s.value for s in expected]))
            .values(version=model.version + 1, updated_at=func.now(), **values)
            .returning(model)
            .execution_options(synchronize_session=False)
        )
        async with self.sessions.begin() as session:
            row = (await session.execute(stmt)).scalar_one_or_none()
            snap = snapshot(spec, row) if row is not None else None
        if snap is not None:
            await self.publish(snap)
        return snap

    async def start(self, spec: KindSpec, job_id: uuid.UUID) -> dict[str, Any] | None:
        return await self.transition(
            spec,
            job_id,
            [JobStatus.PENDING],
            status=JobStatus.RUNNING,
            attempts=spec.model.attempts + 1,
            started_at=func.now(),
            message="started",
            progress_percent=0.0,
            progress_step="starting",
        )

    async def progress(
        self,
        spec: KindSpec,
        job_id: uuid.UUID,
        step: str,
        processed: int | None,
        total: int | None,
        percent: float,
    ) -> dict[str, Any] | None:
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING],
            progress_step=step,
            progress_processed=processed,
            progress_total=total,
            progress_percent=percent,
            message=step,
        )

    async def complete(
        self, spec: KindSpec, job_id: uuid.UUID, result: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING],
            status=JobStatus.COMPLETED,
            result_json=result,
            completed_at=func.now(),
            progress_percent=100.0,
            progress_step="done",
            message="completed",
            **spec.result_columns(result),
        )

    async def fail(
        self, spec: KindSpec, job_id: uuid.UUID, code: str, message: str
    ) -> dict[str, Any] | None:
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING, JobStatus.PENDING],
            status=JobStatus.FAILED,
            error_code=code,
            error_message=message,
            completed_at=func.now(),
            message=f"failed: {code}",
        )

    async def _control(
        self, job_id: uuid.UUID, expected: Collection[JobStatus], action: str, **values: Any
    ) -> tuple[KindSpec, dict[str, Any]]:
        """A client's state change: NOT_FOUND, or INVALID_JOB_STATE naming what is allowed."""
        found = await self.find(job_id)
        if found is None:
            raise JobNotFound(str(job_id))
        spec, _ = found
        snap = await self.transition(spec, job_id, expected, **values)
        if snap is None:
            current = await self.get(job_id)
            allowed = " or ".join(s.value for s in expected)
            status = current["status"] if current else "gone"
            raise InvalidJobState(f"job {job_id} is {status}; only {allowed} jobs can be {action}")
        return spec, snap

    async def cancel(self, job_id: uuid.UUID) -> dict[str, Any]:
        _, snap = await self._control(
            job_id,
            [JobStatus.PENDING, JobStatus.RUNNING],
            "cancelled",
            status=JobStatus.CANCELLED,
            completed_at=func.now(),
            message="cancelled by request",
        )
        return snap

    async def retry(self, job_id: uuid.UUID) -> dict[str, Any]:
        """Run a FAILED or CANCELLED job again under the same id; `attempts` counts the runs."""
        spec, snap = await self._control(
            job_id,
            [JobStatus.FAILED, JobStatus.CANCELLED],
            "retried",
            status=JobStatus.PENDING,
            error_code=None,
            error_message=None,
            result_json=None,
            started_at=None,
            completed_at=None,
            progress_percent=0.0,
            progress_step=None,
            progress_processed=None,
            progress_total=None,
            message="queued for retry",
        )
        await self.enqueue(spec.kind, job_id)
        return snap

    # -- events ----------------------------------------------------------------------------

    async def publish(self, snap: Mapping[str, Any]) -> None:
        await self.redis.publish(self.settings.events_channel, json.dumps(snap, default=str))
