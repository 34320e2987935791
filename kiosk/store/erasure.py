"""Erasure of a person (erase_person) in two halves: the rows in one commit, then VACUUM and the
upgrade backups beside the file, finished at the next open if the process dies in between.

Templates, enrolment images, consent history, expression data and match scores of the person's
events are deleted, then the file is VACUUMed and the WAL truncated so no copy of the bytes
remains in the database files; the same rows go from every upgrade backup beside it
(scrub_backups), whatever its schema revision and its numbering of people (a join renumbers the live
file, not its backups: person_in_backup finds the person there by the recorded moves and the employee
id). On PostgreSQL the tables that held the biometric and consent rows are rewritten (VACUUM FULL)
instead, and there are no backups beside it (pg_dump files and WAL archives are the administrator's:
docs/central.md). rewrite_backups is the one way any change of the live file reaches its backups: erasure here,
consent withdrawal (withdraw_consent_in_backups), a door's replaced local person (unenrol_in_backups) and the
retention purge (retention.py). The person's attendance events are employment records with their own retention
(retention.attendance_days), so by default they and the bare people row (employee id, name,
erased_at) stay until purge_expired() removes the events; the row then goes too.
erase_person(keep_events=False) deletes everything at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from dataclasses import replace as dataclass_replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

from kiosk.errors import DatabaseUnavailable, StoreError
from kiosk.store import sqlite
from kiosk.store._base import (
    EVENT_EXPRESSION_AND_MATCH_COLUMNS,
    changed_rows,
    now_utc,
    person_row,
    write_audit,
)
from kiosk.store.db import Database, refuse_transaction
from kiosk.store.gallery_feed import record_gallery_change
from kiosk.store.models import (
    AttendanceEvent,
    AuditEntry,
    CaptureRequest,
    ConsentChange,
    EnrolmentImage,
    FaceTemplate,
    Leave,
    PendingErasure,
)
from kiosk.store.renumber import RECORD_KEY

logger = logging.getLogger(__name__)

# Rows of one person that erasure removes from every copy: (table, column holding the person id).
_BIOMETRIC_TABLES = (("face_templates", "person_id"), ("enrolment_images", "person_id"),
                     ("consent_history", "person_id"))
_BLANK_EVENT_COLUMNS = ", ".join(f"{c} = NULL" for c in EVENT_EXPRESSION_AND_MATCH_COLUMNS)
# table: (SQL when the person is deleted, SQL when only their biometric and expression data go; None: nothing)
_PERSON_ROWS: dict[str, tuple[str, str | None]] = {
    "attendance_events": (
        "DELETE FROM attendance_events WHERE person_id = ?",
        f"UPDATE attendance_events SET {_BLANK_EVENT_COLUMNS} WHERE person_id = ?"),
    "leave": ("DELETE FROM leave WHERE person_id = ?", None),  # payroll data: kept unless the row goes
    "people": (
        "DELETE FROM people WHERE id = ?",
        "UPDATE people SET active = 0, expression_consent = 0, consent_changed_at = NULL, consent_changed_by = NULL, "
        "erased_at = COALESCE(erased_at, CURRENT_TIMESTAMP) WHERE id = ?"),
}


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
    # PostgreSQL only: True when the rows are gone but the tables could not be rewritten yet (a long
    # report was reading them); finish_pending_erasures does it later (next start, next purge).
    files_pending: bool = False


@dataclass(frozen=True)
class FinishedErasure:
    """The second half of an erasure done: the live file vacuumed, these upgrade backups scrubbed.
    deferred (PostgreSQL only): not done yet, readers held the tables; the erasure stays pending."""

    person_id: int
    employee_id: str
    backups_scrubbed: tuple[Path, ...]
    deferred: bool = False


def erase_person(
    db: Database,
    person_id: int,
    *,
    actor: str,
    keep_events: bool = True,
    now: datetime | None = None,
) -> EraseResult:
    """Erase a person's biometric and consent data, then VACUUM (see module docstring).

    Commits by itself: refused inside db.transaction().
    """
    refuse_transaction(db, "erase_person")
    now = now_utc(now)
    with db.session() as s:
        person = person_row(s, person_id)
        n_templates = changed_rows(s, delete(FaceTemplate).where(FaceTemplate.person_id == person_id))
        n_images = changed_rows(s, delete(EnrolmentImage).where(EnrolmentImage.person_id == person_id))
        n_consent = changed_rows(s, delete(ConsentChange).where(ConsentChange.person_id == person_id))
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
                .values({c: None for c in EVENT_EXPRESSION_AND_MATCH_COLUMNS})
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
        details: dict[str, Any] = asdict(result)
        del details["person_id"], details["backups_scrubbed"], details["files_pending"]
        write_audit(s, actor, "person.erase", f"person:{person_id}", details, now)
        record_gallery_change(s, person_id, now)  # every door drops the person's templates
        # the second half (VACUUM, backups) is recorded in the same commit, so it is finished later
        # (finish_pending_erasures at the next open) if this process dies before it is done
        pending = PendingErasure(person_id=person_id, employee_id=employee_id, with_events=row_deleted,
                                 requested_at=now, requested_by=actor)
        s.add(pending)
        s.flush()
        pending_id = pending.id
    finished = finish_erasure(db, pending_id)
    if finished is not None and finished.backups_scrubbed:
        result = dataclass_replace(result, backups_scrubbed=len(finished.backups_scrubbed))
    if finished is not None and finished.deferred:
        result = dataclass_replace(result, files_pending=True)
    logger.info("erased person %s: %s", person_id, result)
    return result


Run = tuple[str, dict[int, int]]
"""One run of a join's renumbering: (its time, {old person id: new person id})."""


