"""The daily report: attendance, lateness, absences, leave, unknown faces and expressions of one
local day, all read from one snapshot of the database.

Absence: a work day (site.work_days, not site.holidays) with no event and no recorded leave;
a work day within a person's leave (store.leave) counts as leave, unless they came in.
Expression (only when expression.enabled): per person only for people who currently consent;
the team distribution counts labelled events of consenting people and is hidden when fewer
than web.min_group_size people contribute (the report says so instead).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from kiosk.config import Settings
from kiosk.reports.model import DailyReport, LeaveDay, TeamExpression, person_day_key
from kiosk.reports.person_day import person_day
from kiosk.reports.sites import Places, load_places, place_row
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


def daily_report(db: Database, settings: Settings, day: date, today: date | None = None, *,
                 sites: Collection[str] | None = None, strict: bool = True) -> DailyReport:
    """Attendance, lateness, absences, unknown faces and expressions for one local day, all read
    from one snapshot of the database (store.read_snapshot); today (default: the local date now)
    tells a forgotten check-out (no_checkout) from someone still in. sites (a central's): only
    those sites' rows, unknown faces and expressions, and the absences and leave of people whose
    home site is one of them (reports.sites); strict: a site no door has is a ReportError."""
    with read_snapshot(db) as snapshot:
        places = load_places(snapshot, settings, sites, local_day_bounds(day, settings.tz)[1], strict=strict)
        return _daily_report(snapshot, settings, day, today or datetime.now(settings.tz).date(), places)


def _group(
    events: list[EventInfo], tz: ZoneInfo
) -> tuple[dict[tuple[int, date], list[EventInfo]], Counter[date]]:
    """Events by (person, local day), and unknown-face counts by local day."""
    by_key: dict[tuple[int, date], list[EventInfo]] = defaultdict(list)
    unknown: Counter[date] = Counter()
    for e in events:
        d = e.occurred_at.astimezone(tz).date()
        if e.person_id is None:
            unknown[d] += 1
        else:
            by_key[(e.person_id, d)].append(e)
    return by_key, unknown


def _daily_report(db: Database, settings: Settings, day: date, today: date, places: Places) -> DailyReport:
    tz = settings.tz
    start, end = local_day_bounds(day, tz)
    events = events_between(db, start, end)
    by_key, _ = _group(events, tz)
    people = people_by_id(db, {pid for pid, _ in by_key})
    with_expr = settings.expression.enabled
    placed = [place_row(person_day(people[pid], d, evs, settings, with_expr, today), evs, places)
              for (pid, d), evs in by_key.items()]
    present = {pid for pid, _ in by_key}  # came in (anywhere): not absent, not on leave
    rows = sorted((r for r in placed if places.shows(r.site)), key=person_day_key)
    if places.only is not None:  # the unknown faces and expressions of the sites' doors only
        shown = {r.person_id for r in rows}
        events = [e for e in events if (e.person_id in shown if e.person_id is not None
                                        else places.shows(places.site_of_device(e.device_id)))]
    _, unknown = _group(events, tz)
    work_day = settings.site.is_work_day(day)
    leave = leave_by_person_day(leave_between(db, day, day)) if work_day else {}
    expected = [p for p in list_people(db, include_inactive=False)
                if work_day and p.id not in present and p.created_at < end and places.shows_person(p.id)]
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
        unknown_faces=unknown[day],
        team_expression=team,
        work_day=work_day,
        on_leave=on_leave,
        by_site=places.by_site,
        sites=sorted(places.only) if places.only is not None else None,
        home=places.home,
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
