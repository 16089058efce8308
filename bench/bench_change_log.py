"""Hand-run benchmark of what the change log costs a job state change.

    python bench/bench_change_log.py                 # 8 writers x 250 changes, 3 repeats
    python bench/bench_change_log.py --writers 1     # no contention: the per-change cost

Every logged state change is one statement (a data-modifying CTE: the job row's UPDATE and
its `job_changes` row) and takes the change log's advisory lock *shared* just before drawing
its number, holding it to commit; readers take it exclusive for one statement to learn the
settled end (see jobs/changes.py). This measures state changes per second from concurrent
writers, each in its own transaction on its own jobs, for:

- baseline: the bare compare-and-set UPDATE ... RETURNING, as before the change log;
- log, no lock: the same with the log row and a bare `nextval` (not safe: shows the insert);
- log + exclusive lock (before): every writer took the lock exclusively to commit, so
  logged changes committed one at a time;
- log + shared lock (shipped): what `Lifecycle.transition` runs now.

The ratio to the baseline (same run, same rows) is what to compare across machines. With
`--raw` the same statements (compiled once, with their values inlined) run on bare asyncpg
connections, without SQLAlchemy's per-statement Python work, which shows the database's
own cost: the exclusive lock made logged changes commit one at a time, so their rate was
about one over the commit (WAL flush) time, whatever the number of writers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_SERVER_URL,
    print_machine,
    print_table,
    scratch_database,
    server_version,
)

from app.db import SessionFactory, create_engine, create_session_factory
from jobs.changes import CHANGE_LOCK, CHANGE_SEQ, next_change_seq, with_change_log
from jobs.registry import KINDS
from jobs.spec import JobKind

SPEC = KINDS[JobKind.REPORT]
MODEL = SPEC.model


async def _make_jobs(sessions: SessionFactory, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with sessions.begin() as session:
        await session.execute(
            insert(MODEL),
            [
                {
                    "id": job_id,
                    "county_id": "BENCH",
                    "owner": "bench",
                    "name": "bench job",
                    "report_type": "assessment_roll",
                    "change_seq": 0,
                }
                for job_id in ids
            ],
        )
    return ids


def _statement(variant: str, job_id: uuid.UUID, n: int) -> Any:
    change = (
        update(MODEL)
        .where(MODEL.id == job_id, MODEL.status == "PENDING")
        .values(version=MODEL.version + 1, updated_at=func.now(), message=f"change {n}")
    )
    if variant == "baseline":
        return change.returning(MODEL)
    if variant == "log + shared lock (shipped)":
        seq = next_change_seq()
    elif variant == "log + exclusive lock (before)":
        lock = select(func.pg_advisory_xact_lock(CHANGE_LOCK).label("held")).subquery("lock")
        seq = select(CHANGE_SEQ.next_value()).select_from(lock).scalar_subquery()
    else:
        seq = select(CHANGE_SEQ.next_value()).scalar_subquery()
    return with_change_log(SPEC, change.values(change_seq=seq))


async def _writer(sessions: SessionFactory, variant: str, job_id: uuid.UUID, changes: int) -> None:
    for n in range(changes):
        async with sessions.begin() as session:
            stmt = _statement(variant, job_id, n).execution_options(synchronize_session=False)
            (await session.execute(stmt)).scalar_one()


async def _raw_writer(url: str, variant: str, job_id: uuid.UUID, changes: int) -> None:
    sql = str(
        _statement(variant, job_id, 0).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        for _ in range(changes):
            async with conn.transaction():
                assert await conn.fetchrow(sql) is not None
    finally:
        await conn.close()


async def _run(url: str, variant: str, writers: int, changes: int, raw: bool) -> float:
    engine = create_engine(url, pool_size=writers)
    sessions = create_session_factory(engine)
    try:
        ids = await _make_jobs(sessions, writers)
        started = time.perf_counter()
        if raw:
            work = [_raw_writer(url, variant, job, changes) for job in ids]
        else:
            work = [_writer(sessions, variant, job, changes) for job in ids]
        await asyncio.gather(*work)
        return writers * changes / (time.perf_counter() - started)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--changes", type=int, default=250, help="per writer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--raw", action="store_true", help="bare asyncpg, no SQLAlchemy")
    args = parser.parse_args()
    variants = [
        "baseline",
        "log, no lock",
        "log + exclusive lock (before)",
        "log + shared lock (shipped)",
    ]
    with scratch_database(args.server_url, "tf_bench_changes") as url:
        print_machine({"database": asyncio.run(server_version(url))})
        rates: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.repeats):
            for variant in variants:
                rate = asyncio.run(_run(url, variant, args.writers, args.changes, args.raw))
                rates[variant].append(rate)
    base = statistics.median(rates["baseline"])
    path = "bare asyncpg" if args.raw else "SQLAlchemy, as the lifecycle runs them"
    print(f"{args.writers} writers x {args.changes} state changes, {args.repeats} repeats, {path}")
    print_table(
        ["variant", "best changes/s", "median changes/s", "median / baseline"],
        [
            [v, max(r), statistics.median(r), f"{statistics.median(r) / base:.2f}"]
            for v, r in rates.items()
        ],
    )


if __name__ == "__main__":
    main()
