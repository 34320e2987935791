"""Clock seam: every "now" in the program comes from a Clock, so tests can fix time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


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
