"""What every area of the store shares: the clock check, row look-ups, the audit writer, the plain
person and event records, and record_of (a row -> its plain record). Private to kiosk.store.

Helpers here work inside a caller's Session; the area modules open and commit the sessions.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import CursorResult, Executable, func, select, update
from sqlalchemy.orm import Session

from kiosk.errors import PersonNotFound, StoreError
from kiosk.store.models import AttendanceEvent, AuditEntry, FaceTemplate, Person

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

logger = logging.getLogger(__name__)

_Record = TypeVar("_Record", bound="DataclassInstance")

# Columns of an attendance event that hold expression or face-match data (blanked by erasure and
# in off-site copies; the event's time and kind stay).
EVENT_EXPRESSION_AND_MATCH_COLUMNS = ("expression_label", "expression_scores", "expression_confidence",
                                      "match_distance", "match_score")


def now_utc(now: datetime | None) -> datetime:
    """now as aware UTC (the current time when None); ValueError for a naive datetime."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime given as now")
    return now.astimezone(UTC)


def changed_rows(s: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE in s; the number of rows it changed."""
    result = cast(CursorResult[Any], s.execute(statement))
    return int(result.rowcount or 0)


def write_audit(
    s: Session, actor: str, action: str, target: str | None, details: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Add an audit-log line in s (committed with the change it records; no biometric data in details)."""
    s.add(AuditEntry(at=now, actor=actor, action=action, target=target, details=details))


def person_row(s: Session, person_id: int) -> Person:
    """The person row; PersonNotFound when there is none."""
    person = s.get(Person, person_id)
    if person is None:
        raise PersonNotFound(f"no person with id {person_id}")
    return person


def unerased_person_row(s: Session, person_id: int) -> Person:
    """The person row; StoreError when their biometric data was erased (nothing may be added)."""
    person = person_row(s, person_id)
    if person.erased_at is not None:
        raise StoreError(f"{person.name} (person {person_id}) has been erased; enrol them again "
                         "under a new employee id")
    return person


def template_count(s: Session, person_id: int) -> int:
    """How many face templates the person has."""
    return s.scalar(
        select(func.count()).select_from(FaceTemplate).where(FaceTemplate.person_id == person_id)
    ) or 0


def strip_expressions(s: Session, *where: Any) -> int:
    """Blank the expression data of the events matching where; how many events had some."""
    return changed_rows(s, (
        update(AttendanceEvent)
        .where(*where)
        .where(
            AttendanceEvent.expression_label.is_not(None)
            | AttendanceEvent.expression_scores.is_not(None)
            | AttendanceEvent.expression_confidence.is_not(None)
        )
        .values(expression_label=None, expression_scores=None, expression_confidence=None)
        .execution_options(synchronize_session=False)
    ))


def newest_event_time(s: Session, person_id: int | None = None) -> datetime | None:
    """occurred_at (aware UTC) of the newest stored event (of person_id when given), or None."""
    stmt = select(func.max(AttendanceEvent.occurred_at))
    if person_id is not None:
        stmt = stmt.where(AttendanceEvent.person_id == person_id)
    return s.scalar(stmt)


def like_pattern(text_: str) -> str:
    """A LIKE pattern (escape "\\") matching text_ anywhere."""
    escaped = text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- plain records handed out -------------------------------------------------------------


@dataclass(frozen=True)
class PersonInfo:
    """A person as stored; template_count = face templates held."""

    id: int
    employee_id: str
    name: str
    active: bool
    created_at: datetime
    expression_consent: bool
    consent_changed_at: datetime | None
    consent_changed_by: str | None
    erased_at: datetime | None
    template_count: int = 0


@dataclass(frozen=True)
class EventInfo:
    """One attendance event; person_id None = unknown face; occurred_at aware UTC."""

    id: int
    person_id: int | None
    occurred_at: datetime
    kind: str
    device_id: str
    expression_label: str | None = None
    expression_scores: dict[str, float] | None = None
    expression_confidence: float | None = None
    match_distance: float | None = None
    match_score: float | None = None
    recorded_by: str | None = None  # None: the kiosk camera; else who corrected by hand
    note: str | None = None
    review: str | None = None  # why someone should check it (e.g. the clock went back); None: fine

    @property
    def manual(self) -> bool:
        """Entered by hand (a correction), not seen by the camera."""
        return self.recorded_by is not None


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def record_of(cls: type[_Record], row: object, **given: Any) -> _Record:
    """The plain record cls (a dataclass) of a row: each field is the row's attribute of that name,
    or the value given for it (e.g. a count the row does not hold)."""
    return cls(**{name: given[name] if name in given else getattr(row, name) for name in _field_names(cls)})


def person_info(p: Person, count: int = 0) -> PersonInfo:
    """The PersonInfo of a row (count: its face templates)."""
    return record_of(PersonInfo, p, template_count=count)


def counted_person_info(s: Session, p: Person) -> PersonInfo:
    """The PersonInfo of a row with its face templates counted in s."""
    return person_info(p, template_count(s, p.id))


def event_info(e: AttendanceEvent) -> EventInfo:
    """The EventInfo of a row."""
    return record_of(EventInfo, e)
