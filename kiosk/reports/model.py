"""The report records: one person's day, leave days, team expression, a day's and a range's report,
a range's per-person totals and the summary a range page shows. Times are aware, in the site zone."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

from kiosk.store import PersonInfo
from kiosk.vocabulary import LeaveKind

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PersonDay:
    """One person's figures for one local day; times are aware, in the day's zone (site:'s, or on a
    central with sites: the day's site's)."""

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
    # On a central server (reports.sites): the person's site for the day and the doors (names) of
    # the first in and the last out; None: no door (a correction, a standalone kiosk's event).
    site: str | None = None
    door_in: str | None = None
    door_out: str | None = None

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


def person_day_key(row: PersonDay) -> tuple[date, str, str]:
    """Sort key of person-days: by day, then name (case-folded), then employee id."""
    return (row.day, row.name.casefold(), row.employee_id)


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
    kind: LeaveKind


def leave_day_key(x: LeaveDay) -> tuple[date, str, str]:
    """Sort key of leave days: by day, then name (case-folded), then employee id."""
    return (x.day, x.person.name.casefold(), x.person.employee_id)


def zone_text(timezone: str, zones: dict[str, str]) -> str:
    """How a report says which zone its times are in: site:'s zone, or on a central with sites in
    other zones each site's ("each site's own: berlin Europe/Berlin, nyc America/New_York; other
    rows UTC")."""
    if not zones:
        return timezone
    return ("each site's own: " + ", ".join(f"{k} {v}" for k, v in sorted(zones.items()))
            + f"; other rows {timezone}")


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
    by_site: bool = False  # a central server's report: site and door columns are shown
    sites: list[str] | None = None  # the site filter (sorted); None: every site
    home: dict[int, str] = field(default_factory=dict)  # person id -> home site (by_site only)
    zones: dict[str, str] = field(default_factory=dict)  # site -> its zone, when not all in timezone

    @property
    def zone_text(self) -> str:
        """The zone the times are in, as pages and text reports say it (model.zone_text)."""
        return zone_text(self.timezone, self.zones)


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
    leave: list[LeaveDay] = field(default_factory=list)  # by day, then name
    # The person's absent work days (finished, no event, no leave) when the report is for one
    # person (range_report(person_id=...)); empty otherwise.
    absences: list[date] = field(default_factory=list)
    by_site: bool = False  # a central server's report: site and door columns are shown
    sites: list[str] | None = None  # the site filter (sorted); None: every site
    home: dict[int, str] = field(default_factory=dict)  # person id -> home site (by_site only)
    zones: dict[str, str] = field(default_factory=dict)  # site -> its zone, when not all in timezone

    @property
    def zone_text(self) -> str:
        """The zone the times are in, as pages and text reports say it (model.zone_text)."""
        return zone_text(self.timezone, self.zones)


@dataclass(frozen=True)
class RangeDay:
    """One local day of a range: its person-days (by name), work-day leave of people who did not
    come (by name) and the unknown faces seen."""

    day: date
    rows: list[PersonDay]
    leave: list[LeaveDay]
    unknown_faces: int


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
