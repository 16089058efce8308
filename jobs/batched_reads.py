"""Jobs' current rows read by id in batches: clients subscribing together cost one read.

A thousand clients subscribing to `jobUpdated` within a second each need the job's current
row first; read one by one, that was a session, a BEGIN, a SELECT (one per kind table until
the job is found) and a ROLLBACK per client. Here a read takes every id asked for while
the previous read was in flight: one autocommit SELECT ... WHERE id = ANY(ids) per kind
table for the whole batch. Nothing waits on purpose: a lone subscriber is read at once, and
the batch is whoever arrived meanwhile. Every caller asking for the same job in a batch gets
the same snapshot object, so its first event is executed once for them too
(resolvers.shared_events); the visibility rule is applied per caller, as `Lifecycle.find`
does.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import Uuid, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from app.db import SessionFactory, autocommit
from jobs.access import Caller
from jobs.lifecycle import snapshot
from jobs.registry import KINDS

Snapshot = dict[str, Any]
IDS = bindparam("ids", type_=ARRAY(Uuid()))


class BatchedReads:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self._waiting: dict[uuid.UUID, list[asyncio.Future[Snapshot | None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0
        """Batches read so far."""

    async def get(self, job_id: uuid.UUID, *, caller: Caller) -> Snapshot | None:
        """The job's current snapshot, or None when there is none `caller` may see."""
        future: asyncio.Future[Snapshot | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(job_id, []).append(future)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_all(), name="batched-job-reads")
        snap = await future
        return snap if snap is not None and caller.sees_event(snap) else None

    async def _read_all(self) -> None:
        batch: dict[uuid.UUID, list[asyncio.Future[Snapshot | None]]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    found = await self._read(list(batch))
                except Exception as exc:  # the callers' error: each of them raises it
                    for futures in batch.values():
                        _settle(futures, exc)
                    continue
                for job_id, futures in batch.items():
                    _settle(futures, found.get(job_id))
        except asyncio.CancelledError:
            for futures in (*batch.values(), *self._waiting.values()):
                _settle(futures, asyncio.CancelledError())
            self._waiting = {}
            raise
        finally:
            self._reader = None

    async def _read(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Snapshot]:
        self.reads += 1
        found: dict[uuid.UUID, Snapshot] = {}
        async with autocommit(self.sessions) as session:
            for spec in KINDS.values():
                missing = [job_id for job_id in ids if job_id not in found]
                if not missing:
                    break
                query = select(spec.model).where(spec.model.id == any_(IDS))
                for row in await session.scalars(query, {"ids": missing}):
                    found[row.id] = snapshot(spec, row)
        return found


def _settle(
    futures: list[asyncio.Future[Snapshot | None]], outcome: Snapshot | BaseException | None
) -> None:
    """Hand `outcome` (a snapshot, none, or the read's error) to the callers still waiting."""
    for future in futures:
        if future.done():
            continue
        if isinstance(outcome, asyncio.CancelledError):
            future.cancel()
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
