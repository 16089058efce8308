"""What a kind's compute function gets: its inputs, a database, a folder, and `progress`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.db import RowReader, SessionFactory
from jobs.spec import JobKind

ProgressReporter = Callable[[str, int | None, int | None, float | None], Awaitable[None]]


class JobCancelled(Exception):
    """Raised inside a computation when its job was cancelled; unwinds it between batches."""


@dataclass
class RunContext:
    job_id: uuid.UUID
    kind: JobKind
    county_id: str
    parameters: dict[str, Any]
    columns: dict[str, Any]
    sessions: SessionFactory
    rows: RowReader
    """Kept statements (built once by their module), on the worker's asyncpg pool: for a
    kind's small reads, where a session's overhead is most of the cost."""
    results_dir: Path
    report_progress: ProgressReporter
    files: list[Path] = field(default_factory=list)
    reached: float = 0.0
    """The highest percent reported so far: what a client saw must never go back."""

    async def progress(
        self,
        step: str,
        processed: int | None = None,
        total: int | None = None,
        percent: float | None = None,
    ) -> None:
        """Record progress; raises JobCancelled once the job is no longer RUNNING.

        `processed`/`total` count the current step's own items; `percent` is the whole run's
        (from the step's counts when not given) and is held at the highest value reached, so
        a step that restarts its count never moves the bar back.
        """
        if percent is None:
            percent = 100.0 * processed / total if processed is not None and total else 0.0
        self.reached = max(self.reached, percent)
        await self.report_progress(step, processed, total, self.reached)

    @property
    def job_dir(self) -> Path:
        return self.results_dir / str(self.job_id)

    def new_file(self, name: str) -> Path:
        """A path for one of this job's result files; tracked so a failed run can remove it."""
        self.job_dir.mkdir(parents=True, exist_ok=True)
        path = self.job_dir / name
        self.files.append(path)
        return path

    def result_file(self, path: Path, content_type: str, row_count: int | None) -> dict[str, Any]:
        return {
            "name": path.name,
            "url": f"/results/{self.job_id}/{path.name}",
            "content_type": content_type,
            "size_bytes": path.stat().st_size,
            "row_count": row_count,
        }
