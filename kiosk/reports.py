"""Attendance reports from the store: daily and date-range figures, rendered as text table,
CSV, JSON or a standalone HTML page. All times are shown in the site's time zone.

Time present per person and day:
  first_last  last "out" minus first "in" (breaks are not subtracted; the kiosk sees only
              the ends of the day).
  toggle      the sum of in->out pairs; an "in" without a later "out" adds nothing and
              marks the day "open" (forgotten check-out), as does first_last without an out.
No check-out: a day already over (before today, local) with a check-in and no check-out after
it: a forgotten check-out. Its hours are not known (0.00); it is listed as an exception to fix
(the CSV's no_checkout column, the boards, the range page), not as someone still in.
Lateness: first "in" after workday_start + grace; minutes late count from workday_start.
Absence: a work day (site.work_days, not site.holidays) with no event and no recorded leave;
a work day within a person's leave (store.leave) counts as leave, unless they came in.
Expression (only when expression.enabled): per person only for people who currently consent;
the team distribution counts labelled events of consenting people and is hidden when fewer
than web.min_group_size people contribute (the report says so instead).
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.attendance import lateness
from kiosk.config import Settings
from kiosk.errors import ReportError
from kiosk.store import (
    Database,
    DayFigures,
    EventInfo,
    EventMark,
    PersonInfo,
    day_figures,
    events_between,
    iter_event_marks,
    leave_between,
    leave_by_person_day,
    list_people,
    local_day_bounds,
    people_by_id,
    read_snapshot,
)

logger = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json", "html")
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
MAX_RANGE_DAYS = 1000


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A CSV cell that spreadsheets will not run as a formula ('=cmd' -> "'=cmd")."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class PersonDay:
    """One person's figures for one local day; times are aware, in the site zone."""

    person_id: int
    employee_id: str
    name: str
    day: date
    first_in: datetime | None
    last_out: datetime | None
    present_minutes: int
    open: bool
    late: bool
    minutes_late: int
    events: int
    expression: dict[str, int] | None = None
    corrected: bool = False  # an event of the day was entered by hand (store.corrections)
    no_checkout: bool = False  # a check-in without check-out on a day already over (forgotten)

    @property
    def hours(self) -> float:
        """Time present in decimal hours, 2 places."""
        return round(self.present_minutes / 60.0, 2)

    @property
    def status(self) -> str:
        """"open" when a check-in has no check-out (or a check-out no check-in), else "present"."""
        return "open" if self.open else "present"

    @property
    def label(self) -> str:
        """The status as pages show it: "no check-out" for a forgotten check-out, else status."""
        return "no check-out" if self.no_checkout else self.status


def _no_checkout(open_: bool, first_in: datetime | None, day: date, today: date | None) -> bool:
    """A check-in left without check-out on a day before today: a forgotten check-out."""
    return open_ and first_in is not None and today is not None and day < today


@dataclass(frozen=True)
class TeamExpression:
    """Team expression counts; counts None (and hidden_reason set) below the minimum group."""

    contributors: int
    min_group_size: int
    counts: dict[str, int] | None
    hidden_reason: str | None

    @property
    def shares(self) -> dict[str, float] | None:
        """counts as fractions of all labelled events (None when hidden)."""
        if not self.counts:
            return None
        total = sum(self.counts.values())
        return {k: v / total for k, v in self.counts.items()}


@dataclass(frozen=True)
class LeaveDay:
    """A work day a person spent on recorded leave (and did not come in)."""

    day: date
    person: PersonInfo
    kind: str  # store.LEAVE_KINDS: holiday, sick, other


@dataclass(frozen=True)
class DailyReport:
    """Everything about one local day at the site; nobody is absent on a day that is no work day."""

    site: str
    day: date
    timezone: str
    mode: str
    rows: list[PersonDay]
    absent: list[PersonInfo]
    unknown_faces: int
    team_expression: TeamExpression | None
    work_day: bool = True
    on_leave: list[LeaveDay] = field(default_factory=list)


@dataclass(frozen=True)
class PersonTotals:
    """One person's totals over a range."""

    person_id: int
    employee_id: str
    name: str
    days_present: int
    present_minutes: int
    times_late: int
    minutes_late: int
    # Finished work days in the range (from the enrolment day on) with no event and no leave;
    # None for people no longer active (the store does not know since when).
    days_absent: int | None = None
    # Work days in the range on recorded leave without an event (planned leave ahead counts too).
    days_on_leave: int = 0
    # Days present with a check-in and no check-out, already over (forgotten check-outs).
    days_no_checkout: int = 0

    @property
    def hours(self) -> float:
        """Time present in decimal hours, 2 places."""
        return round(self.present_minutes / 60.0, 2)


@dataclass(frozen=True)
class RangeReport:
    """Per person per day rows (days with events only) and per person totals; end inclusive."""

    site: str
    start: date
    end: date
    timezone: str
    mode: str
    rows: list[PersonDay]
    totals: list[PersonTotals]
    unknown_faces: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    leave: list[LeaveDay] = field(default_factory=list)  # by day, then name
    # The person's absent work days (finished, no event, no leave) when the report is for one
    # person (range_report(person_id=...)); empty otherwise.
    absences: list[date] = field(default_factory=list)


