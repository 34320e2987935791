"""A door's side of the central (role: door): its events as the outbox, the gallery as a cache, its sync state.

The door's own event id is the sequence number it pushes (events_after / event_backlog read them in id
order). apply_gallery writes a gallery answer of the central in one transaction, with the central's
person ids as the local ones; a removed person's templates, photos and consent history are deleted and
the file vacuumed; then every upgrade backup beside it follows (removed people scrubbed, local people replaced
by the central's unenrolled, withdrawn consent stripped: erasure.py), before the caller stores the new version.

The sync state (pushed_seq, gallery_version and who the door is on the central) lives in a small JSON
file beside the database, central_sync.json, replaced atomically (fsync, rename): a stale copy after a
power cut only makes the door push again what the central skips as repeats, or fetch a gallery it has.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from kiosk.atomic_write import replace_file
from kiosk.identity import clean_employee_id, clean_name
from kiosk.store import sqlite
from kiosk.store._base import (
    EVENT_EXPRESSION_AND_MATCH_COLUMNS,
    EventInfo,
    changed_rows,
    event_info,
    now_utc,
    strip_expressions,
    write_audit,
)
from kiosk.store.db import Database, refuse_transaction
from kiosk.store.erasure import scrub_backups, unenrol_in_backups, withdraw_consent_in_backups
from kiosk.store.models import (
    AttendanceEvent,
    ConsentChange,
    EnrolmentImage,
    FaceTemplate,
    Person,
)
from kiosk.vision.embedding import EMBEDDING_SIZE

logger = logging.getLogger(__name__)

SYNC_STATE_NAME = "central_sync.json"
"""The sync state's file name, beside the database."""
CENTRAL_ACTOR = "central"
"""Who the door's audit lines name for changes that came from the central."""


@dataclass(frozen=True)
class CachedPerson:
    """A person as the central sends them to a door: central id, identity, flags, templates (N,128) float32."""

    id: int
    employee_id: str
    name: str
    active: bool
    expression_consent: bool
    templates: npt.NDArray[np.float32]


@dataclass(frozen=True)
class GalleryApplied:
    """What apply_gallery changed: people written, people removed, templates written and deleted."""

    people: int
    removed: int
    templates_added: int
    templates_deleted: int
    backups_scrubbed: int = 0


@dataclass(frozen=True)
class SyncState:
    """The door's sync state: the highest seq the central acknowledged (pushed_at: that event's time, ISO
    text, to notice a database replaced under the door), the gallery version applied, the enrolment
    (device_id, name, site, url, enrolled_at ISO text) from `kiosk central enrol`, and conflict: why the
    central refused this door's numbering (409 seq_conflict; pushing stops until the door enrols again)."""

    pushed_seq: int = 0
    gallery_version: int = 0
    pushed_at: str | None = None
    conflict: str | None = None
    device_id: str | None = None
    name: str | None = None
    site: str | None = None
    url: str | None = None
    enrolled_at: str | None = None


def sync_state_path(database_path: Path | str) -> Path:
    """Where the sync state of the database at database_path lives (beside it)."""
    return Path(database_path).resolve().parent / SYNC_STATE_NAME


