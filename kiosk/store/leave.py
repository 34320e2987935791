"""Leave: a person's approved absence (holiday, sick, other) over whole local days.

Reports count a work day inside a person's leave as leave, not as an absence. Only the kind and
the days are stored, never a reason (it could reveal health details). Leave is payroll data:
like attendance events it stays when only a person's biometric data is erased, goes with the
person's row, and is purged by `retention.attendance_days` after its last day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.errors import StoreError, listing
from kiosk.store._base import now_utc, record_of, unerased_person_row, write_audit
from kiosk.store.db import Database
from kiosk.store.models import Leave
from kiosk.vocabulary import LeaveKind, values

logger = logging.getLogger(__name__)

MAX_LEAVE_DAYS = 366  # a longer span is most likely a typo in a year


class LeaveNotFound(StoreError):
    """No leave with this id."""


class LeaveOverlap(StoreError):
    """The new leave overlaps leave already recorded for the person (clash_id)."""

    def __init__(self, message: str, clash_id: int) -> None:
        super().__init__(message)
        self.clash_id = clash_id


@dataclass(frozen=True)
class LeaveInfo:
    """One stretch of leave: local days first_day..last_day inclusive."""

    id: int
    person_id: int
    first_day: date
    last_day: date
    kind: str
    recorded_by: str
    recorded_at: datetime

    def covers(self, day: date) -> bool:
        """True when day lies within this leave."""
        return self.first_day <= day <= self.last_day

    def span(self) -> str:
        """The days as text: "2026-06-08 to 2026-06-12", or one date."""
        return _span(self.first_day, self.last_day)

    def days(self) -> list[date]:
        """Every local day of the leave, in order."""
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]


def _leave_info(row: Leave) -> LeaveInfo:
    return record_of(LeaveInfo, row)


def _span(first_day: date, last_day: date) -> str:
    return first_day.isoformat() if first_day == last_day else f"{first_day} to {last_day}"


@dataclass(frozen=True)
class NewLeave:
    """Leave to record: a person, days first_day..last_day inclusive, a kind; label names it in errors."""

    person_id: int
    first_day: date
    last_day: date
    kind: str
    label: str = ""


def _check(item: NewLeave) -> None:
    """StoreError for a bad kind, a reversed or an overlong span."""
    if item.kind not in values(LeaveKind):
        raise StoreError(f"unknown kind of leave {item.kind!r} (choose from {', '.join(values(LeaveKind))})")
    if item.last_day < item.first_day:
        raise StoreError(f"leave ends ({item.last_day}) before it starts ({item.first_day})")
    if (item.last_day - item.first_day).days >= MAX_LEAVE_DAYS:
        raise StoreError(f"leave longer than {MAX_LEAVE_DAYS} days ({_span(item.first_day, item.last_day)}); "
                         "record it a year at a time")


def _insert(s: Session, item: NewLeave, actor: str, now: datetime) -> LeaveInfo:
    """Check item and add it in session s (audited); StoreError if it is bad or overlaps other leave."""
    _check(item)
    person = unerased_person_row(s, item.person_id)
    clash = s.scalars(
        select(Leave).where(Leave.person_id == item.person_id, Leave.first_day <= item.last_day,
                            Leave.last_day >= item.first_day).order_by(Leave.first_day)
    ).first()
    if clash is not None:
        raise LeaveOverlap(f"{person.name} already has {clash.kind} leave {_leave_info(clash).span()} "
                           f"(leave {clash.id}); remove it first to change it", clash.id)
    row = Leave(person_id=item.person_id, first_day=item.first_day, last_day=item.last_day, kind=item.kind,
                recorded_by=actor, recorded_at=now)
    s.add(row)
    s.flush()
    write_audit(s, actor, "leave.add", f"person:{item.person_id}",
           {"leave_id": row.id, "kind": item.kind, "first_day": item.first_day.isoformat(),
            "last_day": item.last_day.isoformat()}, now)
    logger.info("%s recorded %s leave for person %s: %s", actor, item.kind, item.person_id,
                _span(item.first_day, item.last_day))
    return _leave_info(row)


def add_leave(db: Database, person_id: int, first_day: date, last_day: date, kind: str, *, actor: str,
              now: datetime | None = None) -> LeaveInfo:
    """Record leave for a person (days inclusive); refuses a bad kind, a reversed or overlong span,
    and an overlap with the person's other leave."""
    now = now_utc(now)
    with db.session() as s:
        return _insert(s, NewLeave(person_id, first_day, last_day, kind), actor, now)


def add_leave_batch(db: Database, items: list[NewLeave], *, actor: str, now: datetime | None = None,
                    max_errors: int = 20) -> list[LeaveInfo]:
    """Record all items in one transaction, or none: one StoreError lists every bad item (its label and
    why, also overlaps within the batch), up to max_errors of them."""
    now = now_utc(now)
    errors: list[str] = []
    with db.session() as s:
        added: list[LeaveInfo] = []
        labels: dict[int, str] = {}  # leave id -> the label of the batch item that added it
        for item in items:
            try:  # _insert checks everything before it adds a row, so a refused item leaves nothing behind
                added.append(_insert(s, item, actor, now))
                labels[added[-1].id] = item.label
            except StoreError as exc:
                why = str(exc)
                if isinstance(exc, LeaveOverlap) and exc.clash_id in labels:  # not stored: name the entry
                    earlier = next(x for x in added if x.id == exc.clash_id)
                    why = f"overlaps {labels[exc.clash_id] or 'an earlier entry'} ({earlier.kind} {earlier.span()})"
                errors.append(f"{item.label}: {why}" if item.label else why)
        if errors:
            raise StoreError(listing(f"nothing recorded: {len(errors)} of {len(items)} leave entries are wrong",
                                     errors, max_errors))
        return added


def remove_leave(db: Database, leave_id: int, *, actor: str, now: datetime | None = None) -> LeaveInfo:
    """Delete a stretch of leave (entered by mistake, or cancelled); the audit log keeps what it was."""
    now = now_utc(now)
    with db.session() as s:
        row = s.get(Leave, leave_id)
        if row is None:
            raise LeaveNotFound(f"no leave with id {leave_id}")
        unerased_person_row(s, row.person_id)
        info = _leave_info(row)
        s.delete(row)
        write_audit(s, actor, "leave.remove", f"person:{info.person_id}",
               {"leave_id": leave_id, "kind": info.kind, "first_day": info.first_day.isoformat(),
                "last_day": info.last_day.isoformat()}, now)
        logger.info("%s removed leave %s of person %s", actor, leave_id, info.person_id)
        return info


def leave_between(db: Database, first_day: date | None = None, last_day: date | None = None,
                  person_id: int | None = None) -> list[LeaveInfo]:
    """Leave overlapping first_day..last_day (either bound may be open), by person and start day."""
    query = select(Leave)
    if first_day is not None:
        query = query.where(Leave.last_day >= first_day)
    if last_day is not None:
        query = query.where(Leave.first_day <= last_day)
    if person_id is not None:
        query = query.where(Leave.person_id == person_id)
    with db.session() as s:
        return [_leave_info(r) for r in s.scalars(query.order_by(Leave.person_id, Leave.first_day))]


def leave_by_person_day(leave: list[LeaveInfo]) -> dict[tuple[int, date], str]:
    """(person id, local day) -> kind of leave, for every day the given leave covers."""
    return {(item.person_id, day): item.kind for item in leave for day in item.days()}
