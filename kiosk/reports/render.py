"""One entry point per report for every format: render_daily / render_range (in memory) and
iter_range (a long range in chunks, memory bounded)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from datetime import date, datetime

from kiosk.config import Settings
from kiosk.errors import ReportError
from kiosk.reports.as_csv import daily_csv, iter_range_csv, range_csv
from kiosk.reports.as_html import daily_html, range_html
from kiosk.reports.as_json import daily_json, iter_range_json, range_json
from kiosk.reports.as_table import daily_table, iter_range_table, range_table
from kiosk.reports.model import DailyReport, RangeReport
from kiosk.reports.ranges import range_summary
from kiosk.store import Database

logger = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json", "html")


def check_format(fmt: str) -> None:
    """ReportError unless fmt is one of FORMATS."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")


_DAILY: dict[str, Callable[[DailyReport], str]] = {
    "table": daily_table, "csv": daily_csv, "json": daily_json, "html": daily_html}
_RANGE: dict[str, Callable[[RangeReport], str]] = {
    "table": range_table, "csv": range_csv, "json": range_json, "html": range_html}


def render_daily(report: DailyReport, fmt: str = "table") -> str:
    """The daily report as text: table, csv (CSV_COLUMNS, absent people included), json or html."""
    check_format(fmt)
    return _DAILY[fmt](report)


def render_range(report: RangeReport, fmt: str = "table") -> str:
    """The range report as text: table, csv (payroll: CSV_COLUMNS per person-day: days with events
    and work days on leave), json or html."""
    check_format(fmt)
    return _RANGE[fmt](report)


def iter_range(db: Database, settings: Settings, start: date, end: date, fmt: str = "table",
               today: date | datetime | None = None, *, sites: Collection[str] | None = None,
               strict: bool = True) -> Iterator[str]:
    """render_range's text in chunks with memory bounded whatever the range: csv, json and table
    are written day by day from one snapshot; html is range_summary's page (all totals, the first
    DAY_ROWS_SHOWN person-days and a note). ReportError here for a bad format, range or site.
    sites: a central's site filter (reports.sites)."""
    check_format(fmt)
    if fmt == "csv":
        return iter_range_csv(db, settings, start, end, today, sites=sites, strict=strict)
    if fmt == "json":
        return iter_range_json(db, settings, start, end, today, sites, strict)
    if fmt == "table":
        return iter_range_table(db, settings, start, end, today, sites, strict)
    summary = range_summary(db, settings, start, end, today, sites=sites, strict=strict)
    return iter([range_html(summary.report, summary)])
