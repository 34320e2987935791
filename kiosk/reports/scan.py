"""One pass over a date range, day by day, inside one read snapshot: per-day rows and leave, and a
running tally per person for the range's totals. Memory holds one day, whatever the range."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from kiosk.config import Settings, SiteRules
from kiosk.errors import ReportError
from kiosk.reports.model import (
    LeaveDay,
    PersonDay,
    PersonTotals,
    RangeDay,
    leave_day_key,
    person_day_key,
)
from kiosk.reports.person_day import DayClock, person_day, person_day_from_figures
from kiosk.reports.sites import Places, Todays, check_sites, day_window, load_places, place_row
from kiosk.store import (
    Database,
    DayFigures,
    EventMark,
    day_figures,
    iter_event_marks,
    leave_between,
    leave_by_person_day,
    local_day_bounds,
    people_by_id,
)
from kiosk.vocabulary import LeaveKind

logger = logging.getLogger(__name__)

MAX_RANGE_DAYS = 1000


def check_range(start: date, end: date) -> None:
    """ReportError when end < start or the range is longer than MAX_RANGE_DAYS."""
    if end < start:
        raise ReportError(f"report range ends ({end}) before it starts ({start})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ReportError(f"report range longer than {MAX_RANGE_DAYS} days; split it")


def check_range_request(db: Database, settings: Settings, start: date, end: date,
                        sites: Collection[str] | None, strict: bool) -> None:
    """What a streamed range report checks before its first chunk: the range (check_range) and,
    when strict, that the sites have doors (check_sites); ReportError otherwise."""
    check_range(start, end)
    if strict:
        check_sites(db, settings, sites)


def finished_work_days(settings: Settings, start: date, end: date, today: date,
                       rules: SiteRules | None = None) -> list[date]:
    """Local dates start..end inclusive that are work days (work_days, not holidays) and before
    today, by rules (default: site:'s)."""
    rules = rules or settings.rules_of(None)
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if d < today and rules.is_work_day(d)]


@dataclass
class PersonTally:
    """One person's running totals over a range: days (counts) and minutes."""

    days_present: int = 0
    present_minutes: int = 0
    times_late: int = 0
    minutes_late: int = 0
    days_absent: int = 0
    days_on_leave: int = 0
    days_no_checkout: int = 0

    def add_day(self, row: PersonDay) -> None:
        """Count one person-day with events."""
        self.days_present += 1
        self.present_minutes += row.present_minutes
        self.times_late += int(row.late)
        self.minutes_late += row.minutes_late
        self.days_no_checkout += int(row.no_checkout)


def json_site_keys(by_site: bool, sites: list[str] | None, zones: dict[str, str]) -> dict[str, Any]:
    """A JSON report's keys about sites: "sites" on a central (the filter; None: every site) and
    "timezones" (site -> zone) when the sites are in several zones; nothing elsewhere."""
    return ({"sites": sites} if by_site else {}) | ({"timezones": zones} if zones else {})


