"""Hand-run benchmark of the sales importer: a million-row CSV through COPY + upsert.

    python bench/bench_import.py                           # scratch database, 3 repeats
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/tf_bench python bench/bench_import.py

A given database must be a scratch one: the script creates the county tables if they are
missing and deletes its own county's sales before and after. Without one it creates (and
drops) a scratch database on --server-url. Each repeat imports the file twice in a fresh child
process (so its peak RSS is its own): the first load inserts every row, the second finds every
row unchanged (the re-import path).

Why the baseline: the importer validates every cell in Python and upserts through a temp
table, so "how far from PostgreSQL's own speed" is the useful question. In the same run the
script measures plain asyncpg ``COPY ... FROM`` of the same CSV into a temp table (no checks,
PostgreSQL's CSV parser) and that COPY followed by one plain ``INSERT ... ON CONFLICT`` into
``sales``; the importer's ratios are against those.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_SERVER_URL,
    best_median,
    in_child,
    mib,
    print_machine,
    print_table,
    scratch_database,
    server_version,
)

from app.db import create_engine
from app.importer import import_file
from app.models import Assessment, Base, Parcel, Sale

COUNTY = "BENCH"


def write_sales_csv(path: Path, rows: int, seed: int = 1) -> None:
    """Plausible sales: 400k parcels, each selling up to a few times on distinct dates."""
    rng = np.random.default_rng(seed)
    parcels = 400_000
    index = np.arange(rows)
    parcel = index % parcels
    day = (index // parcels) * 400 + rng.integers(0, 365, rows)
    dates = (np.datetime64("2015-01-01") + day).astype(str)
    prices = np.round(rng.lognormal(np.log(420_000), 0.45, rows), -2)
    arms = np.where(rng.random(rows) < 0.92, "true", "false")
    with path.open("w", encoding="utf-8") as f:
        f.write("parcel_id,sale_date,sale_price,arms_length\n")
        chunk = 100_000
        for start in range(0, rows, chunk):
            stop = start + chunk
            f.writelines(
                f"{p:010d},{d},{v:.0f},{a}\n"
                for p, d, v, a in zip(
                    parcel[start:stop].tolist(),
                    dates[start:stop].tolist(),
                    prices[start:stop].tolist(),
                    arms[start:stop].tolist(),
                    strict=True,
                )
            )


async def _prepare(url: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda sync: Base.metadata.create_all(
                    sync, tables=[Parcel.__table__, Sale.__table__, Assessment.__table__]
                )
            )
            await conn.execute(text("DELETE FROM sales WHERE county_id = :c"), {"c": COUNTY})
    finally:
        await engine.dispose()


async def _import_twice(url: str, path: Path) -> dict[str, Any]:
    """Delete the county's sales, then import the file twice; times and reports of both."""
    await _prepare(url)
    engine = create_engine(url, pool_size=2)
    out: dict[str, Any] = {}
    try:
        for label in ("first", "second"):
            copied_at: list[float] = []

            def copied(done: int, total: int | None, log: list[float] = copied_at) -> None:
                log.append(time.perf_counter())

            started = time.perf_counter()
            # The bench loads no parcels: its sales are allowed in (the parcel check still
            # runs, so its cost stays in the figures).
            report = await import_file(
                engine, "sales", path, COUNTY, progress=copied, allow_unknown_parcels=True
            )
            elapsed = time.perf_counter() - started
            out[label] = {
                "seconds": elapsed,
                "copy": copied_at[-1] - started,
                "upsert": elapsed - (copied_at[-1] - started),
                "report": str(report),
                "rows": report.rows,
            }
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM sales WHERE county_id = :c"), {"c": COUNTY})
    finally:
        await engine.dispose()
    return out


def _import_child(url: str, path: str) -> dict[str, Any]:
    return asyncio.run(_import_twice(url, Path(path)))


