"""Schema revisions and migrations (Alembic): which revision a database has, and upgrade() to the newest.

A database is an SQLite file (a Path, or a str without "://") or a PostgreSQL URL
(postgresql+psycopg://...). A non-empty SQLite file that is behind is backed up first (PostgreSQL:
back up with pg_dump; its migrations run in one transaction under an advisory lock, so a failed one
changes nothing and two never run at once); databases that are not kiosk databases, or are newer
than this code, are refused untouched.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError

from kiosk.config import Settings
from kiosk.errors import DatabaseTooNew, NotAKioskDatabase, StoreError
from kiosk.store import postgres, sqlite

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Migration files are named <revision>_<slug>.py with four-digit revisions in order ("0001" ...);
# reading the names, not importing Alembic, keeps every `kiosk` command's start-up short.
_REVISION_FILE_RE = re.compile(r"^(\d{4})_\w+\.py$")


def alembic_config() -> Any:
    """Alembic's Config pointing at MIGRATIONS_DIR (Alembic is imported only here, when it is needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


def known_revisions() -> set[str]:
    """The schema revisions this code has migrations for, from the migration file names."""
    names = (p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    return {m.group(1) for m in map(_REVISION_FILE_RE.match, names) if m}


def head_revision() -> str:
    """The newest schema revision this code knows, e.g. "0001"."""
    return max(known_revisions())


def describe_location(location: Path | str) -> str:
    """A database for messages: the SQLite file's path, or the URL without its password."""
    return postgres.display(str(location)) if postgres.is_url(location) else str(location)


def _revision_on(conn: Connection) -> tuple[str | None, set[str]]:
    """(alembic revision or None, the tables) of the database conn is on."""
    tables = set(inspect(conn).get_table_names())
    rev = (conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
           if "alembic_version" in tables else None)
    return rev, tables


def _check_revision(where: str, what: str, rev: str | None, tables: set[str]) -> tuple[str | None, bool]:
    """(rev, whether there are tables), or NotAKioskDatabase / DatabaseTooNew for one not to touch."""
    if rev is None and tables - {"alembic_version"}:
        raise NotAKioskDatabase(
            f"{where} is {what} without a kiosk schema version "
            f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
        )
    if rev is not None and rev not in known_revisions():
        raise DatabaseTooNew(
            f"{where} has schema revision {rev}, newer than this kiosk version knows "
            f"(newest known: {head_revision()}); update the software or restore a backup"
        )
    return rev, bool(tables)


def _inspect_postgres(url: str) -> tuple[str | None, bool]:
    """inspect_revision() of the PostgreSQL database at url (DatabaseUnavailable when unreachable)."""
    where = postgres.display(url)
    engine = postgres.make_engine(url, sqlite.DEFAULT_BUSY_TIMEOUT_MS)
    try:
        with postgres.translated_errors(where), engine.connect() as conn:
            rev, tables = _revision_on(conn)
    finally:
        engine.dispose()
    return _check_revision(where, "a PostgreSQL database", rev, tables)


def inspect_revision(location: Path | str) -> tuple[str | None, bool]:
    """(alembic revision or None, whether the DB has any tables) of an SQLite file or a PostgreSQL
    URL; raises NotAKioskDatabase, DatabaseTooNew, or (PostgreSQL) DatabaseUnavailable."""
    if postgres.is_url(location):
        return _inspect_postgres(postgres.check_url(str(location)))
    path = Path(location)
    if not path.exists() or path.stat().st_size == 0:
        return None, False
    if not sqlite.is_sqlite_file(path):
        raise NotAKioskDatabase(f"{path} is not an SQLite database (not a kiosk database)")
    engine = sqlite.plain_engine(path)
    try:
        with engine.connect() as conn:
            rev, tables = _revision_on(conn)
    except (DatabaseError, UnicodeDecodeError) as exc:
        if sqlite.not_a_database(exc):
            raise NotAKioskDatabase(f"{path} cannot be read as a database: {getattr(exc, 'orig', exc)}") from None
        raise sqlite.database_error(path, exc) from None
    finally:
        engine.dispose()
    return _check_revision(str(path), "an SQLite database", rev, tables)


def current_revision(location: Path | str) -> str | None:
    """The database's schema revision ("0001"...), or None for a missing/empty file or an empty
    PostgreSQL database (location: an SQLite file or a postgresql+psycopg:// URL)."""
    return inspect_revision(location)[0]


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


def _run_alembic(conn: Connection, target: str) -> None:
    """Alembic's upgrade to target on conn (inside the caller's transaction)."""
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


def _upgrade_postgres(url: str, busy_timeout_ms: int, target: str) -> UpgradeResult:
    """upgrade() of a PostgreSQL database: one transaction (DDL included) under the migration lock,
    the revision read again once the lock is held; no backup (pg_dump is the administrator's)."""
    where = postgres.display(url)
    engine = postgres.make_engine(url, busy_timeout_ms)
    try:
        with engine.begin() as conn:
            postgres.lock_for_migration(conn)
            before, _ = _check_revision(where, "a PostgreSQL database", *_revision_on(conn))
            if before == target:
                logger.info("database %s already at revision %s", where, target)
                return UpgradeResult(before, target, None)
            _run_alembic(conn, target)
    except DBAPIError as exc:
        error = postgres.database_error(where, exc)
        if type(error) is StoreError:  # the migration itself failed, not the server
            raise StoreError(f"cannot migrate {where} (nothing changed): "
                             f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}") from None
        raise error from None
    finally:
        engine.dispose()
    logger.info("database %s migrated %s -> %s", where, before, target)
    return UpgradeResult(before, target, None)


def upgrade(
    path: Path | str,
    backup: bool = True,
    backups_kept: int = 3,
    busy_timeout_ms: int = sqlite.DEFAULT_BUSY_TIMEOUT_MS,
    revision: str = "head",
) -> UpgradeResult:
    """Migrate the database at path (an SQLite file, or a postgresql+psycopg:// URL) to `revision`
    (default newest), creating its schema if missing.

    A non-empty SQLite database that is behind is first copied to <name>.bak-<timestamp> (when
    backup is true; the newest backups_kept copies are kept); PostgreSQL is not backed up here
    (use pg_dump). Refuses (NotAKioskDatabase, DatabaseTooNew) databases it must not touch. A
    database already at the target is left alone.
    """
    target = head_revision() if revision == "head" else revision
    if postgres.is_url(path):
        return _upgrade_postgres(postgres.check_url(str(path)), busy_timeout_ms, target)
    path = Path(path)
    before, has_tables = inspect_revision(path)
    if before == target:
        logger.info("database %s already at revision %s", path, target)
        return UpgradeResult(before, target, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    backup_path = None
    if backup and before is not None and has_tables:
        backup_path = sqlite.backup_database(path, backups_kept)
    # Foreign keys OFF while migrating: SQLite batch migrations drop and recreate tables, and
    # with foreign keys on, dropping `people` would cascade-delete every child row.
    engine = sqlite.make_engine(path, busy_timeout_ms, foreign_keys=False, transactional_ddl=True)
    try:
        with engine.begin() as conn:
            _run_alembic(conn, target)
        with engine.connect() as conn:
            problems = sqlite.foreign_key_problems(conn)
        if problems:
            raise StoreError(
                f"migration of {path} left {problems} broken foreign keys; "
                f"restore {backup_path or 'a backup'}"
            )
    except OperationalError as exc:
        raise StoreError(f"cannot migrate {path} (nothing changed): {exc.orig}") from None
    finally:
        engine.dispose()
    logger.info("database %s migrated %s -> %s", path, before, target)
    return UpgradeResult(before, target, backup_path)


def upgrade_from_settings(settings: Settings, backup: bool = True) -> UpgradeResult:
    """upgrade() of database.url, or else database.path keeping database.backups_kept backups
    (`kiosk db upgrade`)."""
    db = settings.database
    return upgrade(db.location, backup=backup, backups_kept=db.backups_kept,
                   busy_timeout_ms=db.busy_timeout_ms)
