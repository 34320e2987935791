"""Repository functions: the only queries in the project. They return plain frozen dataclasses.

Every function takes the Database first and commits before returning (attendance writes are
durable on return: WAL with synchronous=FULL). Times in and out are aware UTC datetimes.

Erasure (erase_person): templates, enrolment images, consent history, expression data and
match scores of the person's events are deleted, then the file is VACUUMed and the WAL
truncated so no copy of the bytes remains in the database files; the same rows go from every
upgrade backup beside it (db.scrub_backups), whatever its schema revision. The person's attendance events are
employment records with their own retention (retention.attendance_days), so by default they
and the bare people row (employee id, name, erased_at) stay until purge_expired() removes the
events; the row then goes too. erase_person(keep_events=False) deletes everything at once.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from dataclasses import replace as dataclass_replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kiosk.config import RetentionSettings
from kiosk.errors import DuplicatePerson, InvalidTemplate, LastAdmin, PersonNotFound, StoreError
from kiosk.identity import clean_employee_id, clean_name
from kiosk.store.db import Database, finish_erasure
from kiosk.store.models import (
    EMBEDDING_DIM,
    AttendanceEvent,
    AuditEntry,
    CaptureRequest,
    ConsentChange,
    EnrolmentImage,
    FaceTemplate,
    Leave,
    PendingErasure,
    Person,
    User,
    WebSession,
)

logger = logging.getLogger(__name__)

EVENT_KINDS = ("in", "out", "unknown")
USER_ROLES = ("admin", "manager")
CAPTURES_ACTIVE = ("waiting", "capturing")  # capture requests (store.captures) not finished yet
KEEP_FINISHED_CAPTURES = timedelta(days=1)  # an admin can still read the outcome the next morning
# How far the clock may run ahead of the newest stored event or audit line before the retention purge
# refuses to run: a Pi without a real-time clock can boot years off, and a purge trusting it would
# delete everything. Longer lets a site closed for a long weekend purge on its first day back;
# shorter refuses sooner. A site closed longer purges again after its first new event.
CLOCK_AHEAD_TOLERANCE = timedelta(days=2)
PURGE_REFUSED = "retention.purge_refused"  # audit action of a refusal (not counted as data time)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime given as now")
    return now.astimezone(UTC)


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


@dataclass(frozen=True)
class TemplateInfo:
    """A face template's metadata (the embedding itself only via all_templates/export)."""

    id: int
    person_id: int
    created_at: datetime
    source: str | None
    quality: float | None
    embedder: str | None = None