def read_sync_state(database_path: Path | str) -> SyncState:
    """The stored sync state; defaults when there is none. An unreadable file is logged and read as the
    defaults: pushing from 0 and fetching the whole gallery are both safe (the central skips repeats)."""
    path = sync_state_path(database_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SyncState()
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s (%s): pushing from the first event and fetching the whole gallery", path, exc)
        return SyncState()
    if not isinstance(data, dict):
        logger.warning("%s is not a JSON object: starting the sync afresh", path)
        return SyncState()
    values: dict[str, Any] = {}
    for f in fields(SyncState):
        value = data.get(f.name)
        if f.name in ("pushed_seq", "gallery_version"):
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                values[f.name] = value
        elif isinstance(value, str):
            values[f.name] = value
    return SyncState(**values)


def write_sync_state(database_path: Path | str, state: SyncState) -> None:
    """Replace the sync state atomically (temp file, fsync, rename, fsync of the folder); OSError if refused."""
    path = sync_state_path(database_path)
    replace_file(path, json.dumps(asdict(state), indent=1).encode("utf-8"), mode=0o600, sync_folder=True)


def events_after(db: Database, seq: int, limit: int) -> list[EventInfo]:
    """Up to limit events with id > seq, oldest id first (the door's outbox, in push order)."""
    with db.session() as s:
        rows = s.scalars(select(AttendanceEvent).where(AttendanceEvent.id > seq)
                         .order_by(AttendanceEvent.id).limit(limit)).all()
        return [event_info(r) for r in rows]


def event_backlog(db: Database, seq: int) -> tuple[int, int]:
    """(events with id > seq, the highest event id or 0): what the central has not acknowledged yet."""
    with db.session() as s:
        waiting = s.scalar(select(func.count()).select_from(AttendanceEvent).where(AttendanceEvent.id > seq)) or 0
        newest = s.scalar(select(func.max(AttendanceEvent.id))) or 0
    return int(waiting), int(newest)


def apply_gallery(
    db: Database,
    people: list[CachedPerson],
    removed: list[int],
    *,
    embedder: str | None,
    full: bool = False,
    pushed_seq: int = 0,
    now: datetime | None = None,
) -> GalleryApplied:
    """Write a gallery answer into the door's cache in one transaction, then VACUUM if anything was removed.

    people: the full state of each person (id = the central's id; templates replace theirs); removed: ids
    whose templates, photos and consent history go (their row stays, inactive, for the events that name
    them; the match and expression data of their events already pushed, id <= pushed_seq, go too).
    full: the answer is the whole gallery (since=0), so everyone cached but not in it is removed as well.
    Commits and VACUUMs by itself: refused inside db.transaction().
    """
    refuse_transaction(db, "apply_gallery")
    now = now_utc(now)
    for person in people:
        if person.templates.ndim != 2 or person.templates.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"person {person.id}: templates must be (N, {EMBEDDING_SIZE}) float32")
    listed = {p.id for p in people}
    gone_ids = set(removed) - listed
    with db.transaction() as tx, tx.session() as s:
        if full:
            gone_ids |= set(s.scalars(select(Person.id).where(Person.id.not_in(listed)))) if listed else \
                set(s.scalars(select(Person.id)))
        added, renamed, withdrawn = _write_people(s, people, embedder, now)
        deleted = 0
        for pid in sorted(gone_ids):
            deleted += _remove_person(s, pid, pushed_seq)
        write_audit(s, CENTRAL_ACTOR, "door.gallery", None,
                    {"people": len(people), "removed": len(gone_ids), "full": full}, now)
    scrubbed = 0
    if gone_ids or renamed:  # even when nothing was left to delete: a VACUUM refused last time is done now
        db.vacuum()
    if db.path is not None:  # an SQLite file (a door's cache always is): its upgrade backups too
        scrubbed = _reach_backups(db, db.path, gone_ids, renamed, withdrawn)
    result = GalleryApplied(len(people), len(gone_ids), added, deleted, scrubbed)
    logger.info("gallery from the central applied: %s", result)
    return result


def _chunks(values: list[Any], size: int = 500) -> list[list[Any]]:
    """values in slices small enough for one IN (...) each."""
    return [values[i:i + size] for i in range(0, len(values), size)]


def _reach_backups(db: Database, path: Path, gone_ids: set[int], renamed: list[tuple[int, str]],
                   withdrawn: list[tuple[int, str]]) -> int:
    """Make the upgrade backups of the door's file at path follow what apply_gallery did (erasure.py): removed
    people scrubbed, local people replaced by the central's unenrolled, withdrawn consent stripped; the number
    of (backup, person) changes."""
    if not sqlite.backups_of(path):
        return 0
    changed = 0
    if gone_ids:
        with db.session() as s:
            employee_ids = {pid: eid for pid, eid in
                            s.execute(select(Person.id, Person.employee_id).where(Person.id.in_(gone_ids)))}
        for pid in sorted(gone_ids):
            changed += len(scrub_backups(path, pid, employee_ids.get(pid, ""), delete_events=False))
    for pid, employee_id in renamed:
        changed += len(unenrol_in_backups(path, pid, employee_id))
    for pid, employee_id in withdrawn:
        changed += len(withdraw_consent_in_backups(path, pid, employee_id))
    return changed


