"""Reports as payroll CSV (cells.CSV_COLUMNS, one row per person and day), in memory or streamed
day by day; written by kiosk.csv_safe, so no cell runs as a spreadsheet formula."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from datetime import date, datetime

from kiosk.config import Settings
from kiosk.csv_safe import csv_text
from kiosk.reports import payroll_fast
from kiosk.reports.cells import (
    csv_columns,
    day_csv_cells,
    leave_csv_cells,
    no_show_csv_cells,
    text_cells,
)
from kiosk.reports.model import DailyReport, RangeDay, RangeReport
from kiosk.reports.scan import RangeScan, check_range_request
from kiosk.store import Database, read_snapshot, whole_or_store_error

logger = logging.getLogger(__name__)


def daily_csv(report: DailyReport) -> str:
    """The day's payroll CSV: people with events, then the absent, then those on leave (a
    central's: with the site columns)."""
    by_site = report.by_site
    home = report.home if by_site else None
    return csv_text([day_csv_cells(r, by_site) for r in report.rows]
                    + [no_show_csv_cells(report.day, p, "absent", home=home) for p in report.absent]
                    + [leave_csv_cells(x, home) for x in report.on_leave], csv_columns(by_site))


def range_csv_rows(report: RangeReport, person_id: int | None = None) -> list[list[str]]:
    """The range's payroll CSV cells (everyone's, or one person's): days with events and work days
    on leave, by day, name and employee id."""
    home = report.home if report.by_site else None
    keyed = [((r.day, r.name.casefold(), r.employee_id), day_csv_cells(r, report.by_site)) for r in report.rows
             if person_id in (None, r.person_id)]
    keyed += [((x.day, x.person.name.casefold(), x.person.employee_id), leave_csv_cells(x, home))
              for x in report.leave if person_id in (None, x.person.id)]
    return [cells for _, cells in sorted(keyed, key=lambda kv: kv[0])]


def range_csv(report: RangeReport) -> str:
    """The range's payroll CSV: days with events and work days on leave."""
    return csv_text(range_csv_rows(report), csv_columns(report.by_site))


def range_day_csv_rows(rd: RangeDay, home: dict[int, str] | None = None) -> list[list[str]]:
    """One day's payroll CSV cells: its person-days and leave, by name and employee id; with home
    (a central's home sites) the site columns too."""
    by_site = home is not None
    keyed = [((r.name.casefold(), r.employee_id), day_csv_cells(r, by_site)) for r in rd.rows]
    keyed += [((x.person.name.casefold(), x.person.employee_id), leave_csv_cells(x, home)) for x in rd.leave]
    return [cells for _, cells in sorted(keyed, key=lambda kv: kv[0])]


def iter_range_csv(db: Database, settings: Settings, start: date, end: date,
                   today: date | datetime | None = None, *, person_id: int | None = None,
                   sites: Collection[str] | None = None, strict: bool = True) -> Iterator[str]:
    """The range's payroll CSV (render_range's csv) as text chunks: the header, then one chunk per
    day, produced while the events stream in. The read snapshot is held until the last chunk (or
    until the iterator is closed). Bad ranges, and (a central's) unknown sites, raise ReportError
    here, before any chunk; a database error later a StoreError saying the CSV is incomplete; sites:
    as RangeScan's."""
    check_range_request(db, settings, start, end, sites, strict)
    what = f"the payroll CSV for {start.isoformat()}..{end.isoformat()}"
    fast = payroll_fast.fast_range_csv(db, settings, start, end, today, person_id=person_id, sites=sites,
                                       strict=strict)
    if fast is not None:  # PostgreSQL, first_last: the rows made in SQL (same bytes)
        return whole_or_store_error(db, fast, what)

    def chunks() -> Iterator[str]:
        with read_snapshot(db) as snapshot:
            scan = RangeScan(snapshot, settings, start, end, today, person_id, sites, strict=strict)
            by_site = scan.places.by_site
            home = scan.places.home if by_site else None
            yield csv_text([], csv_columns(by_site))
            for rd in scan.days():
                lines = range_day_csv_rows(rd, home)
                if lines:
                    yield csv_text(lines, clean=text_cells(by_site))

    return whole_or_store_error(db, chunks(), what)