@dataclass(frozen=True)
class AuditInfo:
    """One audit-log line."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None


@dataclass(frozen=True)
class UserInfo:
    """A web-app account."""

    id: int
    username: str
    password_hash: str
    role: str
    created_at: datetime
    active: bool


@dataclass(frozen=True)
class EraseResult:
    """Counts of what erase_person removed or kept."""

    person_id: int
    templates_deleted: int
    images_deleted: int
    consent_entries_deleted: int
    events_deleted: int
    events_kept: int
    row_deleted: bool
    backups_scrubbed: int = 0  # upgrade backups of the database the person was erased from too


@dataclass(frozen=True)
class PurgeResult:
    """Counts of what purge_expired removed; refused: why it removed nothing (None: it ran)."""

    events_deleted: int
    expression_stripped: int
    images_deleted: int
    people_removed: int
    leave_deleted: int = 0
    refused: str | None = None

    def counts(self) -> dict[str, int]:
        """The counts alone, {field: rows}."""
        return {k: v for k, v in asdict(self).items() if k != "refused"}


def _person_info(p: Person, template_count: int = 0) -> PersonInfo:
    return PersonInfo(
        id=p.id,
        employee_id=p.employee_id,
        name=p.name,
        active=p.active,
        created_at=p.created_at,
        expression_consent=p.expression_consent,
        consent_changed_at=p.consent_changed_at,
        consent_changed_by=p.consent_changed_by,
        erased_at=p.erased_at,
        template_count=template_count,
    )


def _event_info(e: AttendanceEvent) -> EventInfo:
    return EventInfo(
        id=e.id,
        person_id=e.person_id,
        occurred_at=e.occurred_at,
        kind=e.kind,
        device_id=e.device_id,
        expression_label=e.expression_label,
        expression_scores=e.expression_scores,
        expression_confidence=e.expression_confidence,
        match_distance=e.match_distance,
        match_score=e.match_score,
        recorded_by=e.recorded_by,
        note=e.note,
        review=e.review,
    )


def _audit(
    s: Session, actor: str, action: str, target: str | None, details: dict[str, Any] | None,
    now: datetime,
) -> None:
    s.add(AuditEntry(at=now, actor=actor, action=action, target=target, details=details))


def _get(s: Session, person_id: int) -> Person:
    person = s.get(Person, person_id)
    if person is None:
        raise PersonNotFound(f"no person with id {person_id}")
    return person


def _get_unerased(s: Session, person_id: int) -> Person:
    """The person row; StoreError when their biometric data was erased (nothing may be added)."""
    person = _get(s, person_id)
    if person.erased_at is not None:
        raise StoreError(f"{person.name} (person {person_id}) has been erased; enrol them again "
                         "under a new employee id")
    return person


def _template_count(s: Session, person_id: int) -> int:
    return s.scalar(
        select(func.count()).select_from(FaceTemplate).where(FaceTemplate.person_id == person_id)
    ) or 0


# --- people --------------------------------------------------------------------------------


def add_person(
    db: Database,
    employee_id: str,
    name: str,
    *,
    expression_consent: bool = False,
    actor: str = "system",
    now: datetime | None = None,
) -> PersonInfo:
    """Create a person (active); DuplicatePerson if the employee id is taken, InvalidIdentity if unusable."""
    employee_id, name = clean_employee_id(employee_id), clean_name(name)
    now = _now(now)
    with db.session() as s:
        if s.scalar(select(Person.id).where(Person.employee_id == employee_id)) is not None:
            raise DuplicatePerson(f"employee id {employee_id!r} is already enrolled")
        person = Person(
            employee_id=employee_id,
            name=name,
            active=True,
            created_at=now,
            expression_consent=expression_consent,
            consent_changed_at=now if expression_consent else None,
            consent_changed_by=actor if expression_consent else None,
        )
        s.add(person)
        s.flush()
        if expression_consent:
            s.add(ConsentChange(person_id=person.id, at=now, granted=True, changed_by=actor))
        _audit(s, actor, "person.add", f"person:{person.id}",
               {"employee_id": employee_id, "expression_consent": expression_consent}, now)
        return _person_info(person)


def get_person(db: Database, person_id: int) -> PersonInfo:
    """The person with this database id; PersonNotFound otherwise."""
    with db.session() as s:
        return _person_info(_get(s, person_id), _template_count(s, person_id))


def get_person_by_employee_id(db: Database, employee_id: str) -> PersonInfo:
    """The person with this employee id; PersonNotFound otherwise."""
    with db.session() as s:
        person = s.scalar(select(Person).where(Person.employee_id == employee_id.strip()))
        if person is None:
            raise PersonNotFound(f"no person with employee id {employee_id!r}")
        return _person_info(person, _template_count(s, person.id))


def list_people(
    db: Database, *, include_inactive: bool = True, include_erased: bool = False
) -> list[PersonInfo]:
    """People ordered by name, with their template counts."""
    with db.session() as s:
        counts = (
            select(FaceTemplate.person_id, func.count().label("n"))
            .group_by(FaceTemplate.person_id)
            .subquery()
        )
        stmt = select(Person, func.coalesce(counts.c.n, 0)).outerjoin(
            counts, counts.c.person_id == Person.id
        )
        if not include_inactive:
            stmt = stmt.where(Person.active.is_(True))
        if not include_erased:
            stmt = stmt.where(Person.erased_at.is_(None))
        rows = s.execute(stmt.order_by(Person.name, Person.id)).all()
        return [_person_info(p, n) for p, n in rows]


def set_consent(
    db: Database, person_id: int, granted: bool, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Grant or withdraw expression-analysis consent (history kept; withdrawal strips past data)."""
    now = _now(now)
    with db.session() as s:
        person = _get(s, person_id)
        if person.erased_at is not None:
            raise StoreError(f"person {person_id} has been erased")
        stripped = 0
        if person.expression_consent != granted:
            person.expression_consent = granted
            person.consent_changed_at = now
            person.consent_changed_by = actor
            s.add(ConsentChange(person_id=person_id, at=now, granted=granted, changed_by=actor))
            if not granted:
                stripped = _strip_expressions(s, AttendanceEvent.person_id == person_id)
            _audit(s, actor, "person.consent", f"person:{person_id}",
                   {"granted": granted, "expression_stripped": stripped}, now)
        return _person_info(person, _template_count(s, person_id))


