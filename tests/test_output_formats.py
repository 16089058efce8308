"""`outputFormats`: each file written exactly when asked, the workbook equal to the result.

Jobs run through the real path (GraphQL mutation, arq worker, websocket subscription); the
workbook is read back with openpyxl and every sheet compared, cell by cell, with what the
job's GraphQL result and its CSV say, and every number checked to be a numeric cell. One
test measures the writer's memory: streamed, a sheet is never held whole.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from jobs.outputs import MainTable, csv_text, date_text
from jobs.xlsx import XlsxWorkbook
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import TRANSPORT_WS, gql_data
from tests.test_job_flow import assert_lifecycle, download, mutation, run_and_watch
from tests.test_reports_e2e import details, run_more

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

STATS = """
fragment stats on RatioStatistics {
  group count countUsed medianRatio medianRatioCi { lower upper } meanRatio weightedMeanRatio
  cod codCi { lower upper } prd prdCi { lower upper } prb prbCi { lower upper } ki mki
  meetsStandards meetsWithConfidence salesChasing { flagged } note
  standards { standard statistic value lower upper passes withConfidence } }
"""

STUDY = (
    """
query($id: ID!) { reportJob(id: $id) {
  parameters { salesRatioStudy { outputFormats } }
  result {
    ratioStudy { taxYear saleDateFrom saleDateTo trim iqrFactor groupBy
                 exclusions { step excluded reason } overall { ...stats } groups { ...stats } }
    files { name url contentType sizeBytes rowCount } } } }
"""
    + STATS
)

ROLL = """
query($id: ID!) { reportJob(id: $id) {
  parameters { assessmentRoll { outputFormats } }
  result {
    assessmentRoll { taxYear parcelCount assessedParcelCount totalLandValue
                     totalImprovementValue totalAssessedValue
                     byPropertyClass { ...group } byNeighborhood { ...group } }
    files { name url contentType sizeBytes rowCount } } } }
fragment group on RollGroup {
  group parcelCount totalLandValue totalImprovementValue totalAssessedValue medianAssessedValue }
"""

MARKET = """
query($id: ID!) { marketAnalysisJob(id: $id) {
  parameters { priceTrend { outputFormats } timeAdjustment { outputFormats } }
  result {
    trends { period group salesVolume averagePrice medianPrice medianPricePerSqft }
    annualTrendPercent annualTrendCi { lower upper level }
    yearOverYear { year medianPrice changePercent }
    timeAdjustment { valuationDate method medianSalePrice adjustedMedianSalePrice salesCount
                     factors { month index factor salesVolume } }
    files { name url contentType sizeBytes rowCount } } } }
