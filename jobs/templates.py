"""Job templates: a named, saved run input of one kind, run again and again.

A template holds the run input exactly as a run mutation hands it to the lifecycle (the
kind's branch of `JobRunInput`, snake_case keys, choices as their values), so it is
validated by the same code as a run, when it is saved and again, merged with the
overrides, each time it runs: a template saved before its county lost a tax year fails
then as the run would. Refusals name the field under the kind's branch
(`report.parameters.salesRatioStudy.iqrFactor`).

Access follows the jobs' rule (jobs.access): a template is seen by its owner, its owner's
team when its input's visibility is TEAM, every reader of its kind when COUNTY, and by
admins; only its owner or an admin may change or delete it. Whoever sees it and may run
its kind may run it: the job is theirs.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import DateTime, String, Text, Uuid, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.db import SessionFactory
from app.models import Base
from jobs.access import ADMIN, Caller, Forbidden
from jobs.lifecycle import Lifecycle
from jobs.naming import MAX_DESCRIPTION, MAX_NAME
from jobs.origin import Origin
from jobs.params import graphql_name
from jobs.spec import BadInput, JobKind

MAX_TEMPLATES = 500
NOT_SAVED = {"scheduled_for": "scheduledFor", "idempotency_key": "idempotencyKey"}
"""One-off controls: a template runs many times, so these belong in a run's overrides."""


class TemplateNotFound(LookupError):
    def __str__(self) -> str:
        return f"no job template with id {self.args[0]}"


class JobTemplate(Base):
    __tablename__ = "job_templates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(MAX_NAME))
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    team: Mapped[str | None] = mapped_column(String(64))
    visibility: Mapped[str] = mapped_column(String(16), doc="its run input's visibility")
    county_id: Mapped[str] = mapped_column(String(64))
    run_input: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


def branch(kind: JobKind) -> str:
    """The `JobRunInput` branch of a kind as the lifecycle spells it (`market_analysis`)."""
    return kind.value.lower()


def branch_path(kind: JobKind) -> str:
    return graphql_name(branch(kind))


def one_branch(run: Mapping[str, Any], field: str) -> tuple[JobKind, dict[str, Any]]:
    """The kind and run input of a `JobRunInput`-shaped value (GraphQL's @oneOf made it one)."""
    if len(run) != 1:
        allowed = ", ".join(branch_path(kind) for kind in JobKind)
        raise BadInput(field, f"give exactly one of: {allowed}")
    ((key, value),) = run.items()
    return JobKind(key.upper()), dict(value)


def _stored(run_input: Mapping[str, Any]) -> dict[str, Any]:
    """The run input as JSON: dates as ISO strings, which the kinds' models read back."""
    return json.loads(json.dumps(run_input, default=lambda v: v.isoformat()))  # type: ignore[no-any-return]