def set_active(
    db: Database, person_id: int, active: bool, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Activate or deactivate a person (inactive people are not recognised or reported absent)."""
    now = _now(now)
    with db.session() as s:
        person = _get(s, person_id)
        if person.erased_at is not None and active:
            raise StoreError(f"person {person_id} has been erased; enrol them again instead")
        if person.active != active:
            person.active = active
            _audit(s, actor, "person.activate" if active else "person.deactivate",
                   f"person:{person_id}", None, now)
        return _person_info(person, _template_count(s, person_id))


def rename_person(
    db: Database, person_id: int, name: str, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Correct a person's name (the employee id stays: it is the payroll key); audited."""
    name = clean_name(name)
    now = _now(now)
    with db.session() as s:
        person = _get_unerased(s, person_id)
        if person.name != name:
            _audit(s, actor, "person.rename", f"person:{person_id}", {"from": person.name, "to": name}, now)
            person.name = name
        return _person_info(person, _template_count(s, person_id))


def deactivate(
    db: Database, person_id: int, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Mark a person inactive (templates and events kept)."""
    return set_active(db, person_id, False, actor=actor, now=now)


def _strip_expressions(s: Session, *where: Any) -> int:
    result = s.execute(
        update(AttendanceEvent)
        .where(*where)
        .where(
            AttendanceEvent.expression_label.is_not(None)
            | AttendanceEvent.expression_scores.is_not(None)
            | AttendanceEvent.expression_confidence.is_not(None)
        )
        .values(expression_label=None, expression_scores=None, expression_confidence=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def erase_person(
    db: Database,
    person_id: int,
    *,
    actor: str,
    keep_events: bool = True,
    now: datetime | None = None,
) -> EraseResult:
    """Erase a person's biometric and consent data, then VACUUM (see module docstring)."""
    now = _now(now)
    with db.session() as s:
        person = _get(s, person_id)
        n_templates = s.execute(
            delete(FaceTemplate).where(FaceTemplate.person_id == person_id)
        ).rowcount
        n_images = s.execute(
            delete(EnrolmentImage).where(EnrolmentImage.person_id == person_id)
        ).rowcount
        n_consent = s.execute(
            delete(ConsentChange).where(ConsentChange.person_id == person_id)
        ).rowcount
        # capture requests name the person (no biometric data): none outlive the erasure
        s.execute(delete(CaptureRequest).where(CaptureRequest.employee_id == person.employee_id))
        n_events = s.scalar(
            select(func.count()).select_from(AttendanceEvent)
            .where(AttendanceEvent.person_id == person_id)
        ) or 0
        row_deleted = not keep_events or n_events == 0
        if row_deleted:
            s.execute(delete(AttendanceEvent).where(AttendanceEvent.person_id == person_id))
            s.execute(delete(Leave).where(Leave.person_id == person_id))
            s.delete(person)
            events_deleted, events_kept = n_events, 0
        else:
            s.execute(
                update(AttendanceEvent)
                .where(AttendanceEvent.person_id == person_id)
                .values(expression_label=None, expression_scores=None,
                        expression_confidence=None, match_distance=None, match_score=None)
                .execution_options(synchronize_session=False)
            )
            person.active = False
            person.expression_consent = False
            person.consent_changed_at = None
            person.consent_changed_by = None
            person.erased_at = now
            events_deleted, events_kept = 0, n_events
        employee_id = person.employee_id
        result = EraseResult(person_id, n_templates, n_images, n_consent,
                             events_deleted, events_kept, row_deleted)
        details = asdict(result)
        del details["person_id"], details["backups_scrubbed"]
        _audit(s, actor, "person.erase", f"person:{person_id}", details, now)
        # the second half (VACUUM, backups) is recorded in the same commit, so it is finished later
        # (db.finish_pending_erasures at the next open) if this process dies before it is done
        pending = PendingErasure(person_id=person_id, employee_id=employee_id, with_events=row_deleted,
                                 requested_at=now, requested_by=actor)
        s.add(pending)
        s.flush()
        pending_id = pending.id
    finished = finish_erasure(db, pending_id)
    if finished is not None and finished.backups_scrubbed:
        result = dataclass_replace(result, backups_scrubbed=len(finished.backups_scrubbed))
    logger.info("erased person %s: %s", person_id, result)
    return result


# --- templates and images ------------------------------------------------------------------


def add_templates(
    db: Database,
    person_id: int,
    embeddings: np.ndarray,
    *,
    sources: Sequence[str | None] | None = None,
    qualities: Sequence[float | None] | None = None,
    replace: bool = False,
    embedder: str | None = None,
    actor: str = "system",
    now: datetime | None = None,
) -> list[int]:
    """Store face templates, embeddings (N,128) or (128,) float -> stored float32; returns ids.

    sources are photo file names (any directory part is dropped); replace=True first deletes
    the person's existing templates (re-enrolment); embedder says how they were made.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim == 1:
        emb = emb[None, :]
    if emb.ndim != 2 or emb.shape[1] != EMBEDDING_DIM:
        raise InvalidTemplate(
            f"face templates must have shape (N, {EMBEDDING_DIM}), got {emb.shape}"
        )
    if not np.all(np.isfinite(emb)):
        raise InvalidTemplate("face template contains NaN or infinity")
    n = emb.shape[0]
    sources = list(sources) if sources is not None else [None] * n
    qualities = list(qualities) if qualities is not None else [None] * n
    if len(sources) != n or len(qualities) != n:
        raise InvalidTemplate("sources/qualities must have one entry per template")
    now = _now(now)
    with db.session() as s:
        _get_unerased(s, person_id)
        if replace:
            s.execute(delete(FaceTemplate).where(FaceTemplate.person_id == person_id))
        rows = [
            FaceTemplate(
                person_id=person_id,
                embedding=emb[i].astype("<f4").tobytes(),
                created_at=now,
                source=_basename(sources[i]),
                quality=None if qualities[i] is None else float(qualities[i]),  # type: ignore[arg-type]
                embedder=embedder,
            )
            for i in range(n)
        ]
        s.add_all(rows)
        s.flush()
        _audit(s, actor, "templates.replace" if replace else "templates.add",
               f"person:{person_id}", {"count": n}, now)
        return [r.id for r in rows]


def _basename(source: str | None) -> str | None:
    if source is None:
        return None
    return source.replace("\\", "/").rsplit("/", 1)[-1] or None


def list_templates(db: Database, person_id: int) -> list[TemplateInfo]:
    """Metadata of a person's templates, oldest first."""
    with db.session() as s:
        rows = s.scalars(
            select(FaceTemplate)
            .where(FaceTemplate.person_id == person_id)
            .order_by(FaceTemplate.id)
        ).all()
        return [TemplateInfo(r.id, r.person_id, r.created_at, r.source, r.quality, r.embedder) for r in rows]


def all_templates(db: Database) -> tuple[np.ndarray, np.ndarray]:
    """Templates of active, non-erased people: (person_ids int64 (N,), matrix float32 (N,128))."""
    with db.session() as s:
        rows = s.execute(
            select(FaceTemplate.person_id, FaceTemplate.embedding)
            .join(Person, Person.id == FaceTemplate.person_id)
            .where(Person.active.is_(True), Person.erased_at.is_(None))
            .order_by(FaceTemplate.id)
        ).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.empty((len(rows), EMBEDDING_DIM), dtype=np.float32)
    for i, (_, blob) in enumerate(rows):
        matrix[i] = np.frombuffer(blob, dtype="<f4")
    return ids, matrix


def templates_not_made_by(db: Database, embedder: str | Iterable[str]) -> dict[int, int]:
    """{person id: templates made otherwise (or unknown how)} for active, non-erased people.

    embedder: one embedder id, or every id whose embeddings compare with the current one's.
    """
    ids = [embedder] if isinstance(embedder, str) else list(embedder)
    with db.session() as s:
        rows = s.execute(
            select(FaceTemplate.person_id, func.count())
            .join(Person, Person.id == FaceTemplate.person_id)
            .where(Person.active.is_(True), Person.erased_at.is_(None),
                   FaceTemplate.embedder.not_in(ids) | FaceTemplate.embedder.is_(None))
            .group_by(FaceTemplate.person_id)
        ).all()
    return {int(pid): int(n) for pid, n in rows}


def gallery_signature(db: Database) -> tuple[Any, ...]:
    """A value that changes whenever the recognisable gallery or consent changes.

    Per person: id, name, active, erased, consent, template count, newest template id and time, so a
    re-enrolment with as many photos as before is noticed too (SQLite may reuse freed row ids).
    """
    with db.session() as s:
        templates = {
            row[0]: tuple(row[1:])
            for row in s.execute(
                select(FaceTemplate.person_id, func.count(), func.max(FaceTemplate.id),
                       func.max(FaceTemplate.created_at))
                .group_by(FaceTemplate.person_id)
            )
        }
        people = s.execute(
            select(Person.id, Person.name, Person.active, Person.erased_at, Person.expression_consent)
            .order_by(Person.id)
        ).all()
    return tuple((*person, templates.get(person[0])) for person in people)


def add_enrolment_image(
    db: Database,
    person_id: int,
    image: bytes,
    *,
    source: str | None = None,
    now: datetime | None = None,
) -> int:
    """Store an encoded enrolment photo; call only when retention.keep_enrolment_images is true."""
    now = _now(now)
    with db.session() as s:
        _get(s, person_id)
        row = EnrolmentImage(person_id=person_id, image=bytes(image), created_at=now,
                             source=_basename(source))
        s.add(row)
        s.flush()
        return row.id


def enrolment_images(db: Database, person_id: int) -> list[tuple[str | None, bytes]]:
    """A person's stored enrolment photos as (file name, encoded bytes)."""
    with db.session() as s:
        rows = s.execute(
            select(EnrolmentImage.source, EnrolmentImage.image)
            .where(EnrolmentImage.person_id == person_id).order_by(EnrolmentImage.id)
        ).all()
        return [(r[0], r[1]) for r in rows]


# --- attendance events ---------------------------------------------------------------------


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
    if kind not in EVENT_KINDS:
        raise StoreError(f"event kind must be one of {EVENT_KINDS}, got {kind!r}")
    if (person_id is None) != (kind == "unknown"):
        raise StoreError("kind 'unknown' is for unknown faces (person_id None) only")
    at = _now(at)
    with db.session() as s:
        consent = False
        if person_id is not None:
            person = _get(s, person_id)
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
        return _event_info(event)


def _newest_event_time(s: Session, person_id: int | None = None) -> datetime | None:
    """occurred_at (aware UTC) of the newest stored event (of person_id when given), or None."""
    stmt = select(func.max(AttendanceEvent.occurred_at))
    if person_id is not None:
        stmt = stmt.where(AttendanceEvent.person_id == person_id)
    return s.scalar(stmt)


def _clock_went_back(s: Session, person_id: int | None, at: datetime) -> str | None:
    """Why an event at `at` needs review (it is older than the person's latest or the newest event
    stored: the clock went back, so an 'out' may precede its 'in'), or None."""
    for whose, newest in (("this person's latest", _newest_event_time(s, person_id) if person_id else None),
                          ("the newest stored", _newest_event_time(s))):
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
            AttendanceEvent.occurred_at >= _now(utc_from),
            AttendanceEvent.occurred_at < _now(utc_to),
        )
        if person_id is not None:
            stmt = stmt.where(AttendanceEvent.person_id == person_id)
        rows = s.scalars(stmt.order_by(AttendanceEvent.occurred_at, AttendanceEvent.id)).all()
        return [_event_info(e) for e in rows]


def local_day_bounds(day: date, tz: ZoneInfo | str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day as aware UTC datetimes (23 or 25 h across DST)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def last_event_for(
    db: Database, person_id: int, day: date | None = None, tz: ZoneInfo | str = "UTC"
) -> EventInfo | None:
    """The person's latest event (on local `day` in zone tz when given), or None."""
    with db.session() as s:
        stmt = select(AttendanceEvent).where(AttendanceEvent.person_id == person_id)
        if day is not None:
            start, end = local_day_bounds(day, tz)
            stmt = stmt.where(
                AttendanceEvent.occurred_at >= start, AttendanceEvent.occurred_at < end
            )
        row = s.scalars(
            stmt.order_by(AttendanceEvent.occurred_at.desc(), AttendanceEvent.id.desc()).limit(1)
        ).first()
        return None if row is None else _event_info(row)


# --- audit ---------------------------------------------------------------------------------


def audit(
    db: Database,
    actor: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Append an audit-log line (never put biometric data in details)."""
    with db.session() as s:
        _audit(s, actor, action, target, details, _now(now))


def list_audit(
    db: Database, *, target: str | None = None, limit: int = 100
) -> list[AuditInfo]:
    """Newest audit lines first (optionally only those about target, e.g. "person:3")."""
    with db.session() as s:
        stmt = select(AuditEntry)
        if target is not None:
            stmt = stmt.where(AuditEntry.target == target)
        rows = s.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)).all()
        return [AuditInfo(r.id, r.at, r.actor, r.action, r.target, r.details) for r in rows]


# --- retention -----------------------------------------------------------------------------


def _newest_data_time(s: Session) -> datetime | None:
    """The newest time the data itself holds (events, audit lines other than purge refusals), or None."""
    newest_audit = s.scalar(select(func.max(AuditEntry.at)).where(AuditEntry.action != PURGE_REFUSED))
    times = [t for t in (_newest_event_time(s), newest_audit) if t is not None]
    return max(times) if times else None


def _clock_ahead(now: datetime, newest: datetime | None) -> str | None:
    """Why a purge at `now` must not run (the clock is far ahead of the newest stored time), or None."""
    if newest is None or now <= newest + CLOCK_AHEAD_TOLERANCE:
        return None
    return (f"retention purge refused: the clock says {now:%Y-%m-%d %H:%M} UTC, "
            f"{(now - newest).days} days after the newest stored event or audit line "
            f"({newest:%Y-%m-%d %H:%M} UTC; more than {CLOCK_AHEAD_TOLERANCE.days} days allowed). "
            "Check the system clock (timedatectl); nothing was deleted")


def purge_expired(
    db: Database, now: datetime, retention: RetentionSettings, *, actor: str = "system"
) -> PurgeResult:
    """Apply retention: delete old events, strip old expression data, drop kept photos if
    not allowed, remove erased people with no events left; VACUUM when anything went.

    Never trusts a clock far ahead of the data: when now is more than CLOCK_AHEAD_TOLERANCE after the
    newest stored event or audit line, nothing is deleted and the result says why (refused; also
    logged and audit-logged). Cut-offs count back from min(now, newest stored time + tolerance).
    """
    now = _now(now)
    with db.session() as s:
        newest = _newest_data_time(s)
        refused = _clock_ahead(now, newest)
        if refused:
            _audit(s, actor, PURGE_REFUSED, None, {"reason": refused}, now)
    if refused:
        logger.warning("%s", refused)
        return PurgeResult(0, 0, 0, 0, 0, refused=refused)
    reference = now if newest is None else min(now, newest + CLOCK_AHEAD_TOLERANCE)
    events_cutoff = reference - timedelta(days=retention.attendance_days)
    expr_cutoff = reference - timedelta(days=retention.expression_days)
    with db.session() as s:
        n_events = s.execute(
            delete(AttendanceEvent).where(AttendanceEvent.occurred_at < events_cutoff)
        ).rowcount or 0
        # leave follows the events' retention, counted from its last (local) day
        n_leave = s.execute(delete(Leave).where(Leave.last_day < events_cutoff.date())).rowcount or 0
        n_stripped = _strip_expressions(s, AttendanceEvent.occurred_at < expr_cutoff)
        n_images = 0
        if not retention.keep_enrolment_images:
            n_images = s.execute(delete(EnrolmentImage)).rowcount or 0
        has_events = select(AttendanceEvent.id).where(AttendanceEvent.person_id == Person.id)
        has_leave = select(Leave.id).where(Leave.person_id == Person.id)
        n_people = s.execute(
            delete(Person).where(Person.erased_at.is_not(None), ~has_events.exists(), ~has_leave.exists())
            .execution_options(synchronize_session=False)
        ).rowcount or 0
        s.execute(delete(CaptureRequest).where(CaptureRequest.status.not_in(CAPTURES_ACTIVE),
                                               CaptureRequest.finished_at < now - KEEP_FINISHED_CAPTURES))
        result = PurgeResult(n_events, n_stripped, n_images, n_people, n_leave)
        if any(result.counts().values()):
            _audit(s, actor, "retention.purge", None, result.counts(), now)
    if any(result.counts().values()):
        db.vacuum()
    logger.info("retention purge: %s", result)
    return result


# --- subject access ------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_person(db: Database, person_id: int) -> dict[str, Any]:
    """Everything held about a person, JSON-ready (templates as float lists, photos base64)."""
    with db.session() as s:
        p = _get(s, person_id)
        templates = s.scalars(
            select(FaceTemplate)
            .where(FaceTemplate.person_id == person_id)
            .order_by(FaceTemplate.id)
        ).all()
        images = s.scalars(
            select(EnrolmentImage).where(EnrolmentImage.person_id == person_id)
            .order_by(EnrolmentImage.id)
        ).all()
        consent = s.scalars(
            select(ConsentChange).where(ConsentChange.person_id == person_id)
            .order_by(ConsentChange.id)
        ).all()
        events = s.scalars(
            select(AttendanceEvent).where(AttendanceEvent.person_id == person_id)
            .order_by(AttendanceEvent.occurred_at)
        ).all()
        leave = s.scalars(select(Leave).where(Leave.person_id == person_id).order_by(Leave.first_day)).all()
        audits = s.scalars(
            select(AuditEntry).where(AuditEntry.target == f"person:{person_id}")
            .order_by(AuditEntry.id)
        ).all()
        return {
            "person": {
                "id": p.id, "employee_id": p.employee_id, "name": p.name, "active": p.active,
                "created_at": _iso(p.created_at), "expression_consent": p.expression_consent,
                "consent_changed_at": _iso(p.consent_changed_at),
                "consent_changed_by": p.consent_changed_by, "erased_at": _iso(p.erased_at),
            },
            "face_templates": [
                {"id": t.id, "created_at": _iso(t.created_at), "source": t.source,
                 "quality": t.quality,
                 "embedding": np.frombuffer(t.embedding, dtype="<f4").astype(float).tolist()}
                for t in templates
            ],
            "enrolment_images": [
                {"id": i.id, "created_at": _iso(i.created_at), "source": i.source,
                 "image_base64": base64.b64encode(i.image).decode("ascii")}
                for i in images
            ],
            "consent_history": [
                {"at": _iso(c.at), "granted": c.granted, "changed_by": c.changed_by}
                for c in consent
            ],
            "attendance_events": [
                {k: (_iso(v) if isinstance(v, datetime) else v)
                 for k, v in asdict(_event_info(e)).items()}
                for e in events
            ],
            "leave": [
                {"id": x.id, "first_day": x.first_day.isoformat(), "last_day": x.last_day.isoformat(),
                 "kind": x.kind, "recorded_by": x.recorded_by, "recorded_at": _iso(x.recorded_at)}
                for x in leave
            ],
            "audit_log": [
                {"at": _iso(a.at), "actor": a.actor, "action": a.action, "details": a.details}
                for a in audits
            ],
        }


# --- web users -----------------------------------------------------------------------------


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, u.password_hash, u.role, u.created_at, u.active)


def add_user(
    db: Database, username: str, password_hash: str, role: str, *, actor: str = "system",
    now: datetime | None = None,
) -> UserInfo:
    """Create a web account; password_hash must already be hashed by the caller."""
    if role not in USER_ROLES:
        raise StoreError(f"role must be one of {USER_ROLES}, got {role!r}")
    username = username.strip()
    if not username:
        raise StoreError("username must not be empty")
    now = _now(now)
    with db.session() as s:
        # "Admin" beside "admin" would be a look-alike actor in the audit log (and share a sign-in throttle)
        taken = s.scalar(select(User.username).where(func.lower(User.username) == username.lower()))
        if taken is not None:
            raise DuplicatePerson(f"username {username!r} is already taken"
                                  + ("" if taken == username else f" (as {taken!r}; names differ in more than case)"))
        user = User(username=username, password_hash=password_hash, role=role,
                    created_at=now, active=True)
        s.add(user)
        s.flush()
        _audit(s, actor, "user.add", f"user:{username}", {"role": role}, now)
        return _user_info(user)


def get_user(db: Database, username: str) -> UserInfo | None:
    """The account with this username, or None."""
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        return None if user is None else _user_info(user)


def list_users(db: Database) -> list[UserInfo]:
    """All web accounts by username."""
    with db.session() as s:
        return [_user_info(u) for u in s.scalars(select(User).order_by(User.username)).all()]


def people_by_id(db: Database, ids: Iterable[int] | None = None) -> dict[int, PersonInfo]:
    """{id: PersonInfo} for the given ids (all people, erased included, when None)."""
    with db.session() as s:
        stmt = select(Person)
        if ids is not None:
            stmt = stmt.where(Person.id.in_(list(ids)))
        return {p.id: _person_info(p) for p in s.scalars(stmt).all()}


# --- web app: accounts and searches (kiosk/web) ------------------------------------------


def get_user_by_id(db: Database, user_id: int) -> UserInfo | None:
    """The account with this id, or None."""
    with db.session() as s:
        user = s.get(User, user_id)
        return None if user is None else _user_info(user)


def _require_user(s: Session, username: str) -> User:
    """The account row with this username; StoreError when there is none."""
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise StoreError(f"no user {username!r}")
    return user


def set_user_active(
    db: Database, username: str, active: bool, *, actor: str, now: datetime | None = None
) -> UserInfo:
    """Enable or disable a web account (a disabled account cannot log in; its sessions end)."""
    now = _now(now)
    with db.session() as s:
        user = _require_user(s, username)
        if not active:
            _keep_an_admin(s, user, "disable")
            _end_user_sessions(s, user.id)
        if user.active != active:
            user.active = active
            _audit(s, actor, "user.enable" if active else "user.disable", f"user:{username}",
                   None, now)
        return _user_info(user)


def set_user_password(
    db: Database, username: str, password_hash: str, *, actor: str, now: datetime | None = None
) -> UserInfo:
    """Replace an account's password hash (hashed by the caller); its sessions end."""
    now = _now(now)
    with db.session() as s:
        user = _require_user(s, username)
        user.password_hash = password_hash
        _end_user_sessions(s, user.id)
        _audit(s, actor, "user.password", f"user:{username}", None, now)
        return _user_info(user)


def set_user_role(
    db: Database, username: str, role: str, *, actor: str, now: datetime | None = None
) -> UserInfo:
    """Make an account admin or manager (never the last active admin a manager); its sessions end."""
    if role not in USER_ROLES:
        raise StoreError(f"role must be one of {', '.join(USER_ROLES)}, not {role!r}")
    now = _now(now)
    with db.session() as s:
        user = _require_user(s, username)
        if user.role != role:
            if role != "admin":
                _keep_an_admin(s, user, "make a manager")
            _audit(s, actor, "user.role", f"user:{username}", {"from": user.role, "to": role}, now)
            user.role = role
            _end_user_sessions(s, user.id)
        return _user_info(user)


def remove_user(db: Database, username: str, *, actor: str, now: datetime | None = None) -> None:
    """Delete an account and its sessions (never the last active admin); audited."""
    now = _now(now)
    with db.session() as s:
        user = _require_user(s, username)
        _keep_an_admin(s, user, "delete")
        _end_user_sessions(s, user.id)
        _audit(s, actor, "user.remove", f"user:{username}", {"role": user.role}, now)
        s.delete(user)


def _keep_an_admin(s: Session, user: User, what: str) -> None:
    """LastAdmin when user is the only active admin (so it must stay one)."""
    if user.role != "admin" or not user.active:
        return
    others = s.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True), User.id != user.id)) or 0
    if others == 0:
        raise LastAdmin(f"cannot {what} {user.username}: it is the last active admin account; "
                        "make another admin first")


