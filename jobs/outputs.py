"""A report's or market analysis's result files, in the formats its caller picked.

CSV is the variant's main table, the file it wrote before formats could be chosen; XLSX is one
workbook with every table of the result as a sheet (the main table among them), so statistics
travel with the rows they came from; HTML is a variant's printable report, which the variant
writes itself and hands in with `add`. The main table is written batch by batch to each file
it goes into, so a run never holds it whole in any format. Files are listed in the order the
caller named the formats.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from jobs.blocking import off_loop
from jobs.context import RunContext
from jobs.xlsx import CONTENT_TYPE as XLSX_CONTENT_TYPE
from jobs.xlsx import Sheet, XlsxWorkbook

CSV_CONTENT_TYPE = "text/csv"

_NEEDS_QUOTES = re.compile('[,"\r\n]')


def csv_text(values: Iterable[str]) -> list[str]:
    """Text fields as `csv.writer` (excel dialect, minimal quoting) writes them in a row of
    several fields: quoted, inner quotes doubled, when they hold a comma, a quote or a line
    break. A batch with nothing to quote (the usual) is checked in one search; otherwise each
    distinct text is quoted once (a group label repeats on thousands of rows)."""
    texts = list(values)
    if _NEEDS_QUOTES.search("".join(texts)) is None:
        return texts
    written = {
        t: '"' + t.replace('"', '""') + '"' if _NEEDS_QUOTES.search(t) else t for t in set(texts)
    }
    return list(map(written.__getitem__, texts))


def date_text(days: npt.NDArray[np.datetime64]) -> list[str]:
    """numpy's text of each date (what `str` of the date gives, as `csv.writer` writes it),
    each distinct date formatted once: a batch of sales spans a few hundred days at most, and
    numpy formats a datetime64 far slower than it finds the distinct ones."""
    distinct, inverse = np.unique(days, return_inverse=True)
    texts = np.array(distinct.astype(str).tolist(), dtype=object)
    return texts[inverse.reshape(-1)].tolist()  # type: ignore[no-any-return]


class MainTable:
    """The variant's main table: its CSV file and its sheet, whichever were asked for."""

    def __init__(self, handle: TextIO | None, sheet: Sheet | None, header: Sequence[str]) -> None:
        self._handle = handle
        self._csv = csv.writer(handle) if handle is not None else None
        self._sheet = sheet
        self.rows = 0
        if self._csv is not None:
            self._csv.writerow(header)

    async def write(self, rows: Iterable[Sequence[Any]]) -> int:
        """Write one batch of rows to every file of the table; returns how many."""
        batch = rows if isinstance(rows, list) else list(rows)
        if self._csv is not None:
            self._csv.writerows(batch)
        if self._sheet is not None:
            await off_loop(self._sheet.append, batch)
        self.rows += len(batch)
        return len(batch)

    @property
    def csv_only(self) -> bool:
        """The table goes to a CSV file and to no sheet, so `write_fields` may be used."""
        return self._handle is not None and self._sheet is None

    def write_fields(self, columns: Sequence[Sequence[str]]) -> int:
        """Write one batch of rows (two fields or more) given column by column, each field
        already the text `csv.writer` would write for it (`repr` of a float, `str` of a date
        or a bool, `csv_text` of text, "" for None); the bytes are those `write` produces.

        Why: `csv.writer` formats every value of every row itself; for a million-sale table
        that was most of a job's writing time, while joining ready-made columns runs in C.
        CSV only (`csv_only`): a sheet needs the typed values.
        """
        if self._handle is None or self._sheet is not None:
            raise RuntimeError("write_fields writes a CSV-only table")
        count = len(columns[0]) if columns else 0
        if count:
            self._handle.write("\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n")
        self.rows += count
        return count


class ResultFiles:
    """The files of one run; use as an async context manager, then read `files`."""

    def __init__(self, ctx: RunContext, formats: Sequence[str], workbook_name: str) -> None:
        self.formats = tuple(formats)
        self._ctx = ctx
        self._stack = ExitStack()
        self._book = XlsxWorkbook(ctx.new_file(workbook_name)) if self.wants("xlsx") else None
        self._csv_path: Path | None = None
        self._main: MainTable | None = None
        self._added: dict[str, dict[str, Any]] = {}
        self.files: list[dict[str, Any]] = []

    def wants(self, output_format: str) -> bool:
        return output_format in self.formats

    def main_table(self, csv_name: str, sheet_title: str, header: Sequence[str]) -> MainTable:
        """Open the main table (once): `csv_name` if CSV was asked for, a sheet if XLSX was."""
        if self._main is not None:
            raise RuntimeError("a run has one main table")
        handle = None
        if self.wants("csv"):
            self._csv_path = self._ctx.new_file(csv_name)
            handle = self._stack.enter_context(
                self._csv_path.open("w", newline="", encoding="utf-8")
            )
        sheet = self._book.sheet(sheet_title, header) if self._book is not None else None
        self._main = MainTable(handle, sheet, header)
        return self._main

    def table(self, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Another table of the result: a sheet of the workbook (CSV keeps the main table)."""
        if self._book is not None:
            self._book.table(title, header, rows)

    def records(
        self, title: str, header: Sequence[str], items: Iterable[Mapping[str, Any]]
    ) -> None:
        """A table of a result's records, one column per key named in `header`."""
        self.table(title, header, ([item.get(key) for key in header] for item in items))

    def add(self, output_format: str, path: Path, content_type: str, rows: int | None) -> None:
        """A file the variant wrote itself (its HTML report)."""
        self._added[output_format] = self._ctx.result_file(path, content_type, rows)

    async def __aenter__(self) -> ResultFiles:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()
        if self._book is not None:
            # Saving zips the sheets' XML: seconds for a large county, so off the loop too.
            # It runs when unwinding as well; that is what removes openpyxl's temporary files.
            await off_loop(self._book.close)
        if exc_type is not None:
            return
        rows = self._main.rows if self._main is not None else None
        written = dict(self._added)
        if self._csv_path is not None:
            written["csv"] = self._ctx.result_file(self._csv_path, CSV_CONTENT_TYPE, rows)
        if self._book is not None:
            written["xlsx"] = self._ctx.result_file(self._book.path, XLSX_CONTENT_TYPE, rows)
        self.files = [written[f] for f in self.formats if f in written]
