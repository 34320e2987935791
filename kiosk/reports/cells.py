"""Report rows as text cells, shared by the renderers: the payroll CSV's columns, the totals'
columns and the days' table columns, with the words pages and text reports show."""

from __future__ import annotations

import logging
from datetime import date

from kiosk.dates import hm, iso
from kiosk.reports.model import DailyReport, LeaveDay, PersonDay, PersonTotals, TeamExpression
from kiosk.store import PersonInfo

logger = logging.getLogger(__name__)

CSV_COLUMNS = [
    "date", "employee_id", "name", "first_in", "last_out", "hours", "late", "minutes_late",
    "status", "corrected", "leave", "no_checkout",
]
"""Columns of the daily and range CSV (payroll): one row per person and day; times are local
ISO 8601 with UTC offset; hours decimal (2 places); late yes/no; status present/open/absent/leave
(open: a check-in without check-out or the other way round, hours not known; leave: a work day
of recorded leave, whose kind is in the leave column: holiday, sick or other);
corrected yes/no (an event of the day was entered by hand); no_checkout yes/no (a day already
over with a check-in and no check-out: a forgotten check-out, to be corrected)."""
SITE_CSV_COLUMNS = ["site", "door_in", "door_out"]
"""Columns a central server's payroll CSV adds after CSV_COLUMNS (reports.sites): the person's
site for the day (absent and leave rows: their home site) and the doors (names) of the first in
and the last out; empty when there is none (a correction, no door). A standalone kiosk's CSV never
has them, so existing payroll imports keep their shape."""
TEXT_CELLS = (CSV_COLUMNS.index("employee_id"), CSV_COLUMNS.index("name"))
"""The CSV cells people type (the rest are dates, times, numbers and fixed words)."""
SITE_TEXT_CELLS = (*TEXT_CELLS, *range(len(CSV_COLUMNS), len(CSV_COLUMNS) + len(SITE_CSV_COLUMNS)))
"""TEXT_CELLS of a central's CSV: site and door names are typed by admins too."""

DAY_HEADERS = ["Employee", "Name", "In", "Out", "Hours", "Late", "Status"]
SITE_HEADERS = ["Site", "In at", "Out at"]
"""The day tables' columns on a central server, after DAY_HEADERS."""
LEAVE_HEADERS = ["Date", "Employee", "Name", "Leave"]
TOTALS_HEADERS = ["Employee", "Name", "Days", "Hours", "Times late", "Minutes late", "Days absent",
                  "Days on leave", "No check-out"]
TOTALS_CSV_COLUMNS = ["employee_id", "name", "days_present", "hours", "times_late", "minutes_late",
                      "days_absent", "days_on_leave", "days_no_checkout"]


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def csv_columns(by_site: bool) -> list[str]:
    """The payroll CSV's header: CSV_COLUMNS, plus SITE_CSV_COLUMNS on a central server."""
    return CSV_COLUMNS + SITE_CSV_COLUMNS if by_site else CSV_COLUMNS


def text_cells(by_site: bool) -> tuple[int, ...]:
    """Indexes of the typed cells of the payroll CSV (TEXT_CELLS or SITE_TEXT_CELLS)."""
    return SITE_TEXT_CELLS if by_site else TEXT_CELLS


def day_csv_cells(r: PersonDay, by_site: bool = False) -> list[str]:
    """One person-day as CSV cells in csv_columns(by_site) order."""
    cells = [r.day.isoformat(), r.employee_id, r.name, iso(r.first_in), iso(r.last_out),
             f"{r.hours:.2f}", _yes_no(r.late), str(r.minutes_late), r.status,
             _yes_no(r.corrected), "", _yes_no(r.no_checkout)]
    return cells + [r.site or "", r.door_in or "", r.door_out or ""] if by_site else cells


