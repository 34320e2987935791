"""An open kiosk database: sessions and the unit of work (Database.transaction).

Engine details (WAL, synchronous=FULL, foreign keys on) are in kiosk.store.sqlite; opening a
file (and refusing the wrong ones) in kiosk.store.opening.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session, sessionmaker

from kiosk.errors import StoreError
from kiosk.store import sqlite

if TYPE_CHECKING:
    from kiosk.store.erasure import FinishedErasure

logger = logging.getLogger(__name__)


class Database:
    """An open kiosk database: engine + session factory. Use the functions in kiosk.store."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # erasures interrupted earlier that open_from_settings finished (finish_pending_erasures)
        self.finished_erasures: list[FinishedErasure] = []
        self._identity = sqlite.file_identity(path)

    def moved(self) -> bool:
        """True when the file at self.path is no longer the one opened: deleted (its folder too), or
        replaced by a rename (a copy restored while we run). Commits then go to the unlinked old file
        and vanish at the next start, without any error from SQLite."""
        return self._identity is not None and sqlite.file_identity(self.path) != self._identity

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success (durably: synchronous=FULL), rolled back on error.

        SQLite's errors come out as database_error()'s StoreError kinds (DatabaseUnavailable for
        locked past busy_timeout, disk full, I/O error; DatabaseReadOnly; DatabaseDamaged), so
        callers outside the store can catch them.
        """
        with sqlite.translated_errors(self.path), self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                try:
                    session.rollback()
                except DatabaseError:  # a broken file or connection; the first error is the one to show
                    logger.debug("rollback failed", exc_info=True)
                raise

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A unit of work: every kiosk.store function given the Transaction (in place of the Database)
        runs in one session, committed once when the with-block ends, or rolled back whole when it
        raises. SQLite's errors come out as session() says. Inside one, this joins it.

        Steps that cannot run inside a transaction (erase_person, purge_expired: they VACUUM) refuse it.
        """
        with self.session() as session:
            yield Transaction(self, session)

    def vacuum(self) -> None:
        """Rewrite the file without free pages and empty the WAL (erased bytes leave the disk)."""
        sqlite.vacuum(self.engine, self.path)

    def pragma(self, name: str) -> Any:
        """The value of a PRAGMA on a pooled connection (for checks and tests)."""
        return sqlite.pragma(self.engine, name)

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
        """The transaction's session, with SQLite's errors translated as Database.session() does."""
        with sqlite.translated_errors(self.path):
            yield self.bound_session

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """This transaction itself (a nested unit of work joins the outer one)."""
        yield self

    def vacuum(self) -> None:
        """Refused: VACUUM cannot run inside a transaction."""
        raise StoreError("VACUUM cannot run inside a transaction; call this outside db.transaction()")


def refuse_transaction(db: Database, what: str) -> None:
    """StoreError when db is a Transaction: `what` commits and VACUUMs on its own."""
    if isinstance(db, Transaction):
        raise StoreError(f"{what} cannot run inside db.transaction(): it commits and VACUUMs by itself")
