"""Columns every job table shares, written once.

Each kind keeps its own table (the seeds' `report_jobs`, `market_analysis_jobs`, ...), so its
typed columns stay real columns; what the lifecycle needs is mixed in here.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    FromClause,
    Integer,
    Label,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


def row_columns(model: Any, source: FromClause) -> list[Label[Any]]:
    """`source`'s columns for `model`, named as the model's attributes (`id`, not `report_id`).

    A Core row of these reads as the model's instance does (`row.id`, `row.status`), without
    the ORM's loading of an instance and its identity map, which cost more per statement
    than the round trip on the job path.
    """
    return [
        source.c[attr.columns[0].name].label(attr.key) for attr in model.__mapper__.column_attrs
    ]


class JobMixin:
    """Lifecycle columns. `id_column` keeps the seeds' primary-key names (report_id, job_id)."""

    id_column: ClassVar[str] = "job_id"

    @declared_attr
    def id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(cls.id_column, Uuid, primary_key=True, default=uuid.uuid4)

    county_id: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str | None] = mapped_column(
        String(128), index=True, doc="name of the API token that submitted it; null before auth"
    )
    visibility: Mapped[str] = mapped_column(
        String(16), server_default="PRIVATE", doc="PRIVATE, TEAM or COUNTY (jobs.access)"
    )
    team: Mapped[str | None] = mapped_column(
        String(64), doc="the owner's team when it submitted the job; TEAM jobs are shared in it"
    )
    name: Mapped[str] = mapped_column(
        String(200), doc="what the job is called in lists; defaulted from kind and parameters"
    )
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True, server_default=JobStatus.PENDING)
    message: Mapped[str | None] = mapped_column(Text)
    parameters_json: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    version: Mapped[int] = mapped_column(
        Integer, server_default=text("1"), doc="bumped on every change; orders events"
    )
    change_seq: Mapped[int] = mapped_column(
        BigInteger, doc="the change-log entry (jobs.changes) that produced this state"
    )
    progress_percent: Mapped[float] = mapped_column(Float, server_default=text("0"))
    progress_step: Mapped[str | None] = mapped_column(String(64))
    progress_processed: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    result_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), doc="not started before this time"
    )
    run_token: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, doc="the current run's claim; a worker that lost it may not write"
    )
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), doc="last sign of life of the running worker"
    )
    retention_days: Mapped[int] = mapped_column(Integer, server_default=text("30"))
    expires_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), index=True, doc="a finished job and its files go after this"
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_retry_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), doc="when retryJob last sent it back to PENDING"
    )
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, doc="the template it was run from (kept after the template is deleted)"
    )
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, index=True, doc="the schedule that created it; its due time is scheduled_for"
    )
    late: Mapped[bool] = mapped_column(
        Boolean,
        server_default=text("false"),
        doc="a schedule's run that started well after its due time or stands for missed ones",
    )


SHARED_COLUMNS = frozenset(JobMixin.__annotations__) | {"id"}
