"""Hand-run benchmark of the county-wide hedonic valuation (every parcel of a county).

    python bench/bench_valuation.py                        # 200,000 parcels, 3 repeats

Why: a county-wide valuation is the heaviest job a county runs (one model, a value for every
parcel, stored row by row), so its time split tells where an optimisation would pay. The job
(`jobs.kinds.valuation.county.run`) runs against a demo county (`app.demo_data.load_demo_county`) in
a scratch database, in a fresh child process each time, and is split into its own progress
steps: load (sales + parcels from PostgreSQL), fit (`fit_hedonic` on the training sales), and
predict + write (the holdout check, then predicting every parcel in batches, inserting them
into ``valuations`` and writing the CSV).

Baseline, in the same run and on the same data: plain asyncpg fetching the same two queries;
``numpy.linalg.lstsq`` on a design of the same size (training sales x the model's k columns);
a dense ``X @ beta`` for every parcel; and asyncpg's binary COPY of the same number of
valuation rows plus the same CSV. Ratios job / baseline are what to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _support import (
    DEFAULT_SERVER_URL,
    StepClock,
    best_median,
    in_child,
    mib,
    print_machine,
    print_table,
    scratch_database,
    server_version,
)
from sqlalchemy import delete, func, select

from app.db import CoreRows, create_engine, create_session_factory
from app.demo_data import load_demo_county
from app.models import Parcel
from jobs.context import RunContext
from jobs.kinds.valuation.params import ValuationParams
from jobs.kinds.valuation.table import ParcelValuation, ValuationJobRow, county
from jobs.spec import JobKind
from jobs.stats.valuation import holdout_split

COUNTY = "VALBENCH"
VALUATION_DATE = dt.date(2025, 1, 1)
FEATURES = (
    "p.parcel_id, p.living_area_sqft, p.lot_size_sqft, p.year_built, p.bedrooms, p.bathrooms, "
    "p.property_class, p.neighborhood, p.centroid_lon, p.centroid_lat"
)
SALES_SQL = (
    f"SELECT {FEATURES}, s.sale_date, s.sale_price FROM parcels p JOIN sales s "
    "ON s.county_id = p.county_id AND s.parcel_id = p.parcel_id "
    "WHERE p.county_id = $1 AND s.arms_length IS TRUE AND s.sale_price > 0 "
    "ORDER BY s.sale_date, p.parcel_id"
)
PARCELS_SQL = f"SELECT {FEATURES} FROM parcels p WHERE p.county_id = $1 ORDER BY p.parcel_id"


async def _new_job(url: str) -> uuid.UUID:
    """A valuation job row: ``valuations.job_id`` references it."""
    engine = create_engine(url, pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            row = ValuationJobRow(
                county_id=COUNTY, valuation_method="hedonic", parameters_json={}, property_id=None
            )
            session.add(row)
            await session.flush()
            return row.id
    finally:
        await engine.dispose()


async def _drop_job(url: str, job_id: uuid.UUID) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            await session.execute(delete(ParcelValuation).where(ParcelValuation.job_id == job_id))
            await session.execute(delete(ValuationJobRow).where(ValuationJobRow.id == job_id))
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Child processes


def _load_child(url: str, parcels: int) -> dict[str, Any]:
    async def load() -> str:
        engine = create_engine(url, pool_size=1)
        try:
            async with create_session_factory(engine)() as session:
                have = await session.scalar(select(func.count()).where(Parcel.county_id == COUNTY))
            if have == parcels:
                return f"{COUNTY} already holds {parcels:,} parcels; not reloaded"
            started = time.perf_counter()
            report = await load_demo_county(engine, COUNTY, parcels)
            return f"{COUNTY}: {report} loaded in {time.perf_counter() - started:.0f} s"
        finally:
            await engine.dispose()

    return {"message": asyncio.run(load())}


async def _job_once(url: str) -> dict[str, Any]:
    job_id = await _new_job(url)
    engine = create_engine(url, pool_size=2)
    clock = StepClock()
    try:
        with tempfile.TemporaryDirectory(prefix="tf-bench-val-") as tmp:
            ctx = RunContext(
                job_id=job_id,
                kind=JobKind.VALUATION,
                county_id=COUNTY,
                parameters={},
                columns={"property_id": None, "valuation_method": "hedonic"},
                sessions=(sessions := create_session_factory(engine)),
                rows=CoreRows(sessions),
                results_dir=Path(tmp),
                report_progress=clock,
            )
            params = ValuationParams(valuation_date=VALUATION_DATE)
            clock.started = time.perf_counter()
            result = await county.run(ctx, params)
            ended = time.perf_counter() - clock.started
    finally:
        await engine.dispose()
        await _drop_job(url, job_id)
    loaded = clock.at("fitting model")
    fitted = clock.at("holdout check")
    summary = result["summary"]
    return {
        "load": loaded,
        "fit": fitted - loaded,
        "predict_write": ended - fitted,
        "total": ended,
        "parcels": result["parcels_valued"],
        "train": summary["training_sales"],
        "k": result["model"]["k"],
        "quality": f"holdout MAPE {summary['mape']:.3f}, R2 {summary['r2']:.3f}, "
        f"model R2 {result['model']['r2']:.3f}",
    }


def _job_child(url: str) -> dict[str, Any]:
    return asyncio.run(_job_once(url))


async def _baseline_once(url: str, k: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    job_id = await _new_job(url)
    try:
        started = time.perf_counter()
        sales = await conn.fetch(SALES_SQL, COUNTY)
        parcels = await conn.fetch(PARCELS_SQL, COUNTY)
        price = np.fromiter((r["sale_price"] for r in sales), np.float64, len(sales))
        parcel_ids = [r["parcel_id"] for r in parcels]
        loaded = time.perf_counter() - started

        # A design of the job's size and shape: 7 dense columns, the rest one-hot dummies.
        rng = np.random.default_rng(0)
        train, _ = holdout_split(len(sales), 0.2, seed=0)
        x_train = _design(rng, train.size, k)
        y = np.log(price[train])
        x_all = _design(rng, len(parcels), k)

        started = time.perf_counter()
        beta = np.linalg.lstsq(x_train, y, rcond=None)[0]
        fitted = time.perf_counter() - started

        started = time.perf_counter()
        estimate = np.exp(x_all @ beta)
        lower, upper = estimate * 0.8, estimate * 1.2
        predicted = time.perf_counter() - started
        rows = zip(
            [job_id] * len(parcel_ids),
            [COUNTY] * len(parcel_ids),
            parcel_ids,
            estimate.tolist(),
            lower.tolist(),
            upper.tolist(),
            strict=True,
        )
        await conn.copy_records_to_table(
            "valuations",
            records=rows,
            columns=["job_id", "county_id", "parcel_id", "estimated_value", "lower", "upper"],
        )
        with (
            tempfile.TemporaryDirectory(prefix="tf-bench-val-") as tmp,
            (Path(tmp) / "valuations.csv").open("w", encoding="utf-8") as handle,
        ):
            handle.write("parcel_id,estimated_value,lower,upper\n")
            handle.writelines(
                f"{p},{v:.2f},{lo:.2f},{hi:.2f}\n"
                for p, v, lo, hi in zip(
                    parcel_ids, estimate.tolist(), lower.tolist(), upper.tolist(), strict=True
                )
            )
        written = time.perf_counter() - started
    finally:
        await conn.close()
        await _drop_job(url, job_id)
    return {
        "load": loaded,
        "fit": fitted,
        "predict": predicted,
        "predict_write": written,
        "total": loaded + fitted + written,
        "design": f"{train.size:,} x {k}",
    }


def _design(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    x = np.zeros((rows, k))
    x[:, 0] = 1.0
    x[:, 1:7] = rng.normal(size=(rows, 6))
    dummies = k - 7
    split = min(3, dummies)
    x[np.arange(rows), 7 + rng.integers(0, max(split, 1), rows)] = 1.0
    if dummies > split:
        x[np.arange(rows), 7 + split + rng.integers(0, dummies - split, rows)] = 1.0
    return x


def _baseline_child(url: str, k: int) -> dict[str, Any]:
    return asyncio.run(_baseline_once(url, k))


# ---------------------------------------------------------------------------------------------


def bench(url: str, parcels: int, repeat: int) -> None:
    print(in_child(_load_child, url, parcels)["message"])
    jobs = [in_child(_job_child, url) for _ in range(repeat)]
    k = jobs[0]["k"]
    bases = [in_child(_baseline_child, url, k) for _ in range(repeat)]
    print(f"\ncounty valuation (hedonic) of {parcels:,} parcels, best/median of {repeat}")
    rows = []
    for part, label in (
        ("load", "load (sales + parcels)"),
        ("fit", "fit"),
        ("predict_write", "predict + write (job: incl. holdout check)"),
        ("total", "total"),
    ):
        j_best, j_median = best_median([r[part] for r in jobs])
        b_best, b_median = best_median([r[part] for r in bases])
        rows.append(
            [
                label,
                f"{j_best:.3f}",
                f"{j_median:.3f}",
                f"{b_best:.3f}",
                f"{b_median:.3f}",
                f"{j_best / b_best:.1f}x",
            ]
        )
    print_table(
        ["part", "job best s", "job median s", "baseline best s", "baseline median s", "ratio"],
        rows,
    )
    best_total = min(r["total"] for r in jobs)
    first = jobs[0]
    print(
        f"  {first['parcels']:,} parcels valued, {first['parcels'] / best_total:,.0f} parcels/s "
        f"end to end (best); training sales {first['train']:,}, k = {k}; {first['quality']}"
    )
    print(
        f"  baseline design {bases[0]['design']}: lstsq {min(b['fit'] for b in bases):.3f} s, "
        f"X @ beta for {parcels:,} parcels {min(b['predict'] for b in bases):.3f} s; "
        "write = COPY of the same rows + the same CSV"
    )
    print(
        "  peak RSS MiB: job "
        + ", ".join(f"{mib(r['peak_rss']):.0f}" for r in jobs)
        + f" (before work {mib(jobs[0]['rss_before']):.0f}); baseline "
        + ", ".join(f"{mib(r['peak_rss']):.0f}" for r in bases)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement")
    parser.add_argument(
        "--server-url",
        default=DEFAULT_SERVER_URL,
        help="a PostgreSQL server to create the scratch database on (default: %(default)s)",
    )
    parser.add_argument(
        "--database-url",
        help="use this (migrated) database instead of a scratch one; the demo county is "
        "loaded into it unless it is already there",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database")
    args = parser.parse_args()
    print_machine({"postgres": asyncio.run(server_version(args.database_url or args.server_url))})
    started = time.perf_counter()
    if args.database_url:
        bench(args.database_url, args.parcels, args.repeat)
    else:
        with scratch_database(args.server_url, "tf_bench_val", keep=args.keep_db) as url:
            bench(url, args.parcels, args.repeat)
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s ({dt.date.today()})")


if __name__ == "__main__":
    main()
