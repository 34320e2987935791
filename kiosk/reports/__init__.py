"""Attendance reports from the store: daily and date-range figures, rendered as text table,
CSV, JSON or a standalone HTML page. All times are shown in the site's time zone (on a central
with `sites:`, each day in its site's zone: reports.sites).

Modules: model (the records), person_day (reading one person's day: hours, lateness, open days),
daily (one day), scan (one pass over a range, with per-person tallies), ranges (range reports
and page summaries); cells (rows as text), as_csv, as_json, as_table, as_html (templates/) and
render (one entry point per report and format). The rules are in person_day's and daily's
docstrings. Everything other modules use is re-exported here.
"""

from __future__ import annotations

from kiosk.csv_safe import safe_cell
from kiosk.dates import FIRST_DAY, LAST_DAY, check_day, parse_day
from kiosk.reports.as_csv import iter_range_csv, range_csv_rows, range_day_csv_rows
from kiosk.reports.as_html import range_html
from kiosk.reports.as_json import daily_as_dict, range_as_dict
from kiosk.reports.cells import (
    CSV_COLUMNS,
    TOTALS_CSV_COLUMNS,
    TOTALS_HEADERS,
    day_csv_cells,
    leave_csv_cells,
    totals_cells,
)
from kiosk.reports.daily import daily_report
from kiosk.reports.model import (
    DailyReport,
    LeaveDay,
    PersonDay,
    PersonTotals,
    RangeDay,
    RangeReport,
    RangeSummary,
    TeamExpression,
)
from kiosk.reports.ranges import DAY_ROWS_SHOWN, WEEKS_CHARTED, range_report, range_summary
from kiosk.reports.render import FORMATS, iter_range, render_daily, render_range
from kiosk.reports.scan import MAX_RANGE_DAYS, RangeScan, finished_work_days
from kiosk.reports.sites import person_rules

__all__ = [
    "CSV_COLUMNS",
    "DAY_ROWS_SHOWN",
    "FIRST_DAY",
    "FORMATS",
    "LAST_DAY",
    "MAX_RANGE_DAYS",
    "TOTALS_CSV_COLUMNS",
    "TOTALS_HEADERS",
    "WEEKS_CHARTED",
    "DailyReport",
    "LeaveDay",
    "PersonDay",
    "PersonTotals",
    "RangeDay",
    "RangeReport",
    "RangeScan",
    "RangeSummary",
    "TeamExpression",
    "check_day",
    "daily_as_dict",
    "daily_report",
    "day_csv_cells",
    "finished_work_days",
    "iter_range",
    "iter_range_csv",
    "leave_csv_cells",
    "parse_day",
    "person_rules",
    "range_as_dict",
    "range_csv_rows",
    "range_day_csv_rows",
    "range_html",
    "range_report",
    "range_summary",
    "render_daily",
    "render_range",
    "safe_cell",
    "totals_cells",
]
