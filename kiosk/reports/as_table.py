"""Reports as plain-text tables (columns padded with spaces, a dashed rule under the headers);
a long range written day by day with column widths fixed up front."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import date

from kiosk.config import Settings
from kiosk.reports import cells
from kiosk.reports.model import DailyReport, LeaveDay, PersonTotals, RangeReport
from kiosk.reports.scan import RangeScan, check_range
from kiosk.store import Database, PersonInfo, read_snapshot

logger = logging.getLogger(__name__)

_LONGEST_LATE = "1439 min"
_LONGEST_STATUS = "no check-out (corrected)"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """headers and rows as left-aligned columns two spaces apart (no trailing newline)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = [_line(headers, widths), _rule(widths)]
    lines += [_line(r, widths) for r in rows]
    return "\n".join(lines)


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _rule(widths: list[int]) -> str:
    return "  ".join("-" * w for w in widths)


def daily_table(report: DailyReport) -> str:
    """The daily report as text: the people's table, absent, on leave, unknown faces, team expression."""
    headers, rows = cells.daily_headers_and_cells(report)
    parts = [
        f"{report.site} - attendance on {report.day.isoformat()} "
        f"({report.timezone}, {report.mode})",
        "",
        table(headers, rows) if rows else "No one checked in.",
        "",
        "Absent: " + cells.absent_text(report),
        "On leave: " + (", ".join(cells.leave_text(x) for x in report.on_leave) or "none"),
        f"Unknown faces: {report.unknown_faces}",
    ]
    if report.team_expression is not None:
        parts.append(cells.team_text(report.team_expression))
    return "\n".join(parts) + "\n"


def _range_title(site: str, start: date, end: date, timezone: str, mode: str) -> str:
    return f"{site} - attendance {start.isoformat()} to {end.isoformat()} ({timezone}, {mode})\n\n"


def _range_tail(totals: list[PersonTotals], leave: list[LeaveDay], unknown_faces: int) -> str:
    """Everything after the days: totals, leave (when any) and the unknown faces."""
    text = "\nTotals\n" + table(cells.TOTALS_HEADERS, [cells.totals_cells(t) for t in totals]) + "\n"
    if leave:
        text += "\nOn leave\n" + table(cells.LEAVE_HEADERS, cells.leave_cells(leave)) + "\n"
    return text + f"\nUnknown faces: {unknown_faces}\n"


def range_table(report: RangeReport) -> str:
    """The range report as text: days, totals, leave, unknown faces."""
    days = table(cells.DATED_DAY_HEADERS, [cells.day_cells(r, True) for r in report.rows])
    return (_range_title(report.site, report.start, report.end, report.timezone, report.mode)
            + days + "\n" + _range_tail(report.totals, report.leave, report.unknown_faces))


def _day_widths(people: Iterable[PersonInfo]) -> list[int]:
    """Column widths of the range table's days (cells.DATED_DAY_HEADERS) that fit any row, known
    before the rows are read: the longest employee id and name of the people that may appear."""
    people = list(people)
    longest = [10, max((len(p.employee_id) for p in people), default=0),
               max((len(p.name) for p in people), default=0), 5, 5, 5, len(_LONGEST_LATE),
               len(_LONGEST_STATUS)]
    return [max(len(h), n) for h, n in zip(cells.DATED_DAY_HEADERS, longest, strict=True)]


def iter_range_table(db: Database, settings: Settings, start: date, end: date,
                     today: date | None) -> Iterator[str]:
    """range_table's text, the days written as they are read (widths fixed up front)."""
    check_range(start, end)

    def chunks() -> Iterator[str]:
        leave: list[LeaveDay] = []
        with read_snapshot(db) as snapshot:
            scan = RangeScan(snapshot, settings, start, end, today)
            widths = _day_widths(scan.people.values())
            yield (_range_title(settings.site.name, start, end, settings.site.timezone,
                                settings.attendance.mode)
                   + _line(cells.DATED_DAY_HEADERS, widths) + "\n" + _rule(widths) + "\n")
            for rd in scan.days():
                leave += rd.leave
                if rd.rows:
                    yield "".join(_line(cells.day_cells(r, True), widths) + "\n" for r in rd.rows)
            totals, unknown = scan.totals(), scan.unknown_faces
        yield _range_tail(totals, leave, unknown)

    return chunks()
