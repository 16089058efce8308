"""The change log: one row per job state change, written in that change's own transaction.

This is the transactional outbox. Redis pub/sub carries changes fast but forgets them when
it is down or nobody listens; the log is the truth a listener or a client catches up
from. Each row holds the job's id, kind, county, owner, status and version under a global,
ordered sequence number (`seq`); the job row keeps the `change_seq` of the change that
produced its current state, so "every change after n" is "every job whose latest change is
after n", read as current states.

Ordering: a sequence value is drawn when a transaction writes, but transactions commit in
their own order. With a bare `nextval`, a reader could see 11 committed while 10 is still
in flight, move past 11 and never look back at 10. Every writer therefore takes one
transaction-scoped advisory lock immediately before it draws its number and keeps it until
it commits (`next_change_seq`): numbers are handed out in commit order, so a reader that
sees change n knows every smaller number is committed or never will be (a rolled-back
writer leaves a hole, never a late row). We prefer this to reading up to a horizon such as
`pg_snapshot_xmin` because a published event is then in order as soon as it arrives: the
listener delivers it at once and reads the log only when it sees a gap. The price is that
state changes commit one at a time (each holds the lock for its commit, well under a
millisecond locally); progress ticks are not logged (see `Lifecycle.progress`), so the
busiest writes never queue on it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Insert,
    Integer,
    ScalarSelect,
    Select,
    Sequence,
    String,
    Update,
    Uuid,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column

from app.db import SessionFactory
from app.models import Base
from jobs.spec import BadInput, KindSpec

CHANGE_SEQ = Sequence("job_changes_seq", metadata=Base.metadata)
CHANGE_LOCK = 0x7466_6368_616E_6765
"""The advisory lock key ("tfchange") that orders change-log writers."""


class JobChange(Base):
    __tablename__ = "job_changes"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(32))
    county_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CursorExpired(Exception):
    """A cursor from before the oldest change the log still keeps."""


# -- writing -----------------------------------------------------------------------------


def next_change_seq() -> ScalarSelect[Any]:
    """The next change number, drawn under the writers' lock (held to commit; see above).

    An uncorrelated subquery runs once, when the statement first needs it: an UPDATE that
    matches no row takes neither the lock nor a number.
    """
    lock = select(func.pg_advisory_xact_lock(CHANGE_LOCK).label("held")).subquery("change_lock")
    return select(CHANGE_SEQ.next_value()).select_from(lock).scalar_subquery()


def with_change_log(spec: KindSpec, stmt: Update | Insert) -> Select[Any]:
    """`stmt` (which sets `change_seq=next_change_seq()`) and its log row, as one statement.

    A data-modifying CTE: the job row's new state and its log row are written together, in
    one round trip; the select returns the new row as the kind's model.
    """
    model = spec.model
    table = model.__table__
    moved = stmt.returning(*table.c).cte("moved")
    entry = insert(JobChange).from_select(
        ["seq", "job_id", "kind", "county_id", "owner", "status", "version"],
        select(
            moved.c.change_seq,
            moved.c[model.id_column],
            literal(spec.kind.value),
            moved.c.county_id,
            moved.c.owner,
            moved.c.status,
            moved.c.version,
        ),
    )
    return select(aliased(model, moved)).add_cte(entry.cte("logged"))


# -- cursors -------------------------------------------------------------------------------

_CURSOR = re.compile(r"[0-9a-f]{16}")


def encode_cursor(seq: int) -> str:
    """Opaque to clients; fixed-width hex, so cursors also sort as strings."""
    return f"{seq:016x}"


def decode_cursor(cursor: str, field: str) -> int:
    if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):
        raise BadInput(field, "is not a changeCursor returned by this API")
    return int(cursor, 16)


async def check_cursor(
    sessions: SessionFactory, seq: int, retention_hours: float | None = None
) -> None:
    """CursorExpired when changes after `seq` may have been pruned.

    Pruning removes a prefix of the log, so every change after `seq` is still there as long
    as `seq` is at least the oldest kept change's predecessor.
    """
    async with sessions() as session:
        oldest = await session.scalar(select(func.min(JobChange.seq)))
    if oldest is not None and seq < oldest - 1:
        kept = "" if retention_hours is None else f" (EVENT_RETENTION_HOURS={retention_hours:g})"
        raise CursorExpired(
            f"the cursor is older than the change log keeps{kept}; list the jobs again and "
            "continue after their changeCursor"
        )


# -- upkeep ----------------------------------------------------------------------------------


async def prune(sessions: SessionFactory, retention: dt.timedelta) -> int:
    """Drop changes older than `retention`, always as a prefix of the log, keeping its newest.

    A prefix, so `check_cursor` can tell an expired cursor from the oldest kept number; the
    newest stays so an idle log still knows where it ends.
    """
    first_kept = (
        select(JobChange.seq)
        .where(JobChange.changed_at >= func.now() - retention)
        .order_by(JobChange.seq)
        .limit(1)
        .scalar_subquery()
    )
    newest = select(func.max(JobChange.seq)).scalar_subquery()
    async with sessions.begin() as session:
        result = await session.execute(
            delete(JobChange).where(JobChange.seq < func.coalesce(first_kept, newest))
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LogSize:
    rows: int
    oldest_age_seconds: float


async def log_size(sessions: SessionFactory) -> LogSize:
    async with sessions() as session:
        rows, oldest = (
            await session.execute(
                select(func.count(), func.min(JobChange.changed_at)).select_from(JobChange)
            )
        ).one()
    age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
    return LogSize(int(rows), max(age, 0.0))
