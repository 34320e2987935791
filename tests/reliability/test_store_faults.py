"""Issue 11, the store: faults found by people who set out to break the kiosk, on real SQLite files
and real processes. Each test failed on the code before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.store import add_person, current_revision, get_person_by_employee_id, open_database

pytestmark = pytest.mark.reliability


def _other_process_opens_and_closes(path: Path) -> None:
    """Another process (the door service, `kiosk db status`) opens the database, reads, closes."""
    script = ("import sqlite3, sys\n"
              "con = sqlite3.connect(sys.argv[1])\n"
              "con.execute('SELECT count(*) FROM people').fetchall()\n"
              "con.close()\n")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)


def _deleted_wal_fds() -> list[str]:
    """The fds of this process on a -wal or -shm file that is no longer on disk."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "(deleted)" in target and ("-wal" in target or "-shm" in target):
            out.append(target)
    return out


# --- 1. opening the file outside SQLite drops this process's locks ----------------------------


@pytest.mark.parametrize("touch", ["status page", "open again"])
def test_writes_survive_another_process_after_status_page(tmp_path: Path, touch: str) -> None:
    """A long-lived Database (kiosk serve) reads the schema revision (the admin status page) or opens
    the file again; another process opens and closes the DB; the next write must still be on disk."""
    path = tmp_path / "kiosk.db"
    db = open_database(path)
    try:
        add_person(db, "E1", "Ann")  # pooled connection open, WAL in use
        if touch == "status page":
            assert current_revision(path) is not None  # what /admin/status calls
        else:
            open_database(path).close()
        _other_process_opens_and_closes(path)
        add_person(db, "E2", "Bob")  # the web app goes on writing
        assert _deleted_wal_fds() == []
    finally:
        db.close()
    with open_database(path) as again:
        assert get_person_by_employee_id(again, "E2").name == "Bob"
