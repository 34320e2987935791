"""Range reports from one streamed pass (RangeScan): everything in memory for short ranges
(range_report), or totals with the first rows and weekly hours for a page (range_summary).

Totals list every active person (absent all range too) and people with events or leave;
absences count finished work days (before today, local) from the person's enrolment day on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from datetime import date, datetime, timedelta

from kiosk.config import Settings
from kiosk.reports.model import LeaveDay, PersonDay, RangeReport, RangeSummary
from kiosk.reports.scan import RangeScan, check_range
from kiosk.store import Database, read_snapshot

logger = logging.getLogger(__name__)

DAY_ROWS_SHOWN = 500  # person-day rows a range page shows; the CSV has them all
WEEKS_CHARTED = 8  # the range page charts hours per person for the last weeks of the range


def range_report(db: Database, settings: Settings, start: date, end: date,
                 today: date | datetime | None = None, *, person_id: int | None = None,
                 sites: Collection[str] | None = None, strict: bool = True) -> RangeReport:
    """Per person per day rows and totals for local days start..end inclusive (no expressions),
    all in memory (for short ranges; range_summary and iter_range_csv for long ones).

    Totals list every active person (absent all range too) and people with events; absences
    count finished work days (before today, local) from the person's enrolment day on.
    person_id: only that person's rows and totals. sites: as RangeScan's (a central's filter).
    """
    check_range(start, end)
    with read_snapshot(db) as snapshot:
        scan = RangeScan(snapshot, settings, start, end, today, person_id, sites, strict=strict)
        rows: list[PersonDay] = []
        leave: list[LeaveDay] = []
        for rd in scan.days():
            rows += rd.rows
            leave += rd.leave
        return RangeReport(
            site=settings.site.name, start=start, end=end, timezone=settings.site.timezone,
            mode=settings.attendance.mode, rows=rows, totals=scan.totals(),
            unknown_faces=scan.unknown_faces, leave=leave, absences=scan.absences,
            **scan.site_fields(),
        )


def _week_start(day: date, start: date) -> date:
    """The Monday of day's week, or start when the range begins later that week."""
    return max(start, day - timedelta(days=day.weekday()))


def range_summary(db: Database, settings: Settings, start: date, end: date,
                  today: date | datetime | None = None, *, max_rows: int = DAY_ROWS_SHOWN,
                  weeks: int = WEEKS_CHARTED, sites: Collection[str] | None = None,
                  strict: bool = True) -> RangeSummary:
    """Totals and at most max_rows person-days of start..end from one streamed pass (memory does
    not grow with the range), with minutes per person per week for the last `weeks` weeks."""
    check_range(start, end)
    last_monday = end - timedelta(days=end.weekday())
    first_charted = max(start, last_monday - timedelta(weeks=weeks - 1))
    week_minutes: dict[date, Counter[str]] = {}
    rows: list[PersonDay] = []
    leave: list[LeaveDay] = []
    leave_days = 0
    forgotten: list[PersonDay] = []
    with read_snapshot(db) as snapshot:
        scan = RangeScan(snapshot, settings, start, end, today, sites=sites, strict=strict)
        for rd in scan.days():
            rows += rd.rows[:max_rows - len(rows)]
            leave += rd.leave[:max(0, max_rows - len(leave))]
            leave_days += len(rd.leave)
            forgotten += [r for r in rd.rows if r.no_checkout][:max(0, max_rows - len(forgotten))]
            if rd.day >= first_charted:
                week = week_minutes.setdefault(_week_start(rd.day, start), Counter())
                for r in rd.rows:
                    week[r.name] += r.present_minutes
        report = RangeReport(
            site=settings.site.name, start=start, end=end, timezone=settings.site.timezone,
            mode=settings.attendance.mode, rows=rows, totals=scan.totals(),
            unknown_faces=scan.unknown_faces, leave=leave, **scan.site_fields(),
        )
        no_checkout_days = sum(t.days_no_checkout for t in report.totals)
        return RangeSummary(report, scan.person_days, leave_days, week_minutes, forgotten,
                            no_checkout_days)