class RangeScan:
    """One pass over a range, day by day, inside one snapshot (store.day_figures per day in
    first_last mode, store.iter_event_marks of the day in toggle mode).

    days() yields a RangeDay per local day start..end and keeps a PersonTally per person; totals()
    after the pass. Memory: one day's events plus one tally per person, whatever the range.
    sites (a central's): only rows of those sites, and the absences, leave and totals of people
    whose home site is one of them (reports.sites); strict: a site no door has is a ReportError.
    today: a date (the same in every zone), or an aware instant (default now: each zone's date).
    On a central the site rules apply (reports.sites): events on their own zone's dates, each day
    by its site's rules, expected days by the home site's.
    """

    def __init__(self, snapshot: Database, settings: Settings, start: date, end: date,
                 today: date | datetime | None = None, person_id: int | None = None,
                 sites: Collection[str] | None = None, *, strict: bool = True) -> None:
        check_range(start, end)
        self.db, self.settings, self.start, self.end = snapshot, settings, start, end
        self.person_id = person_id
        self.places: Places = load_places(snapshot, settings, sites, local_day_bounds(end, settings.tz)[1],
                                          strict=strict, last_day=end)
        places = self.places
        self.people = people_by_id(snapshot)  # everyone, erased too: a small table
        self.todays = Todays(today)
        self.today = self.todays.of(places.default)
        leave_records = [x for x in leave_between(snapshot, start, end, person_id=person_id)
                         if places.shows_person(x.person_id)]
        self._leave = leave_by_person_day(leave_records)
        self._leave_by_day: dict[date, list[tuple[int, LeaveKind]]] = defaultdict(list)
        for (pid, d), kind in self._leave.items():
            if start <= d <= end and places.home_rules(pid).is_work_day(d):
                self._leave_by_day[d].append((pid, LeaveKind(kind)))
        # Expected at work: active people enrolled by the end (absences count from enrolment),
        # grouped by their home site's rules (work days, holidays, zone)
        self._expected: dict[SiteRules, list[tuple[int, date]]] = defaultdict(list)
        for p in self.people.values():
            if not (p.active and p.erased_at is None and person_id in (None, p.id) and places.shows_person(p.id)):
                continue
            rules = places.home_rules(p.id)
            enrolled = p.created_at.astimezone(rules.tz).date()
            if enrolled <= end:
                self._expected[rules].append((p.id, enrolled))
        self._listed = {pid for group in self._expected.values() for pid, _ in group} | \
            {x.person_id for x in leave_records}
        self._finished = {rules: set(finished_work_days(settings, start, end, self.todays.of(rules), rules))
                          for rules in self._expected}
        self._tallies: dict[int, PersonTally] = defaultdict(PersonTally)
        self.unknown_faces = 0
        self.person_days = 0  # rows with events seen so far
        self.absences: list[date] = []  # the person's absent days, for a one-person scan only
        self._came: set[int] = set()  # people with events on the day read last, at any site

    def days(self) -> Iterator[RangeDay]:
        """RangeDay per local day, start..end: one query per day (aggregated in SQL in first_last
        mode; the day's events in time order in toggle mode), so memory holds one day."""
        day = self.start
        while day <= self.end:
            yield self._close_day(day, *self._read_day(day))
            day += timedelta(days=1)

    def _read_day(self, day: date) -> tuple[list[PersonDay], int]:
        """The day's person-days (unsorted) and its unknown faces."""
        places = self.places
        if places.by_site:
            return self._read_site_day(day)
        utc_from, utc_to = local_day_bounds(day, self.settings.tz)
        if self.settings.attendance.mode == "first_last":
            figures = day_figures(self.db, utc_from, utc_to, person_id=self.person_id)
            clock = DayClock.at(day, places.default)
            rows = [person_day_from_figures(self.people[f.person_id], day, f, clock, self.today)
                    for f in figures if f.person_id is not None]
            return rows, sum(f.events for f in figures if f.person_id is None)
        by_person: dict[int, list[EventMark]] = defaultdict(list)
        unknown = 0
        for mark in iter_event_marks(self.db, utc_from, utc_to, person_id=self.person_id):
            if mark.person_id is None:
                unknown += 1
            else:
                by_person[mark.person_id].append(mark)
        rows = [person_day(self.people[pid], day, evs, self.settings, False, self.today)
                for pid, evs in by_person.items()]
        return rows, unknown

    def _read_site_day(self, day: date) -> tuple[list[PersonDay], int]:
        """_read_day on a central: events on their own zone's date, each day by its site's rules."""
        places = self.places
        w = day_window(day, places)
        if self.settings.attendance.mode == "first_last":
            keep = None
            if places.zoned:
                def keep(pid: int | None, device: str, manual: bool, at: datetime) -> bool:
                    return w.holds(places.device_rules(device, manual, pid), at)
            figures = day_figures(self.db, w.utc_from, w.utc_to, person_id=self.person_id,
                                  doors=places.door_ids, cuts=w.cuts, keep=keep)
            clocks: dict[SiteRules, DayClock] = {}
            rows = []
            for f in figures:
                if f.person_id is None:
                    continue
                site = places.site_of_device(f.site_device)
                rules = places.day_rules(site, f.person_id)
                clock = clocks.get(rules) or clocks.setdefault(rules, DayClock.at(day, rules))
                today = self.todays.of(places.home_rules(f.person_id))
                rows.append(self._placed(person_day_from_figures(self.people[f.person_id], day, f, clock, today), f))
            unknown = sum(f.events for f in figures
                          if f.person_id is None and places.shows(places.site_of_device(f.site_device)))
            return self._shown(rows), unknown
        by_person: dict[int, list[EventMark]] = defaultdict(list)
        unknown = 0
        for mark in iter_event_marks(self.db, w.utc_from, w.utc_to, person_id=self.person_id):
            if not w.holds(places.device_rules(mark.device_id, mark.manual, mark.person_id), mark.occurred_at):
                continue  # another local date in its own zone
            if mark.person_id is None:
                unknown += places.shows(places.site_of_device(None if mark.manual else mark.device_id))
            else:
                by_person[mark.person_id].append(mark)
        rows = []
        for pid, evs in by_person.items():
            rules = places.day_rules(places.day_site(evs), pid)
            today = self.todays.of(places.home_rules(pid))
            rows.append(place_row(person_day(self.people[pid], day, evs, self.settings, False, today, rules),
                                  evs, places))
        return self._shown(rows), unknown

    def _shown(self, rows: list[PersonDay]) -> list[PersonDay]:
        """The rows of the filter's sites; everyone who came (at any site) is kept in self._came."""
        self._came = {r.person_id for r in rows}
        return [r for r in rows if self.places.shows(r.site)]

    def _placed(self, row: PersonDay, f: DayFigures) -> PersonDay:
        """row with the site and doors of its figures (grouped by device on a central)."""
        row.site = self.places.site_of_device(f.site_device)
        row.door_in = self.places.door_name(f.first_in_device) if row.first_in else None
        row.door_out = self.places.door_name(f.latest_out_device) if row.last_out else None
        return row

    def _close_day(self, day: date, rows: list[PersonDay], unknown: int) -> RangeDay:
        rows.sort(key=person_day_key)
        came = self._came if self.places.only is not None else {r.person_id for r in rows}
        for r in rows:
            self._tallies[r.person_id].add_day(r)
        leave = sorted((LeaveDay(day, self.people[pid], kind) for pid, kind in self._leave_by_day.get(day, [])
                        if pid not in came), key=leave_day_key)
        for x in leave:
            self._tallies[x.person.id].days_on_leave += 1
        for rules, expected in self._expected.items():
            if day not in self._finished[rules]:
                continue
            for pid, enrolled in expected:
                if enrolled <= day and pid not in came and (pid, day) not in self._leave:
                    self._tallies[pid].days_absent += 1
                    if self.person_id is not None:
                        self.absences.append(day)
        self.unknown_faces += unknown
        self.person_days += len(rows)
        return RangeDay(day, rows, leave, unknown)
    def site_fields(self) -> dict[str, Any]:
        """The report fields about sites (Places.report_fields)."""
        return self.places.report_fields()

    def site_fields_json(self) -> dict[str, Any]:
        """The JSON report's "sites" key on a central (the filter; None: every site), and "timezones"
        (site -> zone) when its sites are in several zones; {} elsewhere."""
        fields = self.site_fields()
        return json_site_keys(fields["by_site"], fields["sites"], fields["zones"])

    def totals(self) -> list[PersonTotals]:
        """Per person totals (call after days() is exhausted): everyone expected, with events or
        with leave in the range, by name; days_absent None for people no longer active."""
        out = []
        for pid in self._listed | set(self._tallies):
            p, t = self.people[pid], self._tallies.get(pid, PersonTally())
            absent = None if (not p.active or p.erased_at is not None) else t.days_absent
            out.append(PersonTotals(p.id, p.employee_id, p.name, t.days_present, t.present_minutes,
                                    t.times_late, t.minutes_late, absent, t.days_on_leave,
                                    t.days_no_checkout))
        return sorted(out, key=lambda t: (t.name.casefold(), t.employee_id))
