"""The job lifecycle, written once for every kind.

validate -> insert PENDING -> enqueue -> RUNNING -> progress -> COMPLETED | FAILED | CANCELLED.
Every transition is a compare-and-set UPDATE (`WHERE status IN :expected`), so arq's
at-least-once delivery can never move a finished job back, and a cancelled job stays
cancelled. A run holds a claim (`run_token`): a worker that lost it (cancelled, or declared
lost and re-run elsewhere) can no longer write progress or a result. Every change bumps
`version`; every state change (not a progress tick) also writes its change-log row in the
same statement (jobs.changes). Both are published to Redis after the commit; the log stays
the truth, so a publish that fails is logged, not fatal: listeners catch up from the log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Select,
    Update,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import (
    CoreRows,
    RowReader,
    RowWriter,
    SessionFactory,
    autocommit_connection,
)
from app.metrics import Metrics
from jobs.access import ADMIN, Caller, Forbidden, Visibility, parse_visibility
from jobs.changes import next_change_seq, with_change_log
from jobs.idempotency import IdempotencyKey, find_key, request_hash
from jobs.input_limits import check_input_sizes
from jobs.naming import default_name
from jobs.origin import Origin
from jobs.registry import KINDS
from jobs.spec import BadInput, JobKind, KindSpec, ValidatedInput
from jobs.storage import open_store
from jobs.table import FINAL_STATUSES, JobStatus, row_columns
from jobs.validation_reads import ValidationReads

log = logging.getLogger(__name__)

RUN_JOB = "run_job"
MAX_PRIORITY = 9
PRIORITY_STEP = dt.timedelta(days=1)
"""arq runs the queue in score order; each priority level moves a job this far ahead."""
PUBLISH_TIMEOUT_SECONDS = 2.0
"""A Redis that hangs must not hold up the transition that already committed."""


class JobNotFound(LookupError):
    pass


class InvalidJobState(Exception):
    """The job exists but its status does not allow the operation (e.g. cancel a finished job)."""


def parse_job_id(value: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadInput(field, f"{value!r} is not a UUID") from None


@functools.cache
def row_by_id(spec: KindSpec) -> Select[Any]:
    """A kind's row by primary key (`:id`) as a Core select, its columns named as the model's
    attributes (so `snapshot` reads it as it reads an ORM row).

    Reading a job is the API's hottest path: the ORM's identity map, its loading and a
    statement built afresh each time (its cache key computed again) cost more than the read
    itself. One statement object per kind, compiled once and run by `Lifecycle.rows`.
    """
    model = spec.model
    table = model.__table__
    return select(*row_columns(model, table)).where(table.c[model.id_column] == bindparam("id"))


@functools.cache
def heartbeat_statement(spec: KindSpec) -> Update:
    """A run's sign of life (`:id`, `:token`): one statement object per kind, kept, so the
    worker's pool compiles it once."""
    model = spec.model
    return (
        update(model)
        .where(
            model.id == bindparam("id", type_=model.id.type),
            model.status == JobStatus.RUNNING.value,
            model.run_token == bindparam("token", type_=model.run_token.type),
        )
        .values(heartbeat_at=func.now())
    )