def _renumber_runs(path: Path) -> list[Run]:
    """The runs of the join's renumbering recorded in the file at path (renumber.RECORD_KEY), oldest first; []
    when there are none, or when the record cannot be read (then only employee ids find people in backups)."""
    try:
        rows = sqlite.read_file(path, "sync_state", "SELECT value FROM sync_state WHERE key = ?", (RECORD_KEY,))
    except sqlite.FILE_ERRORS as exc:
        return _unreadable(path, exc)
    try:
        record = json.loads(rows[0][0]) if rows else {}
        runs = record.get("runs", []) if isinstance(record, dict) else []
        return [(str(run["at"]), {int(old): int(new) for old, new in run["moved"].items()}) for run in runs]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return _unreadable(path, exc)


def _unreadable(path: Path, exc: Exception) -> list[Run]:
    logger.warning("the renumbering record of %s cannot be read (%s: %s): people in its backups are found by "
                   "employee id alone", path, type(exc).__name__, exc)
    return []


def _same_key(held: str, employee_id: str, person_id: int) -> bool:
    """Whether a backup's row with employee id held, at the person's id there, is the person known live as
    employee_id: the same id, or the live row renamed <employee id>~<its id> by a door's gallery pull."""
    return held == employee_id or employee_id == f"{held}~{person_id}"


def person_in_backup(backup: Path, person_id: int, employee_id: str, live_runs: list[Run]) -> tuple[int, str] | None:
    """(id, employee id) in the backup at backup of the person known in the live file as person_id with
    employee_id ("" when unknown); None when the backup holds no such person.

    The live id goes back through the renumbering runs (live_runs) the backup does not have (its own record says
    which it has); the row there is the person when its employee id agrees (or none is known), else the row
    holding employee_id is (the id was in another numbering: a pending erasure's from before a join, an id
    reused after a purge); neither: the person came after the backup. FILE_ERRORS when it cannot be read.
    """
    held_runs = _renumber_runs(backup) if live_runs else []
    pid = person_id
    for _, moved in reversed([run for run in live_runs if run not in held_runs]):
        pid = {new: old for old, new in moved.items()}.get(pid, pid)
    rows = sqlite.read_file(backup, "people", "SELECT id, employee_id FROM people WHERE id = ? OR employee_id = ?",
                            (pid, employee_id))
    if rows is None:  # a file without people (not a kiosk's?): only the id is there to go by
        return None if employee_id else (pid, employee_id)
    at = next(((int(i), str(e)) for i, e in rows if int(i) == pid), None)
    if at is not None and (not employee_id or _same_key(at[1], employee_id, pid)):
        return at
    keyed = next(((int(i), str(e)) for i, e in rows if employee_id and e == employee_id), None)
    if keyed is not None:
        logger.info("person %s (%s) is %s in the backup %s (found by employee id)", person_id, employee_id,
                    keyed[0], backup.name)
    return keyed


