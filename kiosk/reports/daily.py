"""The daily report: attendance, lateness, absences, leave, unknown faces and expressions of one
local day, all read from one snapshot of the database.

Absence: a work day (site.work_days, not site.holidays) with no event and no recorded leave;
a work day within a person's leave (store.leave) counts as leave, unless they came in.
On a central (reports.sites): each event on its own zone's date, each row by its day's site's
rules, each person's absence and leave by their home site's work days and holidays; "not a work
day" only when the date is a work day at no configured site and not at site:.
Expression (only when expression.enabled): per person only for people who currently consent;
the team distribution counts labelled events of consenting people and is hidden when fewer
than web.min_group_size people contribute (the report says so instead).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from datetime import date, datetime

from kiosk.config import Settings
from kiosk.reports.model import DailyReport, LeaveDay, TeamExpression, person_day_key
from kiosk.reports.person_day import person_day
from kiosk.reports.sites import DayWindow, Places, Todays, day_window, load_places, place_row
from kiosk.store import (
    Database,
    EventInfo,
    PersonInfo,
    events_between,
    leave_between,
    leave_by_person_day,
    list_people,
    local_day_bounds,
    people_by_id,
    read_snapshot,
)
from kiosk.vocabulary import LeaveKind

logger = logging.getLogger(__name__)


def daily_report(db: Database, settings: Settings, day: date, today: date | datetime | None = None, *,
                 sites: Collection[str] | None = None, strict: bool = True) -> DailyReport:
    """Attendance, lateness, absences, unknown faces and expressions for one local day, all read
    from one snapshot of the database (store.read_snapshot); today (a date, or an aware instant
    giving each zone its date; default now) tells a forgotten check-out (no_checkout) from someone
    still in. sites (a central's): only those sites' rows, unknown faces and expressions, and the
    absences and leave of people whose home site is one of them (reports.sites); strict: a site no
    door has is a ReportError. On a central the site rules apply (reports.sites)."""
    with read_snapshot(db) as snapshot:
        places = load_places(snapshot, settings, sites, local_day_bounds(day, settings.tz)[1], strict=strict,
                             last_day=day)
        return _daily_report(snapshot, settings, day, Todays(today), places)


def _group(events: list[EventInfo], w: DayWindow, places: Places,
           ) -> tuple[dict[int, list[EventInfo]], int, list[EventInfo]]:
    """The day's events by person, its unknown faces and its events (those on the window's date in
    their own zone: reports.sites)."""
    by_person: dict[int, list[EventInfo]] = defaultdict(list)
    unknown = 0
    kept: list[EventInfo] = []
    zoned = places.zoned
    for e in events:
        if zoned and not w.holds(places.device_rules(e.device_id, e.manual, e.person_id), e.occurred_at):
            continue
        kept.append(e)
        if e.person_id is None:
            unknown += 1
        else:
            by_person[e.person_id].append(e)
    return by_person, unknown, kept


def _daily_report(db: Database, settings: Settings, day: date, todays: Todays, places: Places) -> DailyReport:
    w = day_window(day, places)
    by_person, unknown, events = _group(events_between(db, w.utc_from, w.utc_to), w, places)
    people = people_by_id(db, set(by_person))
    with_expr = settings.expression.enabled
    placed = []
    for pid, evs in by_person.items():
        rules = places.day_rules(places.day_site(evs), pid) if places.by_site else places.default
        row = person_day(people[pid], day, evs, settings, with_expr, todays.of(places.home_rules(pid)), rules)
        placed.append(place_row(row, evs, places))
    present = set(by_person)  # came in (anywhere): not absent, not on leave
    rows = sorted((r for r in placed if places.shows(r.site)), key=person_day_key)
    if places.only is not None:  # the unknown faces and expressions of the sites' doors only
        shown = {r.person_id for r in rows}
        events = [e for e in events if (e.person_id in shown if e.person_id is not None
                                        else places.shows(places.site_of_device(e.device_id)))]
        unknown = sum(1 for e in events if e.person_id is None)
    # a work day at some site (or at site:); each person is expected by their home site's rules
    work_day = any(r.is_work_day(day) for r in places.all_rules)
    leave = leave_by_person_day(leave_between(db, day, day)) if work_day else {}
    expected = []
    for p in list_people(db, include_inactive=False):
        if not work_day or p.id in present or not places.shows_person(p.id):
            continue
        rules = places.home_rules(p.id)
        if rules.is_work_day(day) and p.created_at < local_day_bounds(day, rules.tz)[1]:
            expected.append(p)
    on_leave = [LeaveDay(day, p, LeaveKind(leave[(p.id, day)])) for p in expected if (p.id, day) in leave]
    absent = [p for p in expected if (p.id, day) not in leave]
    team = _team_expression(events, people, settings.web.min_group_size) if with_expr else None
    return DailyReport(
        site=settings.site.name,
        day=day,
        timezone=settings.site.timezone,
        mode=settings.attendance.mode,
        rows=rows,
        absent=absent,
        unknown_faces=unknown,
        team_expression=team,
        work_day=work_day,
        on_leave=on_leave,
        **places.report_fields(),
    )


def _team_expression(events: list[EventInfo], people: Mapping[int, PersonInfo], k: int) -> TeamExpression:
    """Labelled events of consenting people, counted by label; hidden when fewer than k people contribute."""
    counts: Counter[str] = Counter()
    contributors: set[int] = set()
    for e in events:
        if e.person_id is None or not e.expression_label:
            continue
        if not people[e.person_id].expression_consent:
            continue
        counts[e.expression_label] += 1
        contributors.add(e.person_id)
    if len(contributors) < k:
        reason = (
            f"hidden: {len(contributors)} people contributed expression data, "
            f"fewer than the minimum group size {k}"
        )
        return TeamExpression(len(contributors), k, None, reason)
    return TeamExpression(len(contributors), k, dict(counts.most_common()), None)