# --- computing ------------------------------------------------------------------------------


def _person_day(
    person: PersonInfo, day: date, events: Sequence[EventInfo | EventMark], settings: Settings,
    with_expr: bool, today: date | None = None,
) -> PersonDay:
    tz = settings.tz
    ins = [e.occurred_at for e in events if e.kind == "in"]
    outs = [e.occurred_at for e in events if e.kind == "out"]
    first_in = min(ins) if ins else None
    last_out = max((t for t in outs if first_in is None or t > first_in), default=None)
    seconds = 0.0
    open_ = False
    if settings.attendance.mode == "first_last":
        if first_in is not None and last_out is not None:
            seconds = (last_out - first_in).total_seconds()
        open_ = first_in is not None and last_out is None
    else:
        opened: datetime | None = None
        for e in events:
            if e.kind == "in" and opened is None:
                opened = e.occurred_at
            elif e.kind == "out" and opened is not None:
                seconds += (e.occurred_at - opened).total_seconds()
                opened = None
        open_ = opened is not None
    if outs and not ins:  # a check-out with no check-in (one removed, or never recorded): incomplete too
        open_ = True
    late, minutes_late = (False, 0)
    if first_in is not None:
        late, minutes_late = lateness(
            first_in, tz, settings.site.workday_start, settings.site.late_grace_minutes
        )
    expression = None
    if with_expr and person.expression_consent:
        expression = dict(Counter(e.expression_label for e in events if e.expression_label))
    return PersonDay(
        person_id=person.id,
        employee_id=person.employee_id,
        name=person.name,
        day=day,
        first_in=first_in.astimezone(tz) if first_in else None,
        last_out=last_out.astimezone(tz) if last_out else None,
        present_minutes=int(seconds // 60),
        open=open_,
        late=late,
        minutes_late=minutes_late,
        events=len(events),
        expression=expression,
        corrected=any(e.manual for e in events),
        no_checkout=_no_checkout(open_, first_in, day, today),
    )


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


def _sort_key(row: PersonDay) -> tuple[date, str, str]:
    return (row.day, row.name.casefold(), row.employee_id)


def daily_report(db: Database, settings: Settings, day: date, today: date | None = None) -> DailyReport:
    """Attendance, lateness, absences, unknown faces and expressions for one local day, all read
    from one snapshot of the database (store.read_snapshot); today (default: the local date now)
    tells a forgotten check-out (no_checkout) from someone still in."""
    with read_snapshot(db) as snapshot:
        return _daily_report(snapshot, settings, day, today or datetime.now(settings.tz).date())


def _daily_report(db: Database, settings: Settings, day: date, today: date) -> DailyReport:
    tz = settings.tz
    start, end = local_day_bounds(day, tz)
    events = events_between(db, start, end)
    by_key, unknown = _group(events, tz)
    people = people_by_id(db, {pid for pid, _ in by_key})
    with_expr = settings.expression.enabled
    rows = sorted(
        (_person_day(people[pid], d, evs, settings, with_expr, today) for (pid, d), evs in by_key.items()),
        key=_sort_key,
    )
    present = {pid for pid, _ in by_key}
    work_day = settings.site.is_work_day(day)
    leave = leave_by_person_day(leave_between(db, day, day)) if work_day else {}
    expected = [p for p in list_people(db, include_inactive=False)
                if work_day and p.id not in present and p.created_at < end]
    on_leave = [LeaveDay(day, p, leave[(p.id, day)]) for p in expected if (p.id, day) in leave]
    absent = [p for p in expected if (p.id, day) not in leave]
    team = None
    if with_expr:
        counts: Counter[str] = Counter()
        contributors = set()
        for e in events:
            if e.person_id is None or not e.expression_label:
                continue
            if not people[e.person_id].expression_consent:
                continue
            counts[e.expression_label] += 1
            contributors.add(e.person_id)
        k = settings.web.min_group_size
        if len(contributors) < k:
            reason = (
                f"hidden: {len(contributors)} people contributed expression data, "
                f"fewer than the minimum group size {k}"
            )
            team = TeamExpression(len(contributors), k, None, reason)
        else:
            team = TeamExpression(len(contributors), k, dict(counts.most_common()), None)
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
    )


def finished_work_days(settings: Settings, start: date, end: date, today: date) -> list[date]:
    """Local dates start..end inclusive that are work days (site.work_days, not holidays) and before today."""
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if d < today and settings.site.is_work_day(d)]