async def _plain_copy(url: str, path: Path) -> dict[str, Any]:
    """PostgreSQL's own CSV COPY into a temp table, then one plain upsert into sales."""
    import asyncpg

    await _prepare(url)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE _bench_sales (parcel_id text, sale_date date, "
                "sale_price double precision, arms_length boolean) ON COMMIT DROP"
            )
            started = time.perf_counter()
            result = await conn.copy_to_table(
                "_bench_sales", source=str(path), format="csv", header=True
            )
            copied = time.perf_counter() - started
            await conn.execute(
                "INSERT INTO sales (county_id, parcel_id, sale_date, sale_price, arms_length) "
                "SELECT $1, parcel_id, sale_date, sale_price, arms_length FROM _bench_sales "
                "ON CONFLICT (county_id, parcel_id, sale_date) DO UPDATE SET "
                "sale_price = EXCLUDED.sale_price, arms_length = EXCLUDED.arms_length",
                COUNTY,
            )
        total = time.perf_counter() - started
        await conn.execute("DELETE FROM sales WHERE county_id = $1", COUNTY)
    finally:
        await conn.close()
    return {"copy": copied, "copy_upsert": total, "status": result}


def _copy_child(url: str, path: str) -> dict[str, Any]:
    return asyncio.run(_plain_copy(url, Path(path)))


def run(url: str, rows: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        path = Path(tmp) / "sales.csv"
        started = time.perf_counter()
        write_sales_csv(path, rows)
        size_mb = path.stat().st_size / 1e6
        took = time.perf_counter() - started
        print(f"generated {rows:,} rows ({size_mb:.0f} MB) in {took:.1f}s")

        imports = []
        for _ in range(repeat):
            imports.append(in_child(_import_child, url, str(path)))
            first, second = imports[-1]["first"], imports[-1]["second"]
            print(
                f"first load: {first['report']}\n"
                f"  {first['seconds']:.1f}s total (parse + COPY {first['copy']:.1f}s, "
                f"check + upsert {first['upsert']:.1f}s)\n"
                f"second load: {second['report']}\n"
                f"  {second['seconds']:.1f}s total (parse + COPY {second['copy']:.1f}s, "
                f"check + upsert {second['upsert']:.1f}s)"
            )
        copies = [in_child(_copy_child, url, str(path)) for _ in range(repeat)]

    copy_best = min(c["copy"] for c in copies)
    upsert_best = min(c["copy_upsert"] for c in copies)
    table = []
    for label, values, peaks in (
        (
            "import_file, first load (inserts)",
            [i["first"]["seconds"] for i in imports],
            [i["peak_rss"] for i in imports],
        ),
        (
            "import_file, second load (unchanged)",
            [i["second"]["seconds"] for i in imports],
            [i["peak_rss"] for i in imports],
        ),
        (
            "baseline: asyncpg COPY CSV -> temp table",
            [c["copy"] for c in copies],
            [c["peak_rss"] for c in copies],
        ),
        (
            "baseline: that COPY + plain INSERT ON CONFLICT",
            [c["copy_upsert"] for c in copies],
            [c["peak_rss"] for c in copies],
        ),
    ):
        best, median = best_median(values)
        table.append(
            [
                label,
                f"{best:.1f}",
                f"{median:.1f}",
                f"{rows / best:,.0f}",
                f"{best / copy_best:.1f}x",
                f"{best / upsert_best:.1f}x",
                f"{mib(max(peaks)):.0f}",
            ]
        )
    print(f"\nimport of {rows:,} sales, best/median of {repeat}")
    print_table(
        [
            "path",
            "best s",
            "median s",
            "rows/s",
            "vs COPY",
            "vs COPY+upsert",
            "peak RSS MiB",
        ],
        table,
    )
    parts = [
        f"parse + COPY {min(i[load]['copy'] for i in imports):.1f}s, "
        f"check + upsert {min(i[load]['upsert'] for i in imports):.1f}s"
        for load in ("first", "second")
    ]
    print(f"  importer parts (best): first load {parts[0]}; second load {parts[1]}")
    print(f"  peak RSS before the work (imports only): {mib(imports[0]['rss_before']):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="a scratch database (default: $BENCH_DATABASE_URL; else a new scratch database)",
    )
    parser.add_argument(
        "--server-url",
        default=DEFAULT_SERVER_URL,
        help="where to create the scratch database without --database-url (default: %(default)s)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement")
    args = parser.parse_args()
    print_machine({"postgres": asyncio.run(server_version(args.database_url or args.server_url))})
    started = time.perf_counter()
    if args.database_url:
        run(args.database_url, args.rows, args.repeat)
    else:
        with scratch_database(args.server_url, "tf_bench_import") as url:
            run(url, args.rows, args.repeat)
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s ({dt.date.today()})")


if __name__ == "__main__":
    main()
