"""Reports as plain-text tables (columns padded with spaces, a dashed rule under the headers);
a long range written day by day with column widths fixed up front."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator
from datetime import date, datetime

from kiosk.config import Settings
from kiosk.reports.cells import (
    DAY_HEADERS,
    LEAVE_HEADERS,
    SITE_HEADERS,
    TOTALS_HEADERS,
    absent_text,
    daily_headers_and_cells,
    daily_title,
    day_cells,
    day_headers,
    leave_cells,
    leave_text,
    range_title,
    team_text,
    totals_cells,
)
from kiosk.reports.model import DailyReport, LeaveDay, PersonTotals, RangeReport, zone_text
from kiosk.reports.scan import RangeScan, check_range_request
from kiosk.reports.sites import Places
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
    headers, rows = daily_headers_and_cells(report)
    parts = [
        f"{daily_title(report.site, report.day)} ({report.zone_text}, {report.mode}){_sites_note(report.sites)}",
        "",
        table(headers, rows) if rows else "No one checked in.",
        "",
        "Absent: " + absent_text(report),
        "On leave: " + (", ".join(leave_text(x) for x in report.on_leave) or "none"),
        f"Unknown faces: {report.unknown_faces}",
    ]
    if report.team_expression is not None:
        parts.append(team_text(report.team_expression))
    return "\n".join(parts) + "\n"


def _sites_note(sites: list[str] | None) -> str:
    """", sites: a, b" for a filtered report; "" otherwise."""
    return f", sites: {', '.join(sites)}" if sites else ""


def _range_title(site: str, start: date, end: date, timezone: str, mode: str,
                 sites: list[str] | None = None) -> str:
    return f"{range_title(site, start, end)} ({timezone}, {mode}){_sites_note(sites)}\n\n"


def _range_tail(totals: list[PersonTotals], leave: list[LeaveDay], unknown_faces: int) -> str:
    """Everything after the days: totals, leave (when any) and the unknown faces."""
    text = "\nTotals\n" + table(TOTALS_HEADERS, [totals_cells(t) for t in totals]) + "\n"
    if leave:
        text += "\nOn leave\n" + table(LEAVE_HEADERS, leave_cells(leave)) + "\n"
    return text + f"\nUnknown faces: {unknown_faces}\n"


def range_table(report: RangeReport) -> str:
    """The range report as text: days, totals, leave, unknown faces."""
    days = table(day_headers(report.by_site, True), [day_cells(r, True, report.by_site) for r in report.rows])
    return (_range_title(report.site, report.start, report.end, report.zone_text, report.mode, report.sites)
            + days + "\n" + _range_tail(report.totals, report.leave, report.unknown_faces))


def _day_widths(people: Iterable[PersonInfo], places: Places) -> list[int]:
    """Column widths of the range table's days (day_headers) that fit any row, known before the
    rows are read: the longest employee id and name of the people that may appear (and, on a
    central, the longest site and door name)."""
    people = list(people)
    longest = [10, max((len(p.employee_id) for p in people), default=0),
               max((len(p.name) for p in people), default=0), 5, 5, 5, len(_LONGEST_LATE),
               len(_LONGEST_STATUS)]
    if places.by_site:
        site = max((len(d.site or "") for d in places.doors.values()), default=1)
        door = max((len(d.name) for d in places.doors.values()), default=1)
        longest += [site, door, door]
    headers = ["Date", *DAY_HEADERS, *(SITE_HEADERS if places.by_site else [])]
    return [max(len(h), n) for h, n in zip(headers, longest, strict=True)]


def iter_range_table(db: Database, settings: Settings, start: date, end: date,
                     today: date | datetime | None, sites: Collection[str] | None = None,
                     strict: bool = True) -> Iterator[str]:
    """range_table's text, the days written as they are read (widths fixed up front)."""
    check_range_request(db, settings, start, end, sites, strict)

    def chunks() -> Iterator[str]:
        leave: list[LeaveDay] = []
        with read_snapshot(db) as snapshot:
            scan = RangeScan(snapshot, settings, start, end, today, sites=sites, strict=strict)
            by_site = scan.places.by_site
            widths = _day_widths(scan.people.values(), scan.places)
            yield (_range_title(settings.site.name, start, end,
                                zone_text(settings.site.timezone, scan.places.zones),
                                settings.attendance.mode, scan.site_fields()["sites"])
                   + _line(day_headers(by_site, True), widths) + "\n" + _rule(widths) + "\n")
            for rd in scan.days():
                leave += rd.leave
                if rd.rows:
                    yield "".join(_line(day_cells(r, True, by_site), widths) + "\n" for r in rd.rows)
            totals, unknown = scan.totals(), scan.unknown_faces
        yield _range_tail(totals, leave, unknown)

    return chunks()
