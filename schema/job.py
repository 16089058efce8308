"""The Job interface, its enums and the types every kind shares."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Self

import strawberry
from strawberry.scalars import JSON

from jobs.access import Visibility
from jobs.changes import encode_cursor
from jobs.naming import MAX_DESCRIPTION, MAX_NAME
from jobs.spec import JobKind
from jobs.table import JobStatus
from schema.convert import build, build_object
from schema.node import Node

strawberry.enum(JobKind, name="JobKind")
strawberry.enum(JobStatus, name="JobStatus")
strawberry.enum(
    Visibility,
    name="Visibility",
    description="Who besides its owner and admins sees a job: PRIVATE nobody, TEAM the "
    "owner's team (tokens made with --team), COUNTY every token that may read its kind. "
    "Only the owner or an admin may cancel or retry it.",
)


@strawberry.type
class JobProgress:
    percent: float
    step: str | None = None
    processed: int | None = None
    total: int | None = None


@strawberry.type
class JobError:
    code: str
    message: str


@strawberry.type(description="A two-sided interval, e.g. a 95% confidence interval.")
class Interval:
    lower: float
    upper: float
    level: float


def _signed_url(root: ResultFile, info: strawberry.Info) -> str:
    job_id, name = root.url.removeprefix("/results/").split("/", 1)
    return info.context.file_url(job_id, name)  # type: ignore[no-any-return]


@strawberry.type(description="A file a job wrote.")
class ResultFile:
    name: str
    url: strawberry.Private[str]
    """As stored: `/results/<job id>/<name>`; clients get `download_url` as `url`."""
    content_type: str
    size_bytes: int
    row_count: int | None = None
    download_url: str = strawberry.field(
        name="url",
        resolver=_signed_url,
        description="An absolute download link that needs no token, valid for "
        "DOWNLOAD_URL_TTL_SECONDS (15 minutes by default); ask again for a fresh one. "
        "API clients may also GET /results/<job id>/<name> with their bearer token.",
    )


@strawberry.interface
class Job(Node):
    id: strawberry.ID
    kind: JobKind
    name: str = strawberry.field(
        description="given at submission, else built from kind and parameters, e.g. "
        '"Sales ratio study, COUNTY01, 2025"'
    )
    description: str | None
    visibility: Visibility
    county_id: str
    status: JobStatus
    message: str | None
    progress: JobProgress | None
    priority: int
    attempts: int
    version: int = strawberry.field(
        description="Increases with every change; a client can drop events older than it has."
    )
    error: JobError | None
    change_cursor: str = strawberry.field(
        description="Where this state stands in the change log (opaque; ordered across all "
        "jobs, also as strings): jobsUpdated(after:) and jobs(changedAfter:) continue after "
        "it, missing no later change."
    )
    scheduled_for: dt.datetime | None = strawberry.field(
        description="the job does not start before this time"
    )
    expires_at: dt.datetime | None = strawberry.field(
        description="when the finished job and its files are deleted"
    )
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    last_retry_at: dt.datetime | None = strawberry.field(
        description="when retryJob last queued it again (null if never); `attempts` counts runs"
    )
    completed_at: dt.datetime | None
    template_id: strawberry.ID | None = strawberry.field(
        description="the job template it was run from (runFromTemplate or a schedule); kept "
        "after the template is deleted"
    )
    schedule_id: strawberry.ID | None = strawberry.field(
        description="the schedule that created it; `scheduledFor` is its due time"
    )
    late: bool = strawberry.field(
        description="a schedule's job created more than SCHEDULE_LATE_AFTER_SECONDS after "
        "its due time, or standing in for due times missed while no worker ran"
    )

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Self:
        """Fill the shared fields from the snapshot, and the kind's own from `fields`/`result`."""
        values = {
            **snap["fields"],
            **snap,
            "result": snap["result"],
            "change_cursor": encode_cursor(snap["change_seq"]),
        }
        values.pop("fields")
        values["parameters"] = cls.parameters_by_variant(snap)
        obj = build_object(cls, values)
        return obj  # type: ignore[no-any-return]

    @classmethod
    def parameters_by_variant(cls, snap: dict[str, Any]) -> dict[str, Any]:
        """The stored parameters in the shape of this type's `parameters` field.

        A kind with variants stores its variant's parameters; its `@oneOf`-shaped output
        puts them under the variant's branch.
        """
        return dict(snap["parameters"] or {})


@strawberry.input(description="How and when to run a job; the same on every run input.")
class JobControls:
    priority: int = strawberry.field(
        default=0, description="0 (lowest) to 9 (highest); higher starts before lower"
    )
    scheduled_for: dt.datetime | None = strawberry.field(
        default=None, description="stay PENDING until this time"
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="the same key within 24 h returns the existing job instead of a new one",
    )
    retention_days: int | None = strawberry.field(
        default=None, description="days the finished job and its files are kept (default 30)"
    )
    name: str | None = strawberry.field(
        default=None,
        description=f"at most {MAX_NAME} characters; default: built from the kind and "
        'parameters, e.g. "Sales ratio study, COUNTY01, 2025"',
    )
    description: str | None = strawberry.field(
        default=None, description=f"free text, at most {MAX_DESCRIPTION} characters"
    )
    visibility: Visibility = strawberry.field(
        default=Visibility.PRIVATE, description="who else sees the job (default PRIVATE)"
    )


JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))  # type: ignore[arg-type]

__all__ = [
    "JSON",
    "Interval",
    "Job",
    "JobError",
    "JobKind",
    "JobProgress",
    "JobStatus",
    "ResultFile",
    "build",
]
