"""Engine setup (SQLite, WAL, synchronous=FULL, foreign keys on) and schema migrations.

open_database() refuses files that are not kiosk databases, databases newer than this code
and databases behind it (run upgrade() / `kiosk db upgrade` first). A missing or empty file
is created at the newest schema.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, delete, event, inspect, select, text
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kiosk.config import Settings
from kiosk.errors import (
    DatabaseDamaged,
    DatabaseOutdated,
    DatabaseReadOnly,
    DatabaseTooNew,
    DatabaseUnavailable,
    NotAKioskDatabase,
    StoreError,
)
from kiosk.store.models import AuditEntry, PendingErasure

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 5000
_BACKUP_RE = re.compile(r"\.bak-(\d{8}T\d{6}\d*Z)$")


LOW_DISK_BYTES = 50_000_000  # below this much free space an SQLITE_FULL is believed (50 MB)


def damaged_message(path: Path, cause: str) -> str:
    """One line for a corrupt database at path: what SQLite said, how to check, where the copies are."""
    backups = backups_of(path)
    where = (f"the newest good upgrade backup ({backups[-1].name} beside it) or an off-site copy" if backups
             else "an off-site copy (database.offsite_dir, `kiosk db backup`)")
    return (f"{path} is damaged ({cause}); nothing was written. Check it with "
            f"`sqlite3 {path} 'PRAGMA integrity_check'` and restore {where}")


def database_error(path: Path | str, exc: BaseException, *, damaged: Path | None = None) -> StoreError:
    """The StoreError to show for an sqlite3 / SQLAlchemy error on the database at path (one line).

    Read-only file or folder, damaged file (named as `damaged` when given: a copy's damage is its
    source's), disk full (believed only when the disk is nearly full: SQLite also says "full" for
    some damaged pages), busy, I/O error; anything else with SQLite's text.
    """
    path = Path(path)
    damaged = damaged or path
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "sqlite_errorname", "") or ""
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return DatabaseReadOnly(f"{path} is read-only for this user ({text}); it was not changed. The file and "
                                "its folder must be writable by the user running kiosk")
    if (name.startswith("SQLITE_CANTOPEN") or "unable to open" in text) and path.is_dir():
        return NotAKioskDatabase(f"{path} is a folder, not a database file (database.path must name the file, "
                                 f"e.g. {path / 'kiosk.db'}); nothing was changed")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return DatabaseReadOnly(f"cannot open {path} ({text}); is the file or its folder read-only? Both must "
                                f"be writable by the user running kiosk (SQLite adds {path.name}-wal and -shm)")
    if (name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text
            or isinstance(orig, UnicodeDecodeError)):
        return DatabaseDamaged(damaged_message(damaged, text))
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        folder = path.resolve().parent
        free = shutil.disk_usage(folder).free if folder.exists() else 0
        if free > LOW_DISK_BYTES:
            return DatabaseDamaged(damaged_message(damaged, f"SQLite said '{text}' with {free / 1e9:.1f} GB free"))
        return DatabaseUnavailable(f"the disk holding {path} is full ({free / 1e6:.0f} MB free); nothing was written")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return DatabaseUnavailable(f"{path} is busy: another process kept it locked ({text}); try again")
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return DatabaseUnavailable(f"I/O error on {path} ({text}): the SD card may be failing; "
                          f"check with `sqlite3 {path} 'PRAGMA integrity_check'` and keep a copy")
    return StoreError(f"database error on {path}: {text}")


def _is_database_error(exc: BaseException) -> bool:
    """An SQLite error to translate (not a constraint violation: callers check those themselves).

    UnicodeDecodeError counts: the sqlite3 module raises it for text in a damaged page.
    """
    if isinstance(exc, IntegrityError | sqlite3.IntegrityError):
        return False
    return isinstance(exc, DatabaseError | sqlite3.Error | UnicodeDecodeError)


@contextmanager
def translated_errors(path: Path | str) -> Iterator[None]:
    """Raise sqlite3 / SQLAlchemy errors on the database at path as database_error()'s StoreError."""
    try:
        yield
    except (DatabaseError, sqlite3.Error, UnicodeDecodeError) as exc:
        if not _is_database_error(exc):
            raise
        raise database_error(path, exc) from exc


