"""Engine setup (SQLite, WAL, synchronous=FULL, foreign keys on) and schema migrations.

open_database() refuses files that are not kiosk databases, databases newer than this code
and databases behind it (run upgrade() / `kiosk db upgrade` first). A missing or empty file
is created at the newest schema.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kiosk.config import Settings
from kiosk.errors import (
    DatabaseOutdated,
    DatabaseTooNew,
    DatabaseUnavailable,
    NotAKioskDatabase,
    StoreError,
)

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 5000
_BACKUP_RE = re.compile(r"\.bak-(\d{8}T\d{6}\d*Z)$")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows, e.g. "0001"."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


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
    with path.open("rb") as fh:
        return fh.read(16) == b"SQLite format 3\x00"


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
            rev = MigrationContext.configure(conn).get_current_revision()
    except DatabaseError as exc:
        raise NotAKioskDatabase(f"{path} cannot be read as a database: {exc.orig}") from None
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


def _rollback_quietly(session: Session) -> None:
    """Roll back after a failed statement; a connection that cannot even do that is logged, not raised."""
    try:
        session.rollback()
    except Exception:  # noqa: BLE001 - the original error is the one to report
        logger.debug("rollback after a database error failed", exc_info=True)


class Database:
    """An open kiosk database: engine + session factory. Use the functions in kiosk.store."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success (durably: synchronous=FULL), rolled back on error.

        SQLite's operational errors (locked past busy_timeout, disk full, read-only file, I/O
        error) come out as DatabaseUnavailable, so callers outside the store can catch them.
        """
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                _rollback_quietly(session)
                raise DatabaseUnavailable(f"database {self.path} unavailable: {exc.orig}") from exc
            except BaseException:
                session.rollback()
                raise

    def vacuum(self) -> None:
        """Rewrite the file without free pages and empty the WAL (erased bytes leave the disk)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
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
    """open_database() with database.path and database.busy_timeout_ms from settings."""
    return open_database(settings.database.path, busy_timeout_ms=settings.database.busy_timeout_ms)


def upgrade_from_settings(settings: Settings, backup: bool = True) -> UpgradeResult:
    """upgrade() of database.path keeping database.backups_kept backups (`kiosk db upgrade`)."""
    db = settings.database
    return upgrade(db.path, backup=backup, backups_kept=db.backups_kept,
                   busy_timeout_ms=db.busy_timeout_ms)