def snapshot(spec: KindSpec, row: Any) -> dict[str, Any]:
    """The JSON form of a job row: what queries render and what events carry."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "kind": spec.kind.value,
        "id": str(row.id),
        "county_id": row.county_id,
        "owner": row.owner,
        "visibility": row.visibility,
        "team": row.team,
        "name": row.name,
        "description": row.description,
        "status": row.status,
        "message": row.message,
        "parameters": row.parameters_json,
        "priority": row.priority,
        "attempts": row.attempts,
        "version": row.version,
        "change_seq": row.change_seq,
        "progress": {
            "percent": row.progress_percent,
            "step": row.progress_step,
            "processed": row.progress_processed,
            "total": row.progress_total,
        },
        "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
        "result": row.result_json,
        "fields": {name: getattr(row, name) for name in spec.kind_columns},
        "scheduled_for": iso(row.scheduled_for),
        "expires_at": iso(row.expires_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "started_at": iso(row.started_at),
        "last_retry_at": iso(row.last_retry_at),
        "completed_at": iso(row.completed_at),
        "template_id": str(row.template_id) if row.template_id else None,
        "schedule_id": str(row.schedule_id) if row.schedule_id else None,
        "late": row.late,
    }


_FINAL_BY_STATUS = {status.value: status in FINAL_STATUSES for status in JobStatus}
"""Asked for every event a subscriber takes: a look-up, not an enum built each time."""


def is_final(snap: Mapping[str, Any]) -> bool:
    final = _FINAL_BY_STATUS.get(snap["status"])
    return JobStatus(snap["status"]) in FINAL_STATUSES if final is None else final


@dataclass(frozen=True)
class Controls:
    """What every run input may add to its kind's own input."""

    priority: int
    scheduled_for: dt.datetime | None
    idempotency_key: str | None
    retention_days: int
    name: str | None = None
    """None: named by `jobs.naming.default_name` once the input is valid. Lengths are
    bounded with every other string, in `jobs.input_limits`."""
    description: str | None = None
    visibility: Visibility = Visibility.PRIVATE

    @classmethod
    def parse(cls, raw: Mapping[str, Any], settings: Settings) -> Controls:
        priority = raw.get("priority")
        priority = 0 if priority is None else priority
        if not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
            raise BadInput("priority", f"must be an integer from 0 (lowest) to {MAX_PRIORITY}")
        when = raw.get("scheduled_for")
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            try:
                when = when.astimezone(dt.UTC)
            except OverflowError:
                raise BadInput("scheduledFor", "must lie between years 1 and 9999 in UTC") from None
            if when > dt.datetime.now(dt.UTC) + dt.timedelta(days=366):
                raise BadInput("scheduledFor", "must be within a year from now")
        key = raw.get("idempotency_key")
        if key is not None and not 1 <= len(key) <= 255:
            raise BadInput("idempotencyKey", "must be 1 to 255 characters")
        retention = raw.get("retention_days")
        retention = settings.retention_days if retention is None else retention
        if not 1 <= retention <= 3650:
            raise BadInput("retentionDays", "must be between 1 and 3650 days")
        name = raw.get("name")
        if name is not None and not name.strip():
            raise BadInput("name", "must not be blank; leave it out for a default name")
        description = raw.get("description")
        visibility = parse_visibility(raw.get("visibility"))
        return cls(priority, when, key, retention, name and name.strip(), description, visibility)

    def due(self) -> bool:
        return self.scheduled_for is None or self.scheduled_for <= dt.datetime.now(dt.UTC)


def _bound(model: Any, name: str) -> Any:
    """A parameter for the value of column attribute `name`, typed as the column."""
    return bindparam(f"tf_{name}", type_=getattr(model, name).type)


def expires_in(model: Any) -> ColumnElement[Any]:
    """A finished job's expiry: now plus its retention."""
    return func.now() + model.retention_days * literal_column("interval '1 day'")


def _is_sql(value: Any) -> bool:
    """A SQL expression (part of a template's statement), not a value to bind."""
    return isinstance(value, ClauseElement) or hasattr(value, "__clause_element__")


@functools.cache
def _start_sql(spec: KindSpec) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """The start's condition and SQL-valued columns, built once per kind: with a template
    they only pick the statement, so building them anew per call was wasted work."""
    model = spec.model
    due = [or_(model.scheduled_for.is_(None), model.scheduled_for <= func.now())]
    return due, {
        "heartbeat_at": func.now(),
        "attempts": model.attempts + 1,
        "started_at": func.now(),
    }


@functools.cache
def _finish_sql(spec: KindSpec) -> dict[str, Any]:
    """The SQL-valued columns every end of a run sets (see `_start_sql`)."""
    return {"completed_at": func.now(), "expires_at": expires_in(spec.model)}


