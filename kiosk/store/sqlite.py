"""Everything SQLite-specific in the store: engine PRAGMAs, error translation, the file-header check,
file identity, VACUUM, the backup API and the upgrade backups, edits of copied files, read snapshots.

The models and queries elsewhere in kiosk.store are dialect-neutral SQLAlchemy; SqliteOps is this
engine's side of the seam (db.EngineOps), kiosk.store.postgres the PostgreSQL one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DatabaseError, IntegrityError

from kiosk.errors import (
    DatabaseDamaged,
    DatabaseReadOnly,
    DatabaseUnavailable,
    NotAKioskDatabase,
    StoreError,
)

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS = 5000
LOW_DISK_BYTES = 50_000_000  # below this much free space an SQLITE_FULL is believed (50 MB)
_BACKUP_RE = re.compile(r"\.bak-(\d{8}T\d{6}\d*Z)$")

#: Errors the sqlite3 module raises on a database file opened outside SQLAlchemy (copies, backups);
#: UnicodeDecodeError: damaged text in a row.
FILE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, UnicodeDecodeError)
#: Errors sqlite3 raises when a copied or backup file cannot be changed.
FileDatabaseError = sqlite3.DatabaseError


# --- engines -----------------------------------------------------------------------------------


def url(path: Path) -> str:
    """The SQLAlchemy URL of the database file at path."""
    return f"sqlite:///{path}"


def plain_engine(path: Path) -> Engine:
    """An engine without the kiosk PRAGMAs (for looking at a file before it is trusted)."""
    return create_engine(url(path))


def make_engine(
    path: Path, busy_timeout_ms: int, foreign_keys: bool, transactional_ddl: bool = False
) -> Engine:
    """The kiosk's engine on the file at path: busy_timeout (ms), WAL, synchronous=FULL, foreign keys
    on or off, secure_delete; transactional_ddl: BEGIN IMMEDIATE around DDL too (migrations)."""
    engine = create_engine(url(path), future=True)

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


def pragma(engine: Engine, name: str) -> Any:
    """The value of PRAGMA name on a pooled connection of engine."""
    with engine.connect() as conn:
        return conn.execute(text(f"PRAGMA {name}")).scalar()


def foreign_key_problems(conn: Connection) -> int:
    """How many rows break a foreign key (PRAGMA foreign_key_check), e.g. after a migration."""
    return len(conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall())


def vacuum(engine: Engine, path: Path) -> None:
    """Rewrite the file without free pages and empty the WAL (erased bytes leave the disk)."""
    with translated_errors(path), \
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM")
        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy and busy[0]:
        logger.warning("WAL not fully checkpointed (another process is reading); "
                       "old pages leave the -wal file at its next checkpoint")


# --- the file itself ---------------------------------------------------------------------------


def is_sqlite_file(path: Path) -> bool:
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


def not_a_database(exc: BaseException) -> bool:
    """True when SQLAlchemy's or sqlite3's error says the file is not a database (SQLITE_NOTADB)."""
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlite_errorname", "") == "SQLITE_NOTADB"


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at path; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# --- errors ------------------------------------------------------------------------------------


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


# --- copies: the backup API, upgrade backups, edits of a copy --------------------------------


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


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def rewrite_file(path: Path, statements: Sequence[tuple[str, str, tuple[Any, ...]]]) -> bool:
    """Run (table, SQL with ? parameters, parameters) on the file at path, skipping tables it lacks
    (any schema revision), commit, and VACUUM when a row changed; True when one did.

    Raises FileDatabaseError (sqlite3.DatabaseError) when the file cannot be changed.
    """
    con = sqlite3.connect(path)
    try:
        # deleted rows are overwritten as they go, so their bytes are gone even when the VACUUM below fails
        # (a full disk) and a retry, changing no row, skips it; Debian builds default to this, others not
        con.execute("PRAGMA secure_delete = ON")
        tables = _tables(con)
        before = con.total_changes
        for table, sql, params in statements:
            if table in tables:
                con.execute(sql, params)
        con.commit()
        if con.total_changes == before:
            return False
        con.execute("VACUUM")
        return True
    finally:
        con.close()


def read_file(path: Path, table: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    """The rows of one SELECT (? parameters) on the existing file at path (a backup, a copy, or the live file
    read beside the store's own connections); None when the file lacks table (any schema revision).

    Raises FileDatabaseError (sqlite3.DatabaseError) when the file cannot be read.
    """
    if not path.exists():  # sqlite3.connect would create it
        raise FileDatabaseError(f"{path} does not exist")
    con = sqlite3.connect(path, timeout=DEFAULT_BUSY_TIMEOUT_MS / 1000)
    try:
        if table not in _tables(con):
            return None
        return [tuple(r) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()


def quick_check(path: Path) -> list[str]:
    """What PRAGMA quick_check says of the file at path (["ok"] when it is intact)."""
    con = sqlite3.connect(path)
    try:
        return [str(r[0]) for r in con.execute("PRAGMA quick_check").fetchall()]
    finally:
        con.close()


def strip_copy(path: Path, emptied: Sequence[str], blanked: Mapping[str, Sequence[str]],
               counted: Sequence[str]) -> dict[str, int]:
    """Make the copy at path one self-contained file (journal DELETE, secure_delete), delete every row
    of the emptied tables, set the blanked {table: columns} to NULL where they exist, VACUUM; returns
    {table: rows} of the counted tables (0 for one it lacks)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        con.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not just unlinked
        tables = _tables(con)
        for table in emptied:
            if table in tables:
                con.execute(f"DELETE FROM {table}")
        for table, columns in blanked.items():
            if table not in tables:
                continue
            present = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            blank = [c for c in columns if c in present]
            if blank:
                con.execute(f"UPDATE {table} SET {', '.join(f'{c} = NULL' for c in blank)}")
        con.commit()
        con.execute("VACUUM")  # the deleted pages must not stay in the file
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] if t in tables else 0
                for t in counted}
    finally:
        con.close()


