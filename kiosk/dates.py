"""Days and times as people type and read them: the days reports accept (parse_day, check_day) and
a time of day as text (hm: HH:MM, iso: ISO 8601 with UTC offset)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from kiosk.config import Settings
from kiosk.errors import ReportError

logger = logging.getLogger(__name__)

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


def hm(t: datetime | None, missing: str = "-") -> str:
    """HH:MM of t as it stands (give it in the site zone); missing when None ("-" in text reports,
    "" on web pages)."""
    return t.strftime("%H:%M") if t else missing


def iso(t: datetime | None) -> str:
    """t as ISO 8601 to the second with its UTC offset ("2026-06-15T08:50:00+02:00"); "" when None."""
    return t.isoformat(timespec="seconds") if t else ""
