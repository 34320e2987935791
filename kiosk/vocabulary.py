"""The words the kiosk stores and shows: one StrEnum each, used by the store, the CLI and the web.

A member compares equal to its text (``EventKind.IN == "in"``), so values read back from the
database as plain strings work with these enums unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What an attendance event records."""

    IN = "in"
    OUT = "out"
    UNKNOWN = "unknown"  # a face the gallery did not recognise


class LeaveKind(StrEnum):
    """Why a person is away for whole days."""

    HOLIDAY = "holiday"
    SICK = "sick"
    OTHER = "other"


class Role(StrEnum):
    """What a web account may do: admins everything, managers read reports."""

    ADMIN = "admin"
    MANAGER = "manager"


class CaptureStatus(StrEnum):
    """Life of an admin's request that the kiosk camera take enrolment photos.

    waiting -> capturing -> done | failed; waiting or capturing -> expired | cancelled.
    """

    WAITING = "waiting"
    CAPTURING = "capturing"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


#: Check-in and check-out: the kinds a person (or an admin's correction) can record.
PERSON_EVENT_KINDS: tuple[EventKind, ...] = (EventKind.IN, EventKind.OUT)
#: Capture requests not finished yet.
CAPTURES_ACTIVE: tuple[CaptureStatus, ...] = (CaptureStatus.WAITING, CaptureStatus.CAPTURING)
#: The device id of events entered by hand (corrections); no door may take it.
MANUAL_DEVICE = "manual"

#: How a capture request can end.
CAPTURES_FINISHED: tuple[CaptureStatus, ...] = tuple(s for s in CaptureStatus if s not in CAPTURES_ACTIVE)


def values(enum: type[StrEnum]) -> list[str]:
    """The texts of an enum's members in declaration order, e.g. for click.Choice or a form."""
    return [member.value for member in enum]


def sql_in(column: str, enum: type[StrEnum] | tuple[StrEnum, ...]) -> str:
    """A CHECK constraint body, e.g. ``kind IN ('in', 'out', 'unknown')``."""
    return f"{column} IN ({', '.join(repr(str(m.value)) for m in enum)})"


def one_of(enum: type[StrEnum], text: str, what: str) -> StrEnum:
    """``enum(text)``, or ValueError naming the choices, e.g. "role must be one of admin, manager"."""
    try:
        return enum(text)
    except ValueError:
        raise ValueError(f"{what} must be one of {', '.join(values(enum))}, not {text!r}") from None
