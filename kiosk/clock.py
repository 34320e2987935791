"""Clock seam: every "now" in the program comes from a Clock, so tests can fix time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from kiosk.errors import LocalTimeError

_SITE_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})([+-]\d{2}:\d{2})?$")


class Clock(Protocol):
    """Anything with now() -> timezone-aware UTC datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


def as_utc(value: datetime) -> datetime:
    """An aware datetime converted to UTC; naive datetimes are refused (ValueError)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value.isoformat()} (times must carry a time zone)")
    return value.astimezone(UTC)


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        """datetime.now(UTC)."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and replays."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        """The set time (aware UTC)."""
        return self._now

    def set(self, value: datetime) -> None:
        """Jump to an aware datetime."""
        self._now = as_utc(value)

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move forward by seconds (plus any timedelta keywords); returns the new time."""
        self._now = self._now + timedelta(seconds=seconds, **kwargs)
        return self._now


FixedClock = ManualClock
"""Alias: a ManualClock that nobody advances is a fixed clock."""


def _offset_text(value: datetime) -> str:
    """The UTC offset of an aware datetime as "+HH:MM"."""
    return value.strftime("%z")[:3] + ":" + value.strftime("%z")[3:]


def site_time(value: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time at the site -> aware datetime in tz, refusing what a clock there never shows.

    value is naive (local time in tz) or carries a UTC offset (to pick one of a repeated hour).
    LocalTimeError: the time does not exist (skipped when clocks go forward), happens twice (clocks go
    back) and no offset says which, or the offset is not tz's offset at that time.
    """
    local = value.replace(tzinfo=None)
    shown = f"{local:%Y-%m-%d %H:%M}"
    candidates = [local.replace(tzinfo=tz, fold=fold) for fold in (0, 1)]
    try:
        real = [c for c in candidates if c.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local]
    except OverflowError:
        raise LocalTimeError(f"{shown} is out of range") from None
    if not real:
        shifted = candidates[0].astimezone(UTC).astimezone(tz)
        raise LocalTimeError(f"{shown} does not exist in {tz.key}: the clocks skip that hour (clocks there "
                             f"showed {shifted:%H:%M} then); give the time a clock there showed")
    if value.tzinfo is not None:
        for c in real:
            if c.utcoffset() == value.utcoffset():
                return c
        raise LocalTimeError(f"{shown}{_offset_text(value)}: {tz.key} is at UTC{_offset_text(real[0])} "
                             "then; give the time without an offset or with that one")
    if len({c.utcoffset() for c in real}) > 1:
        first, second = real
        raise LocalTimeError(f"{shown} happens twice in {tz.key} (the clocks go back that night); say which "
                             f"with its UTC offset: \"{shown}{_offset_text(first)}\" (the first) or "
                             f"\"{shown}{_offset_text(second)}\" (the second)")
    return real[0]


def parse_site_time(text: str, tz: ZoneInfo) -> datetime:
    """"YYYY-MM-DD HH:MM" (site time), optionally with its UTC offset ("+02:00") -> aware datetime in tz.

    LocalTimeError for anything else and for times site_time() refuses.
    """
    match = _SITE_TIME_RE.match(text.strip())
    try:
        if match is None:
            raise ValueError(text)
        day, clock, offset = match.groups()
        value = datetime.strptime(f"{day} {clock}", "%Y-%m-%d %H:%M")
        if offset:
            value = value.replace(tzinfo=datetime.strptime(offset, "%z").tzinfo)
    except ValueError:
        raise LocalTimeError(f'not a time: {text!r} (use "YYYY-MM-DD HH:MM", local time; in the repeated '
                             'hour when clocks go back add the UTC offset, e.g. "2026-10-25 02:30+02:00")') from None
    return site_time(value, tz)


class ReplayClock:
    """Scene time for replays: start + frame index / fps (aware UTC)."""

    def __init__(self, start: datetime, fps: float) -> None:
        self.start = start.astimezone(UTC)
        self.fps = fps
        self.index = 0

    def now(self) -> datetime:
        """The time of the latest frame."""
        return self.start + timedelta(seconds=self.index / self.fps)
