"""`kiosk report`: attendance reports for one day or a period as a table, CSV for payroll, JSON or HTML."""

from __future__ import annotations

import logging

import click

from kiosk.cli.base import Context, with_context

logger = logging.getLogger(__name__)

FORMATS = ["table", "csv", "json", "html"]
"""The renderings kiosk.reports writes (table: fixed-width text for a terminal)."""

FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)


@click.group()
def report() -> None:
    """Attendance reports (table, CSV for payroll, JSON, HTML)."""


@report.command("daily")
@click.option("--date", "day", default="today", show_default=True, help="YYYY-MM-DD, today or yesterday.")
@FORMAT_OPTION
@with_context
def report_daily(ctx: Context, day: str, fmt: str) -> None:
    """One day: first in, last out, time present, late, absent, team mood."""
    from kiosk.reports import daily_report, parse_day, render_daily

    with ctx.open_db() as database:
        rendered = render_daily(daily_report(database, ctx.settings, parse_day(day, ctx.settings)), fmt)
    click.echo(rendered, nl=False)


@report.command("range")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Last day, YYYY-MM-DD (inclusive).")
@FORMAT_OPTION
@with_context
def report_range(ctx: Context, start: str, end: str, fmt: str) -> None:
    """A period: one row per person and day plus totals (CSV for payroll). csv, json and table are
    written day by day; html shows all totals and the first 500 person-days."""
    from kiosk.reports import iter_range, parse_day

    s = ctx.settings
    first, last = parse_day(start, s), parse_day(end, s)
    with ctx.open_db() as database:
        for chunk in iter_range(database, s, first, last, fmt):
            click.echo(chunk, nl=False)
