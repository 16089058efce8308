"""Job templates and schedules: their inputs are the kinds' own run inputs, under one branch.

`JobRunInput` is a `@oneOf` with one branch per kind (`report: RunReportInput`, ...), built
from the registry of run inputs, so a template is typed exactly like a run and a new kind
is one more branch with no code here. `JobRunOverrides` has the same branches with every
field optional and without defaults: what a run gives there replaces the saved value of
that top-level field (a given `parameters` replaces the saved one whole, with its own
defaults), and nothing else changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from typing import Any

import strawberry
from graphql import GraphQLError

from jobs.access import Visibility
from jobs.schedules import MAX_UPCOMING, describe, due_after
from jobs.spec import JobKind
from jobs.templates import branch
from schema.convert import build
from schema.job_types import RUN_INPUTS


def _branches(name: str, inputs: dict[JobKind, type], description: str) -> type:
    annotations = {branch(kind): tp | None for kind, tp in inputs.items()}
    namespace: dict[str, Any] = {"__module__": __name__, "__annotations__": annotations}
    for kind in inputs:
        namespace[branch(kind)] = strawberry.field(
            default=strawberry.UNSET, description=f"for a {kind.value} job"
        )
    cls = type(name, (), namespace)
    return strawberry.input(cls, name=name, description=description, one_of=True)  # type: ignore[no-any-return]


def overrides_input(run_input: type) -> type:
    """`run_input` with every field optional and no defaults, so only what is given counts."""
    hints = typing.get_type_hints(run_input)
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__annotations__": annotations}
    for field in run_input.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        annotations[field.python_name] = hints[field.python_name] | None
        namespace[field.python_name] = strawberry.field(
            default=strawberry.UNSET, description=field.description
        )
    name = run_input.__name__.removesuffix("Input") + "Overrides"
    cls = type(name, (), namespace)
    return strawberry.input(  # type: ignore[no-any-return]
        cls, name=name, description=f"What a run changes of a saved {run_input.__name__}."
    )


JobRunInput = _branches(
    "JobRunInput",
    RUN_INPUTS,
    "One job's run input, under its kind's branch: exactly what the kind's run mutation takes.",
)
JobRunOverrides = _branches(
    "JobRunOverrides",
    {kind: overrides_input(tp) for kind, tp in RUN_INPUTS.items()},
    "Fields that replace a template's saved ones for one run, under the template's kind's "
    "branch; the merged input is validated as a whole.",
)


_saved: dict[type, type] = {}


def _saved_type(tp: Any) -> Any:
    """The output twin of an input annotation: the same scalars and enums, every input
    object mirrored as an object whose fields are all nullable (a saved input holds what
    was given and GraphQL's defaults, nothing more)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _saved_type(inner)
    if origin is list:
        (item,) = typing.get_args(tp)
        return list[_saved_type(item)]  # type: ignore[misc]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return saved_type(tp)
    return tp


def saved_type(input_type: type) -> type:
    """`RunReportInput` -> `SavedRunReportInput`, and so on for the inputs inside it."""
    known = _saved.get(input_type)
    if known is not None:
        return known
    hints = typing.get_type_hints(input_type)
    definition = input_type.__strawberry_definition__  # type: ignore[attr-defined]
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__annotations__": annotations}
    for field in definition.fields:
        annotations[field.python_name] = _saved_type(hints[field.python_name]) | None
        namespace[field.python_name] = strawberry.field(default=None, description=field.description)
    name = f"Saved{definition.name}"
    cls = type(name, (), namespace)
    _saved[input_type] = strawberry.type(
        cls, name=name, description=f"A saved {definition.name}, as given."
    )
    return _saved[input_type]


JobRunInputSaved = saved_type(JobRunInput)


def saved_input(kind: JobKind, run_input: dict[str, Any]) -> Any:
    """The stored run input (the lifecycle's spelling) as the typed `SavedJobRunInput`."""
    return build(JobRunInputSaved, {branch(kind): run_input})


@strawberry.type(description="A named, saved run input; run it with runFromTemplate.")
class JobTemplate:
    id: strawberry.ID
    kind: JobKind
    name: str
    description: str | None
    owner: str | None = strawberry.field(description="the token that saved it")
    visibility: Visibility = strawberry.field(
        description="its input's visibility: who else sees the template (and its jobs)"
    )
    county_id: str
    input: JobRunInputSaved = strawberry.field(  # type: ignore[valid-type]
        description="the saved input under its kind's branch, as given (with GraphQL's "
        "defaults) or as last updated"
    )
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> JobTemplate:
        kind = JobKind(snap["kind"])
        values = {k: v for k, v in snap.items() if k != "run_input"}
        values.update(
            id=strawberry.ID(snap["id"]),
            kind=kind,
            visibility=Visibility(snap["visibility"]),
            input=saved_input(kind, snap["run_input"]),
        )
        return cls(**values)


@strawberry.type(description="A template run at the times of a cron expression in a time zone.")
class Schedule:
    id: strawberry.ID
    template_id: strawberry.ID
    kind: JobKind
    owner: str | None = strawberry.field(description="the token whose jobs it creates")
    cron: str = strawberry.field(description="5 fields: minute hour day-of-month month day-of-week")
    timezone: str = strawberry.field(description="the IANA zone the cron is read in")
    paused: bool
    next_run_at: dt.datetime | None = strawberry.field(
        description="the next due time (UTC); null while paused"
    )
    last_due_at: dt.datetime | None = strawberry.field(
        description="the due time of the last run it created or failed to create"
    )
    last_job_id: strawberry.ID | None
    last_error: str | None = strawberry.field(
        description="why the last due time created no job (null when it did)"
    )
    created_at: dt.datetime
    updated_at: dt.datetime

    @strawberry.field(
        description='The cron in words, e.g. "At 06:00 on the first day of every month".'
    )
    def description(self) -> str:
        return describe(self.cron, self.timezone)

    @strawberry.field(description=f"The next due times (UTC), at most {MAX_UPCOMING}.")
    def upcoming_runs(self, count: int = 5) -> list[dt.datetime]:
        if not 1 <= count <= MAX_UPCOMING:
            raise GraphQLError(
                f"count: must be from 1 to {MAX_UPCOMING}",
                extensions={"code": "BAD_USER_INPUT", "field": "count"},
            )
        if self.next_run_at is None:
            return due_after(self.cron, self.timezone, dt.datetime.now(dt.UTC), count)
        rest = due_after(self.cron, self.timezone, self.next_run_at, count - 1) if count > 1 else []
        return [self.next_run_at, *rest]

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Schedule:
        return cls(**{**snap, "kind": JobKind(snap["kind"])})
