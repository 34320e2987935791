"""Attendance events: record one (durably, before returning), and read them back by time or person.

Times in and out are aware UTC datetimes; local days are turned into UTC bounds by local_day_bounds.
Corrections by hand are in kiosk.store.corrections.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from kiosk.errors import StoreError
from kiosk.store._base import EventInfo, event_info, newest_event_time, now_utc, person_row
from kiosk.store.db import Database
from kiosk.store.models import AttendanceEvent
from kiosk.vocabulary import EventKind, values

logger = logging.getLogger(__name__)


def record_event(
    db: Database,
    person_id: int | None,
    at: datetime,
    kind: str,
    device_id: str,
    *,
    expression_label: str | None = None,
    expression_scores: dict[str, float] | None = None,
    expression_confidence: float | None = None,
    match_distance: float | None = None,
    match_score: float | None = None,
) -> EventInfo:
    """Write one event and commit durably before returning.

    Expression fields are dropped (never stored) unless the person has consented; unknown
    faces (person_id None) must have kind 'unknown' and never carry expression data.
    """
    if kind not in values(EventKind):
        raise StoreError(f"event kind must be one of {tuple(values(EventKind))}, got {kind!r}")
    if (person_id is None) != (kind == EventKind.UNKNOWN):
        raise StoreError("kind 'unknown' is for unknown faces (person_id None) only")
    at = now_utc(at)
    with db.session() as s:
        consent = False
        if person_id is not None:
            person = person_row(s, person_id)
            consent = person.expression_consent and person.erased_at is None
        review = _clock_went_back(s, person_id, at)
        if review:
            logger.warning("event of person %s flagged for review: %s", person_id, review)
        if not consent and (expression_label or expression_scores or expression_confidence):
            logger.debug("dropping expression data of event without consent")
        event = AttendanceEvent(
            person_id=person_id,
            occurred_at=at,
            kind=kind,
            device_id=device_id,
            expression_label=expression_label if consent else None,
            expression_scores=(
                {str(k): float(v) for k, v in expression_scores.items()}
                if consent and expression_scores is not None else None
            ),
            expression_confidence=(
                float(expression_confidence) if consent and expression_confidence is not None
                else None
            ),
            match_distance=None if match_distance is None else float(match_distance),
            match_score=None if match_score is None else float(match_score),
            review=review,
        )
        s.add(event)
        s.flush()
        return event_info(event)


def _clock_went_back(s: Session, person_id: int | None, at: datetime) -> str | None:
    """Why an event at `at` needs review (it is older than the person's latest or the newest event
    stored: the clock went back, so an 'out' may precede its 'in'), or None."""
    for whose, newest in (("this person's latest", newest_event_time(s, person_id) if person_id else None),
                          ("the newest stored", newest_event_time(s))):
        if newest is not None and at < newest:
            return (f"recorded at {at:%Y-%m-%d %H:%M:%S} UTC, before {whose} event "
                    f"({newest:%Y-%m-%d %H:%M:%S} UTC): the kiosk clock may have gone back")
    return None


def events_between(
    db: Database, utc_from: datetime, utc_to: datetime, *, person_id: int | None = None
) -> list[EventInfo]:
    """Events with utc_from <= occurred_at < utc_to (aware datetimes), oldest first."""
    with db.session() as s:
        stmt = select(AttendanceEvent).where(
            AttendanceEvent.occurred_at >= now_utc(utc_from),
            AttendanceEvent.occurred_at < now_utc(utc_to),
        )
        if person_id is not None:
            stmt = stmt.where(AttendanceEvent.person_id == person_id)
        rows = s.scalars(stmt.order_by(AttendanceEvent.occurred_at, AttendanceEvent.id)).all()
        return [event_info(e) for e in rows]


def local_day_bounds(day: date, tz: ZoneInfo | str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day as aware UTC datetimes (23 or 25 h across DST)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


# A person's latest event (last_event_for without a day): built once, so SQLAlchemy neither rebuilds
# the statement nor recomputes its cache key at each of the door's check-ins (~0.5 ms here).
_LAST_EVENT = (select(AttendanceEvent).where(AttendanceEvent.person_id == bindparam("person_id"))
               .order_by(AttendanceEvent.occurred_at.desc(), AttendanceEvent.id.desc()).limit(1))


def last_event_for(
    db: Database, person_id: int, day: date | None = None, tz: ZoneInfo | str = "UTC"
) -> EventInfo | None:
    """The person's latest event (on local `day` in zone tz when given), or None."""
    stmt = _LAST_EVENT  # the door asks this at every check-in: one statement, built once
    if day is not None:
        start, end = local_day_bounds(day, tz)
        stmt = stmt.where(AttendanceEvent.occurred_at >= start, AttendanceEvent.occurred_at < end)
    with db.session() as s:
        row = s.scalars(stmt, {"person_id": person_id}).first()
        return None if row is None else event_info(row)


def latest_events(db: Database, limit: int = 20) -> list[EventInfo]:
    """The newest events (any kind), newest first."""
    with db.session() as s:
        rows = s.scalars(
            select(AttendanceEvent)
            .order_by(AttendanceEvent.occurred_at.desc(), AttendanceEvent.id.desc()).limit(limit)
        ).all()
        return [event_info(e) for e in rows]