def _text(name: str | None, description: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if name is not None:
        if not name.strip():
            raise BadInput("name", "must not be blank")
        if len(name) > MAX_NAME or "\x00" in name:
            raise BadInput("name", f"must be at most {MAX_NAME} characters, without NUL")
        values["name"] = name.strip()
    if description is not None:
        if len(description) > MAX_DESCRIPTION or "\x00" in description:
            raise BadInput(
                "description", f"must be at most {MAX_DESCRIPTION} characters, without NUL"
            )
        values["description"] = description or None
    return values


async def _checked(
    lifecycle: Lifecycle, kind: JobKind, run_input: Mapping[str, Any], caller: Caller
) -> dict[str, Any]:
    """What a template row records of a run input it validated as a run."""
    prefix = branch_path(kind)
    for key, field in NOT_SAVED.items():
        if run_input.get(key) is not None:
            raise BadInput(
                f"{prefix}.{field}",
                "is not saved in a template, which runs again and again; give it in "
                "runFromTemplate's overrides",
            )
    try:
        valid, controls = await lifecycle.check(kind, run_input, caller)
    except BadInput as exc:
        raise exc.under(prefix) from None
    return {
        "kind": kind.value,
        "visibility": controls.visibility.value,
        "county_id": valid.county_id,
        "run_input": _stored(run_input),
    }


def template_snapshot(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "kind": row.kind,
        "name": row.name,
        "description": row.description,
        "owner": row.owner,
        "visibility": row.visibility,
        "county_id": row.county_id,
        "run_input": row.run_input,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def create_template(
    lifecycle: Lifecycle,
    caller: Caller,
    name: str,
    description: str | None,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    kind, run_input = one_branch(run, "input")
    values = {**_text(name, description), **await _checked(lifecycle, kind, run_input, caller)}
    async with lifecycle.sessions.begin() as session:
        row = (
            await session.execute(
                insert(JobTemplate)
                .values(id=uuid.uuid4(), owner=caller.name, team=caller.team, **values)
                .returning(JobTemplate)
            )
        ).scalar_one()
        return template_snapshot(row)


async def find_template(
    sessions: SessionFactory, template_id: uuid.UUID, caller: Caller
) -> JobTemplate:
    """The template if `caller` may see it; TemplateNotFound as if it did not exist else."""
    async with sessions() as session:
        row = await session.get(JobTemplate, template_id)
    if row is None or not caller.sees(JobKind(row.kind), row.owner, row.visibility, row.team):
        raise TemplateNotFound(str(template_id))
    return row


async def _owned(
    sessions: SessionFactory, template_id: uuid.UUID, caller: Caller, action: str
) -> JobTemplate:
    row = await find_template(sessions, template_id, caller)
    caller.require(JobKind(row.kind), "run")
    if not caller.steers(row.owner):
        raise Forbidden(
            ADMIN,
            f"template {template_id} is shared with you by {row.owner}; only they or an "
            f"admin may {action} it",
        )
    return row


async def update_template(
    lifecycle: Lifecycle,
    caller: Caller,
    template_id: uuid.UUID,
    name: str | None,
    description: str | None,
    run: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Change what is given; a new input replaces the saved one whole (its kind too)."""
    await _owned(lifecycle.sessions, template_id, caller, "change")
    values = _text(name, description)
    if run is not None:
        kind, run_input = one_branch(run, "input")
        values.update(await _checked(lifecycle, kind, run_input, caller))
    async with lifecycle.sessions.begin() as session:
        row = (
            await session.execute(
                update(JobTemplate)
                .where(JobTemplate.id == template_id)
                .values(updated_at=func.now(), **values)
                .returning(JobTemplate)
            )
        ).scalar_one_or_none()
        if row is None:
            raise TemplateNotFound(str(template_id))
        return template_snapshot(row)


async def delete_template(sessions: SessionFactory, caller: Caller, template_id: uuid.UUID) -> None:
    """Jobs run from it keep its id; a template that schedules still run is refused."""
    await _owned(sessions, template_id, caller, "delete")
    try:
        async with sessions.begin() as session:
            await session.execute(delete(JobTemplate).where(JobTemplate.id == template_id))
    except IntegrityError:
        raise BadInput(
            "id", f"template {template_id} is run by schedules; delete them first"
        ) from None


async def list_templates(
    sessions: SessionFactory, caller: Caller, kind: JobKind | None, first: int
) -> list[dict[str, Any]]:
    """The templates `caller` sees, by name."""
    if not 1 <= first <= MAX_TEMPLATES:
        raise BadInput("first", f"must be from 1 to {MAX_TEMPLATES}")
    kinds = [k.value for k in caller.readable_kinds() if kind is None or k == kind]
    async with sessions() as session:
        rows = await session.scalars(
            select(JobTemplate)
            .where(JobTemplate.kind.in_(kinds), caller.visible(JobTemplate))
            .order_by(JobTemplate.name, JobTemplate.id)
            .limit(first)
        )
        return [template_snapshot(row) for row in rows]


def merged_input(row: JobTemplate, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The saved input with every field the overrides give replacing its saved value."""
    kind = JobKind(row.kind)
    merged = dict(row.run_input)
    if overrides:
        given, values = one_branch(overrides, "overrides")
        if given != kind:
            raise BadInput(
                f"overrides.{branch_path(given)}",
                f"the template runs a {kind.value} job; give overrides.{branch_path(kind)}",
            )
        merged.update(values)
    return merged


async def run_template(
    lifecycle: Lifecycle,
    caller: Caller,
    template_id: uuid.UUID,
    overrides: Mapping[str, Any] | None,
    origin: Origin | None = None,
) -> dict[str, Any]:
    """Submit the template's input, merged with `overrides`, as one run of `caller`'s."""
    row = await find_template(lifecycle.sessions, template_id, caller)
    kind = JobKind(row.kind)
    raw = merged_input(row, overrides)
    try:
        return await lifecycle.submit(kind, raw, caller, origin or Origin(template_id=row.id))
    except BadInput as exc:
        raise exc.under(branch_path(kind)) from None
