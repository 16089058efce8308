"""XLSX workbooks streamed to disk: one sheet per table, numbers as numbers, dates as dates.

openpyxl's write-only mode serialises each row as it is appended (into a temporary file per
sheet, zipped into the workbook on save), so a county's roll or sales are never held as cells.
The price of streaming is that a sheet's layout (column widths, the frozen header) must be
set before its first row: widths are measured on the header and the first batch.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

MAX_WIDTH = 60
"""Widest column, in characters: a long address or reason wraps the view no further."""

MEASURED_ROWS = 200
"""Rows of the first batch a column's width is measured on."""

TITLE_CHARS = 31
"""Excel refuses longer sheet names."""

_BOLD = Font(bold=True)


def _text_width(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, Cell):
        return len(str(value.value))
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, dt.date):
        return 10
    if isinstance(value, float):
        return len(f"{value:.6g}")
    return len(str(value))


class Sheet:
    """One table of a workbook, appended to batch by batch."""

    def __init__(self, sheet: Any, header: Sequence[str]) -> None:
        self._sheet = sheet
        self.header = tuple(header)
        self.rows = 0
        self._started = False

    def _cell(self, value: Any) -> Any:
        """A value as the sheet should store it: numpy scalars as Python numbers; no NaN or
        infinity (Excel has neither: an empty cell says "no value", as the JSON's null does);
        text as text even when it starts with "=" (county data is not to run as a formula),
        with the control characters XML cannot hold shown as U+FFFD."""
        if hasattr(value, "item") and not isinstance(value, str | bytes):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            if value.startswith("="):
                cell = WriteOnlyCell(self._sheet, value=value)
                cell.data_type = "s"
                return cell
        return value

    def append(self, rows: Iterable[Sequence[Any]]) -> int:
        """Write a batch of rows (bounded: it is measured and converted as a whole)."""
        batch = [[self._cell(v) for v in row] for row in rows]
        if not self._started:
            self._start(batch)
        for row in batch:
            self._sheet.append(row)
        self.rows += len(batch)
        return len(batch)

    def _start(self, sample: list[list[Any]]) -> None:
        for index, name in enumerate(self.header):
            width = max(
                [len(name)] + [_text_width(row[index]) for row in sample[:MEASURED_ROWS]],
            )
            letter = get_column_letter(index + 1)
            self._sheet.column_dimensions[letter].width = min(width + 2, MAX_WIDTH)
        self._sheet.freeze_panes = "A2"
        header = []
        for name in self.header:
            cell = WriteOnlyCell(self._sheet, value=name)
            cell.font = _BOLD
            header.append(cell)
        self._sheet.append(header)
        self._started = True

    def finish(self) -> None:
        """A table with no rows still shows its header."""
        if not self._started:
            self._start([])


class XlsxWorkbook:
    """A workbook written to `path` on `close`; not thread-safe, but its calls may come from
    different threads one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._book = Workbook(write_only=True)
        self._sheets: list[Sheet] = []

    def sheet(self, title: str, header: Sequence[str]) -> Sheet:
        """A new sheet, placed after those made before it."""
        if len(title) > TITLE_CHARS:
            raise ValueError(f"sheet title {title!r} is longer than {TITLE_CHARS} characters")
        sheet = Sheet(self._book.create_sheet(title), header)
        self._sheets.append(sheet)
        return sheet

    def table(self, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Sheet:
        """A small table written whole, e.g. a study's statistics."""
        sheet = self.sheet(title, header)
        sheet.append(rows)
        return sheet

    def close(self) -> None:
        """Save the workbook; openpyxl's temporary sheet files go with it."""
        for sheet in self._sheets:
            sheet.finish()
        self._book.save(self.path)