# --- read snapshots ----------------------------------------------------------------------------


def begin_read_snapshot(conn: Connection) -> None:
    """Make conn read-only (PRAGMA query_only) and BEGIN a deferred read transaction on it (the
    sqlite3 module of Python 3.11 starts none before a SELECT): its snapshot starts at the first read."""
    conn.exec_driver_sql("PRAGMA query_only = ON")
    conn.exec_driver_sql("BEGIN")


def end_read_snapshot(conn: Connection) -> None:
    """ROLLBACK the snapshot's transaction and make the pooled connection writable again."""
    raw: Any = conn.connection.driver_connection
    try:
        if raw is not None and raw.in_transaction:
            conn.exec_driver_sql("ROLLBACK")
        conn.exec_driver_sql("PRAGMA query_only = OFF")
    finally:
        conn.rollback()


def in_transaction(conn: Connection) -> bool:
    """True when the DBAPI connection under conn is inside a transaction."""
    raw: Any = conn.connection.driver_connection
    return bool(raw.in_transaction)


class SqliteOps:
    """The engine seam (db.EngineOps) for the SQLite file at path."""

    kind = "sqlite"
    # the read snapshot and transaction checks need no state: this module's functions, as they are
    begin_read_snapshot = staticmethod(begin_read_snapshot)
    end_read_snapshot = staticmethod(end_read_snapshot)
    in_transaction = staticmethod(in_transaction)

    def __init__(self, path: Path) -> None:
        self.path: Path | None = path
        self.where = str(path)
        self._path = path

    def translated_errors(self) -> AbstractContextManager[None]:
        """A context manager translating SQLite's errors (see translated_errors)."""
        return translated_errors(self._path)

    def vacuum(self, engine: Engine, tables: Sequence[str] | None) -> None:
        """VACUUM the whole file and truncate the WAL (tables: ignored, every table is rewritten)."""
        vacuum(engine, self._path)

    def pragma(self, engine: Engine, name: str) -> Any:
        """The value of PRAGMA name (see pragma)."""
        return pragma(engine, name)

    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file now; None when there is none."""
        return file_identity(self._path)