def _check_range(start: date, end: date) -> None:
    """ReportError when end < start or the range is longer than MAX_RANGE_DAYS."""
    if end < start:
        raise ReportError(f"report range ends ({end}) before it starts ({start})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ReportError(f"report range longer than {MAX_RANGE_DAYS} days; split it")


@dataclass
class _Tally:
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


@dataclass(frozen=True)
class RangeDay:
    """One local day of a range: its person-days (by name), work-day leave of people who did not
    come (by name) and the unknown faces seen."""

    day: date
    rows: list[PersonDay]
    leave: list[LeaveDay]
    unknown_faces: int


def _leave_key(x: LeaveDay) -> tuple[date, str, str]:
    return (x.day, x.person.name.casefold(), x.person.employee_id)


@dataclass(frozen=True)
class _DayClock:
    """One local day's reference instants: the site zone and workday_start + grace (aware)."""

    tz: ZoneInfo
    start: datetime  # workday_start on the day, local
    grace: timedelta

    @classmethod
    def of(cls, day: date, settings: Settings) -> _DayClock:
        tz = settings.tz
        return cls(tz, datetime.combine(day, settings.site.workday_start, tzinfo=tz),
                   timedelta(minutes=settings.site.late_grace_minutes))

    def lateness(self, first_in: datetime) -> tuple[bool, int]:
        """(late?, whole minutes after workday_start) of a first "in" in the site zone, as
        attendance.lateness() reads it (wall-clock minutes, the same on DST days)."""
        late = first_in > self.start + self.grace
        return late, int((first_in - self.start).total_seconds() // 60) if late else 0


def _person_day_from_figures(person: PersonInfo, day: date, f: DayFigures, clock: _DayClock,
                             today: date) -> PersonDay:
    """A first_last PersonDay from SQL-aggregated figures (same reading as _person_day)."""
    first_in = f.first_in.astimezone(clock.tz) if f.first_in is not None else None
    last_out = None
    if f.latest_out is not None and (first_in is None or f.latest_out > first_in):
        last_out = f.latest_out.astimezone(clock.tz)
    minutes = int((last_out - first_in).total_seconds() // 60) if first_in and last_out else 0
    late, minutes_late = clock.lateness(first_in) if first_in is not None else (False, 0)
    open_ = (first_in is not None and last_out is None) or (f.outs > 0 and first_in is None)
    return PersonDay(
        person_id=person.id, employee_id=person.employee_id, name=person.name, day=day,
        first_in=first_in, last_out=last_out, present_minutes=minutes,
        open=open_, late=late, minutes_late=minutes_late, events=f.events, corrected=f.manual,
        no_checkout=_no_checkout(open_, first_in, day, today),
    )


class RangeScan:
    """One pass over a range, day by day, inside one snapshot (store.day_figures per day in
    first_last mode, store.iter_event_marks of the day in toggle mode).

    days() yields a RangeDay per local day start..end and keeps a _Tally per person; totals()
    after the pass. Memory: one day's events plus one tally per person, whatever the range.
    """

    def __init__(self, snapshot: Database, settings: Settings, start: date, end: date,
                 today: date | None = None, person_id: int | None = None) -> None:
        _check_range(start, end)
        self.db, self.settings, self.start, self.end = snapshot, settings, start, end
        self.person_id = person_id
        tz = settings.tz
        self.people = people_by_id(snapshot)  # everyone, erased too: a small table
        leave_records = leave_between(snapshot, start, end, person_id=person_id)
        self._leave = leave_by_person_day(leave_records)
        self._leave_by_day: dict[date, list[tuple[int, str]]] = defaultdict(list)
        for (pid, d), kind in self._leave.items():
            if start <= d <= end and settings.site.is_work_day(d):
                self._leave_by_day[d].append((pid, kind))
        # Expected at work: active people enrolled by the end (absences count from enrolment)
        self._expected = [
            (p.id, p.created_at.astimezone(tz).date()) for p in self.people.values()
            if p.active and p.erased_at is None and p.created_at.astimezone(tz).date() <= end
            and person_id in (None, p.id)
        ]
        self._listed = {pid for pid, _ in self._expected} | {x.person_id for x in leave_records}
        self.today = today or datetime.now(tz).date()
        self._finished = set(finished_work_days(settings, start, end, self.today))
        self._tallies: dict[int, _Tally] = defaultdict(_Tally)
        self.unknown_faces = 0
        self.person_days = 0  # rows with events seen so far
        self.absences: list[date] = []  # the person's absent days, for a one-person scan only

    def days(self) -> Iterator[RangeDay]:
        """RangeDay per local day, start..end: one query per day (aggregated in SQL in first_last
        mode; the day's events in time order in toggle mode), so memory holds one day."""
        day = self.start
        while day <= self.end:
            yield self._close_day(day, *self._read_day(day))
            day += timedelta(days=1)

    def _read_day(self, day: date) -> tuple[list[PersonDay], int]:
        """The day's person-days (unsorted) and its unknown faces."""
        utc_from, utc_to = local_day_bounds(day, self.settings.tz)
        if self.settings.attendance.mode == "first_last":
            figures = day_figures(self.db, utc_from, utc_to, person_id=self.person_id)
            clock = _DayClock.of(day, self.settings)
            rows = [_person_day_from_figures(self.people[f.person_id], day, f, clock, self.today)
                    for f in figures if f.person_id is not None]
            return rows, sum(f.events for f in figures if f.person_id is None)
        by_person: dict[int, list[EventMark]] = defaultdict(list)
        unknown = 0
        for mark in iter_event_marks(self.db, utc_from, utc_to, person_id=self.person_id):
            if mark.person_id is None:
                unknown += 1
            else:
                by_person[mark.person_id].append(mark)
        rows = [_person_day(self.people[pid], day, evs, self.settings, False, self.today)
                for pid, evs in by_person.items()]
        return rows, unknown

    def _close_day(self, day: date, rows: list[PersonDay], unknown: int) -> RangeDay:
        rows.sort(key=_sort_key)
        came = {r.person_id for r in rows}
        for r in rows:
            self._tallies[r.person_id].add_day(r)
        leave = sorted((LeaveDay(day, self.people[pid], kind) for pid, kind in self._leave_by_day.get(day, [])
                        if pid not in came), key=_leave_key)
        for x in leave:
            self._tallies[x.person.id].days_on_leave += 1
        if day in self._finished:
            for pid, enrolled in self._expected:
                if enrolled <= day and pid not in came and (pid, day) not in self._leave:
                    self._tallies[pid].days_absent += 1
                    if self.person_id is not None:
                        self.absences.append(day)
        self.unknown_faces += unknown
        self.person_days += len(rows)
        return RangeDay(day, rows, leave, unknown)

    def totals(self) -> list[PersonTotals]:
        """Per person totals (call after days() is exhausted): everyone expected, with events or
        with leave in the range, by name; days_absent None for people no longer active."""
        out = []
        for pid in self._listed | set(self._tallies):
            p, t = self.people[pid], self._tallies.get(pid, _Tally())
            absent = None if (not p.active or p.erased_at is not None) else t.days_absent
            out.append(PersonTotals(p.id, p.employee_id, p.name, t.days_present, t.present_minutes,
                                    t.times_late, t.minutes_late, absent, t.days_on_leave,
                                    t.days_no_checkout))
        return sorted(out, key=lambda t: (t.name.casefold(), t.employee_id))


def range_report(db: Database, settings: Settings, start: date, end: date,
                 today: date | None = None, *, person_id: int | None = None) -> RangeReport:
    """Per person per day rows and totals for local days start..end inclusive (no expressions),
    all in memory (for short ranges; range_summary and iter_range_csv for long ones).

    Totals list every active person (absent all range too) and people with events; absences
    count finished work days (before today, local) from the person's enrolment day on.
    person_id: only that person's rows and totals.
    """
    _check_range(start, end)
    with read_snapshot(db) as snapshot:
        scan = RangeScan(snapshot, settings, start, end, today, person_id)
        rows: list[PersonDay] = []
        leave: list[LeaveDay] = []
        for rd in scan.days():
            rows += rd.rows
            leave += rd.leave
        return RangeReport(
            site=settings.site.name, start=start, end=end, timezone=settings.site.timezone,
            mode=settings.attendance.mode, rows=rows, totals=scan.totals(),
            unknown_faces=scan.unknown_faces, leave=leave, absences=scan.absences,
        )


DAY_ROWS_SHOWN = 500  # person-day rows a range page shows; the CSV has them all
WEEKS_CHARTED = 8  # the range page charts hours per person for the last weeks of the range


@dataclass(frozen=True)
class RangeSummary:
    """A range for a page: totals, the first rows (at most max_rows; person_days counts them all),
    leave (at most max_rows), minutes per person name per week for the last weeks (week start ->
    name -> minutes)."""

    report: RangeReport
    person_days: int
    leave_days: int
    week_minutes: dict[date, Counter[str]]
    no_checkout: list[PersonDay] = field(default_factory=list)  # at most max_rows, by day
    no_checkout_days: int = 0  # all of them

    @property
    def rows_cut(self) -> bool:
        """True when the page shows only some of the person-days."""
        return self.person_days > len(self.report.rows)


def range_summary(db: Database, settings: Settings, start: date, end: date,
                  today: date | None = None, *, max_rows: int = DAY_ROWS_SHOWN,
                  weeks: int = WEEKS_CHARTED) -> RangeSummary:
    """Totals and at most max_rows person-days of start..end from one streamed pass (memory does
    not grow with the range), with minutes per person per week for the last `weeks` weeks."""
    _check_range(start, end)
    last_monday = end - timedelta(days=end.weekday())
    first_charted = max(start, last_monday - timedelta(weeks=weeks - 1))
    week_minutes: dict[date, Counter[str]] = {}
    rows: list[PersonDay] = []
    leave: list[LeaveDay] = []
    leave_days = 0
    forgotten: list[PersonDay] = []
    with read_snapshot(db) as snapshot:
        scan = RangeScan(snapshot, settings, start, end, today)
        for rd in scan.days():
            room = max_rows - len(rows)
            rows += rd.rows[:room]
            leave += rd.leave[:max(0, max_rows - len(leave))]
            leave_days += len(rd.leave)
            forgotten += [r for r in rd.rows if r.no_checkout][:max(0, max_rows - len(forgotten))]
            if rd.day >= first_charted:
                week = week_minutes.setdefault(max(start, rd.day - timedelta(days=rd.day.weekday())),
                                               Counter())
                for r in rd.rows:
                    week[r.name] += r.present_minutes
        report = RangeReport(
            site=settings.site.name, start=start, end=end, timezone=settings.site.timezone,
            mode=settings.attendance.mode, rows=rows, totals=scan.totals(),
            unknown_faces=scan.unknown_faces, leave=leave,
        )
        no_checkout_days = sum(t.days_no_checkout for t in report.totals)
        return RangeSummary(report, scan.person_days, leave_days, week_minutes, forgotten,
                            no_checkout_days)


def range_day_csv_rows(rd: RangeDay) -> list[list[str]]:
    """One day's payroll CSV cells: its person-days and leave, by name and employee id."""
    keyed = [((r.name.casefold(), r.employee_id), day_csv_cells(r)) for r in rd.rows]
    keyed += [((x.person.name.casefold(), x.person.employee_id), leave_csv_cells(x)) for x in rd.leave]
    return [cells for _, cells in sorted(keyed, key=lambda kv: kv[0])]


def iter_range_csv(db: Database, settings: Settings, start: date, end: date,
                   today: date | None = None, *, person_id: int | None = None) -> Iterator[str]:
    """The range's payroll CSV (render_range's csv) as text chunks: the header, then one chunk per
    day, produced while the events stream in. The read snapshot is held until the last chunk (or
    until the iterator is closed). Bad ranges raise ReportError here, before any chunk."""
    _check_range(start, end)

    def chunks() -> Iterator[str]:
        yield _csv_text([CSV_COLUMNS])
        with read_snapshot(db) as snapshot:
            for rd in RangeScan(snapshot, settings, start, end, today, person_id).days():
                lines = range_day_csv_rows(rd)
                if lines:
                    yield _csv_text([_safe_text_cells(cells) for cells in lines])

    return chunks()


_TEXT_CELLS = (CSV_COLUMNS.index("employee_id"), CSV_COLUMNS.index("name"))
"""The CSV cells people type (the rest are dates, times, numbers and fixed words)."""


def _safe_text_cells(cells: list[str]) -> list[str]:
    """cells with safe_cell() applied to the typed ones (employee id, name)."""
    for i in _TEXT_CELLS:
        cells[i] = safe_cell(cells[i])
    return cells


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


# --- rendering ------------------------------------------------------------------------------


def _hm(t: datetime | None) -> str:
    return t.strftime("%H:%M") if t else "-"


def _iso(t: datetime | None) -> str:
    return t.isoformat(timespec="seconds") if t else ""


def day_csv_cells(r: PersonDay) -> list[str]:
    """One person-day as CSV cells in CSV_COLUMNS order."""
    return [r.day.isoformat(), r.employee_id, r.name, _iso(r.first_in), _iso(r.last_out),
            f"{r.hours:.2f}", "yes" if r.late else "no", str(r.minutes_late), r.status,
            "yes" if r.corrected else "no", "", "yes" if r.no_checkout else "no"]


def _no_show_csv_row(day: date, p: PersonInfo, status: str, leave: str = "") -> list[str]:
    """CSV cells of a work day without events: status absent, or leave with its kind."""
    return [day.isoformat(), p.employee_id, p.name, "", "", "0.00", "no", "0", status, "no", leave, "no"]


def leave_csv_cells(x: LeaveDay) -> list[str]:
    """A work day on leave as CSV cells in CSV_COLUMNS order."""
    return _no_show_csv_row(x.day, x.person, "leave", x.kind)


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([[safe_cell(c) for c in r] for r in rows])
    return buf.getvalue()


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _expr_text(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _person_day_json(r: PersonDay) -> dict[str, Any]:
    return {
        "date": r.day.isoformat(), "person_id": r.person_id, "employee_id": r.employee_id,
        "name": r.name, "first_in": _iso(r.first_in) or None, "last_out": _iso(r.last_out) or None,
        "present_minutes": r.present_minutes, "hours": r.hours, "open": r.open, "late": r.late,
        "minutes_late": r.minutes_late, "events": r.events, "expression": r.expression,
        "corrected": r.corrected, "no_checkout": r.no_checkout,
    }


def _leave_json(x: LeaveDay) -> dict[str, Any]:
    return {"date": x.day.isoformat(), "employee_id": x.person.employee_id, "name": x.person.name,
            "kind": x.kind}


def daily_as_dict(report: DailyReport) -> dict[str, Any]:
    """The daily report as JSON-ready data."""
    team = report.team_expression
    return {
        "site": report.site, "date": report.day.isoformat(), "timezone": report.timezone,
        "mode": report.mode,
        "people": [_person_day_json(r) for r in report.rows],
        "work_day": report.work_day,
        "absent": [{"employee_id": p.employee_id, "name": p.name} for p in report.absent],
        "on_leave": [_leave_json(x) for x in report.on_leave],
        "unknown_faces": report.unknown_faces,
        "team_expression": None if team is None else {
            "contributors": team.contributors, "min_group_size": team.min_group_size,
            "counts": team.counts, "shares": team.shares, "hidden_reason": team.hidden_reason,
        },
    }


def range_as_dict(report: RangeReport) -> dict[str, Any]:
    """The range report as JSON-ready data."""
    return {
        "site": report.site, "start": report.start.isoformat(), "end": report.end.isoformat(),
        "timezone": report.timezone, "mode": report.mode,
        "days": [_person_day_json(r) for r in report.rows],
        "totals": [_totals_json(t) for t in report.totals],
        "leave": [_leave_json(x) for x in report.leave],
        "unknown_faces": report.unknown_faces,
    }


def _totals_json(t: PersonTotals) -> dict[str, Any]:
    return {"person_id": t.person_id, "employee_id": t.employee_id, "name": t.name,
            "days_present": t.days_present, "present_minutes": t.present_minutes,
            "hours": t.hours, "times_late": t.times_late, "minutes_late": t.minutes_late,
            "days_absent": t.days_absent, "days_on_leave": t.days_on_leave,
            "days_no_checkout": t.days_no_checkout}


_DAY_HEADERS = ["Employee", "Name", "In", "Out", "Hours", "Late", "Status"]
TOTALS_HEADERS = ["Employee", "Name", "Days", "Hours", "Times late", "Minutes late", "Days absent",
                  "Days on leave", "No check-out"]
TOTALS_CSV_COLUMNS = ["employee_id", "name", "days_present", "hours", "times_late", "minutes_late",
                      "days_absent", "days_on_leave", "days_no_checkout"]


def totals_cells(t: PersonTotals) -> list[str]:
    """One totals row as text, in TOTALS_HEADERS / TOTALS_CSV_COLUMNS order ("" = not known)."""
    absent = "" if t.days_absent is None else str(t.days_absent)
    return [t.employee_id, t.name, str(t.days_present), f"{t.hours:.2f}", str(t.times_late),
            str(t.minutes_late), absent, str(t.days_on_leave), str(t.days_no_checkout)]


def _day_cells(r: PersonDay, with_date: bool = False) -> list[str]:
    late = f"{r.minutes_late} min" if r.late else "no"
    cells = [r.employee_id, r.name, _hm(r.first_in), _hm(r.last_out), f"{r.hours:.2f}", late,
             r.label + (" (corrected)" if r.corrected else "")]
    return ([r.day.isoformat()] if with_date else []) + cells


def _team_text(team: TeamExpression) -> str:
    if team.counts is None:
        return f"Team expression: {team.hidden_reason}"
    return f"Team expression ({team.contributors} people): {_expr_text(team.counts)}"


def _absent_text(report: DailyReport) -> str:
    if not report.work_day:
        return "none (not a work day)"
    return ", ".join(f"{p.name} ({p.employee_id})" for p in report.absent) or "none"


def _leave_text(x: LeaveDay) -> str:
    return f"{x.person.name} ({x.person.employee_id}, {x.kind})"


def _daily_table(report: DailyReport) -> str:
    with_expr = report.team_expression is not None
    headers = _DAY_HEADERS + (["Expression"] if with_expr else [])
    rows = [_day_cells(r) + ([_expr_text(r.expression)] if with_expr else []) for r in report.rows]
    parts = [
        f"{report.site} - attendance on {report.day.isoformat()} "
        f"({report.timezone}, {report.mode})",
        "",
        _table(headers, rows) if rows else "No one checked in.",
        "",
        "Absent: " + _absent_text(report),
        "On leave: " + (", ".join(_leave_text(x) for x in report.on_leave) or "none"),
        f"Unknown faces: {report.unknown_faces}",
    ]
    if report.team_expression is not None:
        parts.append(_team_text(report.team_expression))
    return "\n".join(parts) + "\n"


def _range_table(report: RangeReport) -> str:
    days = _table(["Date", *_DAY_HEADERS], [_day_cells(r, True) for r in report.rows])
    totals = _table(TOTALS_HEADERS, [totals_cells(t) for t in report.totals])
    leave = ""
    if report.leave:
        leave = "\nOn leave\n" + _table(["Date", "Employee", "Name", "Leave"], _leave_cells(report.leave)) + "\n"
    return (
        f"{report.site} - attendance {report.start.isoformat()} to {report.end.isoformat()} "
        f"({report.timezone}, {report.mode})\n\n{days}\n\nTotals\n{totals}\n{leave}"
        f"\nUnknown faces: {report.unknown_faces}\n"
    )


def _leave_cells(leave: list[LeaveDay]) -> list[list[str]]:
    return [[x.day.isoformat(), x.person.employee_id, x.person.name, x.kind] for x in leave]


_HTML_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
th,td{{border:1px solid #bbb;padding:.25em .6em;text-align:left}}th{{background:#eee}}
.late{{color:#a00}}</style></head><body>
<h1>{title}</h1>
"""


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>\n" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def _daily_html(report: DailyReport) -> str:
    e = html.escape
    title = f"{report.site} - attendance on {report.day.isoformat()}"
    with_expr = report.team_expression is not None
    headers = _DAY_HEADERS + (["Expression"] if with_expr else [])
    rows = [_day_cells(r) + ([_expr_text(r.expression)] if with_expr else []) for r in report.rows]
    out = [_HTML_HEAD.format(title=e(title)),
           f"<p>Times in {e(report.timezone)}; mode {e(report.mode)}.</p>\n",
           _html_table(headers, rows) if rows else "<p>No one checked in.</p>\n",
           "<h2>Absent</h2>\n<ul>\n"
           + "".join(f"<li>{e(p.name)} ({e(p.employee_id)})</li>\n" for p in report.absent)
           + ("" if report.work_day else "<li>none: not a work day</li>\n")
           + "</ul>\n<h2>On leave</h2>\n<ul>\n"
           + "".join(f"<li>{e(_leave_text(x))}</li>\n" for x in report.on_leave)
           + "</ul>\n",
           f"<p>Unknown faces: {report.unknown_faces}</p>\n"]
    if report.team_expression is not None:
        out.append(f"<p>{e(_team_text(report.team_expression))}</p>\n")
    out.append("</body></html>\n")
    return "".join(out)


def _range_html(report: RangeReport, summary: RangeSummary | None = None) -> str:
    """The range as a standalone page; with a summary, its rows are the first of summary.person_days
    (a note says so) and the days with no check-out have their own table."""
    e = html.escape
    title = f"{report.site} - attendance {report.start.isoformat()} to {report.end.isoformat()}"
    days_note = leave_note = no_checkout = ""
    if summary is not None:
        if summary.rows_cut:
            days_note = (f"<p>Showing the first {len(report.rows)} of {summary.person_days} person-days; "
                         "the CSV (--format csv) has them all.</p>\n")
        if summary.leave_days > len(report.leave):
            leave_note = f"<p>Showing the first {len(report.leave)} of {summary.leave_days} days on leave.</p>\n"
        no_checkout = (f"<h2>No check-out</h2>\n<p>{summary.no_checkout_days} day(s) over with a check-in "
                       "and no check-out (hours not known).</p>\n"
                       + _html_table(["Date", *_DAY_HEADERS], [_day_cells(r, True) for r in summary.no_checkout]))
    return "".join([
        _HTML_HEAD.format(title=e(title)),
        f"<p>Times in {e(report.timezone)}; mode {e(report.mode)}.</p>\n<h2>Totals</h2>\n",
        _html_table(TOTALS_HEADERS, [totals_cells(t) for t in report.totals]),
        no_checkout,
        "<h2>Days</h2>\n", days_note,
        _html_table(["Date", *_DAY_HEADERS], [_day_cells(r, True) for r in report.rows]),
        "<h2>On leave</h2>\n", leave_note,
        _html_table(["Date", "Employee", "Name", "Leave"], _leave_cells(report.leave)),
        f"<p>Unknown faces: {report.unknown_faces}</p>\n</body></html>\n",
    ])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")


def render_daily(report: DailyReport, fmt: str = "table") -> str:
    """The daily report as text: table, csv (CSV_COLUMNS, absent people included), json or html."""
    _check_format(fmt)
    if fmt == "csv":
        return _csv([day_csv_cells(r) for r in report.rows]
                    + [_no_show_csv_row(report.day, p, "absent") for p in report.absent]
                    + [leave_csv_cells(x) for x in report.on_leave])
    if fmt == "json":
        return json.dumps(daily_as_dict(report), indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return _daily_html(report)
    return _daily_table(report)


def range_csv_rows(report: RangeReport, person_id: int | None = None) -> list[list[str]]:
    """The range's payroll CSV cells (everyone's, or one person's): days with events and work days
    on leave, by day, name and employee id."""
    keyed = [((r.day, r.name.casefold(), r.employee_id), day_csv_cells(r)) for r in report.rows
             if person_id in (None, r.person_id)]
    keyed += [((x.day, x.person.name.casefold(), x.person.employee_id), leave_csv_cells(x)) for x in report.leave
              if person_id in (None, x.person.id)]
    return [cells for _, cells in sorted(keyed, key=lambda kv: kv[0])]


def render_range(report: RangeReport, fmt: str = "table") -> str:
    """The range report as text: table, csv (payroll: CSV_COLUMNS per person-day: days with events
    and work days on leave), json or html."""
    _check_format(fmt)
    if fmt == "csv":
        return _csv(range_csv_rows(report))
    if fmt == "json":
        return json.dumps(range_as_dict(report), indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return _range_html(report)
    return _range_table(report)


# --- long ranges, written as they are read ---------------------------------------------------


def iter_range(db: Database, settings: Settings, start: date, end: date, fmt: str = "table",
               today: date | None = None) -> Iterator[str]:
    """render_range's text in chunks with memory bounded whatever the range: csv, json and table
    are written day by day from one snapshot; html is range_summary's page (all totals, the first
    DAY_ROWS_SHOWN person-days and a note). ReportError here for a bad format or range."""
    _check_format(fmt)
    if fmt == "csv":
        return iter_range_csv(db, settings, start, end, today)
    if fmt == "json":
        return _iter_range_json(db, settings, start, end, today)
    if fmt == "table":
        return _iter_range_table(db, settings, start, end, today)
    summary = range_summary(db, settings, start, end, today)
    return iter([_range_html(summary.report, summary)])


def _iter_range_json(db: Database, settings: Settings, start: date, end: date,
                     today: date | None) -> Iterator[str]:
    """range_as_dict's JSON, the days written as they are read (same keys, same order)."""
    _check_range(start, end)
    head = {"site": settings.site.name, "start": start.isoformat(), "end": end.isoformat(),
            "timezone": settings.site.timezone, "mode": settings.attendance.mode}

    def chunks() -> Iterator[str]:
        yield json.dumps(head, indent=2, ensure_ascii=False)[:-2] + ',\n  "days": ['
        sep = "\n    "
        leave: list[LeaveDay] = []
        with read_snapshot(db) as snapshot:
            scan = RangeScan(snapshot, settings, start, end, today)
            for rd in scan.days():
                leave += rd.leave
                if rd.rows:
                    yield sep + ",\n    ".join(json.dumps(_person_day_json(r), ensure_ascii=False)
                                               for r in rd.rows)
                    sep = ",\n    "
            tail = {"totals": [_totals_json(t) for t in scan.totals()],
                    "leave": [_leave_json(x) for x in leave], "unknown_faces": scan.unknown_faces}
        yield "\n  ],\n" + json.dumps(tail, indent=2, ensure_ascii=False)[2:] + "\n"

    return chunks()


_LONGEST_LATE = "1439 min"
_LONGEST_STATUS = "no check-out (corrected)"


def _day_widths(people: Iterable[PersonInfo]) -> list[int]:
    """Column widths of the range table's days (Date + _DAY_HEADERS) that fit any row, known
    before the rows are read: the longest employee id and name of the people that may appear."""
    people = list(people)
    longest = [10, max((len(p.employee_id) for p in people), default=0),
               max((len(p.name) for p in people), default=0), 5, 5, 5, len(_LONGEST_LATE),
               len(_LONGEST_STATUS)]
    return [max(len(h), n) for h, n in zip(["Date", *_DAY_HEADERS], longest, strict=True)]


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _iter_range_table(db: Database, settings: Settings, start: date, end: date,
                      today: date | None) -> Iterator[str]:
    """_range_table's text, the days written as they are read (widths fixed up front)."""
    _check_range(start, end)

    def chunks() -> Iterator[str]:
        leave: list[LeaveDay] = []
        with read_snapshot(db) as snapshot:
            scan = RangeScan(snapshot, settings, start, end, today)
            widths = _day_widths(scan.people.values())
            yield (f"{settings.site.name} - attendance {start.isoformat()} to {end.isoformat()} "
                   f"({settings.site.timezone}, {settings.attendance.mode})\n\n"
                   + _line(["Date", *_DAY_HEADERS], widths) + "\n"
                   + "  ".join("-" * w for w in widths) + "\n")
            for rd in scan.days():
                leave += rd.leave
                if rd.rows:
                    yield "".join(_line(_day_cells(r, True), widths) + "\n" for r in rd.rows)
            totals, unknown = scan.totals(), scan.unknown_faces
        text = "\nTotals\n" + _table(TOTALS_HEADERS, [totals_cells(t) for t in totals]) + "\n"
        if leave:
            text += "\nOn leave\n" + _table(["Date", "Employee", "Name", "Leave"], _leave_cells(leave)) + "\n"
        yield text + f"\nUnknown faces: {unknown}\n"

    return chunks()


FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
"""The days parse_day accepts: dates near date.min/max overflow in time zone arithmetic."""


def parse_day(text: str, settings: Settings, now: datetime | None = None) -> date:
    """"today", "yesterday" or YYYY-MM-DD (FIRST_DAY..LAST_DAY) -> a local date (ReportError otherwise)."""
    value = text.strip().lower()
    if value in ("today", "yesterday"):
        ref = (now or datetime.now(settings.tz)).astimezone(settings.tz).date()
        return ref if value == "today" else ref - timedelta(days=1)
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ReportError(f"not a date: {text!r} (use YYYY-MM-DD, today or yesterday)") from None
    return check_day(day)


def check_day(day: date) -> date:
    """day when it lies in FIRST_DAY..LAST_DAY; ReportError otherwise (for every date a user types)."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ReportError(f"{day.isoformat()} is out of range: choose a day between {FIRST_DAY} and {LAST_DAY}")
    return day
