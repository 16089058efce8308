"""The change log: one row per job state change, written in that change's own transaction.

This is the transactional outbox. Redis pub/sub carries changes fast but forgets them when
it is down or nobody listens; the log is the truth a listener or a client catches up
from. Each row holds the job's id, kind, county, owner, status and version under a global,
ordered sequence number (`seq`); the job row keeps the `change_seq` of the change that
produced its current state, so "every change after n" is "every job whose latest change is
after n", read as current states.

Ordering: a sequence value is drawn when a transaction writes, but transactions commit in
their own order. With a bare `nextval`, a reader could see 11 committed while 10 is still
in flight, move past 11 and never look back at 10. So writers and readers meet at one
advisory lock, in two modes. Every writer takes it *shared* immediately before it draws its
number and keeps it until it commits (`next_change_seq`): writers never wait for each
other, and commit in parallel. A reader takes it *exclusive* for one statement to learn
where the log ends (`settled_end`): it is granted once no writer that might hold a number
is in flight, so every number up to the sequence's last one is committed or never will be
(a rolled-back writer leaves a hole, never a late row), and every later writer draws a
larger one. A reader that sees change n therefore never skips a smaller number committed
later. The price is the reader's: it waits for the writers in flight to commit (each is one
statement, or a submission's short transaction), and writers that come while it waits
queue behind it for that moment. We prefer this to reading up to a horizon such as
`pg_snapshot_xmin`, where any long transaction with an xid (an import's upsert runs for
seconds) would hold every feed back until it ended: only change-log writers take this lock.
Before, writers took the lock exclusively and held it through each commit's WAL flush, so
logged changes committed one at a time (BENCHMARKS.md, section 5). Progress ticks are not
logged (see `Lifecycle.progress`), so the busiest writes never meet the lock at all.
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
    case,
    column,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import table as table_clause
from sqlalchemy.orm import Mapped, mapped_column

from app.db import SessionFactory
from app.models import Base
from jobs.spec import BadInput, KindSpec
from jobs.table import row_columns

CHANGE_SEQ = Sequence("job_changes_seq", metadata=Base.metadata)
CHANGE_LOCK = 0x7466_6368_616E_6765
"""The advisory lock key ("tfchange"): shared by change-log writers, exclusive for readers."""


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
    """The next change number, drawn under the shared lock (held to commit; see above).

    An uncorrelated subquery runs once, when the statement first needs it: an UPDATE that
    matches no row takes neither the lock nor a number.
    """
    lock = select(func.pg_advisory_xact_lock_shared(CHANGE_LOCK).label("held")).subquery("shared")
    return select(CHANGE_SEQ.next_value()).select_from(lock).scalar_subquery()


def settled_end() -> Select[tuple[int]]:
    """The log's end for a reader: every change up to it is committed or never will be.

    The exclusive lock, once granted, means no writer holds a number in flight; the
    sequence's last value is read after it (an uncorrelated subquery runs when the row that
    follows the lock is projected), and a sequence is not transactional (its one row always
    shows the latest number drawn), so this needs no fresh snapshot. Run it as a statement
    of its own, outside a transaction (`autocommit`), so the lock ends with it: held longer
    it would stop every writer.
    """
    lock = select(func.pg_advisory_xact_lock(CHANGE_LOCK).label("held")).subquery("barrier")
    state = table_clause(CHANGE_SEQ.name, column("last_value", BigInteger), column("is_called"))
    drawn = select(
        case((state.c.is_called, state.c.last_value), else_=state.c.last_value - 1)
    ).scalar_subquery()
    return select(drawn).select_from(lock)


def with_change_log(spec: KindSpec, stmt: Update | Insert) -> Select[Any]:
    """`stmt` (which sets `change_seq=next_change_seq()`) and its log row, as one statement.

    A data-modifying CTE: the job row's new state and its log row are written together, in
    one round trip; the select returns the new row's columns named as the model's
    attributes (`jobs.table.row_columns`).
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
    return select(*row_columns(model, moved)).add_cte(entry.cte("logged"))


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
