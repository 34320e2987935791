"""Pages for managers (and admins): today's board, any day, ranges, mood, people, history.

Every table has a CSV twin. Day and range CSVs are the payroll format of kiosk.reports.

Sites (a central server's, kiosk.reports.sites): ?site=NAME (repeatable) shows only that site's
rows, and links on the page keep it. A manager limited to sites (store.set_user_sites) sees only
their sites' rows on every page and CSV here, whatever the URL asks: report_sites() is applied by
every view, and people of other sites (by home site) are not found (404).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, request
from markupsafe import Markup

from kiosk.dates import hm, parse_day
from kiosk.errors import KioskError, PersonNotFound, ReportError
from kiosk.reports import (
    TOTALS_CSV_COLUMNS,
    DailyReport,
    PersonDay,
    RangeReport,
    TeamExpression,
    daily_report,
    iter_range_csv,
    person_rules,
    range_report,
    range_summary,
    render_daily,
    totals_cells,
)
from kiosk.store import (
    EventInfo,
    LeaveInfo,
    PersonInfo,
    events_between,
    get_person,
    leave_between,
    list_audit,
    list_people,
    list_templates,
    local_day_bounds,
    people_by_id,
    search_people,
)
from kiosk.web.charts import bar_chart, colour_of, hbar_chart, stacked_shares
from kiosk.web.context import ctx, current_user, is_admin
from kiosk.web.downloads import csv_response, csv_stream, text_download
from kiosk.web.site_filter import (
    home_rules_of,
    keep_site,
    person_shown,
    report_sites,
    site_bar_context,
)

logger = logging.getLogger(__name__)

bp = Blueprint("reports", __name__)


MAX_MOOD_DAYS = 92
EXPRESSION_ORDER = ["happy", "neutral", "surprise", "sad", "angry", "fear", "disgust"]


bp.url_defaults(keep_site)
bp.context_processor(site_bar_context)


def day_arg(name: str, default: date) -> date:
    """A YYYY-MM-DD (or today/yesterday) query parameter; ReportError when malformed."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    return parse_day(raw[:20], ctx().settings, ctx().clock.now())


def range_args(default_days: int | None = None) -> tuple[date, date]:
    """start/end query parameters (default: this week, Monday to today, or the last N days)."""
    today = ctx().today()
    default_start = (today - timedelta(days=default_days - 1) if default_days
                     else today - timedelta(days=today.weekday()))
    start, end = day_arg("start", default_start), day_arg("end", today)
    if end < start:
        raise ReportError(f"the range ends ({end}) before it starts ({start})")
    return start, end


_hm = partial(hm, missing="")  # HH:MM on pages; nothing for a missing time


