"""Helpers the hand-run benchmarks share: scratch databases, child processes, tables.

Why a child process per measurement: peak RSS is a high-water mark for the life of a
process, so two measurements in one process would hide each other. Each measured call runs in
a fresh ``spawn`` child that reports its own peak (VmHWM, see `peak_rss`) together with its
RSS before the work started (interpreter + imports), so the growth caused by the work is
visible on its own.

Why scratch databases: the benchmarks load hundreds of thousands of rows; they never touch a
database they did not create, and drop it afterwards unless asked to keep it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/test"
"""Where scratch databases are created from (any database of the server will do)."""


# ---------------------------------------------------------------------------------------------
# Machine and reporting


def machine_summary() -> dict[str, str]:
    """The facts a figure needs next to it to be comparable with another run."""
    import numpy as np

    cpu = "unknown"
    with Path("/proc/cpuinfo").open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with Path("/proc/meminfo").open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
                break
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "memory": f"{memory_kb / 1024**2:.1f} GiB",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load average": " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3]),
    }


def print_machine(extra: dict[str, str] | None = None) -> None:
    facts = {**machine_summary(), **(extra or {})}
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def best_median(values: Sequence[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def mib(n_bytes: float) -> float:
    return n_bytes / 1024**2


# ---------------------------------------------------------------------------------------------
# Child processes and memory


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux /proc)."""
    with Path("/proc/self/statm").open(encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """High-water RSS of this process (all its threads) since its last exec, in bytes.

    Read from VmHWM in /proc/self/status, not from ``getrusage().ru_maxrss``: on Linux the
    latter survives fork + exec, so a ``spawn`` child of a parent holding 1.3 GB reports at
    least 1.3 GB however little it uses itself (seen in this suite before this was changed).
    """
    with Path("/proc/self/status").open(encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_measured(command: Sequence[str], **kwargs: Any) -> tuple[float, int]:
    """Run an external command; return (wall seconds, its peak RSS in bytes).

    The peak comes from GNU time (``/usr/bin/time -f %M``), whose own small process is the
    command's parent: a ``wait4`` rusage taken from this (large) Python process would include
    this process's RSS at fork time, for the reason given in `peak_rss`.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%M", *command], check=True, **kwargs
        )
        elapsed = time.perf_counter() - started
        peak_kb = int(report.read().split()[-1])
    return elapsed, peak_kb * 1024


def _measured(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> dict[str, Any]:
    rss_before = current_rss()
    result = fn(*args)
    result["rss_before"] = rss_before
    result["peak_rss"] = peak_rss()
    return result


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh spawned process; its dict comes back with ``rss_before``
    (RSS after imports, before ``fn``) and ``peak_rss`` (the child's high-water RSS).

    ``fn`` must be a module-level function returning a picklable dict. Imports ``fn`` needs
    should happen at module import time so that ``rss_before`` includes them.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_measured, fn, args).result()


# ---------------------------------------------------------------------------------------------
# Scratch databases


def database_url(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _admin(server_url: str, statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_database(server_url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A new, migrated database (its URL); dropped on exit unless ``keep``."""
    from app.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    url = database_url(server_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        if keep:
            print(f"kept scratch database {name}")
        else:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def server_version(url: str) -> str:
    from sqlalchemy import text

    from app.db import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(text("SHOW server_version"))
    finally:
        await engine.dispose()
    return f"PostgreSQL {version}"


# ---------------------------------------------------------------------------------------------
# Running a job's compute function outside a worker


@dataclass
class StepClock:
    """A `RunContext.report_progress` that does nothing but note when each step first appears.

    The job functions announce their phases as progress steps ("loading sales", "computing
    statistics", ...), so the first time of each step splits the wall time into the job's own
    parts without touching the job's code.
    """

    started: float = field(default_factory=time.perf_counter)
    first_seen: dict[str, float] = field(default_factory=dict)
    calls: int = 0

    async def __call__(
        self,
        step: str,
        processed: int | None = None,
        total: int | None = None,
        percent: float | None = None,
    ) -> None:
        self.calls += 1
        self.first_seen.setdefault(step, time.perf_counter())

    def at(self, step: str) -> float:
        return self.first_seen[step] - self.started
