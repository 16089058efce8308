"""Hand-run benchmark of the API: the `job(id)` query, subscribing, fan-out, idle subscribers.

    python bench/bench_graphql.py                      # every part, 3 rounds (~6 min)
    python bench/bench_graphql.py --parts query        # only the query part

Each part runs ours (`app.main.create_app` under uvicorn, authentication off unless said)
next to a bare baseline in the same run (see bench/_apps.py: Starlette + asyncpg reading the
same row, and a Starlette websocket fan-out of the same Redis message), on the same scratch
database and Redis, one server process each, the load generated from this process on
127.0.0.1. Rounds alternate between the servers, so drift on the shared machine hits both.

1. query: ``{ job(id) { id status progress { percent } } }`` from N keep-alive connections
   (default 50) for a fixed time; requests per second and latency p50/p99. Ours runs twice,
   with authentication off and with a bearer token (a token with `report:read` that owns the
   job).
2. subscribe + fan-out: N websocket subscribers (default 1,000) of the same job, each on its
   own connection: the time from the first connect to the last subscriber's first message;
   then E events (default 10), each one Redis message on the events channel shaped exactly as
   `Lifecycle.publish` sends it (the job's snapshot with its version bumped), published one at
   a time once the previous one reached every subscriber. Latency is publish -> arrival at
   each subscriber; CPU per delivered message is the server process's user+system CPU over
   the events divided by the messages delivered.
3. idle: M subscribers (default 10,000), each on its own websocket, that receive nothing;
   the server's RSS growth divided by M.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _apps import (
    Server,
    close_subscribers,
    first_response,
    http_load,
    http_request,
    open_subscribers,
    start_bare,
    start_ours,
    start_reading,
)
from _support import (
    DEFAULT_SERVER_URL,
    mib,
    print_machine,
    print_table,
    scratch_database,
    server_version,
)

from app.auth import create_token
from app.config import Settings
from app.db import create_engine, create_session_factory
from jobs.changes import next_change_seq
from jobs.kinds.report.table import ReportJobRow
from jobs.lifecycle import snapshot
from jobs.registry import KINDS
from jobs.spec import JobKind

QUERY = "query($id: ID!) { job(id: $id) { id status progress { percent } } }"
OWNER = "bench"


async def _make_job(url: str) -> tuple[str, str, dict[str, Any]]:
    """A RUNNING report job owned by `OWNER`, a token that may read it, and its snapshot."""
    engine = create_engine(url, pool_size=1)
    sessions = create_session_factory(engine)
    try:
        async with sessions.begin() as session:
            row = ReportJobRow(
                county_id="BENCHCO",
                owner=OWNER,
                name="bench sales ratio study",
                report_type="sales_ratio_study",
                status="RUNNING",
                progress_percent=42.0,
                progress_step="computing statistics",
                message="computing statistics",
                parameters_json={"tax_year": 2025},
                change_seq=next_change_seq(),
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            snap = snapshot(KINDS[JobKind.REPORT], row)
        token = await create_token(sessions, OWNER, ["report:read"])
    finally:
        await engine.dispose()
    return snap["id"], token, snap


def _settings(url: str, redis_url: str, channel: str, data_dir: Path, *, auth: bool) -> Settings:
    return Settings(
        database_url=url,
        redis_url=redis_url,
        data_dir=data_dir,
        events_channel=channel,
        queue_name=f"{channel}:queue",
        worker_metrics_port=0,
        auth_disabled=not auth,
        graphiql=False,
        # Limits sized for the load, not for one client: the quota would stop the test at
        # 100 subscriptions of one caller, and a loaded server may take longer than the
        # default 5 s to answer connection_init.
        max_subscriptions_per_token=100_000,
        ws_init_timeout_seconds=300,
    )


# ---------------------------------------------------------------------------------------------
# 1. the job(id) query


def bench_query(
    servers: dict[str, Server], job_id: str, token: str, rounds: int, connections: int, secs: float
) -> dict[str, Any]:
    body = json.dumps({"query": QUERY, "variables": {"id": job_id}}).encode()
    requests = {
        "ours, auth off": (servers["ours"], {}),
        "ours, token": (servers["ours_auth"], {"Authorization": f"Bearer {token}"}),
        "bare Starlette + asyncpg": (servers["bare"], {}),
    }
    for name, (server, headers) in requests.items():
        answer = json.loads(first_response(server.port, http_request(server.port, body, headers)))
        if answer.get("data", {}).get("job", {}).get("id") != job_id:
            raise RuntimeError(f"{name} does not answer the query: {answer}")
    print(
        f"\n1. job(id) query, {connections} keep-alive connections, {secs:g} s per round, "
        f"{rounds} rounds (medians)"
    )
    results: dict[str, list[Any]] = {name: [] for name in requests}
    for _ in range(rounds):
        for name, (server, headers) in requests.items():
            load = asyncio.run(
                http_load(
                    server.port,
                    http_request(server.port, body, headers),
                    connections=connections,
                    seconds=secs,
                )
            )
            if load.errors:
                raise RuntimeError(f"{name}: {load.errors} bad responses")
            results[name].append(load)
    bare = statistics.median(r.per_second for r in results["bare Starlette + asyncpg"])
    rows = []
    summary: dict[str, Any] = {}
    for name, loads in results.items():
        rps = statistics.median(r.per_second for r in loads)
        p50 = statistics.median(r.p50_ms for r in loads)
        p99 = statistics.median(r.p99_ms for r in loads)
        rows.append(
            [
                name,
                f"{rps:,.0f}",
                " / ".join(f"{r.per_second:,.0f}" for r in loads),
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{rps / bare:.2f}x",
            ]
        )
        summary[name] = {"rps": rps, "p99": p99}
    print_table(["server", "req/s", "rounds", "p50 ms", "p99 ms", "vs bare"], rows)
    return summary


# ---------------------------------------------------------------------------------------------
# 2. subscribing and fan-out


async def _fanout_round(
    server: Server,
    url: str,
    job_id: str,
    snap: dict[str, Any],
    channel: str,
    redis_url: str,
    subscribers: int,
    events: int,
    concurrency: int,
    first_version: int,
) -> dict[str, Any]:
    from redis.asyncio import Redis

    subs, subscribe_seconds = await open_subscribers(
        url, job_id, subscribers, concurrency=concurrency
    )
    start_reading(subs)
    redis = Redis.from_url(redis_url)
    latencies: list[float] = []
    lost = 0
    try:
        await asyncio.sleep(0.5)
        cpu_before = server.cpu_seconds()
        for i in range(events):
            version = first_version + i
            # A progress tick, as `Lifecycle.progress` publishes it: not a change-log entry.
            event = {
                **snap,
                "version": version,
                "progress": {**snap["progress"], "percent": 42.0 + i * 0.1},
                "logged": False,
            }
            message = json.dumps(event, default=str)
            published = time.perf_counter()
            await redis.publish(channel, message)
            deadline = published + 30
            while time.perf_counter() < deadline:
                if all(version in s.arrivals for s in subs):
                    break
                await asyncio.sleep(0.002)
            for s in subs:
                if version in s.arrivals:
                    latencies.append(s.arrivals[version] - published)
                else:
                    lost += 1
        cpu = server.cpu_seconds() - cpu_before
    finally:
        await redis.aclose()
        await close_subscribers(subs)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "subscribe": subscribe_seconds,
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * quantiles[98],
        "cpu_per_message": 1000 * cpu / max(len(latencies), 1),
        "delivered": len(latencies),
        "lost": lost,
    }


def bench_fanout(
    servers: dict[str, Server],
    job_id: str,
    snap: dict[str, Any],
    channel: str,
    redis_url: str,
    *,
    rounds: int,
    subscribers: int,
    events: int,
    concurrency: int,
) -> dict[str, Any]:
    print(
        f"\n2. subscribing {subscribers:,} clients ({concurrency} connecting at once), then "
        f"{events} events fanned out to all of them; {rounds} rounds (medians)"
    )
    targets = {
        "ours (jobUpdated)": f"ws://127.0.0.1:{servers['ours'].port}/graphql",
        "bare Starlette websocket fan-out": f"ws://127.0.0.1:{servers['bare'].port}/ws",
    }
    server_of = dict(zip(targets, (servers["ours"], servers["bare"]), strict=True))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    version = snap["version"] + 1
    for _ in range(rounds):
        for name, url in targets.items():
            result = asyncio.run(
                _fanout_round(
                    server_of[name],
                    url,
                    job_id,
                    snap,
                    channel,
                    redis_url,
                    subscribers,
                    events,
                    concurrency,
                    version,
                )
            )
            version += events
            results[name].append(result)
            gc.collect()

    def med(name: str, key: str) -> float:
        # Never zero: CPU time is read in clock ticks, and a tiny run may not reach one.
        return max(statistics.median(r[key] for r in results[name]), 1e-9)

    bare = "bare Starlette websocket fan-out"
    rows = []
    summary: dict[str, Any] = {}
    for name in targets:
        rows.append(
            [
                name,
                f"{med(name, 'subscribe'):.2f}",
                f"{med(name, 'p50'):.0f}",
                f"{med(name, 'p99'):.0f}",
                f"{med(name, 'cpu_per_message'):.3f}",
                f"{med(name, 'subscribe') / med(bare, 'subscribe'):.1f}x",
                f"{med(name, 'p50') / med(bare, 'p50'):.1f}x",
                f"{med(name, 'p99') / med(bare, 'p99'):.1f}x",
                f"{med(name, 'cpu_per_message') / med(bare, 'cpu_per_message'):.1f}x",
                sum(r["lost"] for r in results[name]),
            ]
        )
        summary[name] = {k: med(name, k) for k in ("subscribe", "p50", "p99", "cpu_per_message")}
    print_table(
        [
            "server",
            "subscribe s",
            "p50 ms",
            "p99 ms",
            "CPU ms/msg",
            "subscribe vs bare",
            "p50 vs bare",
            "p99 vs bare",
            "CPU vs bare",
            "lost",
        ],
        rows,
    )
    for name in targets:
        print(
            f"  {name}: subscribe s "
            + " / ".join(f"{r['subscribe']:.2f}" for r in results[name])
            + "; p99 ms "
            + " / ".join(f"{r['p99']:.0f}" for r in results[name])
            + "; CPU ms/msg "
            + " / ".join(f"{r['cpu_per_message']:.3f}" for r in results[name])
        )
    return summary


# ---------------------------------------------------------------------------------------------
# 3. idle subscribers


async def _idle(
    server: Server, url: str, job_id: str, count: int, concurrency: int
) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    before = server.rss()
    subs, seconds = await open_subscribers(url, job_id, count, concurrency=concurrency)
    await asyncio.sleep(3.0)
    after = server.rss()
    await close_subscribers(subs)
    return {"before": before, "after": after, "seconds": seconds}


def bench_idle(
    servers: dict[str, Server], job_id: str, count: int, concurrency: int
) -> dict[str, Any]:
    print(f"\n3. {count:,} idle subscribers, each on its own websocket (one round)")
    targets = {
        "ours (jobUpdated)": (servers["ours"], f"ws://127.0.0.1:{servers['ours'].port}/graphql"),
        "bare Starlette websocket": (servers["bare"], f"ws://127.0.0.1:{servers['bare'].port}/ws"),
    }
    rows = []
    summary: dict[str, Any] = {}
    for name, (server, url) in targets.items():
        r = asyncio.run(_idle(server, url, job_id, count, concurrency))
        per = (r["after"] - r["before"]) / count
        rows.append(
            [
                name,
                f"{mib(r['before']):.0f}",
                f"{mib(r['after']):.0f}",
                f"{per / 1024:.1f}",
                f"{r['seconds']:.1f}",
            ]
        )
        summary[name] = per / 1024
    print_table(
        ["server", "RSS before MiB", "RSS with them MiB", "KiB per subscriber", "subscribe s"],
        rows,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="query,fanout,idle", help="comma-separated parts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50, help="query part's connections")
    parser.add_argument("--seconds", type=float, default=8.0, help="query load per round")
    parser.add_argument("--subscribers", type=int, default=1000, help="fan-out subscribers")
    parser.add_argument("--events", type=int, default=10, help="events per fan-out round")
    parser.add_argument("--idle-subscribers", type=int, default=10_000)
    parser.add_argument(
        "--connect-concurrency", type=int, default=100, help="websockets connecting at once"
    )
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    print_machine({"postgres": asyncio.run(server_version(args.server_url))})
    started = time.perf_counter()
    channel = f"tf-bench:{uuid.uuid4().hex[:10]}:events"
    with (
        scratch_database(args.server_url, "tf_bench_api", keep=args.keep_db) as url,
        tempfile.TemporaryDirectory(prefix="tf-bench-api-") as tmp,
    ):
        job_id, token, snap = asyncio.run(_make_job(url))
        servers = {
            "ours": start_ours(_settings(url, args.redis_url, channel, Path(tmp), auth=False)),
            "ours_auth": start_ours(_settings(url, args.redis_url, channel, Path(tmp), auth=True)),
            "bare": start_bare(url, args.redis_url, channel),
        }
        try:
            if "query" in parts:
                bench_query(servers, job_id, token, args.rounds, args.connections, args.seconds)
            if "fanout" in parts:
                bench_fanout(
                    servers,
                    job_id,
                    snap,
                    channel,
                    args.redis_url,
                    rounds=args.rounds,
                    subscribers=args.subscribers,
                    events=args.events,
                    concurrency=args.connect_concurrency,
                )
            if "idle" in parts:
                bench_idle(servers, job_id, args.idle_subscribers, args.connect_concurrency)
        finally:
            for server in servers.values():
                server.stop()
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s ({dt.date.today()})")


if __name__ == "__main__":
    main()
