"""Schema revisions and migrations (Alembic): which revision a file has, and upgrade() to the newest.

A non-empty database that is behind is backed up first; files that are not kiosk databases, or are
newer than this code, are refused untouched.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import DatabaseError, OperationalError

from kiosk.config import Settings
from kiosk.errors import DatabaseTooNew, NotAKioskDatabase, StoreError
from kiosk.store import sqlite

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


def inspect_revision(path: Path) -> tuple[str | None, bool]:
    """(alembic revision or None, whether the DB has any tables); raises NotAKioskDatabase."""
    if not path.exists() or path.stat().st_size == 0:
        return None, False
    if not sqlite.is_sqlite_file(path):
        raise NotAKioskDatabase(f"{path} is not an SQLite database (not a kiosk database)")
    engine = sqlite.plain_engine(path)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            rev = (conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
                   if "alembic_version" in tables else None)
    except (DatabaseError, UnicodeDecodeError) as exc:
        if sqlite.not_a_database(exc):
            raise NotAKioskDatabase(f"{path} cannot be read as a database: {getattr(exc, 'orig', exc)}") from None
        raise sqlite.database_error(path, exc) from None
    finally:
        engine.dispose()
    if rev is None and tables - {"alembic_version"}:
        raise NotAKioskDatabase(
            f"{path} is an SQLite database without a kiosk schema version "
            f"(tables: {', '.join(sorted(tables)[:5])}); refusing to touch it"
        )
    if rev is not None and rev not in known_revisions():
        raise DatabaseTooNew(
            f"{path} has schema revision {rev}, newer than this kiosk version knows "
            f"(newest known: {head_revision()}); update the software or restore a backup"
        )
    return rev, bool(tables)


def current_revision(path: Path | str) -> str | None:
    """The database's schema revision ("0001"...), or None for a missing/empty file."""
    return inspect_revision(Path(path))[0]


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


def upgrade(
    path: Path | str,
    backup: bool = True,
    backups_kept: int = 3,
    busy_timeout_ms: int = sqlite.DEFAULT_BUSY_TIMEOUT_MS,
    revision: str = "head",
) -> UpgradeResult:
    """Migrate the database at path to `revision` (default newest), creating it if missing.

    A non-empty database that is behind is first copied to <name>.bak-<timestamp> (when
    backup is true; the newest backups_kept copies are kept). Refuses (NotAKioskDatabase,
    DatabaseTooNew) files it must not touch. A database already at the target is left alone.
    """
    path = Path(path)
    before, has_tables = inspect_revision(path)
    target = head_revision() if revision == "head" else revision
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
            from alembic import command

            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
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
    """upgrade() of database.path keeping database.backups_kept backups (`kiosk db upgrade`)."""
    db = settings.database
    return upgrade(db.path, backup=backup, backups_kept=db.backups_kept,
                   busy_timeout_ms=db.busy_timeout_ms)