def _write_people(s: Session, people: list[CachedPerson], embedder: str | None,
                  now: datetime) -> tuple[int, list[tuple[int, str]], list[tuple[int, str]]]:
    """Insert or update people with the central's ids and replace their templates; (templates written,
    [(id, employee id)] of the local rows renamed, of the people whose consent was withdrawn).

    A local row that holds one of their employee ids but is not in the answer (a person enrolled here
    before the door joined) is deactivated, loses its templates and is renamed <employee id>~<its id>.
    """
    if not people:
        return 0, [], []
    wanted = {p.id: (clean_employee_id(p.employee_id), clean_name(p.name)) for p in people}
    ids = list(wanted)
    rows: dict[int, Person] = {r.id: r for chunk in _chunks(ids)
                               for r in s.scalars(select(Person).where(Person.id.in_(chunk)))}
    holders = {eid: pid for chunk in _chunks([e for e, _ in wanted.values()])
               for pid, eid in s.execute(select(Person.id, Person.employee_id).where(Person.employee_id.in_(chunk)))}
    renamed: list[tuple[int, str]] = []
    for eid, holder in holders.items():
        if holder not in wanted:
            logger.warning("employee id %s comes from the central; local person %s held it: deactivated, renamed "
                           "%s~%s", eid, holder, eid, holder)
            _remove_person(s, holder, 0)
            s.execute(update(Person).where(Person.id == holder).values(employee_id=f"{eid}~{holder}")
                      .execution_options(synchronize_session=False))
            renamed.append((holder, f"{eid}~{holder}"))
    moving = [r for r in rows.values() if r.employee_id != wanted[r.id][0]]
    for row in moving:  # free the old ids first: two people may swap employee ids in one answer
        row.employee_id = f"~{row.id}~"
    s.flush()
    consent_changed: list[CachedPerson] = []
    for p in people:
        employee_id, name = wanted[p.id]
        row = rows.get(p.id) or Person(id=p.id, employee_id=employee_id, name=name, active=p.active,
                                       created_at=now, expression_consent=False)
        if p.id not in rows:
            s.add(row)
        row.employee_id, row.name, row.active, row.erased_at = employee_id, name, p.active, None
        if row.expression_consent != p.expression_consent:
            row.expression_consent = p.expression_consent
            row.consent_changed_at, row.consent_changed_by = now, CENTRAL_ACTOR
            consent_changed.append(p)
    s.flush()
    s.add_all([ConsentChange(person_id=p.id, at=now, granted=p.expression_consent, changed_by=CENTRAL_ACTOR)
               for p in consent_changed])
    withdrawn = [p.id for p in consent_changed if not p.expression_consent]
    for chunk in _chunks(withdrawn):
        strip_expressions(s, AttendanceEvent.person_id.in_(chunk))
    for chunk in _chunks(ids):
        s.execute(delete(FaceTemplate).where(FaceTemplate.person_id.in_(chunk)))
    templates = [{"person_id": p.id, "embedding": t.tobytes(), "created_at": now, "source": None, "quality": None,
                  "embedder": embedder}
                 for p in people if p.active for t in np.asarray(p.templates, dtype="<f4")]
    if templates:
        s.execute(insert(FaceTemplate), templates)
    return len(templates), renamed, [(p.id, wanted[p.id][0]) for p in consent_changed if not p.expression_consent]


def _remove_person(s: Session, person_id: int, pushed_seq: int) -> int:
    """Delete a person's templates, photos and consent history, deactivate the row; templates deleted."""
    row = s.get(Person, person_id)
    if row is None:
        return 0
    n = changed_rows(s, delete(FaceTemplate).where(FaceTemplate.person_id == person_id))
    s.execute(delete(EnrolmentImage).where(EnrolmentImage.person_id == person_id))
    s.execute(delete(ConsentChange).where(ConsentChange.person_id == person_id))
    row.active, row.expression_consent = False, False
    row.consent_changed_at = row.consent_changed_by = None
    s.execute(update(AttendanceEvent)
              .where(AttendanceEvent.person_id == person_id, AttendanceEvent.id <= pushed_seq)
              .values({c: None for c in EVENT_EXPRESSION_AND_MATCH_COLUMNS})
              .execution_options(synchronize_session=False))
    return n
