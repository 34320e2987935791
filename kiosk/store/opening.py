"""Opening a kiosk database (an SQLite file or a PostgreSQL URL): create it at the newest schema,
refuse the wrong ones, finish erasures interrupted after their commit.

open_database() refuses databases that are not kiosk databases, databases newer than this code
and databases behind it (run upgrade() / `kiosk db upgrade` first). A missing or empty SQLite file,
or a PostgreSQL database without tables, is created at the newest schema.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kiosk.config import Settings
from kiosk.errors import DatabaseOutdated, StoreError
from kiosk.store import postgres, sqlite
from kiosk.store.db import Database
from kiosk.store.erasure import finish_pending_erasures
from kiosk.store.migrate import head_revision, inspect_revision, upgrade

logger = logging.getLogger(__name__)


def open_database(
    path: Path | str, busy_timeout_ms: int = sqlite.DEFAULT_BUSY_TIMEOUT_MS, create: bool = True
) -> Database:
    """Open the kiosk database at path: an SQLite file (a Path, or a str without "://"), or a
    postgresql+psycopg:// URL; its schema is created at the newest revision if missing and create.

    Raises DatabaseOutdated when its schema is behind (run `kiosk db upgrade`), DatabaseTooNew
    or NotAKioskDatabase when it must not be used, StoreError when it does not exist and not create
    (or the URL is not one the kiosk takes), DatabaseUnavailable when the server cannot be reached.
    """
    is_url = postgres.is_url(path)
    location: Path | str = postgres.check_url(str(path)) if is_url else Path(path)
    where = postgres.display(str(location)) if is_url else str(location)
    rev, _ = inspect_revision(location)
    if rev is None:
        if not create:
            raise StoreError(f"no kiosk database at {where} (run `kiosk db upgrade` to create it)")
        upgrade(location, backup=False, busy_timeout_ms=busy_timeout_ms)
    elif rev != head_revision():
        how = ("back it up with pg_dump first" if is_url else "it backs the file up first")
        raise DatabaseOutdated(
            f"{where} has schema revision {rev}, this version needs {head_revision()}; "
            f"run `kiosk db upgrade` ({how})"
        )
    if isinstance(location, str):
        return Database(None, postgres.make_engine(location, busy_timeout_ms), postgres.PostgresOps(location))
    return Database(location, sqlite.make_engine(location, busy_timeout_ms, foreign_keys=True))


def open_from_settings(settings: Settings) -> Database:
    """open_database() with database.url (else database.path) and database.busy_timeout_ms from
    settings, then finish any erasure interrupted after its commit (db.finished_erasures lists them;
    a failure is logged and retried at the next open, the database stays usable)."""
    database = open_database(settings.database.location, busy_timeout_ms=settings.database.busy_timeout_ms)
    try:
        database.finished_erasures = finish_pending_erasures(database)
    except StoreError as exc:
        logger.warning("an interrupted erasure is not finished yet (retried at the next start): %s", exc)
    return database