class Lifecycle:
    """Job state changes for one process (API or worker), over its DB sessions and Redis."""

    def __init__(
        self,
        sessions: SessionFactory,
        redis: ArqRedis,
        settings: Settings,
        metrics: Metrics,
        *,
        rows: RowReader | None = None,
        writes: RowWriter | None = None,
    ) -> None:
        self.sessions = sessions
        self.rows = rows or CoreRows(sessions)
        """How `find` reads a job and validation its kept statements (ValidationReads): the
        API's own pool (app.db.HotRows), else the engine."""
        self.writes = writes or CoreRows(sessions)
        """How templated transitions, the heartbeat and a submission's INSERT (without an
        idempotency key or a schedule) run: the process's own pool (app.db.HotRows), else
        the engine, each statement on an autocommit connection."""
        self.redis = redis
        self.settings = settings
        self.metrics = metrics
        self.store = open_store(settings)
        """Where finished files are kept (RESULTS_STORAGE), for workers, API and sweeps."""
        self._templates: dict[tuple[Any, ...], Any] = {}
        """Statements built once per kind and shape (see `transition`), run with new values."""

    # -- submit ---------------------------------------------------------------------------

    async def check(
        self, kind: JobKind, raw_input: Mapping[str, Any], caller: Caller
    ) -> tuple[ValidatedInput, Controls]:
        """Everything a run input must pass, writing nothing: what `submit` and a saved
        template (jobs.templates) validate alike."""
        caller.require(kind, "run")
        check_input_sizes(raw_input)
        controls = Controls.parse(raw_input, self.settings)
        async with ValidationReads(self.rows, self.sessions) as reads:
            valid = await KINDS[kind].validate(reads, raw_input, self.settings)
        return valid, controls

    async def submit(
        self,
        kind: JobKind,
        raw_input: Mapping[str, Any],
        caller: Caller,
        origin: Origin | None = None,
    ) -> dict[str, Any]:
        """Validate, insert PENDING (owned by `caller`), enqueue. Bad input raises BadInput
        and writes nothing; a caller without `<kind>:run` gets Forbidden.

        With an idempotency key already used by `caller` within the window, the existing job
        comes back instead (same request), or BadInput (a different one). A schedule's
        `origin` takes its due time in the job's transaction, or raises AlreadyRun.
        """
        spec = KINDS[kind]
        origin = origin or Origin()
        valid, controls = await self.check(kind, raw_input, caller)
        digest = request_hash(
            {
                "kind": kind.value,
                "county_id": valid.county_id,
                "parameters": valid.parameters,
                "columns": valid.columns,
                "priority": controls.priority,
                "scheduled_for": controls.scheduled_for,
                "retention_days": controls.retention_days,
                "name": controls.name,
                "description": controls.description,
                "visibility": controls.visibility.value,
            }
        )
        try:
            snap, created = await self._insert(spec, valid, controls, caller, digest, origin)
        except IntegrityError:
            # A concurrent request with the same key inserted first: answer as it did.
            snap, created = await self._insert(spec, valid, controls, caller, digest, origin)
        if not created:
            return snap
        if controls.due():
            try:
                await self.enqueue(kind, uuid.UUID(snap["id"]), controls.priority)
            except (RedisError, OSError) as exc:
                # The row is PENDING in PostgreSQL; the workers' reconciler enqueues it once
                # Redis is back, so the client still gets a job that will run.
                log.warning(
                    "could not enqueue job %s now (%s); it will be reconciled", snap["id"], exc
                )
        await self.publish(snap)
        self.metrics.kind(kind).submitted.labels(
            valid.county_id, valid.columns.get(spec.type_label, ""), snap["status"]
        ).inc()
        return snap

    async def _insert(
        self,
        spec: KindSpec,
        valid: Any,
        controls: Controls,
        caller: Caller,
        digest: str,
        origin: Origin,
    ) -> tuple[dict[str, Any], bool]:
        if controls.idempotency_key is None and origin.schedule_id is None:
            # One statement: no BEGIN and COMMIT round trips around it, and no session.
            row = await self._insert_row(self.writes, spec, valid, controls, caller, origin)
            return snapshot(spec, row), True
        window = dt.timedelta(hours=self.settings.idempotency_window_hours)
        async with self.sessions.begin() as session:
            key = controls.idempotency_key
            if key is not None:
                existing = await find_key(session, caller.name, key, window)
                if existing is not None:
                    if existing.request_hash != digest:
                        raise BadInput(
                            "idempotencyKey",
                            f"was used for a different request (job {existing.job_id}) in the "
                            f"last {self.settings.idempotency_window_hours:g} hours; "
                            "send the same input or use a new key",
                        )
                    model = KINDS[JobKind(existing.kind)].model
                    found = await session.get(model, existing.job_id)
                    if found is not None:
                        return snapshot(KINDS[JobKind(existing.kind)], found), False
                    await session.delete(existing)
                    await session.flush()
            row = await self._insert_row(session, spec, valid, controls, caller, origin)
            # A schedule's due time is taken in the job's own transaction (or AlreadyRun).
            await origin.claim(session, spec.kind.value, row.id)
            if key is not None:
                session.add(
                    IdempotencyKey(
                        caller=caller.name,
                        key=key,
                        kind=spec.kind.value,
                        job_id=row.id,
                        request_hash=digest,
                    )
                )
                await session.flush()
            return snapshot(spec, row), True

    async def _insert_row(
        self,
        into: AsyncSession | RowWriter,
        spec: KindSpec,
        valid: Any,
        controls: Controls,
        caller: Caller,
        origin: Origin,
    ) -> Any:
        """INSERT the PENDING row with its change-log row, in a session's transaction, or by
        `writes` as a statement of its own.

        The statement is built once per kind and set of kind columns (as a transition's
        `template`), every value bound.
        """
        model = spec.model
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "county_id": valid.county_id,
            "owner": caller.name,
            "visibility": controls.visibility.value,
            "team": caller.team,
            "name": controls.name or default_name(spec, valid),
            "description": controls.description,
            "parameters_json": valid.parameters,
            "priority": controls.priority,
            "scheduled_for": controls.scheduled_for,
            "retention_days": controls.retention_days,
            "message": None if controls.due() else f"scheduled for {controls.scheduled_for}",
            "template_id": origin.template_id,
            "schedule_id": origin.schedule_id,
            "late": origin.late,
            **valid.columns,
        }
        key = (spec.kind, "submit", tuple(values))
        query = self._templates.get(key)
        if query is None:
            columns = {getattr(model, name): _bound(model, name) for name in values}
            new = insert(model).values({**columns, model.change_seq: next_change_seq()})
            query = self._templates[key] = with_change_log(spec, new)
        params = {f"tf_{name}": value for name, value in values.items()}
        if isinstance(into, AsyncSession):
            return (await into.execute(query, params)).one()
        return await into.one(query, params)

    async def enqueue(self, kind: JobKind, job_id: uuid.UUID, priority: int) -> bool:
        """Queue a due job; False when arq already holds it (enqueueing is idempotent).

        arq pops the lowest score first and a job is eligible once its score has passed, so
        a due job scored `PRIORITY_STEP` earlier per priority level runs before every
        lower-priority job queued within that step, and is still eligible at once.
        """
        score_time = dt.datetime.now(dt.UTC) - priority * PRIORITY_STEP
        queued = await self.redis.enqueue_job(
            RUN_JOB,
            kind.value,
            str(job_id),
            _job_id=str(job_id),
            _queue_name=self.settings.queue_name,
            _defer_until=score_time,
            _expires=dt.timedelta(days=7),
        )
        return queued is not None

    # -- read ------------------------------------------------------------------------------

    async def find(
        self, job_id: uuid.UUID, kind: JobKind | None = None, *, caller: Caller | None = None
    ) -> tuple[KindSpec, Any] | None:
        """The job's row; with `caller`, only a job that caller may see (else None, as if
        it did not exist, so ids of other callers' jobs leak nothing)."""
        specs = [KINDS[kind]] if kind else list(KINDS.values())
        for spec in specs:
            row = await self.rows.one(row_by_id(spec), {"id": job_id})
            if row is not None:
                if caller is not None and not caller.sees(
                    spec.kind, row.owner, row.visibility, row.team
                ):
                    return None
                return spec, row
        return None

    async def get(
        self, job_id: uuid.UUID, kind: JobKind | None = None, *, caller: Caller | None = None
    ) -> dict[str, Any] | None:
        found = await self.find(job_id, kind, caller=caller)
        return snapshot(*found) if found else None

    # -- transitions -----------------------------------------------------------------------

    async def transition(
        self,
        spec: KindSpec,
        job_id: uuid.UUID,
        expected: Collection[JobStatus],
        *,
        where: Iterable[ColumnElement[bool]] = (),
        logged: bool = True,
        claim: uuid.UUID | None = None,
        template: str | None = None,
        **values: Any,
    ) -> dict[str, Any] | None:
        """Compare-and-set: apply `values` only while the status is one of `expected`.

        `where` adds conditions (a stale heartbeat), `claim` the run's token. Returns the new
        snapshot, already published, or None when the job was not in an expected state
        (someone else moved it first). A `logged` change takes the next change number and
        writes its change-log row in the same statement.

        `template` names the call site's statement: its conditions and SQL expressions are
        the same on every call, so the statement is built (and its cache key computed)
        once per kind and set of columns, and only the plain values (and id and claim) are
        bound anew. Building it is most of the Python cost of a transition.
        """
        model = spec.model
        key = (spec.kind, template, logged, claim is not None, tuple(values))
        query = self._templates.get(key) if template is not None else None
        params: dict[str, Any] = {"tf_job_id": job_id}
        if claim is not None:
            params["tf_claim"] = claim
        for name, value in values.items():
            if not _is_sql(value):
                params[f"tf_{name}"] = value
        if query is None:
            bound = {
                name: value if _is_sql(value) else _bound(model, name)
                for name, value in values.items()
            }
            conditions = [*where]
            if claim is not None:
                token = bindparam("tf_claim", type_=model.run_token.type)
                conditions.append(model.run_token == token)
            stmt = (
                update(model)
                .where(
                    model.id == bindparam("tf_job_id", type_=model.id.type),
                    model.status.in_([s.value for s in expected]),
                    *conditions,
                )
                .values(version=model.version + 1, updated_at=func.now(), **bound)
            )
            if logged:
                query = with_change_log(spec, stmt.values(change_seq=next_change_seq()))
            else:
                query = stmt.returning(*row_columns(model, model.__table__))
            if template is not None:
                self._templates[key] = query
        # One statement outside a transaction (as `autocommit`): no session, and the row
        # comes back as columns, not an ORM instance to load. A template is kept, so it may
        # go to `writes`, which compiles each statement once for good.
        if template is not None:
            row = await self.writes.one(query, params)
        else:
            async with autocommit_connection(self.sessions) as conn:
                row = (await conn.execute(query, params)).one_or_none()
        snap = snapshot(spec, row) if row is not None else None
        if snap is not None:
            await self.publish(snap, logged=logged)
        return snap

    # -- the worker's side: a run holds a claim --------------------------------------------

    async def start(
        self, spec: KindSpec, job_id: uuid.UUID, token: uuid.UUID
    ) -> dict[str, Any] | None:
        due, computed = _start_sql(spec)
        return await self.transition(
            spec,
            job_id,
            [JobStatus.PENDING],
            where=due,
            template="start",
            status=JobStatus.RUNNING,
            run_token=token,
            heartbeat_at=computed["heartbeat_at"],
            attempts=computed["attempts"],
            started_at=computed["started_at"],
            message="started",
            progress_percent=0.0,
            progress_step="starting",
            progress_processed=None,
            progress_total=None,
        )

    async def heartbeat(self, spec: KindSpec, job_id: uuid.UUID, token: uuid.UUID) -> bool:
        """A sign of life (no event, no version); False once the run has lost its claim."""
        changed = await self.writes.count(heartbeat_statement(spec), {"id": job_id, "token": token})
        return bool(changed)

    async def progress(
        self,
        spec: KindSpec,
        job_id: uuid.UUID,
        token: uuid.UUID,
        step: str,
        processed: int | None,
        total: int | None,
        percent: float,
    ) -> dict[str, Any] | None:
        """A progress tick: published, but not a change-log entry.

        The log holds state changes; a job's progress is a latest value, not history. A
        client that resumes gets each changed job's current state, progress included, and
        ticks arrive every few hundred milliseconds while a job runs, so logging each one
        would multiply the log's writes (and their turns on its lock) for nothing a
        dashboard needs.
        """
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING],
            claim=token,
            template="progress",
            logged=False,
            progress_step=step,
            progress_processed=processed,
            progress_total=total,
            progress_percent=percent,
            heartbeat_at=func.now(),
            message=step,
        )

    async def complete(
        self, spec: KindSpec, job_id: uuid.UUID, token: uuid.UUID, result: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING],
            claim=token,
            template="complete",
            status=JobStatus.COMPLETED,
            result_json=result,
            **_finish_sql(spec),
            progress_percent=100.0,
            progress_step="done",
            progress_processed=spec.model.progress_total,
            message="completed",
            **spec.result_columns(result),
        )

    async def fail(
        self,
        spec: KindSpec,
        job_id: uuid.UUID,
        code: str,
        message: str,
        *,
        token: uuid.UUID | None = None,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> dict[str, Any] | None:
        """End a run FAILED; with `token`, only while that run still holds the claim."""
        conditions = list(where)
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING, JobStatus.PENDING],
            where=conditions,
            claim=token,
            template=None if conditions else f"fail, claim {token is not None}",
            status=JobStatus.FAILED,
            error_code=code,
            error_message=message,
            completed_at=func.now(),
            expires_at=expires_in(spec.model),
            run_token=None,
            message=f"failed: {code}",
        )

    async def requeue(
        self,
        spec: KindSpec,
        job_id: uuid.UUID,
        message: str,
        *,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> dict[str, Any] | None:
        """Back to PENDING after a transient failure or a lost worker, to run again."""
        return await self.transition(
            spec,
            job_id,
            [JobStatus.RUNNING],
            where=where,
            status=JobStatus.PENDING,
            run_token=None,
            heartbeat_at=None,
            message=message,
        )

    # -- the client's side -----------------------------------------------------------------

    async def _control(
        self,
        job_id: uuid.UUID,
        caller: Caller,
        expected: Collection[JobStatus],
        action: str,
        **values: Any,
    ) -> tuple[KindSpec, dict[str, Any]]:
        """A client's state change: NOT_FOUND (also for a job the caller may not see),
        FORBIDDEN without `<kind>:run` or on a job shared with it but not its own, or
        INVALID_JOB_STATE naming what is allowed."""
        found = await self.find(job_id, caller=caller)
        if found is None:
            raise JobNotFound(str(job_id))
        spec, row = found
        caller.require(spec.kind, "run")
        if not caller.steers(row.owner):
            raise Forbidden(
                ADMIN,
                f"job {job_id} is shared with you by {row.owner}; only they or an "
                f"admin may have it {action}",
            )
        snap = await self.transition(spec, job_id, expected, template=action, **values)
        if snap is None:
            current = await self.get(job_id)
            allowed = " or ".join(s.value for s in expected)
            status = current["status"] if current else "gone"
            raise InvalidJobState(f"job {job_id} is {status}; only {allowed} jobs can be {action}")
        return spec, snap

    async def cancel(self, job_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        """A PENDING job never starts; a RUNNING one loses its claim and its worker stops it."""
        found = await self.find(job_id, caller=caller)
        if found is None:
            raise JobNotFound(str(job_id))
        model = found[0].model
        _, snap = await self._control(
            job_id,
            caller,
            [JobStatus.PENDING, JobStatus.RUNNING],
            "cancelled",
            status=JobStatus.CANCELLED,
            completed_at=func.now(),
            expires_at=expires_in(model),
            run_token=None,
            message="cancelled by request",
        )
        return snap

    async def retry(self, job_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        """Run a FAILED or CANCELLED job again under the same id; `attempts` counts the runs,
        `last_retry_at` says when the last retry was asked for."""
        spec, snap = await self._control(
            job_id,
            caller,
            [JobStatus.FAILED, JobStatus.CANCELLED],
            "retried",
            status=JobStatus.PENDING,
            error_code=None,
            error_message=None,
            result_json=None,
            started_at=None,
            completed_at=None,
            expires_at=None,
            scheduled_for=None,
            progress_percent=0.0,
            progress_step=None,
            progress_processed=None,
            progress_total=None,
            message="queued for retry",
            last_retry_at=func.now(),
        )
        try:
            await self.enqueue(spec.kind, job_id, snap["priority"])
        except (RedisError, OSError) as exc:
            log.warning("could not enqueue retried job %s now (%s); reconciled later", job_id, exc)
        return snap

    # -- events ----------------------------------------------------------------------------

    async def publish(self, snap: Mapping[str, Any], *, logged: bool = True) -> None:
        """Tell the API processes, fast; `logged` says the event has its change-log row.

        Never raises: the change is committed, and a listener that misses the event finds
        it in the log (app.events).
        """
        event = json.dumps({**snap, "logged": logged}, default=str)
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await self.redis.publish(self.settings.events_channel, event)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("event for job %s not published: %s", snap.get("id"), exc)