def no_show_csv_cells(day: date, p: PersonInfo, status: str, leave: str = "",
                      home: dict[int, str] | None = None) -> list[str]:
    """CSV cells of a work day without events: status absent, or leave with its kind; with home
    (a central's home sites) the site columns too (the home site, no doors)."""
    cells = [day.isoformat(), p.employee_id, p.name, "", "", "0.00", "no", "0", status, "no", leave, "no"]
    return cells + [home.get(p.id, ""), "", ""] if home is not None else cells


def leave_csv_cells(x: LeaveDay, home: dict[int, str] | None = None) -> list[str]:
    """A work day on leave as CSV cells (in csv_columns(home is not None) order)."""
    return no_show_csv_cells(x.day, x.person, "leave", x.kind, home)


def totals_cells(t: PersonTotals) -> list[str]:
    """One totals row as text, in TOTALS_HEADERS / TOTALS_CSV_COLUMNS order ("" = not known)."""
    absent = "" if t.days_absent is None else str(t.days_absent)
    return [t.employee_id, t.name, str(t.days_present), f"{t.hours:.2f}", str(t.times_late),
            str(t.minutes_late), absent, str(t.days_on_leave), str(t.days_no_checkout)]


def day_headers(by_site: bool, with_date: bool = False) -> list[str]:
    """The day table's headers: (Date,) DAY_HEADERS (, SITE_HEADERS on a central)."""
    return (["Date"] if with_date else []) + DAY_HEADERS + (SITE_HEADERS if by_site else [])


def day_cells(r: PersonDay, with_date: bool = False, by_site: bool = False) -> list[str]:
    """One person-day in day_headers(by_site, with_date) order, times as HH:MM ("-": no site or door)."""
    late = f"{r.minutes_late} min" if r.late else "no"
    cells = [r.employee_id, r.name, hm(r.first_in), hm(r.last_out), f"{r.hours:.2f}", late,
             r.label + (" (corrected)" if r.corrected else "")]
    if by_site:
        cells += [r.site or "-", r.door_in or "-", r.door_out or "-"]
    return ([r.day.isoformat()] if with_date else []) + cells


def leave_cells(leave: list[LeaveDay]) -> list[list[str]]:
    """Leave days in LEAVE_HEADERS order."""
    return [[x.day.isoformat(), x.person.employee_id, x.person.name, x.kind] for x in leave]


def expr_text(counts: dict[str, int] | None) -> str:
    """Expression counts as "happy 3, sad 1" (most first); "-" when none."""
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def daily_headers_and_cells(report: DailyReport) -> tuple[list[str], list[list[str]]]:
    """The daily table's headers and rows (an Expression column when the report has expressions)."""
    with_expr = report.team_expression is not None
    headers = day_headers(report.by_site) + (["Expression"] if with_expr else [])
    rows = [day_cells(r, by_site=report.by_site) + ([expr_text(r.expression)] if with_expr else [])
            for r in report.rows]
    return headers, rows


def team_text(team: TeamExpression) -> str:
    """One line on the team's expressions, or why they are hidden."""
    if team.counts is None:
        return f"Team expression: {team.hidden_reason}"
    return f"Team expression ({team.contributors} people): {expr_text(team.counts)}"


def absent_text(report: DailyReport) -> str:
    """The absent people as "Name (id), ..."; "none" or "none (not a work day)"."""
    if not report.work_day:
        return "none (not a work day)"
    return ", ".join(f"{p.name} ({p.employee_id})" for p in report.absent) or "none"


def leave_text(x: LeaveDay) -> str:
    """A leave day as "Name (id, kind)"."""
    return f"{x.person.name} ({x.person.employee_id}, {x.kind})"


def daily_title(site: str, day: date) -> str:
    """The daily report's title, e.g. "Office - attendance on 2026-03-02" (renderers add details)."""
    return f"{site} - attendance on {day.isoformat()}"


def range_title(site: str, start: date, end: date) -> str:
    """A range report's title, e.g. "Office - attendance 2026-03-02 to 2026-03-08"."""
    return f"{site} - attendance {start.isoformat()} to {end.isoformat()}"
