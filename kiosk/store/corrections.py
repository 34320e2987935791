"""Attendance corrections by hand: add a missed check-in or check-out, remove a wrong event.

Every correction names who made it and why: added events carry recorded_by and note (reports
mark those days as corrected), removals leave an audit entry with the event's time, kind and
the reason. The camera's own events are never edited in place, except on a central (given a
Pairing): there the in/out of the person-day's camera events is decided again on the merged stream
in the same transaction (ingest.pair_again), as the next push touching the day would.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from kiosk.config import RetentionSettings
from kiosk.errors import StoreError, TimeOutOfRange
from kiosk.identity import refuse_hidden
from kiosk.store._base import EventInfo, event_info, now_utc, unerased_person_row, write_audit
from kiosk.store.db import Database
from kiosk.store.ingest import Pairing, pair_again
from kiosk.store.models import AttendanceEvent
from kiosk.vocabulary import MANUAL_DEVICE, PERSON_EVENT_KINDS

logger = logging.getLogger(__name__)

FUTURE_SLACK = timedelta(minutes=5)  # clocks differ a little; later than this is a typo


class EventNotFound(StoreError):
    """No attendance event with this id."""


def _reason(note: str) -> str:
    note = " ".join(note.split())
    if not note:
        raise StoreError("a reason is required for a correction (e.g. 'forgot to check out, confirmed by HR')")
    refuse_hidden(note, "the reason")  # shown by `kiosk events list` and in the audit log
    return note[:500]


def _check_window(given: datetime, at: datetime, now: datetime, retention_days: int) -> None:
    """TimeOutOfRange when at (aware UTC) is in the future or older than retention_days before now:
    the retention purge would silently delete such an event again."""
    if at > now + FUTURE_SLACK:
        raise TimeOutOfRange(f"{given:%Y-%m-%d %H:%M} is in the future; corrections record what happened")
    if at < now - timedelta(days=retention_days):
        raise TimeOutOfRange(f"{given:%Y-%m-%d %H:%M} is older than the {retention_days} days attendance is "
                             "kept (retention.attendance_days); the retention purge would delete it again")


def add_correction(db: Database, person_id: int, at: datetime, kind: str, *, actor: str, note: str,
                   now: datetime | None = None,
                   retention_days: int = RetentionSettings().attendance_days,
                   pairing: Pairing | None = None) -> EventInfo:
    """Add a check-in ('in') or check-out ('out') at `at` (aware) for a person, entered by actor.

    Refuses (TimeOutOfRange) times in the future or older than retention_days (pass
    retention.attendance_days) before now. pairing (a central's, door_api.pairing_of): the day's camera
    events are paired again with the correction in the same transaction.
    """
    if kind not in PERSON_EVENT_KINDS:
        raise StoreError(f"a correction is a check-in or a check-out ('in' or 'out'), not {kind!r}")
    note = _reason(note)
    given, now, at = at, now_utc(now), now_utc(at)
    _check_window(given, at, now, retention_days)
    with db.session() as s:
        unerased_person_row(s, person_id)
        event = AttendanceEvent(person_id=person_id, occurred_at=at, kind=kind, device_id=MANUAL_DEVICE,
                                recorded_by=actor, note=note)
        s.add(event)
        s.flush()
        details: dict[str, Any] = {"event_id": event.id, "kind": kind, "at": at.isoformat(), "note": note}
        if pairing is not None:
            details["repaired"] = pair_again(s, [(person_id, at, MANUAL_DEVICE)], pairing)
        write_audit(s, actor, "event.add", f"person:{person_id}", details, now)
        logger.info("%s added a %s event for person %s at %s%s", actor, kind, person_id, at.isoformat(),
                    _repaired(details))
        return event_info(event)


def remove_event(db: Database, event_id: int, *, actor: str, reason: str,
                 now: datetime | None = None, pairing: Pairing | None = None) -> EventInfo:
    """Delete a wrong attendance event (a camera one or a correction); the audit log keeps what it was.
    pairing (a central's): the person-day's other camera events are paired again in the same transaction."""
    reason = _reason(reason)
    now = now_utc(now)
    with db.session() as s:
        event = s.get(AttendanceEvent, event_id)
        if event is None:
            raise EventNotFound(f"no attendance event {event_id}")
        if event.person_id is not None:
            unerased_person_row(s, event.person_id)
        info = event_info(event)
        s.delete(event)
        details: dict[str, Any] = {"event_id": event_id, "kind": info.kind, "at": info.occurred_at.isoformat(),
                                   "device_id": info.device_id, "recorded_by": info.recorded_by, "reason": reason}
        if pairing is not None and info.person_id is not None and info.kind in PERSON_EVENT_KINDS:
            s.flush()  # the event is gone before its day is read again
            details["repaired"] = pair_again(s, [(info.person_id, info.occurred_at, info.device_id)], pairing)
        write_audit(s, actor, "event.remove", f"person:{event.person_id}" if event.person_id else None, details, now)
        logger.info("%s removed event %s (%s at %s)%s", actor, event_id, info.kind, info.occurred_at.isoformat(),
                    _repaired(details))
        return info


def _repaired(details: dict[str, Any]) -> str:
    """The log's note of the camera events whose kind a correction changed ("" when none or not paired)."""
    n = details.get("repaired")
    return f"; in/out of {n} camera event(s) of that day decided again" if n else ""