Statements = list[tuple[str, str, tuple[Any, ...]]]
"""SQL for sqlite.rewrite_file: (table it needs, SQL with ? parameters, parameters)."""
Plan = Callable[[Path, list[Run]], Statements]
"""What to run on one backup, given its path and the live file's renumbering runs."""
BLANK_EXPRESSIONS = "expression_label = NULL, expression_scores = NULL, expression_confidence = NULL"
HAS_EXPRESSIONS = ("(expression_label IS NOT NULL OR expression_scores IS NOT NULL "
                    "OR expression_confidence IS NOT NULL)")


def rewrite_backups(path: Path, what: str, plan: Plan) -> list[Path]:
    """Run plan(backup, live runs)'s statements on every upgrade backup of the SQLite database at path
    (sqlite.rewrite_file: tables a backup lacks are skipped; VACUUM where a row changed); the backups changed.

    The one way a change of the live file reaches its backups (erasure, consent withdrawal, the retention purge,
    a door's gallery pull). StoreError naming the backups that cannot be read or changed, after every other
    backup was done; what ("erase person 3") says what was being done.
    """
    backups = sqlite.backups_of(path)
    live_runs = _renumber_runs(path) if backups else []
    changed = []
    failed: list[str] = []
    for backup in backups:  # one bad backup (corrupt, unwritable) must not keep the change from the others
        try:
            statements = plan(backup, live_runs)
            if statements and sqlite.rewrite_file(backup, statements):
                changed.append(backup)
        except sqlite.FILE_ERRORS as exc:
            logger.error("cannot %s in the backup %s: %s", what, backup, exc)
            failed.append(f"{backup}: {exc}")
    for backup in changed:
        logger.info("%s: done in the backup %s", what, backup)
    if failed:
        raise StoreError(f"cannot {what} in {len(failed)} backup(s) ({'; '.join(failed)}); done in the live "
                         f"database and in {len(backups) - len(failed)} other backup(s); delete "
                         f"{'that backup file' if len(failed) == 1 else 'those backup files'} by hand")
    return changed


def _for_person(person_id: int, employee_id: str, statements: Callable[[int], Statements]) -> Plan:
    """A Plan running statements(the person's id there) on each backup that holds the person (person_in_backup)."""
    def plan(backup: Path, live_runs: list[Run]) -> Statements:
        found = person_in_backup(backup, person_id, employee_id, live_runs)
        return [] if found is None else statements(found[0])
    return plan


def scrub_backups(path: Path, person_id: int, employee_id: str, *, delete_events: bool) -> list[Path]:
    """Erase one person from every upgrade backup of the database at path, as erase_person does in
    the live file (templates, photos, consent, capture requests, expression and match data; with
    delete_events their events and row too), then VACUUM each backup; returns the backups changed.

    person_id is the live id, employee_id the person's ("" when unknown): a backup keeps the numbering it was
    written with (before a join's renumbering, say), so each finds the person by person_in_backup. Works on any
    schema revision a backup may have (raw SQL on the tables that exist there).
    """
    def plan(backup: Path, live_runs: list[Run]) -> Statements:
        found = person_in_backup(backup, person_id, employee_id, live_runs)
        statements: Statements = []
        if found is not None:
            pid = found[0]
            statements = [(table, f"DELETE FROM {table} WHERE {column} = ?", (pid,))
                          for table, column in _BIOMETRIC_TABLES]
            for table, (delete_sql, strip_sql) in _PERSON_ROWS.items():
                sql = delete_sql if delete_events else strip_sql
                if sql is not None:
                    statements.append((table, sql, (pid,)))
        keys = {k for k in (employee_id, found[1] if found is not None else "") if k}
        return statements + [("capture_requests", "DELETE FROM capture_requests WHERE employee_id = ?", (k,))
                             for k in sorted(keys)]
    return rewrite_backups(path, f"erase person {person_id}", plan)


