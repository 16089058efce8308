"""Hand-run benchmark of the GeoJSON parcel export: time and peak memory as the county grows.

    python bench/bench_gis_export.py                       # 20,000 and 200,000 parcels, 3 repeats

Why: `jobs.kinds.gis_export.export` promises that memory stays flat however many parcels a county
has (server-side cursor, one batch in flight, every batch written before the next is read). The
way to check that is to export a county ten times larger and see the peak RSS stay put while
the time grows about tenfold. Each size is a demo county (`app.demo_data.load_demo_county`) in
a scratch database, exported through the real code path (`jobs.kinds.gis_export.export.run` with a
`RunContext` whose progress reporter does nothing), each run in a fresh child process.

Baseline, measured in the same run: GDAL writing the same rows (same columns, same order, the
stored geometry) to GeoJSON. The natural command, ``ogr2ogr -f GeoJSON out.geojson PG:... -sql
"SELECT ..., ST_GeomFromGeoJSON(geometry::text) ..."``, needs PostGIS, which this project does
not use; the script tries it and, when the function is missing, falls back to what works on
plain PostgreSQL: ``psql \\copy`` of the rows to CSV (geometry as its GeoJSON text, which the
GDAL CSV driver parses from the column named by ``GEOM_POSSIBLE_NAMES``; WKT would need PostGIS
to produce) and ``ogr2ogr`` from that CSV, with a ``.csvt`` sidecar so parcel ids keep their
leading zeros and numbers stay numbers. The baseline's time is psql + ogr2ogr; its peak RSS is
the larger of the two processes (GNU time).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

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
    run_measured,
    scratch_database,
    server_version,
)
from sqlalchemy.engine import make_url

from app.db import CoreRows, create_engine, create_session_factory
from app.demo_data import load_demo_county
from jobs.context import RunContext
from jobs.kinds.gis_export.params import GisExportParams, export
from jobs.spec import JobKind

COLUMNS = (
    "parcel_id",
    "address",
    "zip_code",
    "neighborhood",
    "property_class",
    "year_built",
    "living_area_sqft",
    "lot_size_sqft",
    "bedrooms",
    "bathrooms",
)
CSVT = '"String","String","String","String","String","Integer","Real","Real","Integer","Real",'
CSVT += '"String"'


def county_id(size: int) -> str:
    return f"GIS{size}"


# ---------------------------------------------------------------------------------------------
# Loading and the product's export (child processes)


def _load_child(url: str, size: int) -> dict[str, Any]:
    async def load() -> str:
        engine = create_engine(url, pool_size=1)
        try:
            started = time.perf_counter()
            report = await load_demo_county(engine, county_id(size), size)
            return f"{county_id(size)}: {report} in {time.perf_counter() - started:.0f} s"
        finally:
            await engine.dispose()

    return {"message": asyncio.run(load())}


async def _export_once(url: str, size: int, out_dir: str, batch_size: int) -> dict[str, Any]:
    engine = create_engine(url, pool_size=2)
    clock = StepClock()
    ctx = RunContext(
        job_id=uuid.uuid4(),
        kind=JobKind.GIS_EXPORT,
        county_id=county_id(size),
        parameters={"batch_size": batch_size},
        columns={"export_format": "GeoJSON", "layers": ["parcels"], "area_of_interest": None},
        sessions=(sessions := create_session_factory(engine)),
        rows=CoreRows(sessions),
        results_dir=Path(out_dir),
        report_progress=clock,
    )
    try:
        clock.started = time.perf_counter()
        result = await export.run(ctx, GisExportParams(batch_size=batch_size))
        elapsed = time.perf_counter() - clock.started
    finally:
        await engine.dispose()
    return {
        "seconds": elapsed,
        "rows": result["record_count"],
        "path": str(Path(out_dir) / str(ctx.job_id) / result["file"]["name"]),
        "size_mb": result["file"]["size_bytes"] / 1e6,
        "progress_calls": clock.calls,
    }


def _export_child(
    url: str, size: int, out_dir: str, batch_size: int, trace: bool
) -> dict[str, Any]:
    if trace:
        tracemalloc.start()
    result = asyncio.run(_export_once(url, size, out_dir, batch_size))
    if trace:
        result["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


# ---------------------------------------------------------------------------------------------
# The GDAL baseline


def pg_connection(url: str) -> str:
    parsed = make_url(url)
    parts = {
        "dbname": parsed.database,
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
    }
    return "PG:" + " ".join(f"{k}={v}" for k, v in parts.items())


def select_sql(size: int) -> str:
    return (
        f"SELECT {', '.join(COLUMNS)}, geometry::text AS geometry FROM parcels "
        f"WHERE county_id = '{county_id(size)}' ORDER BY parcel_id"
    )


def try_direct_ogr2ogr(url: str, size: int, out: Path) -> str | None:
    """The PG driver route; None when it works, else why not (first line of GDAL's error)."""
    sql = select_sql(size).replace(
        "geometry::text AS geometry", "ST_GeomFromGeoJSON(geometry::text)"
    )
    probe = subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", str(out), pg_connection(url), "-sql", sql + " LIMIT 1"],
        capture_output=True,
        text=True,
    )
    out.unlink(missing_ok=True)
    if probe.returncode == 0:
        return None
    lines = [line for line in probe.stderr.splitlines() if "ERROR" in line]
    return (lines[0] if lines else probe.stderr.strip()[:200]).strip()


