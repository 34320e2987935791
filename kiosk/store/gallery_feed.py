"""The gallery feed of a central server: every change a door must know about a person is a row of
gallery_changes (its version), written in the change's own transaction; changes_since() answers a
door's pull with the full current state of each person changed since a version.

Versions are handed out in commit order: record_gallery_change() takes a transaction-long lock
first (an advisory lock on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers anyway), so a
door that has seen version n can never later miss a change numbered below n.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from kiosk.store.db import Database
from kiosk.store.models import FaceTemplate, GalleryChange, Person

logger = logging.getLogger(__name__)

# Key of the PostgreSQL advisory lock that serialises gallery changes (any fixed 64-bit number).
_GALLERY_LOCK_KEY = 0x6B696F736B67616C  # "kioskgal"


@dataclass(frozen=True)
class GalleryPerson:
    """A recognisable person as a door must hold them; templates: 512-byte float32 LE embeddings."""

    id: int
    employee_id: str
    name: str
    active: bool
    expression_consent: bool
    templates: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class GalleryChanges:
    """A door's pull: people to hold (full state), ids to drop, and the version to remember.

    full: True when the door must replace its whole gallery with `people` (since was 0, or newer
    than anything here: the central was restored or the door points at another central)."""

    version: int
    people: list[GalleryPerson]
    removed: list[int]
    full: bool = False


def record_gallery_change(s: Session, person_id: int, now: datetime) -> None:
    """Add a gallery_changes row for person_id in s (committed with the change it records)."""
    bind = s.get_bind()
    if bind.dialect.name == "postgresql":
        # held until this transaction ends: versions become visible in the order they are numbered
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _GALLERY_LOCK_KEY})
    s.add(GalleryChange(person_id=person_id, at=now))


def gallery_version(db: Database) -> int:
    """The newest gallery version (0: no change recorded yet)."""
    with db.session() as s:
        return int(s.scalar(select(func.max(GalleryChange.version))) or 0)


def changes_since(db: Database, since: int) -> GalleryChanges:
    """What a door holding gallery version `since` must change: every person changed after it in
    full (active, not erased) or in removed (deactivated, erased, deleted), and the newest version.

    since=0 (or since beyond the newest version) is the whole gallery with full=True."""
    if since < 0:
        raise ValueError(f"a gallery version is 0 or more, not {since}")
    with db.session() as s:
        newest = int(s.scalar(select(func.max(GalleryChange.version))) or 0)
        full = since == 0 or since > newest
        if full:
            ids = list(s.scalars(select(Person.id).order_by(Person.id)))
        else:
            ids = sorted(set(s.scalars(
                select(GalleryChange.person_id).where(GalleryChange.version > since))))
        people: list[GalleryPerson] = []
        removed: list[int] = []
        rows = {p.id: p for p in _chunked_people(s, ids)}
        keep = [pid for pid in ids if _recognisable(rows.get(pid))]
        templates = _templates_of(s, keep)
        for pid in ids:
            person = rows.get(pid)
            if person is None or not _recognisable(person):
                if not full:
                    removed.append(pid)
                continue
            people.append(GalleryPerson(person.id, person.employee_id, person.name, person.active,
                                        person.expression_consent, templates.get(pid, [])))
    logger.debug("gallery since %d: version %d, %d people, %d removed", since, newest, len(people), len(removed))
    return GalleryChanges(newest, people, removed, full)


def _recognisable(person: Person | None) -> bool:
    return person is not None and person.active and person.erased_at is None


_CHUNK = 500  # ids per IN (...) list: well within SQLite's and PostgreSQL's parameter limits


def _chunked_people(s: Session, ids: list[int]) -> list[Person]:
    out: list[Person] = []
    for i in range(0, len(ids), _CHUNK):
        out.extend(s.scalars(select(Person).where(Person.id.in_(ids[i:i + _CHUNK]))))
    return out


def _templates_of(s: Session, ids: list[int]) -> dict[int, list[bytes]]:
    """{person id: embeddings oldest first} of the given people."""
    out: dict[int, list[bytes]] = defaultdict(list)
    for i in range(0, len(ids), _CHUNK):
        rows = s.execute(
            select(FaceTemplate.person_id, FaceTemplate.embedding)
            .where(FaceTemplate.person_id.in_(ids[i:i + _CHUNK]))
            .order_by(FaceTemplate.person_id, FaceTemplate.id))
        for pid, blob in rows:
            out[int(pid)].append(bytes(blob))
    return out
