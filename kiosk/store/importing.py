"""A central's intake of a standalone kiosk joining it (`kiosk central join`, docs/central.md "Joining"):
its people (matched by employee id), their templates, leave and audit lines, each stored once.

A person whose employee id the central holds keeps the central's id (a different name is reported as a
conflict, never overwritten; their templates are not added); a new one is created with their templates
and a gallery change. Leave identical to a held row is a repeat; overlapping other leave is a conflict.
An audit line identical in (at, actor, action, target) to a held one is a repeat. Events go through the
door push (kiosk.store.ingest): the same (door, seq) idempotency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from kiosk.errors import InvalidIdentity
from kiosk.identity import clean_employee_id, clean_name
from kiosk.store._base import now_utc
from kiosk.store.db import Database
from kiosk.store.doors import DoorError
from kiosk.store.gallery_feed import record_gallery_change
from kiosk.store.models import AuditEntry, FaceTemplate, Leave, Person
from kiosk.vocabulary import LeaveKind, values

logger = logging.getLogger(__name__)


class InvalidImport(DoorError):
    """A joining kiosk's record the central cannot take (bad employee id, name, day or kind)."""


@dataclass(frozen=True)
class ImportPerson:
    """A standalone kiosk's person: its local id, who they are, templates (512-byte float32 LE each)."""

    local_id: int
    employee_id: str
    name: str
    active: bool
    expression_consent: bool
    templates: list[bytes] = field(default_factory=list)
    embedder: str | None = None


@dataclass(frozen=True)
class ImportLeave:
    """A leave row of a standalone kiosk, by employee id; days inclusive."""

    employee_id: str
    first_day: date
    last_day: date
    kind: str
    recorded_by: str


@dataclass(frozen=True)
class ImportAudit:
    """An audit line of a standalone kiosk (at: aware time)."""

    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None


@dataclass
class ImportResult:
    """What an import did: {local id: central id}, counts, and conflicts (one line each, for a person)."""

    people: dict[int, int] = field(default_factory=dict)
    created: int = 0
    matched: int = 0
    leave_stored: int = 0
    leave_repeated: int = 0
    audit_stored: int = 0
    audit_repeated: int = 0
    conflicts: list[str] = field(default_factory=list)


def import_standalone(db: Database, device_id: str, people: list[ImportPerson], leave: list[ImportLeave],
                      audit: list[ImportAudit], *, now: datetime | None = None) -> ImportResult:
    """Store a joining kiosk's people, leave and audit lines in one transaction (see module docstring)."""
    now = now_utc(now)
    result = ImportResult()
    actor = f"door:{device_id}"
    with db.session() as s:
        for p in people:
            try:
                employee_id, name = clean_employee_id(p.employee_id), clean_name(p.name)
            except InvalidIdentity as exc:
                raise InvalidImport(f"person {p.local_id}: {exc}") from None
            held = s.scalar(select(Person).where(Person.employee_id == employee_id))
            if held is not None:
                result.people[p.local_id] = held.id
                result.matched += 1
                if held.name != name:
                    result.conflicts.append(f"employee {employee_id}: named {name!r} on the kiosk, {held.name!r} "
                                            "on the central (kept)")
                continue
            person = Person(employee_id=employee_id, name=name, active=p.active, created_at=now,
                            expression_consent=p.expression_consent,
                            consent_changed_at=now if p.expression_consent else None,
                            consent_changed_by=actor if p.expression_consent else None)
            s.add(person)
            s.flush()
            for t in p.templates:
                s.add(FaceTemplate(person_id=person.id, embedding=t, created_at=now, embedder=p.embedder,
                                   source=None, quality=None))
            record_gallery_change(s, person.id, now)
            s.add(AuditEntry(at=now, actor=actor, action="person.import", target=f"person:{person.id}",
                             details={"employee_id": employee_id, "templates": len(p.templates)}))
            result.people[p.local_id] = person.id
            result.created += 1
        kinds = values(LeaveKind)
        for item in leave:
            if item.kind not in kinds or item.first_day > item.last_day:
                raise InvalidImport(f"leave of {item.employee_id}: kind must be one of {', '.join(kinds)} "
                                    "and first_day not after last_day")
            pid = s.scalar(select(Person.id).where(Person.employee_id == item.employee_id))
            if pid is None:
                result.conflicts.append(f"leave of {item.employee_id} {item.first_day}..{item.last_day}: "
                                        "no such person on the central (skipped)")
                continue
            rows = s.scalars(select(Leave).where(Leave.person_id == pid, Leave.first_day <= item.last_day,
                                                 Leave.last_day >= item.first_day)).all()
            if any((r.first_day, r.last_day, r.kind) == (item.first_day, item.last_day, item.kind) for r in rows):
                result.leave_repeated += 1
            elif rows:
                result.conflicts.append(f"leave of {item.employee_id} {item.first_day}..{item.last_day} "
                                        f"({item.kind}) overlaps leave held on the central (skipped)")
            else:
                s.add(Leave(person_id=pid, first_day=item.first_day, last_day=item.last_day, kind=item.kind,
                            recorded_by=item.recorded_by[:100], recorded_at=now))
                result.leave_stored += 1
        for a in audit:
            at = now_utc(a.at)
            held_line = s.scalar(select(AuditEntry.id).where(
                AuditEntry.at == at, AuditEntry.actor == a.actor[:100], AuditEntry.action == a.action[:64],
                AuditEntry.target.is_(None) if a.target is None else AuditEntry.target == a.target[:200]))
            if held_line is not None:
                result.audit_repeated += 1
                continue
            s.add(AuditEntry(at=at, actor=a.actor[:100], action=a.action[:64],
                             target=None if a.target is None else a.target[:200],
                             details={**(a.details or {}), "joined_from": device_id}))
            result.audit_stored += 1
    logger.info("door %s joined: %d people created, %d matched, leave %d stored/%d repeated, audit %d/%d, "
                "%d conflicts", device_id, result.created, result.matched, result.leave_stored,
                result.leave_repeated, result.audit_stored, result.audit_repeated, len(result.conflicts))
    return result


def standalone_templates(db: Database) -> dict[int, list[tuple[bytes, str | None]]]:
    """{person id: [(512-byte float32 LE embedding, embedder)]} of every person with templates, oldest first."""
    out: dict[int, list[tuple[bytes, str | None]]] = {}
    with db.session() as s:
        for pid, blob, embedder in s.execute(select(FaceTemplate.person_id, FaceTemplate.embedding,
                                                    FaceTemplate.embedder).order_by(FaceTemplate.id)):
            out.setdefault(int(pid), []).append((bytes(blob), embedder))
    return out


def all_audit(db: Database) -> list[ImportAudit]:
    """Every audit line, oldest first, as a join uploads them."""
    with db.session() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [ImportAudit(at=now_utc(r.at), actor=r.actor, action=r.action, target=r.target, details=r.details)
                for r in rows]