def gdal_baseline(url: str, size: int, work: Path, direct: bool) -> dict[str, Any]:
    out = work / f"gdal_{size}.geojson"
    out.unlink(missing_ok=True)
    if direct:
        sql = select_sql(size).replace(
            "geometry::text AS geometry", "ST_GeomFromGeoJSON(geometry::text)"
        )
        seconds, peak = run_measured(
            ["ogr2ogr", "-f", "GeoJSON", str(out), pg_connection(url), "-sql", sql]
        )
        return {
            "seconds": seconds,
            "peak_rss": peak,
            "path": str(out),
            "size_mb": out.stat().st_size / 1e6,
            "parts": "ogr2ogr PG -> GeoJSON",
        }
    csv_path = work / f"parcels_{size}.csv"
    csv_path.with_suffix(".csvt").write_text(CSVT + "\n", encoding="ascii")
    parsed = make_url(url)
    copy = f"\\copy ({select_sql(size)}) TO '{csv_path}' WITH (FORMAT csv, HEADER)"
    psql_seconds, psql_peak = run_measured(
        [
            "psql",
            "-q",
            "-h",
            parsed.host or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            "-d",
            str(parsed.database),
            "-c",
            copy,
        ],
        stdout=subprocess.DEVNULL,
    )
    ogr_seconds, ogr_peak = run_measured(
        [
            "ogr2ogr",
            "-f",
            "GeoJSON",
            str(out),
            str(csv_path),
            "-oo",
            "GEOM_POSSIBLE_NAMES=geometry",
            "-oo",
            "KEEP_GEOM_COLUMNS=NO",
            "-nln",
            "parcels",
        ]
    )
    csv_path.unlink()
    return {
        "seconds": psql_seconds + ogr_seconds,
        "peak_rss": max(psql_peak, ogr_peak),
        "path": str(out),
        "size_mb": out.stat().st_size / 1e6,
        "parts": f"psql {psql_seconds:.1f} s + ogr2ogr {ogr_seconds:.1f} s",
    }


def feature_count(path: str) -> int:
    """Features in a GeoJSON file, as GDAL reads it (a check that both files hold the rows)."""
    info = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", path], capture_output=True, text=True, check=True
    ).stdout
    for line in info.splitlines():
        if line.startswith("Feature Count:"):
            return int(line.split(":")[1])
    raise RuntimeError(f"ogrinfo gave no feature count for {path}")


# ---------------------------------------------------------------------------------------------


def bench(url: str, sizes: list[int], repeat: int, batch_size: int, trace: bool) -> None:
    for size in sizes:
        print(in_child(_load_child, url, size)["message"])
    with tempfile.TemporaryDirectory(prefix="tf-bench-gis-") as tmp:
        work = Path(tmp)
        why_not_direct = try_direct_ogr2ogr(url, sizes[0], work / "probe.geojson")
        if why_not_direct is None:
            print("baseline: ogr2ogr straight from PostgreSQL (PG driver, ST_GeomFromGeoJSON)")
        else:
            print(
                f"baseline: ogr2ogr from PG cannot make geometries here ({why_not_direct}); "
                "using psql \\copy to CSV (geometry as GeoJSON text) + ogr2ogr CSV -> GeoJSON"
            )
        results: dict[int, dict[str, Any]] = {}
        for size in sizes:
            runs = []
            for _ in range(repeat):
                run = in_child(_export_child, url, size, tmp, batch_size, False)
                Path(run["path"]).unlink()
                runs.append(run)
            gdal = [gdal_baseline(url, size, work, why_not_direct is None) for _ in range(repeat)]
            ours_count = runs[-1]["rows"]
            check_run = in_child(_export_child, url, size, tmp, batch_size, trace)
            counts = (feature_count(check_run["path"]), feature_count(gdal[-1]["path"]))
            results[size] = {"runs": runs, "gdal": gdal, "check": check_run, "counts": counts}
            Path(check_run["path"]).unlink()
            assert ours_count == size == counts[0] == counts[1], (ours_count, size, counts)
        report(results, sizes, repeat, trace)