def _end_user_sessions(s: Session, user_id: int) -> None:
    """Delete every web session of the account (inside the caller's transaction)."""
    s.execute(delete(WebSession).where(WebSession.user_id == user_id))


def _token_id(token: str) -> str:
    """The stored id of a session token: its SHA-256 (hex); the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, user_id: int, max_age: timedelta, *, now: datetime | None = None) -> str:
    """A new random session token for the account (sessions older than max_age are dropped)."""
    now = _now(now)
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.created_at < now - max_age))
        s.add(WebSession(id=_token_id(token), user_id=user_id, created_at=now))
    return token


def session_user(
    db: Database, token: str, max_age: timedelta, *, now: datetime | None = None
) -> UserInfo | None:
    """The active account of a live session token, or None (unknown, ended, expired, disabled)."""
    now = _now(now)
    with db.session() as s:
        row = s.get(WebSession, _token_id(token))
        if row is None or row.created_at < now - max_age:
            return None
        user = s.get(User, row.user_id)
        return _user_info(user) if user is not None and user.active else None


def end_session(db: Database, token: str) -> None:
    """End one web session (logout): its token stops working everywhere."""
    with db.session() as s:
        s.execute(delete(WebSession).where(WebSession.id == _token_id(token)))


def count_admins(db: Database) -> int:
    """Number of active admin accounts."""
    with db.session() as s:
        return s.scalar(
            select(func.count()).select_from(User)
            .where(User.role == "admin", User.active.is_(True))
        ) or 0


def _like(text_: str) -> str:
    escaped = text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_people(
    db: Database, text_: str, *, include_inactive: bool = True, limit: int = 500
) -> list[PersonInfo]:
    """People (not erased) whose name or employee id contains text_ (case-insensitive)."""
    pattern = _like(text_.strip())
    with db.session() as s:
        stmt = select(Person).where(
            Person.erased_at.is_(None),
            Person.name.ilike(pattern, escape="\\") | Person.employee_id.ilike(pattern, escape="\\"),
        )
        if not include_inactive:
            stmt = stmt.where(Person.active.is_(True))
        rows = s.scalars(stmt.order_by(Person.name, Person.id).limit(limit)).all()
        return [_person_info(p, _template_count(s, p.id)) for p in rows]


def search_audit(db: Database, text_: str = "", *, limit: int = 200) -> list[AuditInfo]:
    """Newest audit lines first whose actor, action or target contains text_ (all when empty)."""
    with db.session() as s:
        stmt = select(AuditEntry)
        if text_.strip():
            pattern = _like(text_.strip())
            stmt = stmt.where(
                AuditEntry.actor.ilike(pattern, escape="\\")
                | AuditEntry.action.ilike(pattern, escape="\\")
                | AuditEntry.target.ilike(pattern, escape="\\")
            )
        rows = s.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)).all()
        return [AuditInfo(r.id, r.at, r.actor, r.action, r.target, r.details) for r in rows]


def latest_events(db: Database, limit: int = 20) -> list[EventInfo]:
    """The newest events (any kind), newest first."""
    with db.session() as s:
        rows = s.scalars(
            select(AttendanceEvent)
            .order_by(AttendanceEvent.occurred_at.desc(), AttendanceEvent.id.desc()).limit(limit)
        ).all()
        return [_event_info(e) for e in rows]
