"""The range payroll CSV's fast path: on PostgreSQL in first_last mode the rows are made in SQL
(kiosk.store.payroll_days: one streamed statement for the whole range) instead of RangeScan's
Python per row; SQLite and toggle mode keep the Python path. Same bytes as the Python path
(tests/test_payroll_fast.py compares them): the cells people type (employee id, name, site and door
names) are escaped by kiosk.csv_safe and quoted by the csv module here, once per person or door, and
the rows are ordered by day, then the rank of (name.casefold(), employee id) computed here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from datetime import date, datetime
from typing import Any

from kiosk.config import Settings, SiteRules
from kiosk.csv_safe import csv_text
from kiosk.reports.cells import csv_columns
from kiosk.reports.sites import Places, Todays, load_places
from kiosk.store import (
    Database,
    OffsetSpan,
    PayrollDoor,
    PayrollPerson,
    PayrollRequest,
    PayrollRules,
    local_day_bounds,
    offset_spans,
    payroll_days,
    people_by_id,
    read_snapshot,
)

logger = logging.getLogger(__name__)

ISO_WEEKDAY = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def fast_path_applies(db: Database, settings: Settings) -> bool:
    """True when the range CSV is made in SQL: a PostgreSQL database and first_last attendance."""
    return db.kind == "postgresql" and settings.attendance.mode == "first_last"


def fast_range_csv(db: Database, settings: Settings, start: date, end: date,
                   today: date | datetime | None = None, *,
                   person_id: int | None = None, sites: Collection[str] | None = None,
                   strict: bool = True) -> Iterator[str] | None:
    """iter_range_csv's chunks (the header, then one chunk per day with rows) made in SQL, or None
    when the fast path does not apply (fast_path_applies); the caller has checked the range and sites.
    today: as RangeScan's (a date for every zone, or an aware instant: each zone's date; None: now)."""
    if not fast_path_applies(db, settings):
        return None
    return _chunks(db, settings, start, end, Todays(today), person_id, sites, strict)


def _chunks(db: Database, settings: Settings, start: date, end: date, today: Todays,
            person_id: int | None, sites: Collection[str] | None, strict: bool) -> Iterator[str]:
    with read_snapshot(db) as snapshot:
        places = load_places(snapshot, settings, sites, local_day_bounds(end, settings.tz)[1], strict=strict,
                             last_day=end)
        request = payroll_request(snapshot, settings, places, start, end, today, person_id)
        yield csv_text([], csv_columns(places.by_site))
        days = 0
        for _day, text in payroll_days(snapshot, request):
            days += 1
            yield text
        logger.debug("range CSV %s..%s made in SQL: %d days with rows", start, end, days)


def cells(*values: str) -> str:
    """values as consecutive cells of a csv_text row: formula-escaped (csv_safe) and quoted where
    needed, joined by commas ("" for one empty value)."""
    line = csv_text([[*values, "."]])
    return line[:-3]  # without the ",.\n" after them


def _rules(rules: SiteRules, zone: int, todays: Todays) -> PayrollRules:
    """A site's rules for the query: its zone's index, workday start and start + grace in
    microseconds after midnight, ISO work days, holidays and today in its zone."""
    start = rules.workday_start
    start_us = ((start.hour * 60 + start.minute) * 60 + start.second) * 1_000_000 + start.microsecond
    return PayrollRules(zone=zone, start_us=start_us,
                        late_after_us=start_us + rules.late_grace_minutes * 60_000_000,
                        work_days=frozenset(ISO_WEEKDAY[d] for d in rules.work_days),
                        holidays=rules.holidays, today=todays.of(rules))


def payroll_request(snapshot: Database, settings: Settings, places: Places, start: date, end: date,
                    today: Todays, person_id: int | None) -> PayrollRequest:
    """Everything payroll_days needs besides the tables: the site rules (index 0: site:'s, then the
    configured sites), their zones' UTC offsets over the range, the doors and people as ready cells."""
    names = sorted(settings.sites)
    site_rules = [settings.rules_of(None), *(settings.rules_of(n) for n in names)]
    index = {name: i + 1 for i, name in enumerate(names)}
    zone_keys: list[Any] = []
    for r in site_rules:
        if r.tz not in zone_keys:
            zone_keys.append(r.tz)
    utc_from = min(local_day_bounds(start, z)[0] for z in zone_keys)
    utc_to = max(local_day_bounds(end, z)[1] for z in zone_keys)
    zones: list[list[OffsetSpan]] = [offset_spans(z, utc_from, utc_to) for z in zone_keys]
    rules = [_rules(r, zone_keys.index(r.tz), today) for r in site_rules]
    doors = [PayrollDoor(device_id=device, site=door.site,
                         rules=None if door.site is None else index.get(door.site, 0),
                         name_cell=cells(door.name), site_cell=cells(door.site or ""))
             for device, door in sorted(places.doors.items())]
    everyone = sorted(people_by_id(snapshot).values(), key=lambda p: (p.name.casefold(), p.employee_id))
    people = []
    for rank, p in enumerate(everyone):
        home = places.home.get(p.id)
        people.append(PayrollPerson(id=p.id, rank=rank, cells=cells(p.employee_id, p.name),
                                    home_cell=cells(home or ""),
                                    home_rules=index.get(home, 0) if home is not None else 0,
                                    listed=places.shows_person(p.id)))
    return PayrollRequest(start=start, end=end, utc_from=utc_from, utc_to=utc_to, zones=zones, rules=rules,
                          doors=doors, people=people, by_site=places.by_site, only=places.only,
                          person_id=person_id)
