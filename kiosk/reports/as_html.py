"""Reports as standalone HTML pages, rendered through the Jinja templates in reports/templates
(shipped as package data; autoescaped like the web app's, so every text is escaped)."""

from __future__ import annotations

import functools
import logging

import jinja2

from kiosk.reports.cells import (
    LEAVE_HEADERS,
    TOTALS_HEADERS,
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
from kiosk.reports.model import DailyReport, RangeReport, RangeSummary

logger = logging.getLogger(__name__)


@functools.cache
def _environment() -> jinja2.Environment:
    """The templates' environment (made once): autoescape, block tags leave no blank lines."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("kiosk.reports", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def _render(name: str, **context: object) -> str:
    return _environment().get_template(name).render(**context)


def _sites_note(sites: list[str] | None) -> str:
    """" (sites: a, b)" for a filtered report; "" otherwise."""
    return f" (sites: {', '.join(sites)})" if sites else ""


def daily_html(report: DailyReport) -> str:
    """The daily report as a standalone page: people, absent, on leave, unknown faces, team expression."""
    headers, rows = daily_headers_and_cells(report)
    team = None if report.team_expression is None else team_text(report.team_expression)
    title = daily_title(report.site, report.day) + _sites_note(report.sites)
    return _render("daily.html", report=report, title=title,
                   headers=headers, rows=rows, leave=[leave_text(x) for x in report.on_leave], team=team)


def range_html(report: RangeReport, summary: RangeSummary | None = None) -> str:
    """The range as a standalone page; with a summary, its rows are the first of summary.person_days
    (a note says so) and the days with no check-out have their own table."""
    title = range_title(report.site, report.start, report.end) + _sites_note(report.sites)
    return _render(
        "range.html", report=report, summary=summary, title=title,
        day_headers=day_headers(report.by_site, True),
        days=[day_cells(r, True, report.by_site) for r in report.rows],
        no_checkout=[day_cells(r, True, report.by_site) for r in summary.no_checkout] if summary else [],
        totals_headers=TOTALS_HEADERS, totals=[totals_cells(t) for t in report.totals],
        leave_headers=LEAVE_HEADERS, leave=leave_cells(report.leave),
    )