def withdraw_consent_in_backups(path: Path, person_id: int, employee_id: str) -> list[Path]:
    """A consent withdrawal (people.set_consent, a door applying the central's) in every upgrade backup of the
    database at path: the person's events lose their expression data and the row its consent, so a restored
    backup neither shows nor collects any (the consent history there is left as it was); the backups changed."""
    return rewrite_backups(path, f"withdraw the consent of person {person_id}", _for_person(
        person_id, employee_id, lambda pid: [
            ("attendance_events", f"UPDATE attendance_events SET {BLANK_EXPRESSIONS} "
                                  f"WHERE person_id = ? AND {HAS_EXPRESSIONS}", (pid,)),
            ("people", "UPDATE people SET expression_consent = 0 WHERE id = ? AND expression_consent != 0", (pid,)),
        ]))


def unenrol_in_backups(path: Path, person_id: int, employee_id: str) -> list[Path]:
    """A door's local person replaced by the central's (door_cache: renamed <employee id>~<id>) in every upgrade
    backup of the database at path as in the live file: templates, photos and consent history deleted, the row
    inactive without consent (their events untouched); the backups changed."""
    def statements(pid: int) -> Statements:
        return [(table, f"DELETE FROM {table} WHERE {column} = ?", (pid,)) for table, column in _BIOMETRIC_TABLES] + [
            ("people", "UPDATE people SET active = 0, expression_consent = 0, consent_changed_at = NULL, "
                       "consent_changed_by = NULL WHERE id = ? AND (active != 0 OR expression_consent != 0 "
                       "OR consent_changed_at IS NOT NULL OR consent_changed_by IS NOT NULL)", (pid,))]
    return rewrite_backups(path, f"remove the templates of person {person_id}",
                           _for_person(person_id, employee_id, statements))


def finish_erasure(db: Database, pending_id: int, *, resumed: bool = False) -> FinishedErasure | None:
    """Finish the erasure recorded as pending_erasures row pending_id (committed in the live file):
    VACUUM the live file (PostgreSQL: VACUUM FULL of postgres.ERASED_TABLES), scrub every upgrade backup (SQLite
    only), then delete the row. None if it is gone already.

    Idempotent, so an erasure cut off anywhere in here (power cut, SIGKILL) is simply finished again.
    Audit: person.erase_backups when backups were changed; person.erase_finished when resumed.
    """
    with db.session() as s:
        row = s.get(PendingErasure, pending_id)
        if row is None:
            return None
        person_id, employee_id, with_events = row.person_id, row.employee_id, row.with_events
        actor = row.requested_by
    try:
        db.vacuum()  # SQLite: the file; PostgreSQL: postgres.ERASED_TABLES
    except DatabaseUnavailable as exc:
        if db.kind == "sqlite":
            raise
        # PostgreSQL: a reader (a long report) holds the table; the rows are gone already, their bytes
        # leave the table files when this is finished again (finish_pending_erasures)
        logger.warning("erasure of person %s: rows deleted; rewriting the tables waits for readers (%s)",
                       person_id, exc)
        return FinishedErasure(person_id, employee_id, (), deferred=True)
    scrubbed = ([] if db.path is None
                else scrub_backups(db.path, person_id, employee_id, delete_events=with_events))
    now = datetime.now(UTC)
    with db.session() as s:
        s.execute(delete(PendingErasure).where(PendingErasure.id == pending_id))
        target, details = f"person:{person_id}", {"backups": [b.name for b in scrubbed]}
        if scrubbed:
            s.add(AuditEntry(at=now, actor=actor, action="person.erase_backups", target=target, details=details))
        if resumed:
            s.add(AuditEntry(at=now, actor="system", action="person.erase_finished", target=target,
                             details=details))
    if resumed:
        logger.warning("finished the interrupted erasure of person %s (%s): %d backup(s) scrubbed",
                       person_id, employee_id, len(scrubbed))
    return FinishedErasure(person_id, employee_id, tuple(scrubbed))


def finish_pending_erasures(db: Database) -> list[FinishedErasure]:
    """Finish every erasure interrupted after its commit, or (PostgreSQL) whose tables were busy (see
    finish_erasure); those finished now."""
    with db.session() as s:
        pending = list(s.scalars(select(PendingErasure.id).order_by(PendingErasure.id)))
    done = [finish_erasure(db, pending_id, resumed=True) for pending_id in pending]
    return [d for d in done if d is not None and not d.deferred]
