"""The throw-away PostgreSQL cluster of the tests (the pg_server and pg_url fixtures of conftest.py):
kiosk/pg_cluster.py, which `kiosk bench central` uses too; re-exported here under its old name."""

from __future__ import annotations

from kiosk.pg_cluster import (
    BINARIES,
    DEBIAN_PG,
    SETTINGS,
    SUPERUSER,
    PgServer,
    PgUnavailable,
    find_pg_bin,
)

__all__ = ["BINARIES", "DEBIAN_PG", "SETTINGS", "SUPERUSER", "PgServer", "PgUnavailable", "find_pg_bin"]
