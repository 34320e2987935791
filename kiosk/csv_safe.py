"""The one CSV writer: comma-separated text, "\\n" line ends, minimal quoting, with cells that
spreadsheets will not run as formulas ('=cmd' is written "'=cmd"). Reports, the web downloads
(payroll, totals, people, leave, mood, audit) all write CSV through csv_text."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Collection, Iterable, Sequence

logger = logging.getLogger(__name__)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula."""


def safe_cell(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula ('=cmd' -> "'=cmd"; numbers such as
    "-3.5" stay as they are; None -> "")."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_text(rows: Iterable[Sequence[object]], header: Sequence[str] | None = None, *,
             clean: Collection[int] | None = None) -> str:
    """header (fixed column names, written as given) and rows as CSV text; every cell goes through
    safe_cell, or with clean only the cells at those column indexes (the ones people type, where
    the rest are known to be dates, numbers and fixed words: a long report writes faster)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    if clean is None:
        writer.writerows([safe_cell(c) for c in row] for row in rows)
    else:
        writer.writerows(_clean_some(row, clean) for row in rows)
    return buf.getvalue()


def _clean_some(row: Sequence[object], clean: Collection[int]) -> list[object]:
    """row with safe_cell() applied at the indexes in clean."""
    cells = list(row)
    for i in clean:
        cells[i] = safe_cell(cells[i])
    return cells
