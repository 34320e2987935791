"""How reports read one person's local day (kiosk.attendance's rules): time present, lateness,
open days and forgotten check-outs, from the day's events or from SQL-aggregated figures.

Time present per person and day:
  first_last  last "out" minus first "in" (breaks are not subtracted; the kiosk sees only
              the ends of the day).
  toggle      the sum of in->out pairs; an "in" without a later "out" adds nothing and
              marks the day "open" (forgotten check-out), as does first_last without an out.
A check-out without a check-in (one removed, or never recorded) makes the day open too.
No check-out: a day already over (before today, local) with a check-in and no check-out after
it: a forgotten check-out, its hours not known (0.00).
Lateness: first "in" after workday_start + grace; minutes late count from workday_start.
Rules (zone, workday start, grace): site:'s, or on a central the day's site's (reports.sites).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from kiosk.config import Settings, SiteRules
from kiosk.reports.model import PersonDay
from kiosk.store import DayFigures, EventInfo, EventMark, PersonInfo
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)


def is_no_checkout(open_: bool, first_in: datetime | None, day: date, today: date | None) -> bool:
    """A check-in left without check-out on a day before today: a forgotten check-out."""
    return open_ and first_in is not None and today is not None and day < today


def _seconds_present(events: Sequence[EventInfo | EventMark], mode: str, first_in: datetime | None,
                     last_out: datetime | None) -> tuple[float, bool]:
    """(seconds present, open?) of a day's events (in time order) in the attendance mode."""
    if mode == "first_last":
        if first_in is not None and last_out is not None:
            return (last_out - first_in).total_seconds(), False
        return 0.0, first_in is not None and last_out is None
    seconds = 0.0
    opened: datetime | None = None
    for e in events:
        if e.kind == EventKind.IN and opened is None:
            opened = e.occurred_at
        elif e.kind == EventKind.OUT and opened is not None:
            seconds += (e.occurred_at - opened).total_seconds()
            opened = None
    return seconds, opened is not None


def person_day(
    person: PersonInfo, day: date, events: Sequence[EventInfo | EventMark], settings: Settings,
    with_expr: bool, today: date | None = None, rules: SiteRules | None = None,
) -> PersonDay:
    """The person's PersonDay from the day's events (in time order); expression counts only when
    with_expr and the person consents; today tells a forgotten check-out from someone still in;
    rules: the day's (zone of its times, lateness; default site:'s)."""
    rules = rules or settings.rules_of(None)
    tz = rules.tz
    ins = [e.occurred_at for e in events if e.kind == EventKind.IN]
    outs = [e.occurred_at for e in events if e.kind == EventKind.OUT]
    first_in = min(ins) if ins else None
    last_out = max((t for t in outs if first_in is None or t > first_in), default=None)
    seconds, open_ = _seconds_present(events, settings.attendance.mode, first_in, last_out)
    if outs and not ins:  # a check-out with no check-in (one removed, or never recorded): incomplete too
        open_ = True
    late, minutes_late = (False, 0)
    if first_in is not None:  # against workday_start of the person-day's date, in the day's zone
        late, minutes_late = DayClock.at(day, rules).lateness(first_in.astimezone(tz))
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
        no_checkout=is_no_checkout(open_, first_in, day, today),
    )


@dataclass(frozen=True)
class DayClock:
    """One local day's reference instants: the site zone and workday_start + grace (aware)."""

    tz: ZoneInfo
    start: datetime  # workday_start on the day, local
    grace: timedelta

    @classmethod
    def of(cls, day: date, settings: Settings) -> DayClock:
        """The clock of a local day at the site (site:'s rules)."""
        return cls.at(day, settings.rules_of(None))

    @classmethod
    def at(cls, day: date, rules: SiteRules) -> DayClock:
        """The clock of a local day under a site's rules (its zone, workday_start and grace)."""
        return cls(rules.tz, datetime.combine(day, rules.workday_start, tzinfo=rules.tz),
                   timedelta(minutes=rules.late_grace_minutes))

    def lateness(self, first_in: datetime) -> tuple[bool, int]:
        """(late?, whole minutes after workday_start) of a first "in" in the site zone, as
        attendance.lateness() reads it (wall-clock minutes, the same on DST days)."""
        late = first_in > self.start + self.grace
        return late, int((first_in - self.start).total_seconds() // 60) if late else 0


def person_day_from_figures(person: PersonInfo, day: date, f: DayFigures, clock: DayClock,
                            today: date) -> PersonDay:
    """A first_last PersonDay from SQL-aggregated figures (same reading as person_day)."""
    first_in = f.first_in.astimezone(clock.tz) if f.first_in is not None else None
    last_out = None
    if f.latest_out is not None and (first_in is None or f.latest_out > first_in):
        last_out = f.latest_out.astimezone(clock.tz)
    # real minutes (UTC instants): aware times of one zone subtract as wall clocks, 1 h off on DST days
    minutes = int((f.latest_out - f.first_in).total_seconds() // 60) \
        if last_out is not None and f.first_in is not None and f.latest_out is not None else 0
    late, minutes_late = clock.lateness(first_in) if first_in is not None else (False, 0)
    open_ = (first_in is not None and last_out is None) or (f.outs > 0 and first_in is None)
    return PersonDay(
        person_id=person.id, employee_id=person.employee_id, name=person.name, day=day,
        first_in=first_in, last_out=last_out, present_minutes=minutes,
        open=open_, late=late, minutes_late=minutes_late, events=f.events, corrected=f.manual,
        no_checkout=is_no_checkout(open_, first_in, day, today),
    )
