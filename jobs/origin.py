"""Where a job came from: a saved template, and a schedule's due time.

A schedule's job is created once per due time however many workers try: the lifecycle
inserts the job row and its `schedule_runs` row (primary key: schedule and due time) in one
transaction, and a second insert of the same key rolls the whole job back (`AlreadyRun`).
The key lives beside the four job tables rather than in each, so one constraint covers
every kind.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import DateTime, ForeignKey, String, Uuid, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base


class AlreadyRun(Exception):
    """Another worker (or an earlier life of this one) already ran this due time."""


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"

    schedule_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("job_schedules.id", ondelete="CASCADE"), primary_key=True
    )
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


@dataclass(frozen=True)
class Origin:
    """What a job records about where it came from (`templateId`, `scheduleId`, `late`)."""

    template_id: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None
    due_at: dt.datetime | None = None
    late: bool = False

    async def claim(self, session: AsyncSession, kind: str, job_id: uuid.UUID) -> None:
        """Take this due time for `job_id` inside the job's own transaction, or AlreadyRun."""
        if self.schedule_id is None or self.due_at is None:
            return
        taken = await session.scalar(
            insert(ScheduleRun)
            .values(schedule_id=self.schedule_id, due_at=self.due_at, kind=kind, job_id=job_id)
            .on_conflict_do_nothing()
            .returning(ScheduleRun.job_id)
        )
        if taken is None:
            raise AlreadyRun(f"schedule {self.schedule_id} already ran for {self.due_at}")
