"""Sites and doors in reports (a central server's, docs/central.md): which door recorded an event,
a person's site for a day, their home site, and the site filter of a report.

Rules:
- An event's site is the site of its door (doors.device_id = the event's device_id). Events
  recorded without a door (a standalone kiosk's, hand corrections) have no door and no site.
- A person's site for a day is the site of the door of their first event that day that has a door
  (a correction earlier that day does not move the day out of its site); none when no event has one.
- A person's home site is the site of their latest door event before the report's end; absences,
  leave and totals of a filtered report list the people whose home site is in the filter.
- Only a central server (role: central) shows sites and doors: a standalone kiosk's reports and
  payroll CSVs keep their columns exactly (cells.SITE_CSV_COLUMNS are added on a central only).

Site rules (a central's `sites:`, Settings.rules_of; docs/central.md "Site rules in reports"):
- An event's zone is its door's site's; an event without a door (a correction, a device no door
  has, a door without a site) takes the person's home site's rules (none: `site:`'s).
- An event belongs to the local date of its own zone; a person-day is (person, that date).
- A day's rules (zone of its times, lateness) are its site's; a day without a site: the home site's.
- Expected days (absences, leave, finished days, "no check-out") follow the home site's rules and
  its zone's today.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from kiosk.config import Settings, SiteRules
from kiosk.errors import ReportError
from kiosk.reports.model import PersonDay
from kiosk.store import Database, home_sites, list_doors, local_day_bounds
from kiosk.vocabulary import EventKind

logger = logging.getLogger(__name__)


class DoorMark(Protocol):
    """What an event needs to be placed: its device and whether it was entered by hand."""

    @property
    def device_id(self) -> str: ...

    @property
    def manual(self) -> bool: ...


@dataclass(frozen=True)
class Door:
    """A door as reports name it: its name and site (None: no site given)."""

    name: str
    site: str | None


@dataclass(frozen=True)
class Places:
    """The doors by device id, the people's home sites, the report's site filter (None: all) and
    the rules of every site (`default`: site:'s). by_site False (not a central server): nothing
    about sites is read or shown, and every day follows `default`."""

    default: SiteRules
    by_site: bool = False
    doors: dict[str, Door] = field(default_factory=dict)
    only: frozenset[str] | None = None
    home: dict[int, str] = field(default_factory=dict)
    rules: dict[str, SiteRules] = field(default_factory=dict)  # the configured sites' (sites:)

    def site_rules(self, site: str | None) -> SiteRules:
        """The rules of a site (None, or a site not configured: default)."""
        return self.rules.get(site, self.default) if site is not None else self.default

    def home_rules(self, person_id: int | None) -> SiteRules:
        """The rules of a person's home site (none, or an unknown face: default)."""
        if not self.rules or person_id is None:
            return self.default
        return self.site_rules(self.home.get(person_id))

    def day_rules(self, site: str | None, person_id: int) -> SiteRules:
        """The rules of a person-day whose site is `site`: that site's; no site: the home site's."""
        return self.site_rules(site) if site is not None else self.home_rules(person_id)

    def device_rules(self, device_id: str | None, manual: bool, person_id: int | None) -> SiteRules:
        """The rules an event is placed by: its door's site's; no door or no site: the home site's."""
        door = None if manual or device_id is None else self.doors.get(device_id)
        if door is not None and door.site is not None:
            return self.site_rules(door.site)
        return self.home_rules(person_id)

    def event_day(self, mark: DoorMark, person_id: int | None, at: datetime) -> date:
        """The local date an event (at: aware) belongs to: its own zone's (device_rules)."""
        return self.device_rules(mark.device_id, mark.manual, person_id).local_day(at)

    @property
    def all_rules(self) -> list[SiteRules]:
        """default and every configured site's rules (distinct)."""
        return list(dict.fromkeys([self.default, *self.rules.values()]))

    @property
    def zones(self) -> dict[str, str]:
        """Configured site -> its zone's name, when the sites do not all share one zone ({} else)."""
        return {site: r.tz.key for site, r in sorted(self.rules.items())} if self.zoned else {}

    def report_fields(self) -> dict[str, Any]:
        """The report fields about sites: by_site, sites (the filter, sorted; None: every site), home, zones."""
        only = sorted(self.only) if self.only is not None else None
        return {"by_site": self.by_site, "sites": only, "home": self.home, "zones": self.zones}

    @property
    def zoned(self) -> bool:
        """True when events must be placed one by one: the sites have more than one time zone."""
        return len({r.tz.key for r in self.all_rules}) > 1

    def door(self, mark: DoorMark) -> Door | None:
        """The door that recorded this event; None for hand corrections and events of no door."""
        return None if mark.manual else self.doors.get(mark.device_id)

    def door_name(self, device_id: str | None) -> str | None:
        """The name of the door with this device id, None when it is no door."""
        door = self.doors.get(device_id) if device_id is not None else None
        return door.name if door is not None else None

    def site_of_device(self, device_id: str | None) -> str | None:
        """The site of the door with this device id (None: no door, or a door without a site)."""
        door = self.doors.get(device_id) if device_id is not None else None
        return door.site if door is not None else None

    def day_site(self, events: Sequence[DoorMark]) -> str | None:
        """A person's site for a day: the site of the door of their first event (in time order)
        that has a door; None when none has."""
        for e in events:
            door = self.door(e)
            if door is not None:
                return door.site
        return None

    def shows(self, site: str | None) -> bool:
        """True when a row of this site belongs in the report (always without a filter)."""
        return self.only is None or site in self.only

    def shows_person(self, person_id: int) -> bool:
        """True when a person's absences, leave and totals belong in the report (their home site)."""
        return self.only is None or self.home.get(person_id) in self.only

    @property
    def door_ids(self) -> frozenset[str]:
        """Device ids of every door."""
        return frozenset(self.doors)


@dataclass(frozen=True)
class DayWindow:
    """A local date's UTC window widened to every zone of the sites ([utc_from, utc_to), aware),
    each zone's own [start, end) of that date, and every such bound in order (cuts)."""

    day: date
    utc_from: datetime
    utc_to: datetime
    bounds: dict[str, tuple[datetime, datetime]]  # zone key -> that zone's [start, end) of day
    cuts: tuple[datetime, ...]

    def holds(self, rules: SiteRules, at: datetime) -> bool:
        """True when at (aware) falls on this date in rules' zone."""
        start, end = self.bounds[rules.tz.key]
        return start <= at < end


def day_window(day: date, places: Places) -> DayWindow:
    """The DayWindow of a local date over the zones of places' rules."""
    bounds = {r.tz.key: local_day_bounds(day, r.tz) for r in places.all_rules}
    cuts = tuple(sorted({t for pair in bounds.values() for t in pair}))
    return DayWindow(day, cuts[0], cuts[-1], bounds, cuts)


class Todays:
    """Today's local date in each zone: a date given stands for every zone; an aware instant (default:
    now) gives each zone its own date."""

    def __init__(self, today: date | datetime | None = None) -> None:
        self._given: date | datetime = today if today is not None else datetime.now(UTC)
        self._dates: dict[str, date] = {}

    def of(self, rules: SiteRules) -> date:
        """Today's date in rules' zone."""
        given = self._given
        if not isinstance(given, datetime):
            return given
        found = self._dates.get(rules.tz.key)
        if found is None:
            found = self._dates[rules.tz.key] = given.astimezone(rules.tz).date()
        return found


def place_row(row: PersonDay, events: Sequence[DoorMark], places: Places) -> PersonDay:
    """row with its site and the doors of its first in and last out, from the day's events (in
    time order; they have .kind and .occurred_at); row unchanged when sites are not shown."""
    if not places.by_site:
        return row
    row.site = places.day_site(events)
    for e in events:
        door = places.door(e)
        at = getattr(e, "occurred_at", None)
        if row.first_in is not None and at == row.first_in and getattr(e, "kind", None) == EventKind.IN:
            row.door_in = door.name if door else None
        if row.last_out is not None and at == row.last_out and getattr(e, "kind", None) == EventKind.OUT:
            row.door_out = door.name if door else None
    return row


def site_filter(sites: Collection[str] | None) -> frozenset[str] | None:
    """The filter as a set (None or empty: every site); names trimmed."""
    if not sites:
        return None
    return frozenset(" ".join(s.split()) for s in sites)


def _check_filter(settings: Settings, only: frozenset[str] | None, known: set[str]) -> None:
    """ReportError for a filter off a central, or naming a site no door has."""
    if only is None:
        return
    if settings.role != "central":
        raise ReportError(f"sites exist only on a central server (role: central); this is role: "
                          f"{settings.role}, so there is no site {sorted(only)[0]!r}")
    if not only <= known:
        missing = sorted(only - known)
        raise ReportError(f"no door belongs to site {missing[0]!r} (sites: {', '.join(sorted(known)) or 'none yet'})")


def check_sites(db: Database, settings: Settings, sites: Collection[str] | None) -> None:
    """load_places' checks alone (before a streamed report starts): ReportError for a filter off a
    central server or naming a site no door has."""
    only = site_filter(sites)
    if only is not None:
        _check_filter(settings, only, set(known_sites(db, settings)))


def load_places(snapshot: Database, settings: Settings, sites: Collection[str] | None,
                until: datetime, *, strict: bool = True, last_day: date | None = None) -> Places:
    """The Places of a report read from the snapshot (home sites as of `until`, aware; with
    last_day, the report's last local date, a configured site's doors count up to the end of that
    date in the site's own zone). On a standalone kiosk or a door (no sites) a filter is a
    ReportError; with strict, so is a site no door has (a typing error must not give an empty
    payroll file silently)."""
    only = site_filter(sites)
    default = settings.rules_of(None)
    if settings.role != "central":
        _check_filter(settings, only, set())  # a filter here is an error, strict or not
        return Places(default)
    doors = {d.device_id: Door(d.name, d.site) for d in list_doors(snapshot)}
    if strict:
        _check_filter(settings, only, {d.site for d in doors.values() if d.site is not None})
    rules = {name: settings.rules_of(name) for name in settings.sites}
    ends = {name: local_day_bounds(last_day, r.tz)[1] for name, r in rules.items()} if last_day else None
    return Places(default, True, doors, only, home_sites(snapshot, until, site_before=ends), rules)


def known_sites(db: Database, settings: Settings) -> list[str]:
    """The sites of a central's doors, sorted (empty elsewhere)."""
    if settings.role != "central":
        return []
    return sorted({d.site for d in list_doors(db) if d.site is not None})


def person_rules(db: Database, settings: Settings, person_id: int, now: datetime) -> SiteRules:
    """The rules of a person's home site as of now (aware): the zone hand corrections are typed and
    listed in on a central with `sites:`; site:'s elsewhere."""
    if settings.role != "central" or not settings.sites:
        return settings.rules_of(None)
    return settings.rules_of(home_sites(db, now, person_id).get(person_id))
