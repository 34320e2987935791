"""A central server's sites with their own rules (`sites:`): time zone, work days, holidays, working
hours; and SiteRules, the resolved rules one site's days are placed and judged by.

A key a site leaves out takes the value of `site:` (the central's defaults), so one line per site is
enough for an office in another zone: `sites: {london: {timezone: Europe/London}}`. A site without
an entry (or no site at all: hand corrections, a standalone kiosk's events) uses `site:` whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from kiosk.config.base import Section
from kiosk.config.site import WEEKDAYS, SiteSettings, Weekday, known_zone

MAX_SITE_CHARS = 100  # as kiosk.store.doors allows for a door's site


class SiteOverride(Section):
    """One site's own rules; a key left out (null) takes the value of `site:`."""

    # IANA time zone of the site: its events' local day and times, lateness, absences.
    timezone: str | None = None
    # Arrivals after this local time (plus grace) count as late at this site.
    workday_start: time | None = None
    # Minutes after workday_start before an arrival counts as late.
    late_grace_minutes: int | None = Field(None, ge=0, le=240)
    # Days people of this site are expected in (mon..sun).
    work_days: list[Weekday] | None = None
    # Dates this site is closed (its public holidays), e.g. ["2026-10-03"].
    holidays: list[date] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else known_zone(value)


@dataclass(frozen=True)
class SiteRules:
    """The rules of one site, resolved: zone, workday start (local), grace (minutes), work days, holidays."""

    tz: ZoneInfo
    workday_start: time
    late_grace_minutes: int
    work_days: frozenset[str]
    holidays: frozenset[date]

    def is_work_day(self, day: date) -> bool:
        """True when people of this site are expected in on this local date."""
        return WEEKDAYS[day.weekday()] in self.work_days and day not in self.holidays

    def local_day(self, at: datetime) -> date:
        """The site's local date of an aware instant."""
        return at.astimezone(self.tz).date()


def site_rules(default: SiteSettings, override: SiteOverride | None = None) -> SiteRules:
    """The rules of a site: override's keys where set, default's (`site:`) for the rest."""
    o = override or SiteOverride()
    return SiteRules(
        tz=ZoneInfo(o.timezone or default.timezone),
        workday_start=o.workday_start if o.workday_start is not None else default.workday_start,
        late_grace_minutes=(o.late_grace_minutes if o.late_grace_minutes is not None
                            else default.late_grace_minutes),
        work_days=frozenset(o.work_days if o.work_days is not None else default.work_days),
        holidays=frozenset(o.holidays if o.holidays is not None else default.holidays),
    )


def site_name_problem(name: str) -> str | None:
    """Why name cannot be a key of `sites:` (a door's site name), or None."""
    if not name.strip() or len(name) > MAX_SITE_CHARS or name != name.strip():
        return f"sites: {name!r}: a site name is 1 to {MAX_SITE_CHARS} characters without spaces around it"
    return None
