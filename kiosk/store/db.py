"""An open kiosk database: sessions and the unit of work (Database.transaction), on either engine.

Engine details sit behind one seam, EngineOps: kiosk.store.sqlite (WAL, synchronous=FULL, foreign
keys on, VACUUM of the file) and kiosk.store.postgres (lock timeout, VACUUM FULL of the biometric
tables, REPEATABLE READ snapshots). Opening (and refusing the wrong databases) is in kiosk.store.opening.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from kiosk.errors import StoreError
from kiosk.store import sqlite

if TYPE_CHECKING:
    from kiosk.store.erasure import FinishedErasure

logger = logging.getLogger(__name__)


class EngineOps(Protocol):
    """What differs between the engines (sqlite.SqliteOps, postgres.PostgresOps); nothing else in
    kiosk.store may depend on the engine."""

    kind: str  # "sqlite" | "postgresql"
    where: str  # the file's path, or the URL without its password: for messages and logs
    path: Path | None  # the SQLite file; None on PostgreSQL

    def translated_errors(self) -> AbstractContextManager[None]:
        """Raise the engine's errors as kiosk.errors.StoreError kinds (one line for a person)."""

    def vacuum(self, engine: Engine, tables: Sequence[str] | None) -> None:
        """Make deleted rows of tables leave the disk (SQLite: the whole file; None: the biometric tables)."""

    def begin_read_snapshot(self, conn: Connection) -> None:
        """Make conn's next transaction a read-only snapshot (reporting.read_snapshot)."""

    def end_read_snapshot(self, conn: Connection) -> None:
        """End the snapshot begun on conn."""

    def in_transaction(self, conn: Connection) -> bool:
        """True when the DBAPI connection under conn is inside a transaction."""

    def pragma(self, engine: Engine, name: str) -> Any:
        """SQLite: the value of PRAGMA name; PostgreSQL: StoreError."""

    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the database file; None without one."""


class Database:
    """An open kiosk database: engine + session factory. Use the functions in kiosk.store.

    Database(path, engine) is an SQLite file; Database(None, engine, postgres.PostgresOps(url))
    a PostgreSQL database. kind says which ("sqlite" | "postgresql"), where names it in messages.
    """

    def __init__(self, path: Path | None, engine: Engine, ops: EngineOps | None = None) -> None:
        if ops is None:
            if path is None:
                raise StoreError("Database: an SQLite database needs its file's path")
            ops = sqlite.SqliteOps(path)
        self.ops: EngineOps = ops
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # erasures interrupted earlier that open_from_settings finished (finish_pending_erasures)
        self.finished_erasures: list[FinishedErasure] = []
        self._identity = ops.identity()

    @property
    def kind(self) -> str:
        """The engine: "sqlite" or "postgresql"."""
        return self.ops.kind

    @property
    def where(self) -> str:
        """The database for messages: the SQLite file's path, or the URL without its password."""
        return self.ops.where

    def moved(self) -> bool:
        """True when the file at self.path is no longer the one opened: deleted (its folder too), or
        replaced by a rename (a copy restored while we run). Commits then go to the unlinked old file
        and vanish at the next start, without any error from SQLite. Always False on PostgreSQL."""
        return self._identity is not None and self.ops.identity() != self._identity

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success (durably: synchronous=FULL on SQLite), rolled back on error.

        The engine's errors come out as StoreError kinds (DatabaseUnavailable: locked past the busy
        timeout, disk full, I/O error, server down or refusing the login, a conflict; DatabaseReadOnly;
        DatabaseDamaged), so callers outside the store can catch them. Constraint violations
        (IntegrityError) are left to the caller.
        """
        with self.ops.translated_errors(), self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                try:
                    session.rollback()
                except DBAPIError:  # a broken file or connection; the first error is the one to show
                    logger.debug("rollback failed", exc_info=True)
                raise

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A unit of work: every kiosk.store function given the Transaction (in place of the Database)
        runs in one session, committed once when the with-block ends, or rolled back whole when it
        raises. The engine's errors come out as session() says. Inside one, this joins it.

        Steps that cannot run inside a transaction (erase_person, purge_expired: they VACUUM) refuse it.
        """
        with self.session() as session:
            yield Transaction(self, session)

    def vacuum(self, tables: Sequence[str] | None = None) -> None:
        """Make deleted rows leave the disk: SQLite rewrites the whole file and empties the WAL;
        PostgreSQL rewrites the given tables (VACUUM FULL; None: the tables an erasure empties,
        postgres.ERASED_TABLES; empty: nothing to do)."""
        self.ops.vacuum(self.engine, tables)

    def pragma(self, name: str) -> Any:
        """The value of an SQLite PRAGMA on a pooled connection (for checks and tests); StoreError on
        PostgreSQL."""
        return self.ops.pragma(self.engine, name)

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BoundDatabase(Database):
    """A Database whose session() is always one given session (a transaction, a read snapshot).

    Pass it to any function of kiosk.store: they all work in that session. Nothing is committed
    here: whoever made the session ends it.
    """

    def __init__(self, db: Database, session: Session) -> None:  # no super().__init__: no engine of its own
        self.ops = db.ops
        self.path = db.path
        self.engine = db.engine
        self.finished_erasures = []
        self._identity = db._identity
        self.bound_session = session

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The bound session (not committed on exit)."""
        yield self.bound_session

    def close(self) -> None:
        """Nothing to do: the owner of the session ends it and returns the connection."""


class Transaction(BoundDatabase):
    """The unit of work of Database.transaction(): store functions given it share its one session."""

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The transaction's session, with the engine's errors translated as Database.session() does."""
        with self.ops.translated_errors():
            yield self.bound_session

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """This transaction itself (a nested unit of work joins the outer one)."""
        yield self

    def vacuum(self, tables: Sequence[str] | None = None) -> None:
        """Refused: VACUUM cannot run inside a transaction."""
        raise StoreError("VACUUM cannot run inside a transaction; call this outside db.transaction()")


def refuse_transaction(db: Database, what: str) -> None:
    """StoreError when db is a Transaction: `what` commits and VACUUMs on its own."""
    if isinstance(db, Transaction):
        raise StoreError(f"{what} cannot run inside db.transaction(): it commits and VACUUMs by itself")
