"""People: enrol a person's row, look people up, consent, (de)activation and renaming; all audited.

Every function takes the Database (or a Transaction) first and commits before returning; times
are aware UTC. Erasure is in kiosk.store.erasure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select

from kiosk.errors import DuplicatePerson, PersonNotFound, StoreError
from kiosk.identity import clean_employee_id, clean_name
from kiosk.store._base import (
    PersonInfo,
    counted_person_info,
    like_pattern,
    now_utc,
    person_info,
    person_row,
    strip_expressions,
    unerased_person_row,
    write_audit,
)
from kiosk.store.db import Database
from kiosk.store.erasure import withdraw_consent_in_backups
from kiosk.store.gallery_feed import record_gallery_change
from kiosk.store.models import AttendanceEvent, ConsentChange, FaceTemplate, Person

logger = logging.getLogger(__name__)


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
    now = now_utc(now)
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
        write_audit(s, actor, "person.add", f"person:{person.id}",
                    {"employee_id": employee_id, "expression_consent": expression_consent}, now)
        record_gallery_change(s, person.id, now)
        return person_info(person)


def get_person(db: Database, person_id: int) -> PersonInfo:
    """The person with this database id; PersonNotFound otherwise."""
    with db.session() as s:
        return counted_person_info(s, person_row(s, person_id))


def get_person_by_employee_id(db: Database, employee_id: str) -> PersonInfo:
    """The person with this employee id; PersonNotFound otherwise."""
    with db.session() as s:
        person = s.scalar(select(Person).where(Person.employee_id == employee_id.strip()))
        if person is None:
            raise PersonNotFound(f"no person with employee id {employee_id!r}")
        return counted_person_info(s, person)


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
        return [person_info(p, n) for p, n in rows]


def people_by_id(db: Database, ids: Iterable[int] | None = None) -> dict[int, PersonInfo]:
    """{id: PersonInfo} for the given ids (all people, erased included, when None)."""
    with db.session() as s:
        stmt = select(Person)
        if ids is not None:
            stmt = stmt.where(Person.id.in_(list(ids)))
        return {p.id: person_info(p) for p in s.scalars(stmt).all()}


def search_people(
    db: Database, text_: str, *, include_inactive: bool = True, limit: int = 500
) -> list[PersonInfo]:
    """People (not erased) whose name or employee id contains text_ (case-insensitive)."""
    pattern = like_pattern(text_.strip())
    with db.session() as s:
        stmt = select(Person).where(
            Person.erased_at.is_(None),
            Person.name.ilike(pattern, escape="\\") | Person.employee_id.ilike(pattern, escape="\\"),
        )
        if not include_inactive:
            stmt = stmt.where(Person.active.is_(True))
        rows = s.scalars(stmt.order_by(Person.name, Person.id).limit(limit)).all()
        return [counted_person_info(s, p) for p in rows]


def set_consent(
    db: Database, person_id: int, granted: bool, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Grant or withdraw expression-analysis consent (history kept; withdrawal strips past data, in the SQLite
    file's upgrade backups too: erasure.withdraw_consent_in_backups, after the commit)."""
    now = now_utc(now)
    with db.session() as s:
        person = person_row(s, person_id)
        if person.erased_at is not None:
            raise StoreError(f"person {person_id} has been erased")
        stripped = 0
        if person.expression_consent != granted:
            person.expression_consent = granted
            person.consent_changed_at = now
            person.consent_changed_by = actor
            s.add(ConsentChange(person_id=person_id, at=now, granted=granted, changed_by=actor))
            if not granted:
                stripped = strip_expressions(s, AttendanceEvent.person_id == person_id)
            write_audit(s, actor, "person.consent", f"person:{person_id}",
                        {"granted": granted, "expression_stripped": stripped}, now)
            record_gallery_change(s, person_id, now)
        info = counted_person_info(s, person)
    # also when consent was withdrawn already (before backups were reached, say): nothing changes twice
    if not granted and db.path is not None:  # PostgreSQL has no backups beside it
        withdraw_consent_in_backups(db.path, person_id, info.employee_id)
    return info


def set_active(
    db: Database, person_id: int, active: bool, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Activate or deactivate a person (inactive people are not recognised or reported absent)."""
    now = now_utc(now)
    with db.session() as s:
        person = person_row(s, person_id)
        if person.erased_at is not None and active:
            raise StoreError(f"person {person_id} has been erased; enrol them again instead")
        if person.active != active:
            person.active = active
            write_audit(s, actor, "person.activate" if active else "person.deactivate",
                        f"person:{person_id}", None, now)
            record_gallery_change(s, person_id, now)
        return counted_person_info(s, person)


def deactivate(
    db: Database, person_id: int, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Mark a person inactive (templates and events kept)."""
    return set_active(db, person_id, False, actor=actor, now=now)


def rename_person(
    db: Database, person_id: int, name: str, *, actor: str, now: datetime | None = None
) -> PersonInfo:
    """Correct a person's name (the employee id stays: it is the payroll key); audited."""
    name = clean_name(name)
    now = now_utc(now)
    with db.session() as s:
        person = unerased_person_row(s, person_id)
        if person.name != name:
            write_audit(s, actor, "person.rename", f"person:{person_id}", {"from": person.name, "to": name}, now)
            person.name = name
            record_gallery_change(s, person_id, now)
        return counted_person_info(s, person)
