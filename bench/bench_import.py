"""Hand-run benchmark of the sales importer: a million-row CSV through COPY + upsert.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/tf_bench python bench/bench_import.py

The database must be a scratch one: the script creates the county tables if they are missing
and deletes its own county's sales before and after. It imports the file twice: the first load
inserts every row, the second finds every row unchanged (the re-import path).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


async def run(url: str, rows: int) -> None:
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda sync: Base.metadata.create_all(
                    sync, tables=[Parcel.__table__, Sale.__table__, Assessment.__table__]
                )
            )
            await conn.execute(text("DELETE FROM sales WHERE county_id = :c"), {"c": COUNTY})
        with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
            path = Path(tmp) / "sales.csv"
            started = time.perf_counter()
            write_sales_csv(path, rows)
            size_mb = path.stat().st_size / 1e6
            took = time.perf_counter() - started
            print(f"generated {rows:,} rows ({size_mb:.0f} MB) in {took:.1f}s")

            for label in ("first load (inserts)", "second load (unchanged)"):
                copied_at: list[float] = []

                def copied(done: int, total: int | None, log: list[float] = copied_at) -> None:
                    log.append(time.perf_counter())

                started = time.perf_counter()
                report = await import_file(engine, "sales", path, COUNTY, progress=copied)
                elapsed = time.perf_counter() - started
                copy_phase = copied_at[-1] - started
                print(
                    f"{label}: {report}\n"
                    f"  {elapsed:.1f}s total, {report.rows / elapsed:,.0f} rows/s "
                    f"(parse + COPY {copy_phase:.1f}s, check + upsert {elapsed - copy_phase:.1f}s)"
                )
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM sales WHERE county_id = :c"), {"c": COUNTY})
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="a scratch database (default: $BENCH_DATABASE_URL)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or set BENCH_DATABASE_URL")
    asyncio.run(run(args.database_url, args.rows))


if __name__ == "__main__":
    main()