"""


async def workbook(app: RunningApp, file: dict[str, Any]) -> Workbook:
    body = await download(app, file["url"])
    assert len(body) == file["sizeBytes"]
    return openpyxl.load_workbook(io.BytesIO(body))


async def csv_rows(app: RunningApp, file: dict[str, Any]) -> list[list[str]]:
    body = await download(app, file["url"])
    return list(csv.reader(io.StringIO(body.decode())))


def sheet_rows(sheet: Worksheet) -> tuple[list[str], list[list[Any]]]:
    """The header and the data rows, after checking the sheet's layout: a bold header row
    that stays in view, and columns at least as wide as their names."""
    header_cells, *data = sheet.iter_rows()
    header = [c.value for c in header_cells]
    assert all(c.font.b for c in header_cells), sheet.title
    assert sheet.freeze_panes == "A2", sheet.title
    for cell in header_cells:
        width = sheet.column_dimensions[cell.column_letter].width
        assert len(cell.value) < width <= 62, (sheet.title, cell.value, width)
    for row in data:
        for cell in row:
            if isinstance(cell.value, bool):
                assert cell.data_type == "b"
            elif isinstance(cell.value, int | float):
                assert cell.data_type == "n", (sheet.title, cell.coordinate)
            elif isinstance(cell.value, dt.datetime):
                assert cell.is_date
    return header, [[c.value for c in row] for row in data]


DIGITS = 1e-15
"""openpyxl writes a float to 16 significant digits (Excel shows 15), so a cell equals the
JSON's or the CSV's number to within one part in 10^15, not always to the last bit."""


def same(cell: Any, value: Any) -> bool:
    """A workbook cell equals a value of the GraphQL result (numbers to DIGITS)."""
    if isinstance(cell, bool) or isinstance(value, bool) or cell is None or value is None:
        return cell is value or (cell == value and type(cell) is type(value))
    if isinstance(cell, int | float) and isinstance(value, int | float):
        return abs(cell - value) <= DIGITS * max(abs(cell), abs(value))
    return bool(cell == value)


def same_rows(cells: list[list[Any]], values: list[list[Any]]) -> bool:
    return len(cells) == len(values) and all(
        len(c) == len(v) and all(same(a, b) for a, b in zip(c, v, strict=True))
        for c, v in zip(cells, values, strict=True)
    )


def number(value: Any) -> bool:
    """A numeric cell (a whole number reads back as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_csv_read(cell: Any, text: str) -> Any:
    """The CSV's text as the value the cell should hold: a number where the cell is one."""
    if text == "" and cell is None:
        return None
    if isinstance(cell, bool):
        return {"True": True, "False": False}.get(text, text)
    if isinstance(cell, int | float):
        return float(text)
    if isinstance(cell, dt.datetime):
        return dt.datetime.fromisoformat(text)
    return text


def same_as_csv(cells: list[list[Any]], table: list[list[str]]) -> bool:
    parsed = [
        [as_csv_read(c, t) for c, t in zip(row, texts, strict=True)]
        for row, texts in zip(cells, table, strict=True)
    ]
    return len(cells) == len(table) and same_rows(cells, parsed)


def ci(stats: dict[str, Any], name: str, bound: str) -> Any:
    interval = stats[name]
    return interval[bound] if interval else None


def lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def statistics_row(scope: str, s: dict[str, Any]) -> list[Any]:
    return [
        scope,
        s["group"],
        s["count"],
        s["countUsed"],
        s["medianRatio"],
        ci(s, "medianRatioCi", "lower"),
        ci(s, "medianRatioCi", "upper"),
        s["meanRatio"],
        s["weightedMeanRatio"],
        s["cod"],
        ci(s, "codCi", "lower"),
        ci(s, "codCi", "upper"),
        s["prd"],
        ci(s, "prdCi", "lower"),
        ci(s, "prdCi", "upper"),
        s["prb"],
        ci(s, "prbCi", "lower"),
        ci(s, "prbCi", "upper"),
        s["ki"],
        s["mki"],
        s["meetsStandards"],
        s["meetsWithConfidence"],
        s["salesChasing"]["flagged"] if s["salesChasing"] else None,
        s["note"],
    ]


async def test_ratio_study_workbook_holds_every_table_of_the_result(
    app_server: RunningApp, worker: WorkerControl, county: str, settings: Settings
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {
            "reportType": "SALES_RATIO_STUDY",
            "countyId": county,
            "parameters": {
                "salesRatioStudy": {
                    "taxYear": 2024,
                    "groupBy": "NEIGHBORHOOD",
                    "sales": {"saleDateFrom": "2021-01-01", "saleDateTo": "2024-12-31"},
                    "outputFormats": ["XLSX", "CSV"],
                }
            },
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    job_id = updates[-1]["id"]
    job = await details(app_server, STUDY, job_id)
    assert job["parameters"]["salesRatioStudy"]["outputFormats"] == ["XLSX", "CSV"]
    study = job["result"]["ratioStudy"]
    # Exactly the formats asked for, in that order, and no HTML report on disk.
    xlsx_file, csv_file = job["result"]["files"]
    assert xlsx_file["name"] == f"ratio_study_{county}_2024.xlsx"
    assert xlsx_file["contentType"] == XLSX
    assert csv_file["name"] == "ratio_study_sales.csv"
    on_disk = {p.name for p in (settings.resolved_results_dir / job_id).iterdir()}
    assert on_disk == {xlsx_file["name"], csv_file["name"]}

    book = await workbook(app_server, xlsx_file)
    assert book.sheetnames == ["Study", "Statistics", "Standards", "Exclusions", "Sales"]

    header, settings_rows = sheet_rows(book["Study"])
    assert header == ["setting", "value"]
    shown = dict(settings_rows)
    assert shown["county_id"] == county
    assert shown["tax_year"] == 2024
    assert shown["sale_date_from"] == dt.datetime(2021, 1, 1)
    assert shown["sale_date_to"] == dt.datetime(2024, 12, 31)
    assert (shown["trim"], shown["iqr_factor"], shown["group_by"]) == ("iqr", 1.5, "neighborhood")

    header, statistics = sheet_rows(book["Statistics"])
    assert header[:5] == ["scope", "group", "count", "count_used", "median_ratio"]
    expected = [statistics_row("overall", study["overall"])] + [
        statistics_row("neighborhood", g) for g in study["groups"]
    ]
    assert len(statistics) == 1 + len(study["groups"]) > 5
    assert same_rows(statistics, expected)
    assert isinstance(statistics[0][4], float) and statistics[0][2] > 50

    header, standards = sheet_rows(book["Standards"])
    assert header == [
        "scope",
        "group",
        "standard",
        "statistic",
        "value",
        "lower",
        "upper",
        "passes",
        "with_confidence",
    ]
    samples = [("overall", study["overall"]), *(("neighborhood", g) for g in study["groups"])]
    check_keys = ("standard", "statistic", "value", "lower", "upper", "passes")
    expected_standards = [
        [scope, s["group"], *(c[k] for k in check_keys), lower(c["withConfidence"])]
        for scope, s in samples
        for c in s["standards"]
    ]
    assert same_rows(standards, expected_standards)

    header, exclusions = sheet_rows(book["Exclusions"])
    assert header == ["step", "excluded", "reason"]
    assert same_rows(
        exclusions, [[e["step"], e["excluded"], e["reason"]] for e in study["exclusions"]]
    )
    assert [e[0] for e in exclusions] == ["arms_length", "assessment", "filters", "trim"]

    # The sales sheet is the CSV, cell for cell, with numbers, dates and flags typed.
    header, sales = sheet_rows(book["Sales"])
    table = await csv_rows(app_server, csv_file)
    assert (
        header
        == table[0]
        == [
            "parcel_id",
            "sale_date",
            "sale_price",
            "assessed_value",
            "ratio",
            "group",
            "trimmed",
        ]
    )
    assert len(sales) == len(table) - 1 == csv_file["rowCount"] == xlsx_file["rowCount"]
    assert same_as_csv(sales, table[1:])
    for row in sales:
        assert isinstance(row[1], dt.datetime) and row[1].time() == dt.time(0)
        assert all(number(v) for v in row[2:5])
        assert isinstance(row[5], str) and isinstance(row[6], bool)
    assert sum(row[6] for row in sales) == study["overall"]["count"] - study["overall"]["countUsed"]


async def test_only_the_formats_asked_for_are_written(
    app_server: RunningApp, worker: WorkerControl, county: str, settings: Settings
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {
            "reportType": "SALES_RATIO_STUDY",
            "countyId": county,
            "parameters": {"salesRatioStudy": {"taxYear": 2024, "outputFormats": ["HTML"]}},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    job_id = updates[-1]["id"]
    job = await details(app_server, STUDY, job_id)
    (html_file,) = job["result"]["files"]
    assert html_file["name"] == f"ratio_study_{county}_2024.html"
    assert html_file["contentType"] == "text/html; charset=utf-8"
    assert (await download(app_server, html_file["url"])).startswith(b"<!DOCTYPE html>")
    assert [p.name for p in (settings.resolved_results_dir / job_id).iterdir()] == [
        html_file["name"]
    ]

    # Not asking is asking for what a study always wrote.
    default = await run_more(
        app_server,
        "runReport",
        {"reportType": "SALES_RATIO_STUDY", "countyId": county},
    )
    assert default["status"] == "COMPLETED", default
    job = await details(app_server, STUDY, default["id"])
    assert job["parameters"]["salesRatioStudy"]["outputFormats"] == ["CSV", "HTML"]
    assert [f["contentType"] for f in job["result"]["files"]] == [
        "text/csv",
        "text/html; charset=utf-8",
    ]


async def test_assessment_roll_workbook_matches_its_csv_and_totals(
    app_server: RunningApp, worker: WorkerControl, county: str
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runReport",
        {
            "reportType": "ASSESSMENT_ROLL",
            "countyId": county,
            "parameters": {"assessmentRoll": {"outputFormats": ["CSV", "XLSX"]}},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    job = await details(app_server, ROLL, updates[-1]["id"])
    roll = job["result"]["assessmentRoll"]
    csv_file, xlsx_file = job["result"]["files"]
    assert (csv_file["contentType"], xlsx_file["contentType"]) == ("text/csv", XLSX)
    assert xlsx_file["name"] == f"assessment_roll_{roll['taxYear']}.xlsx"
    book = await workbook(app_server, xlsx_file)
    assert book.sheetnames == ["Roll", "Totals", "By property class", "By neighborhood"]

    header, parcels = sheet_rows(book["Roll"])
    table = await csv_rows(app_server, csv_file)
    assert header == table[0]
    assert len(parcels) == roll["parcelCount"] == xlsx_file["rowCount"] == 400
    assert same_as_csv(parcels, table[1:])
    values = [row[5:8] for row in parcels if row[7] is not None]
    assert len(values) == roll["assessedParcelCount"]
    assert all(number(v) for row in values for v in row)

    header, totals = sheet_rows(book["Totals"])
    assert header == [
        "tax_year",
        "parcel_count",
        "assessed_parcel_count",
        "total_land_value",
        "total_improvement_value",
        "total_assessed_value",
    ]
    assert same_rows(
        totals,
        [
            [
                roll["taxYear"],
                roll["parcelCount"],
                roll["assessedParcelCount"],
                roll["totalLandValue"],
                roll["totalImprovementValue"],
                roll["totalAssessedValue"],
            ]
        ],
    )
    keys = (
        "group",
        "parcelCount",
        "totalLandValue",
        "totalImprovementValue",
        "totalAssessedValue",
        "medianAssessedValue",
    )
    for title, field in (
        ("By property class", "byPropertyClass"),
        ("By neighborhood", "byNeighborhood"),
    ):
        header, groups = sheet_rows(book[title])
        assert header[0] == "group" and len(header) == len(keys)
        assert same_rows(groups, [[g[k] for k in keys] for g in roll[field]]), title
        assert sum(g[1] for g in groups) == roll["parcelCount"]


async def test_market_analyses_write_workbooks_of_their_tables(
    app_server: RunningApp, worker: WorkerControl, county: str, settings: Settings
) -> None:
    updates = await run_and_watch(
        app_server,
        worker,
        "runMarketAnalysis",
        {
            "analysisType": "PRICE_TREND",
            "countyId": county,
            "parameters": {"priceTrend": {"groupBy": "ZIP_CODE", "outputFormats": ["XLSX"]}},
        },
        TRANSPORT_WS,
    )
    assert_lifecycle(updates)
    job_id = updates[-1]["id"]
    job = await details(app_server, MARKET, job_id)
    assert job["parameters"]["priceTrend"]["outputFormats"] == ["XLSX"]
    result = job["result"]
    (xlsx_file,) = result["files"]
    assert xlsx_file["name"] == "price_trend.xlsx"
    assert [p.name for p in (settings.resolved_results_dir / job_id).iterdir()] == [
        "price_trend.xlsx"
    ]
    book = await workbook(app_server, xlsx_file)
    assert book.sheetnames == ["Trends", "Year over year", "Trend fit"]
    header, trends = sheet_rows(book["Trends"])
    keys = ("period", "group", "salesVolume", "averagePrice", "medianPrice", "medianPricePerSqft")
    assert header == [
        "period",
        "group",
        "sales_volume",
        "average_price",
        "median_price",
        "median_price_per_sqft",
    ]
    assert same_rows(trends, [[t[k] for k in keys] for t in result["trends"]])
    assert len(trends) == xlsx_file["rowCount"] > 12
    header, yearly = sheet_rows(book["Year over year"])
    assert header == ["year", "median_price", "change_percent"]
    assert same_rows(
        yearly, [[y["year"], y["medianPrice"], y["changePercent"]] for y in result["yearOverYear"]]
    )
    _, (fit,) = sheet_rows(book["Trend fit"])
    ci = result["annualTrendCi"]
    assert same_rows(
        [fit[:4]], [[result["annualTrendPercent"], ci["lower"], ci["upper"], ci["level"]]]
    )
    assert isinstance(fit[8], dt.datetime) and isinstance(fit[9], dt.datetime)

    adjusted = await run_more(
        app_server,
        "runMarketAnalysis",
        {
            "analysisType": "TIME_ADJUSTMENT",
            "countyId": county,
            "parameters": {"timeAdjustment": {"outputFormats": ["CSV", "XLSX"]}},
        },
    )
    assert adjusted["status"] == "COMPLETED", adjusted
    result = (await details(app_server, MARKET, adjusted["id"]))["result"]
    csv_file, xlsx_file = result["files"]
    book = await workbook(app_server, xlsx_file)
    assert book.sheetnames == ["Factors", "Adjustment"]
    header, factors = sheet_rows(book["Factors"])
    table = await csv_rows(app_server, csv_file)
    assert header == table[0] == ["month", "index", "factor", "sales_volume"]
    adjustment = result["timeAdjustment"]
    assert same_rows(
        factors,
        [[f["month"], f["index"], f["factor"], f["salesVolume"]] for f in adjustment["factors"]],
    )
    assert same_as_csv(factors, table[1:])
    header, (summary,) = sheet_rows(book["Adjustment"])
    assert header[:5] == [
        "valuation_date",
        "method",
        "median_sale_price",
        "adjusted_median_sale_price",
        "sales_count",
    ]
    assert same_rows(
        [summary[:5]],
        [
            [
                dt.datetime.fromisoformat(adjustment["valuationDate"]),
                adjustment["method"],
                adjustment["medianSalePrice"],
                adjustment["adjustedMedianSalePrice"],
                adjustment["salesCount"],
            ]
        ],
    )


async def test_a_job_stored_before_output_formats_shows_what_it_wrote(
    app_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    job = (
        await gql_data(
            app_server.url,
            mutation("runReport"),
            {"input": {"reportType": "SALES_RATIO_STUDY", "countyId": county}},
        )
    )["runReport"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE report_jobs SET parameters_json = parameters_json - 'output_formats'"
                " WHERE report_id = :id"
            ),
            {"id": job["id"]},
        )
    shown = await details(app_server, STUDY, job["id"])
    assert shown["parameters"]["salesRatioStudy"]["outputFormats"] == ["CSV", "HTML"]


def test_a_sheet_is_streamed_not_held(tmp_path: Path) -> None:
    """The writer's peak memory against openpyxl holding the same sheet: a county's sales
    pass through in batches, so the peak is a batch's, not the sheet's."""
    rows, batch = 15_000, 1_000

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        start = dt.date(2020, 1, 1)
        for first in range(0, rows, batch):
            yield [
                (f"P{i:07d}", start + dt.timedelta(days=i % 900), 1e5 + i, 9.5e4 + i, i % 7 == 0)
                for i in range(first, first + batch)
            ]

    header = ("parcel_id", "sale_date", "sale_price", "assessed_value", "trimmed")
    tracemalloc.start()
    try:
        book = XlsxWorkbook(tmp_path / "streamed.xlsx")
        sheet = book.sheet("Sales", header)
        for part in batches():
            sheet.append(part)
        book.close()
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = Workbook()
        for part in batches():
            for row in part:
                held.active.append(row)
        holding = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed * 5 < holding, (streamed, holding)
    back = openpyxl.load_workbook(tmp_path / "streamed.xlsx", read_only=True)
    assert sum(1 for _ in back["Sales"].iter_rows()) == rows + 1


def test_county_text_stays_text_and_what_excel_cannot_hold_is_left_out(tmp_path: Path) -> None:
    """An imported address starting with "=" must not become a live formula; a NaN (which
    Excel has no cell for) is an empty cell; a control character XML refuses is shown, not
    fatal."""
    book = XlsxWorkbook(tmp_path / "text.xlsx")
    book.table(
        "Parcels",
        ("address", "note", "value"),
        [['=HYPERLINK("http://example.invalid","x")', "bell\x07", float("nan")]],
    )
    book.close()
    (row,) = openpyxl.load_workbook(tmp_path / "text.xlsx")["Parcels"].iter_rows(min_row=2)
    assert [c.data_type for c in row[:2]] == ["s", "s"]
    assert row[0].value == '=HYPERLINK("http://example.invalid","x")'
    assert row[1].value == "bell\ufffd"
    assert row[2].value is None


def test_fields_written_column_by_column_are_the_bytes_csv_writer_writes(tmp_path: Path) -> None:
    """The ratio study writes its sales table from ready-made text columns when only the CSV
    is asked for; a reader must get the file `csv.writer` would have written: quoting of
    county text, float and date spelling included."""
    texts = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "", " lead", "\u00e9\u00fc"]
    floats = [380000.0, 0.1, 1e16, 1.5e-05, 123456789.123, 0.949123, 2.0, 1e-300]
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=97 * i) for i in range(len(texts))]
    flags = [i % 3 == 0 for i in range(len(texts))]
    header = ("text", "number", "date", "flag", "empty")
    rows = list(zip(texts, floats, dates, flags, [None] * len(texts), strict=True))

    expected = io.StringIO(newline="")
    csv.writer(expected).writerows([header, *rows, *rows])

    path = tmp_path / "fields.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        table = MainTable(handle, None, header)
        assert table.csv_only
        columns = [
            csv_text(texts),
            list(map(repr, floats)),
            np.array(dates, dtype="datetime64[D]").astype(str).tolist(),
            np.where(flags, "True", "False").tolist(),
            [""] * len(texts),
        ]
        assert table.write_fields(columns) == len(texts)
        assert table.write_fields(columns) == len(texts)
        assert table.write_fields([[] for _ in header]) == 0
    assert table.rows == 2 * len(texts)
    assert path.read_bytes() == expected.getvalue().encode("utf-8")


def test_date_text_is_each_dates_own_text() -> None:
    """Dates formatted once per distinct day read as each date's `str`, in the given order
    (repeats, unordered days, leap days, the epoch and years before it included)."""
    days = [dt.date(2024, 2, 29), dt.date(1969, 12, 31), dt.date(2024, 2, 29), dt.date(1970, 1, 1)]
    days += [dt.date(2023, 1, 1) + dt.timedelta(days=(i * 37) % 400) for i in range(500)]
    texts = date_text(np.array(days, dtype="datetime64[D]"))
    assert texts == [d.isoformat() for d in days]
    assert texts == np.array(days, dtype="datetime64[D]").astype(str).tolist()
    assert date_text(np.array([], dtype="datetime64[D]")) == []
