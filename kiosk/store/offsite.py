"""Copies of the database to keep somewhere else (off the Pi's SD card), without biometric data.

Erasure (`kiosk people remove`) reaches the live file and its upgrade backups beside it, but not a
copy on another disk. So these copies hold only what payroll and the audit trail need: people
(name, employee id, consent records), attendance events, audit log and web accounts. Face
templates, enrolment photos and capture requests are left out, and every event's expression and
match data are blanked. After restoring one, faces are enrolled again.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from kiosk.errors import DatabaseDamaged, StoreError
from kiosk.store import sqlite
from kiosk.store._base import EVENT_EXPRESSION_AND_MATCH_COLUMNS
from kiosk.store.auditlog import audit
from kiosk.store.db import Database

logger = logging.getLogger(__name__)

DAILY_NAME = re.compile(r"^kiosk-\d{4}-\d{2}-\d{2}\.db$")  # the daily copies: kiosk-YYYY-MM-DD.db
LEFT_OUT_TABLES = ("face_templates", "enrolment_images", "capture_requests", "web_sessions")
"""Rows a copy never holds: biometric data, capture requests, and the web sessions (a copy restored on
the same Pi would otherwise bring back sessions signed out since, and a copied cookie would work again)."""


@dataclass(frozen=True)
class OffsiteCopy:
    """What a copy holds: its path and the people and attendance events in it."""

    path: Path
    people: int
    events: int


def write_offsite_copy(database: Path, dest: Path) -> OffsiteCopy:
    """Write a consistent copy of database (WAL included) to dest without biometric or expression data.

    Refuses an existing dest (nothing is overwritten); the copy appears under its name only when complete.
    """
    database, dest = Path(database), Path(dest)
    if not database.is_file():
        raise StoreError(f"{database}: no database to copy")
    companions = {database.resolve().with_name(database.resolve().name + suffix)
                  for suffix in ("", "-wal", "-shm", "-journal")}
    if dest.resolve() in companions:  # SQLite reads (and deletes) <db>-journal and <db>-wal as its own
        raise StoreError(f"{dest} is a name SQLite uses for the database's own files; choose another name "
                         "(and better another disk)")
    if dest.exists():
        raise StoreError(f"{dest} exists; choose a new file name (nothing was overwritten)")
    if not dest.parent.is_dir():
        raise StoreError(f"{dest.parent}: no such folder")
    partial = dest.with_name(dest.name + ".partial")
    try:
        sqlite.copy_database(database, partial)
        _check_intact(partial, database)
        people, events = _strip(partial)
        os.replace(partial, dest)
    except sqlite.FILE_ERRORS as exc:
        _remove(partial)
        error = sqlite.database_error(dest, exc, damaged=database)
        if isinstance(error, DatabaseDamaged):
            raise error from None
        raise StoreError(f"cannot write {dest}: {exc}") from None
    except (OSError, StoreError) as exc:
        _remove(partial)
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"cannot write {dest}: {exc}") from None
    logger.info("off-site copy written to %s (%d people, %d events)", dest, people, events)
    return OffsiteCopy(dest, people, events)


def _remove(partial: Path) -> None:
    """Delete an unfinished copy and the -wal/-shm/-journal SQLite may have left beside it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        partial.with_name(partial.name + suffix).unlink(missing_ok=True)


def _check_intact(copy: Path, source: Path) -> None:
    """DatabaseDamaged (naming source) unless PRAGMA quick_check finds the page-exact copy intact.

    The backup API copies pages as they are, so a damaged page of the source would go into the copy
    unnoticed (or surface later as a misleading 'disk is full').
    """
    rows = sqlite.quick_check(copy)
    if rows != ["ok"]:
        found = "; ".join(" ".join(r.split()) for r in rows[:2])[:200]
        raise DatabaseDamaged(sqlite.damaged_message(source, f"quick_check: {found}"))


def record_copy(db: Database, actor: str, copy: OffsiteCopy, target: str | None = None) -> None:
    """Audit-log a copy (action db.backup): where it went (target, default its path) and what it holds."""
    audit(db, actor, "db.backup", target or str(copy.path), {"people": copy.people, "events": copy.events})


def daily_copies(folder: Path) -> list[Path]:
    """The daily copies in folder (kiosk-YYYY-MM-DD.db), oldest first; other files are not touched."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if DAILY_NAME.match(p.name)) if folder.is_dir() else []


def write_daily_copy(database: Path, folder: Path, kept: int, day: date) -> OffsiteCopy | None:
    """Write folder/kiosk-<day>.db (None when it exists already), then keep only the newest `kept` copies."""
    dest = Path(folder) / f"kiosk-{day.isoformat()}.db"
    copy = None if dest.exists() else write_offsite_copy(database, dest)
    for old in daily_copies(Path(folder))[:-kept]:
        logger.info("removing old daily copy %s", old)
        old.unlink()
    return copy


def _strip(path: Path) -> tuple[int, int]:
    """Remove the left-out rows and blank the event columns in the copy at path, then VACUUM; (people, events)."""
    counts = sqlite.strip_copy(path, LEFT_OUT_TABLES, {"attendance_events": EVENT_EXPRESSION_AND_MATCH_COLUMNS},
                               ("people", "attendance_events"))
    return counts["people"], counts["attendance_events"]
