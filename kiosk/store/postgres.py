"""Everything PostgreSQL-specific in the store (the central server): the URL check, the engine (lock
timeout, UTC session, pre-ping), error translation, VACUUM FULL after an erasure, read snapshots
(REPEATABLE READ READ ONLY) and the migration lock.

The models and queries elsewhere in kiosk.store are dialect-neutral; kiosk.store.sqlite holds the
same seam for the SQLite file of a single Pi or a door (see db.EngineOps).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError

from kiosk.config.site import DATABASE_URL_EXAMPLE, DATABASE_URL_SCHEME, database_url_problem
from kiosk.errors import (
    DatabaseDamaged,
    DatabaseReadOnly,
    DatabaseUnavailable,
    StoreError,
)

logger = logging.getLogger(__name__)

SCHEME = DATABASE_URL_SCHEME
CONNECT_TIMEOUT_S = 10  # a server that does not answer in this time counts as down
POOL_SIZE = 10  # connections kept open; the web app's threads beyond it open (and close) more
MAX_OVERFLOW = 30
# pg_advisory_xact_lock key held while migrating, so that two `kiosk db upgrade` (or two services
# starting on an empty database) never run the migrations at once: "kiosk" in ASCII.
MIGRATION_LOCK = 0x6B696F736B
# How long VACUUM FULL (after an erasure) waits for readers of a table before giving up for now: while
# it waits, new readers queue behind it. Longer: an erasure finishes at once more often; shorter:
# door gallery pulls and web pages never stall longer than this behind a long report.
VACUUM_LOCK_TIMEOUT_MS = 1000
# The tables that hold a person's biometric and consent rows, rewritten after an erasure (VACUUM FULL)
# so the deleted rows' bytes leave the table files (erasure.py deletes from the same tables).
ERASED_TABLES = ("face_templates", "enrolment_images", "consent_history")


# --- the URL -----------------------------------------------------------------------------------


def is_url(location: object) -> bool:
    """True when location is a database URL string (scheme://...), not a file path."""
    return isinstance(location, str) and ("://" in location or location.startswith("sqlite:"))


def url_problem(url: str) -> str | None:
    """Why url cannot be used as database.url (one line, never the password), or None."""
    problem = database_url_problem(url)
    if problem is not None:
        return problem
    try:
        make_url(url)
    except ArgumentError:
        return f"not a valid URL; e.g. {DATABASE_URL_EXAMPLE}"
    return None


def check_url(url: str) -> str:
    """url itself, or StoreError saying why it cannot be used."""
    problem = url_problem(url)
    if problem is not None:
        raise StoreError(f"database.url: {problem}")
    return url


def display(url: str) -> str:
    """The URL as it may be shown or logged: the password replaced by ***, %-escapes decoded for reading."""
    try:
        return unquote(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return "(invalid database URL)"


def database_name(url: str) -> str:
    """The database the URL names, e.g. "kiosk"."""
    return make_url(url).database or ""


# --- engines -----------------------------------------------------------------------------------


def make_engine(url: str, busy_timeout_ms: int) -> Engine:
    """The kiosk's engine on the PostgreSQL database at url: sessions in UTC, lock_timeout =
    busy_timeout_ms (a writer waiting longer for a lock fails, like SQLite's busy timeout), a ping
    before each checkout (a restarted server costs no failed request), connect timeout 10 s."""
    parsed = make_url(check_url(url))
    options = f"-c TimeZone=UTC -c lock_timeout={max(int(busy_timeout_ms), 1)}"
    given = parsed.query.get("options")
    if given:
        options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
    connect_args: dict[str, Any] = {"options": options, "application_name": "kiosk"}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(parsed, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW,
                         connect_args=connect_args)


def lock_for_migration(conn: Connection) -> None:
    """Hold the migration lock until conn's transaction ends (another migrator waits for it)."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")


# --- errors ------------------------------------------------------------------------------------

_DOWN = ("no such file or directory", "connection refused", "could not translate host name",
         "timeout expired", "is the server running", "server closed the connection",
         "connection is closed", "could not connect", "network is unreachable", "no route to host",
         "consuming input failed", "connection is lost", "terminating connection")
_AUTH = ("authentication failed", "no pg_hba.conf entry", "password", "role \"")


def _first_line(orig: BaseException) -> str:
    text = str(orig).strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    # libpq's "connection failed: connection to server on socket "..." failed: FATAL:  <reason>"
    return line.split("FATAL:", 1)[-1].strip() if "FATAL:" in line else line


def database_error(where: str, exc: BaseException) -> StoreError:
    """The StoreError to show for a psycopg / SQLAlchemy error on the PostgreSQL database `where`
    (the URL without its password): one line, DatabaseUnavailable for what a retry may cure."""
    orig = getattr(exc, "orig", None) or exc
    code = str(getattr(orig, "sqlstate", "") or "")
    text = _first_line(orig)
    low = str(orig).lower()
    if code == "25006" or "read-only transaction" in low:
        return DatabaseReadOnly(f"{where} is read-only ({text}): a standby, or default_transaction_read_only; "
                                "nothing was changed. Point database.url at the primary server")
    if code == "42501":
        return DatabaseReadOnly(f"{where}: the database role may not do this ({text}); nothing was changed. "
                                "The kiosk's role must own the database (deploy/install-server.sh sets this up)")
    if code in ("40001", "40P01"):
        return DatabaseUnavailable(f"{where}: the change conflicted with another one at the same moment ({text}); "
                                   "nothing was changed, try again")
    if code in ("55P03", "57014"):
        return DatabaseUnavailable(f"{where} is busy: another session kept the rows or tables locked ({text}); "
                                   "try again")
    if code.startswith(("XX001", "XX002")):
        return DatabaseDamaged(f"{where} is damaged ({text}); restore it from a pg_dump or base backup")
    if code == "3D000" or ("database \"" in low and "does not exist" in low):
        return DatabaseUnavailable(f"{where}: the database does not exist on that server ({text}); create it "
                                   "(deploy/install-server.sh, or createdb -O kiosk kiosk) and run `kiosk db upgrade`")
    if code.startswith("28") or any(word in low for word in _AUTH) and not code:
        return DatabaseUnavailable(f"{where}: PostgreSQL refused the login ({text}); check the user in database.url, "
                                   "pg_hba.conf (peer: run as the system user of the same name) and ~/.pgpass")
    if code in ("57P01", "57P02", "57P03") or "starting up" in low or "shutting down" in low:
        return DatabaseUnavailable(f"{where}: PostgreSQL is starting or stopping ({text}); try again")
    if code in ("53100", "53200", "53300"):
        return DatabaseUnavailable(f"{where}: the server is out of resources ({text}); nothing was written")
    if code.startswith("08") or (not code and any(word in low for word in _DOWN)):
        return DatabaseUnavailable(f"{where}: PostgreSQL is not answering ({text}); is the server running "
                                   "(systemctl status postgresql)? Nothing was written, try again")
    if code == "42P01":
        return StoreError(f"{where}: a kiosk table is missing ({text}); run `kiosk db upgrade`")
    return StoreError(f"database error on {where}: {text}")


def _is_database_error(exc: BaseException) -> bool:
    """A DBAPI error to translate (not a constraint violation: callers check those themselves)."""
    return isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)


@contextmanager
def translated_errors(where: str) -> Iterator[None]:
    """Raise psycopg / SQLAlchemy errors on the database `where` as database_error()'s StoreError."""
    try:
        yield
    except DBAPIError as exc:
        if not _is_database_error(exc):
            raise
        raise database_error(where, exc) from exc


# --- VACUUM, snapshots -------------------------------------------------------------------------


def vacuum(engine: Engine, where: str, tables: Sequence[str]) -> None:
    """VACUUM FULL each table (outside a transaction): the table and its TOAST data are rewritten
    into new files and the old ones truncated at commit, so deleted rows' bytes leave the table
    files. It needs the table to itself (ACCESS EXCLUSIVE): it waits at most VACUUM_LOCK_TIMEOUT_MS
    for readers (a report's snapshot) to finish, then raises DatabaseUnavailable ("busy"), so that
    the door's gallery reads queued behind it never wait longer than that."""
    if not tables:
        return
    with translated_errors(where), \
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"SET lock_timeout = {int(VACUUM_LOCK_TIMEOUT_MS)}")
        try:
            for table in tables:
                conn.exec_driver_sql(f'VACUUM FULL "{table}"')
        finally:
            try:
                conn.exec_driver_sql("RESET lock_timeout")
            except DBAPIError:  # the connection broke: do not pool it; the first error is the one to show
                conn.invalidate()
    logger.info("VACUUM FULL of %s on %s", ", ".join(tables), where)


def begin_read_snapshot(conn: Connection) -> None:
    """Make conn's next transaction REPEATABLE READ READ ONLY: every query in it sees the snapshot
    taken at its first statement; writes fail (DatabaseReadOnly). Reset when conn goes back to the pool."""
    conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


def end_read_snapshot(conn: Connection) -> None:
    """End the snapshot's transaction (ROLLBACK: it changed nothing)."""
    conn.rollback()


def in_transaction(conn: Connection) -> bool:
    """True when the psycopg connection under conn is inside a transaction."""
    import psycopg.pq

    raw: Any = conn.connection.driver_connection
    return bool(raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)


class PostgresOps:
    """The engine seam (db.EngineOps) for a PostgreSQL database at url."""

    kind = "postgresql"
    path: Path | None = None
    # the read snapshot and transaction checks need no state: this module's functions, as they are
    begin_read_snapshot = staticmethod(begin_read_snapshot)
    end_read_snapshot = staticmethod(end_read_snapshot)
    in_transaction = staticmethod(in_transaction)

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = display(url)

    def translated_errors(self) -> AbstractContextManager[None]:
        """A context manager translating psycopg errors (see translated_errors)."""
        return translated_errors(self.where)

    def vacuum(self, engine: Engine, tables: Sequence[str] | None) -> None:
        """VACUUM FULL the tables (None: ERASED_TABLES; see vacuum)."""
        vacuum(engine, self.where, ERASED_TABLES if tables is None else tables)

    def pragma(self, engine: Engine, name: str) -> Any:
        """Refused: PRAGMAs are SQLite's."""
        raise StoreError(f"PRAGMA {name}: this database is PostgreSQL ({self.where}); PRAGMAs are SQLite's")

    def identity(self) -> tuple[int, int] | None:
        """None: a server database has no file that could be replaced under us."""
        return None