def _arrivals_chart(report: DailyReport) -> Markup:
    """Bar chart of first arrivals in 30-minute bins over the working morning."""
    minutes = [r.first_in.hour * 60 + r.first_in.minute for r in report.rows if r.first_in]
    lo = min([6 * 60, *minutes]) // 60 * 60
    hi = (max([12 * 60, *minutes]) // 60 + 1) * 60
    bins = list(range(lo, hi, 30))
    counts = [sum(1 for m in minutes if b <= m < b + 30) for b in bins]
    labels = [f"{b // 60:02d}:{b % 60:02d}" for b in bins]
    return bar_chart(labels, counts, f"Arrivals on {report.day}", " people", every=2)


def _running_hours(rows: list[PersonDay], now: datetime) -> dict[int, float]:
    """Hours so far (now - first check-in, decimal, 2 places) of people in now, by person id."""
    return {r.person_id: round(max(0.0, (now - r.first_in).total_seconds()) / 3600.0, 2)
            for r in rows if r.first_in is not None}


def _in_now(r: PersonDay) -> bool:
    """Checked in, not out, on a day not over yet. A past day's open check-in is a forgotten
    check-out (r.no_checkout), listed with the other incomplete days to be corrected."""
    return r.open and r.first_in is not None and not r.no_checkout


def _board_context(day: date) -> dict[str, object]:
    c = ctx()
    today = c.today()
    choice = report_sites()
    report = daily_report(c.db, c.settings, day, today=c.clock.now(), sites=choice.sites, strict=choice.strict)
    rows = report.rows
    inside = [r for r in rows if _in_now(r)]
    incomplete = [r for r in rows if r.open and not _in_now(r)]
    team = report.team_expression
    team_chart = None
    if team is not None and team.shares:
        shares = team.shares
        team_chart = hbar_chart([(k, round(100 * v)) for k, v in
                                 sorted(shares.items(), key=lambda kv: -kv[1])],
                                "Team expression", "%")
    return {
        "report": report, "day": day, "today": today,
        "inside": inside, "incomplete": incomplete,
        "running": _running_hours(inside, c.clock.now()) if day == today else {},
        "left": [r for r in rows if not r.open and r.last_out],
        "late": [r for r in rows if r.late],
        "absent": report.absent,
        "on_leave": report.on_leave,
        "arrivals_chart": _arrivals_chart(report),
        "team": team, "team_chart": team_chart,
        "expression_enabled": c.settings.expression.enabled,
        "prev_day": day - timedelta(days=1), "next_day": day + timedelta(days=1),
        "hm": _hm,
    }


@bp.route("/")
def board() -> str:
    """Today's board: who is in, who left, who was late, who is absent."""
    return render_template("board.html", **_board_context(ctx().today()))


@bp.route("/day")
def day() -> str:
    """The board for any day (?date=YYYY-MM-DD)."""
    return render_template("board.html", **_board_context(day_arg("date", ctx().today())))


@bp.route("/day.csv")
def day_csv() -> Response:
    """The day as payroll CSV (absent people included)."""
    c = ctx()
    d = day_arg("date", c.today())
    choice = report_sites()
    report = daily_report(c.db, c.settings, d, today=c.clock.now(), sites=choice.sites, strict=choice.strict)
    return text_download(f"attendance-{d}.csv", render_daily(report, "csv"), "text/csv")


def _weeks(start: date, end: date) -> list[tuple[date, date]]:
    monday = start - timedelta(days=start.weekday())
    out = []
    while monday <= end:
        out.append((max(monday, start), min(monday + timedelta(days=6), end)))
        monday += timedelta(days=7)
    return out


@bp.route("/range")
def range_page() -> str:
    """Totals and days over a date range (the first DAY_ROWS_SHOWN person-days; the CSV has all),
    with hours per person per week for the last weeks."""
    c = ctx()
    start, end = range_args()
    choice = report_sites()
    summary = range_summary(c.db, c.settings, start, end, today=c.clock.now(), sites=choice.sites,
                            strict=choice.strict)
    week_charts = []
    for w_start, minutes in sorted(summary.week_minutes.items()):
        w_end = min(w_start + timedelta(days=6 - w_start.weekday()), end)
        rows = sorted(((n, round(m / 60, 1)) for n, m in minutes.items()), key=lambda kv: kv[0])
        week_charts.append((w_start, w_end, hbar_chart(
            rows, f"Hours per person, {w_start} to {w_end}", " h")))
    return render_template("range.html", report=summary.report, summary=summary, start=start,
                           end=end, week_charts=week_charts, weeks_cut=len(_weeks(start, end)) > 8,
                           hm=_hm)


@bp.route("/range.csv")
def range_csv() -> Response:
    """Per person per day rows over the range (payroll CSV), streamed day by day."""
    c = ctx()
    start, end = range_args()
    choice = report_sites()
    return csv_stream(f"attendance-{start}-to-{end}.csv",
                      marked_if_cut(iter_range_csv(c.db, c.settings, start, end, today=c.clock.now(),
                                                   sites=choice.sites, strict=choice.strict)))


def marked_if_cut(chunks: Iterator[str]) -> Iterator[str]:
    """A streamed CSV's chunks; when they stop on an error (the database gone), a last line
    "INCOMPLETE: <the error>" and the error again (the response is cut: a broken transfer over
    HTTP/1.1; the line shows it where a proxy speaking HTTP/1.0 to us would pass a clean end)."""
    try:
        yield from chunks
    except KioskError as exc:
        yield "INCOMPLETE: " + " ".join(str(exc).replace('"', "'").split()) + "\n"
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


@bp.route("/range-totals.csv")
def range_totals_csv() -> Response:
    """Per person totals over the range."""
    c = ctx()
    start, end = range_args()
    choice = report_sites()
    report = range_summary(c.db, c.settings, start, end, today=c.clock.now(), max_rows=0, sites=choice.sites,
                           strict=choice.strict).report
    return csv_response(f"totals-{start}-to-{end}.csv", TOTALS_CSV_COLUMNS,
                        [totals_cells(t) for t in report.totals])


LEAVE_DAYS_AHEAD = 30  # the leave page's default range: today and the next 30 days


@dataclass(frozen=True)
class LeaveRow:
    """One line of the leave page: the leave, its person, its work days inside the shown range."""

    item: LeaveInfo
    person: PersonInfo
    work_days: int


def _leave_rows(start: date, end: date) -> list[LeaveRow]:
    """Leave overlapping start..end with the person and its work days inside the range, by start day."""
    c = ctx()
    shown = person_shown()
    items = [x for x in leave_between(c.db, start, end) if shown(x.person_id)]
    people = people_by_id(c.db, {x.person_id for x in items})
    rules_of = home_rules_of()  # work days and holidays of each person's home site (a central's sites:)

    def work_days(x: LeaveInfo) -> int:
        rules = rules_of(x.person_id)
        return sum(1 for d in x.days() if start <= d <= end and rules.is_work_day(d))

    rows = [LeaveRow(item=x, person=people[x.person_id], work_days=work_days(x)) for x in items]
    return sorted(rows, key=lambda r: (r.item.first_day, r.person.name.casefold()))


def _leave_range() -> tuple[date, date]:
    today = ctx().today()
    start, end = day_arg("start", today), day_arg("end", today + timedelta(days=LEAVE_DAYS_AHEAD))
    if end < start:
        raise ReportError(f"the range ends ({end}) before it starts ({start})")
    return start, end


@bp.route("/leave")
def leave_page() -> str:
    """Who is on leave from today on (or in ?start..end): holiday, sick, other."""
    start, end = _leave_range()
    return render_template("leave.html", rows=_leave_rows(start, end), start=start, end=end)


@bp.route("/leave.csv")
def leave_csv() -> Response:
    """The leave page as CSV (the columns `kiosk leave import` reads, plus the name and work days)."""
    start, end = _leave_range()
    return csv_response(f"leave-{start}-to-{end}.csv",
                        ["employee_id", "name", "first_day", "last_day", "kind", "work_days_in_range"],
                        [[r.person.employee_id, r.person.name, r.item.first_day.isoformat(),
                          r.item.last_day.isoformat(), r.item.kind, r.work_days] for r in _leave_rows(start, end)])


@dataclass(frozen=True)
class MoodColumn:
    """One day of the mood chart: the team's expressions (None when the day's report has none)."""

    day: date
    team: TeamExpression | None


def _mood_columns(start: date, end: date) -> list[MoodColumn]:
    """One MoodColumn per day from start to end."""
    c = ctx()
    choice = report_sites()
    out = []
    d = start
    while d <= end:
        report = daily_report(c.db, c.settings, d, sites=choice.sites, strict=choice.strict)
        out.append(MoodColumn(d, report.team_expression))
        d += timedelta(days=1)
    return out


def _shares_or_hidden(team: TeamExpression | None) -> dict[str, float] | None:
    """Shares to draw; {} (nothing) when nobody contributed; None (grey) when hidden."""
    if team is None or (team.counts is None and team.contributors == 0):
        return {}
    return team.shares


@bp.route("/mood")
def mood() -> str:
    """Team expression distribution per day (consenting people; hidden for small groups)."""
    c = ctx()
    if not c.settings.expression.enabled:
        return render_template("mood.html", enabled=False, start=None, end=None)
    start, end = range_args(default_days=14)
    if (end - start).days >= MAX_MOOD_DAYS:
        raise ReportError(f"choose at most {MAX_MOOD_DAYS} days for the mood chart")
    columns = _mood_columns(start, end)
    classes = [k for k in EXPRESSION_ORDER]
    for col in columns:
        team = col.team
        for k in (team.counts or {}) if team else {}:
            if k not in classes:
                classes.append(k)
    chart = stacked_shares(
        [(col.day.strftime("%d %b"), _shares_or_hidden(col.team)) for col in columns],
        classes, f"Team expression {start} to {end}")
    legend = [(k, colour_of(k, i)) for i, k in enumerate(classes)]
    return render_template("mood.html", enabled=True, start=start, end=end, columns=columns,
                           chart=chart, legend=legend, classes=classes,
                           min_group=c.settings.web.min_group_size)


@bp.route("/mood.csv")
def mood_csv() -> Response:
    """Team expression counts per day; hidden days have empty counts and a reason."""
    c = ctx()
    if not c.settings.expression.enabled:
        raise ReportError("expression analysis is turned off for this site")
    start, end = range_args(default_days=14)
    if (end - start).days >= MAX_MOOD_DAYS:
        raise ReportError(f"choose at most {MAX_MOOD_DAYS} days")
    rows: list[list[object]] = []
    for col in _mood_columns(start, end):
        team = col.team
        counts = (team.counts or {}) if team else {}
        rows.append([col.day.isoformat(), team.contributors if team else 0,
                     *[counts.get(k, "") for k in EXPRESSION_ORDER],
                     (team.hidden_reason or "") if team else ""])
    return csv_response(f"team-expression-{start}-to-{end}.csv",
                        ["date", "contributors", *EXPRESSION_ORDER, "hidden"], rows)


@bp.route("/people")
def people() -> str:
    """Everyone enrolled, with a search field."""
    c = ctx()
    q = request.args.get("q", "").strip()[:100]
    shown = person_shown()
    found = [p for p in (search_people(c.db, q) if q else list_people(c.db)) if shown(p.id)]
    return render_template("people.html", people=found, q=q)


@bp.route("/people.csv")
def people_csv() -> Response:
    """The people list as CSV."""
    c = ctx()
    shown = person_shown()
    return csv_response("people.csv", ["employee_id", "name", "active", "templates",
                                       "expression_consent", "enrolled_at"],
                        [[p.employee_id, p.name, "yes" if p.active else "no", p.template_count,
                          "yes" if p.expression_consent else "no",
                          p.created_at.astimezone(c.settings.tz).isoformat(timespec="minutes")]
                         for p in list_people(c.db) if shown(p.id)])


def _history(person_id: int, start: date, end: date) -> RangeReport:
    """The person's days, totals and absences over start..end (one snapshot)."""
    c = ctx()
    choice = report_sites()
    return range_report(c.db, c.settings, start, end, today=c.clock.now(), person_id=person_id,
                        sites=choice.sites, strict=choice.strict)


def person_or_404(person_id: int) -> PersonInfo:
    """The person with this id (erased included); aborts with 404 when there is none, or when the
    request's site filter (a limited manager's) does not hold their home site."""
    try:
        person = get_person(ctx().db, person_id)
    except PersonNotFound:
        abort(404)
    if not person_shown()(person.id):
        abort(404)
    return person


def _person_history(person_id: int) -> tuple[PersonInfo, date, date, RangeReport]:
    """The person (or 404), the requested range (default last 30 days) and their report for it."""
    p = person_or_404(person_id)
    start, end = range_args(default_days=30)
    return p, start, end, _history(person_id, start, end)


def _person_zone(person_id: int) -> ZoneInfo:
    """The zone a person's events are listed and corrections typed in: their home site's on a
    central with sites: (reports.person_rules), else the site's."""
    c = ctx()
    return person_rules(c.db, c.settings, person_id, c.clock.now()).tz


def _events_of(person_id: int, start: date, end: date) -> list[EventInfo]:
    """The person's events on the local days start to end (both included) of their zone (_person_zone)."""
    c = ctx()
    tz = _person_zone(person_id)
    utc_from, _ = local_day_bounds(start, tz)
    _, utc_to = local_day_bounds(end, tz)
    return events_between(c.db, utc_from, utc_to, person_id=person_id)


def _expression_counts(person_id: int, start: date, end: date) -> dict[str, int]:
    events = _events_of(person_id, start, end)
    return dict(Counter(e.expression_label for e in events if e.expression_label).most_common())


@bp.route("/people/<int:person_id>")
def person(person_id: int) -> str:
    """One person's history (and expressions, only with their consent)."""
    c = ctx()
    p, start, end, history = _person_history(person_id)
    rows = history.rows
    show_expr = c.settings.expression.enabled and p.expression_consent
    expr_counts = _expression_counts(person_id, start, end) if show_expr else {}
    expr_chart = None
    if expr_counts:
        total = sum(expr_counts.values())
        expr_chart = hbar_chart([(k, round(100 * v / total)) for k, v in expr_counts.items()],
                                f"Expressions of {p.name}", "%")
    hours = round(sum(r.present_minutes for r in rows) / 60, 2)
    extra: dict[str, object] = {"leave": leave_between(c.db, start, None, person_id=person_id)}  # and planned
    if is_admin(current_user()):
        tz = _person_zone(person_id)  # corrections are typed and listed in the home site's zone
        extra |= {"templates": list_templates(c.db, person_id),
                 "audit": list_audit(c.db, target=f"person:{person_id}", limit=20),
                 "events": _events_of(person_id, start, end), "person_tz": tz,
                 "today": c.today(), "fix_day": day_arg("fix", c.clock.now().astimezone(tz).date())}
    return render_template("person.html", p=p, rows=rows, start=start, end=end,
                           show_expr=show_expr, expr_counts=expr_counts, expr_chart=expr_chart,
                           hours=hours, hm=_hm, absences=history.absences, **extra)


@bp.route("/people/<int:person_id>/history.csv")
def person_csv(person_id: int) -> Response:
    """One person's days as CSV (the payroll columns)."""
    p = person_or_404(person_id)
    start, end = range_args(default_days=30)
    c = ctx()
    choice = report_sites()
    return csv_stream(f"history-{p.employee_id}-{start}-to-{end}.csv",
                      marked_if_cut(iter_range_csv(c.db, c.settings, start, end, today=c.clock.now(),
                                                   person_id=p.id, sites=choice.sites, strict=choice.strict)))