# Migration files are named <revision>_<slug>.py with four-digit revisions in order ("0001" ...);
# reading the names, not importing Alembic, keeps every `kiosk` command's start-up short.
_REVISION_FILE_RE = re.compile(r"^(\d{4})_\w+\.py$")


def _alembic_config() -> Any:
    from alembic.config import Config  # Alembic only where a migration runs

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _known_revisions() -> set[str]:
    """The schema revisions this code has migrations for, from the migration file names."""
    names = (p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    return {m.group(1) for m in map(_REVISION_FILE_RE.match, names) if m}


def head_revision() -> str:
    """The newest schema revision this code knows, e.g. "0001"."""
    return max(_known_revisions())


def _make_engine(
    path: Path, busy_timeout_ms: int, foreign_keys: bool, transactional_ddl: bool = False
) -> Engine:
    engine = create_engine(f"sqlite:///{path}", future=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:  # pragma: no branch
        if transactional_ddl:
            # Let SQLAlchemy, not the sqlite3 module, decide where transactions start, so that
            # CREATE/ALTER/DROP are inside them too and a failed migration rolls back whole.
            dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before it returns (power cuts at the door lose nothing).
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            # Deleted content (erased templates) is overwritten with zeros, not left in free pages.
            cur.execute("PRAGMA secure_delete=ON")
        finally:
            cur.close()

    if transactional_ddl:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _is_sqlite_file(path: Path) -> bool:
    """Whether SQLite accepts the file at path as a database (its 16-byte header), read through SQLite.

    Never open() a database file outside SQLite here: this process may hold connections to it, and
    closing any descriptor on the file drops all of the process's POSIX locks on it (SQLite "How To
    Corrupt", 2.2); another process then deletes the -wal/-shm under our feet and later writes are
    lost. SQLite's own open shares one lock set per file within a process, so it is safe.
    """
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            con.execute("PRAGMA schema_version").fetchone()  # reads the header; refuses a non-database
        finally:
            con.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            return False
        logger.debug("header check of %s: %s (left to the real open)", path, exc)  # locked, unreadable
    return True


def _inspect_revision(path: Path) -> tuple[str | None, bool]:
    """(alembic revision or None, whether the DB has any tables); raises NotAKioskDatabase."""
    if not path.exists() or path.stat().st_size == 0:
        return None, False
    if not _is_sqlite_file(path):
        raise NotAKioskDatabase(f"{path} is not an SQLite database (not a kiosk database)")
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            rev = (conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
                   if "alembic_version" in tables else None)
    except (DatabaseError, UnicodeDecodeError) as exc:
        if getattr(getattr(exc, "orig", None), "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise NotAKioskDatabase(f"{path} cannot be read as a database: {exc.orig}") from None  # type: ignore[attr-defined]
        raise database_error(path, exc) from None
    finally:
        engine.dispose()
    if rev is None and tables - {"alembic_version"}:
        raise NotAKioskDatabase(
            f"{path} is an SQLite database without a kiosk schema version "
            f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
        )
    if rev is not None and rev not in _known_revisions():
        raise DatabaseTooNew(
            f"{path} has schema revision {rev}, newer than this kiosk version knows "
            f"(newest known: {head_revision()}); update the software or restore a backup"
        )
    return rev, bool(tables)


def current_revision(path: Path | str) -> str | None:
    """The database's schema revision ("0001"...), or None for a missing/empty file."""
    return _inspect_revision(Path(path))[0]


@dataclass(frozen=True)
class UpgradeResult:
    """What upgrade() did: revisions before/after and the backup file it wrote (if any)."""

    before: str | None
    after: str
    backup: Path | None

    @property
    def changed(self) -> bool:
        """True when a migration ran."""
        return self.before != self.after


def copy_database(path: Path, target: Path) -> None:
    """Copy the SQLite file at path to target consistently (WAL included, other writers may go on)."""
    src = sqlite3.connect(path)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def backup_database(path: Path, backups_kept: int, now: datetime | None = None) -> Path | None:
    """Copy the DB (consistently, WAL included) to <name>.bak-<UTC timestamp>; prune old copies.

    Returns the new backup's path, or None when backups_kept is 0 (backups disabled).
    """
    if backups_kept <= 0:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{stamp[:-1]}{n:02d}Z")
        n += 1
    copy_database(path, target)
    logger.info("database backed up to %s", target)
    for old in backups_of(path)[:-backups_kept]:
        logger.info("removing old backup %s", old)
        old.unlink()
    return target


def backups_of(path: Path) -> list[Path]:
    """The upgrade backups of the database at path (<name>.bak-<UTC timestamp>), oldest first."""
    path = Path(path)
    return sorted((p for p in path.parent.glob(f"{path.name}.bak-*") if _BACKUP_RE.search(p.name)),
                  key=lambda p: p.name)


# Rows of one person that erasure removes from every copy: (table, column holding the person id).
_BIOMETRIC_TABLES = (("face_templates", "person_id"), ("enrolment_images", "person_id"),
                     ("consent_history", "person_id"))
# Columns of an attendance event that hold expression or face-match data (blanked by erasure and
# in off-site copies; the event's time and kind stay).
EVENT_EXPRESSION_AND_MATCH_COLUMNS = ("expression_label", "expression_scores", "expression_confidence",
                                      "match_distance", "match_score")
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


def scrub_backups(path: Path, person_id: int, employee_id: str, *, delete_events: bool) -> list[Path]:
    """Erase one person from every upgrade backup of the database at path, as erase_person does in
    the live file (templates, photos, consent, capture requests, expression and match data; with
    delete_events their events and row too), then VACUUM each backup; returns the backups changed.

    Works on any schema revision a backup may have (raw SQL on the tables that exist there).
    """
    changed = []
    for backup in backups_of(path):
        con = sqlite3.connect(backup)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            before = con.total_changes
            for table, column in _BIOMETRIC_TABLES:
                if table in tables:
                    con.execute(f"DELETE FROM {table} WHERE {column} = ?", (person_id,))
            if "capture_requests" in tables:
                con.execute("DELETE FROM capture_requests WHERE employee_id = ?", (employee_id,))
            for table, (delete_sql, strip_sql) in _PERSON_ROWS.items():
                sql = delete_sql if delete_events else strip_sql
                if table in tables and sql is not None:
                    con.execute(sql, (person_id,))
            con.commit()
            if con.total_changes != before:
                con.execute("VACUUM")
                changed.append(backup)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot erase person {person_id} from the backup {backup}: {exc}; "
                             "delete that backup file by hand") from None
        finally:
            con.close()
    for backup in changed:
        logger.info("erased person %s from backup %s", person_id, backup)
    return changed


@dataclass(frozen=True)
class FinishedErasure:
    """The second half of an erasure done: the live file vacuumed, these upgrade backups scrubbed."""

    person_id: int
    employee_id: str
    backups_scrubbed: tuple[Path, ...]


def finish_erasure(db: Database, pending_id: int, *, resumed: bool = False) -> FinishedErasure | None:
    """Finish the erasure recorded as pending_erasures row pending_id (committed in the live file):
    VACUUM the live file, scrub every upgrade backup, then delete the row. None if it is gone already.

    Idempotent, so an erasure cut off anywhere in here (power cut, SIGKILL) is simply finished again.
    Audit: person.erase_backups when backups were changed; person.erase_finished when resumed.
    """
    with db.session() as s:
        row = s.get(PendingErasure, pending_id)
        if row is None:
            return None
        person_id, employee_id, with_events = row.person_id, row.employee_id, row.with_events
        actor = row.requested_by
    db.vacuum()
    scrubbed = scrub_backups(db.path, person_id, employee_id, delete_events=with_events)
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
    """Finish every erasure interrupted after its commit (see finish_erasure); those finished now."""
    with db.session() as s:
        pending = list(s.scalars(select(PendingErasure.id).order_by(PendingErasure.id)))
    done = [finish_erasure(db, pending_id, resumed=True) for pending_id in pending]
    return [d for d in done if d is not None]


def upgrade(
    path: Path | str,
    backup: bool = True,
    backups_kept: int = 3,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    revision: str = "head",
) -> UpgradeResult:
    """Migrate the database at path to `revision` (default newest), creating it if missing.

    A non-empty database that is behind is first copied to <name>.bak-<timestamp> (when
    backup is true; the newest backups_kept copies are kept). Refuses (NotAKioskDatabase,
    DatabaseTooNew) files it must not touch. A database already at the target is left alone.
    """
    path = Path(path)
    before, has_tables = _inspect_revision(path)
    target = head_revision() if revision == "head" else revision
    if before == target:
        logger.info("database %s already at revision %s", path, target)
        return UpgradeResult(before, target, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    backup_path = None
    if backup and before is not None and has_tables:
        backup_path = backup_database(path, backups_kept)
    # Foreign keys OFF while migrating: SQLite batch migrations drop and recreate tables, and
    # with foreign keys on, dropping `people` would cascade-delete every child row.
    engine = _make_engine(path, busy_timeout_ms, foreign_keys=False, transactional_ddl=True)
    try:
        with engine.begin() as conn:
            from alembic import command

            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
        with engine.connect() as conn:
            problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise StoreError(
                f"migration of {path} left {len(problems)} broken foreign keys; "
                f"restore {backup_path or 'a backup'}"
            )
    except OperationalError as exc:
        raise StoreError(f"cannot migrate {path} (nothing changed): {exc.orig}") from None
    finally:
        engine.dispose()
    logger.info("database %s migrated %s -> %s", path, before, target)
    return UpgradeResult(before, target, backup_path)


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at path; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Database:
    """An open kiosk database: engine + session factory. Use the functions in kiosk.store."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # erasures interrupted earlier that open_from_settings finished (finish_pending_erasures)
        self.finished_erasures: list[FinishedErasure] = []
        self._identity = _file_identity(path)

    def moved(self) -> bool:
        """True when the file at self.path is no longer the one opened: deleted (its folder too), or
        replaced by a rename (a copy restored while we run). Commits then go to the unlinked old file
        and vanish at the next start, without any error from SQLite."""
        return self._identity is not None and _file_identity(self.path) != self._identity

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success (durably: synchronous=FULL), rolled back on error.

        SQLite's errors come out as database_error()'s StoreError kinds (DatabaseUnavailable for
        locked past busy_timeout, disk full, I/O error; DatabaseReadOnly; DatabaseDamaged), so
        callers outside the store can catch them.
        """
        with translated_errors(self.path), self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                try:
                    session.rollback()
                except DatabaseError:  # a broken file or connection; the first error is the one to show
                    logger.debug("rollback failed", exc_info=True)
                raise

    def vacuum(self) -> None:
        """Rewrite the file without free pages and empty the WAL (erased bytes leave the disk)."""
        with translated_errors(self.path), \
                self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy and busy[0]:
            logger.warning("WAL not fully checkpointed (another process is reading); "
                           "old pages leave the -wal file at its next checkpoint")

    def pragma(self, name: str) -> Any:
        """The value of a PRAGMA on a pooled connection (for checks and tests)."""
        with self.engine.connect() as conn:
            return conn.execute(text(f"PRAGMA {name}")).scalar()

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_database(
    path: Path | str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, create: bool = True
) -> Database:
    """Open the kiosk database at path (creating it at the newest schema if missing and create).

    Raises DatabaseOutdated when its schema is behind (run `kiosk db upgrade`), DatabaseTooNew
    or NotAKioskDatabase when it must not be used, StoreError when it does not exist and not create.
    """
    path = Path(path)
    rev, _ = _inspect_revision(path)
    if rev is None:
        if not create:
            raise StoreError(f"no kiosk database at {path} (run `kiosk db upgrade` to create it)")
        upgrade(path, backup=False, busy_timeout_ms=busy_timeout_ms)
    elif rev != head_revision():
        raise DatabaseOutdated(
            f"{path} has schema revision {rev}, this version needs {head_revision()}; "
            "run `kiosk db upgrade` (it backs the file up first)"
        )
    return Database(path, _make_engine(path, busy_timeout_ms, foreign_keys=True))


def open_from_settings(settings: Settings) -> Database:
    """open_database() with database.path and database.busy_timeout_ms from settings, then finish any
    erasure interrupted after its commit (db.finished_erasures lists them; a failure is logged and
    retried at the next open, the database stays usable)."""
    database = open_database(settings.database.path, busy_timeout_ms=settings.database.busy_timeout_ms)
    try:
        database.finished_erasures = finish_pending_erasures(database)
    except StoreError as exc:
        logger.warning("an interrupted erasure is not finished yet (retried at the next start): %s", exc)
    return database


def upgrade_from_settings(settings: Settings, backup: bool = True) -> UpgradeResult:
    """upgrade() of database.path keeping database.backups_kept backups (`kiosk db upgrade`)."""
    db = settings.database
    return upgrade(db.path, backup=backup, backups_kept=db.backups_kept,
                   busy_timeout_ms=db.busy_timeout_ms)