def report(results: dict[int, dict[str, Any]], sizes: list[int], repeat: int, trace: bool) -> None:
    print(f"\nGeoJSON export of the parcels layer, best/median of {repeat} (fresh process each)")
    rows = []
    for size in sizes:
        r = results[size]
        best, median = best_median([x["seconds"] for x in r["runs"]])
        g_best, g_median = best_median([x["seconds"] for x in r["gdal"]])
        peak = max(x["peak_rss"] for x in r["runs"])
        growth = max(x["peak_rss"] - x["rss_before"] for x in r["runs"])
        g_peak = max(x["peak_rss"] for x in r["gdal"])
        rows.append(
            [
                f"{size:,}",
                f"{best:.2f}",
                f"{median:.2f}",
                f"{size / best:,.0f}",
                f"{peak / 1024**2:.0f}",
                f"{growth / 1024**2:.0f}",
                f"{r['runs'][0]['size_mb']:.0f}",
                f"{g_best:.2f}",
                f"{g_median:.2f}",
                f"{g_peak / 1024**2:.0f}",
                f"{best / g_best:.1f}x",
            ]
        )
    print_table(
        [
            "parcels",
            "export best s",
            "median s",
            "rows/s",
            "peak RSS MiB",
            "RSS growth MiB",
            "file MB",
            "GDAL best s",
            "GDAL median s",
            "GDAL peak MiB",
            "time vs GDAL",
        ],
        rows,
    )
    for size in sizes:
        r = results[size]
        fastest = min(r["gdal"], key=lambda x: x["seconds"])
        line = (
            f"  {size:,}: GDAL (best run) {fastest['parts']}, file {fastest['size_mb']:.0f} MB"
            f"; feature counts (ogrinfo) ours {r['counts'][0]:,}, GDAL {r['counts'][1]:,}"
        )
        if trace:
            line += f"; tracemalloc peak {mib(r['check']['traced_peak']):.0f} MiB"
        print(line)
    small, large = sizes[0], sizes[-1]
    peak_small = max(x["peak_rss"] for x in results[small]["runs"])
    peak_large = max(x["peak_rss"] for x in results[large]["runs"])
    time_small = min(x["seconds"] for x in results[small]["runs"])
    time_large = min(x["seconds"] for x in results[large]["runs"])
    ratio = peak_large / peak_small
    verdict = "flat" if ratio < 1.25 else "GROWS"
    print(
        f"memory {small:,} -> {large:,} parcels: peak RSS x{ratio:.2f} ({verdict}; "
        f"flat = under x1.25), time x{time_large / time_small:.1f} for x{large / small:.0f} rows"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measurement")
    parser.add_argument(
        "--batch-size", type=int, default=GisExportParams().batch_size, help="export batch size"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also report the tracemalloc peak of one extra (untimed) export per size",
    )
    parser.add_argument(
        "--server-url",
        default=DEFAULT_SERVER_URL,
        help="a PostgreSQL server to create the scratch database on (default: %(default)s)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the scratch database")
    args = parser.parse_args()
    for tool in ("ogr2ogr", "ogrinfo", "psql", "/usr/bin/time"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed (gdal-bin, postgresql-client, time)")
    gdal = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True).stdout
    print_machine(
        {
            "postgres": asyncio.run(server_version(args.server_url)),
            "gdal": gdal.split(",")[0].strip(),
        }
    )
    started = time.perf_counter()
    sizes = sorted(args.sizes)
    with scratch_database(args.server_url, "tf_bench_gis", keep=args.keep_db) as url:
        bench(url, sizes, args.repeat, args.batch_size, args.tracemalloc)
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s ({dt.date.today()})")


if __name__ == "__main__":
    main()
