"""Issue 11, the store: faults found by people who set out to break the kiosk, on real SQLite files.
The CLI runs in this process (cli_helpers.run_cli); real processes where a process is the point (an
erasure killed with SIGKILL, another process opening and closing the file). Each test failed on the
code before its fix."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import CliResult, run_cli

from kiosk.config import RetentionSettings
from kiosk.store import (
    Database,
    add_person,
    add_templates,
    backup_database,
    current_revision,
    events_between,
    get_person_by_employee_id,
    list_audit,
    open_database,
    purge_expired,
    record_event,
)

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday at the door
SITE_TZ = "Europe/Berlin"

pytestmark = pytest.mark.reliability


def _other_process_opens_and_closes(path: Path) -> None:
    """Another process (the door service, `kiosk db status`) opens the database, reads, closes."""
    script = ("import sqlite3, sys\n"
              "con = sqlite3.connect(sys.argv[1])\n"
              "con.execute('SELECT count(*) FROM people').fetchall()\n"
              "con.close()\n")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)


def kiosk(config: Path, *args: str, stdin: str | None = None) -> CliResult:
    """`kiosk --config config ARGS` in this process (cli_helpers.run_cli; KIOSK_* variables dropped)."""
    return run_cli(*args, config=config, stdin=stdin)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config file for the CLI: Berlin site time, database tmp_path/k.db."""
    path = tmp_path / "kiosk.yaml"
    path.write_text(f"site:\n  timezone: {SITE_TZ}\ndatabase:\n  path: {tmp_path / 'k.db'}\n")
    return path


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


# --- 2. a clock far ahead erases history; a clock that went back stores "out" before "in" -------


def _all_events(db: Database) -> list:
    return events_between(db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_purge_refuses_a_clock_far_ahead_of_the_data(db: Database) -> None:
    """A Pi booted with its clock at 2028 must not delete a year of events as 'expired'."""
    ann = add_person(db, "E1", "Ann", now=T0 - timedelta(days=380))
    for days in (380, 200, 30, 0):
        record_event(db, ann.id, T0 - timedelta(days=days), "in", "kiosk-1")
    retention = RetentionSettings(attendance_days=400)
    wrong_clock = datetime(2028, 3, 1, 8, 0, tzinfo=UTC)
    result = purge_expired(db, wrong_clock, retention, actor="kiosk")
    assert len(_all_events(db)) == 4  # nothing deleted
    assert result.refused and "clock" in result.refused and result.events_deleted == 0
    refusals = [a for a in list_audit(db) if a.action == "retention.purge_refused"]
    assert len(refusals) == 1 and "clock" in refusals[0].details["reason"]
    # the refusal's own audit line (written at the wrong time) does not make the clock right
    assert purge_expired(db, wrong_clock + timedelta(days=1), retention).refused
    assert len(_all_events(db)) == 4
    # with the clock right again, the purge works as before
    right = purge_expired(db, T0 + timedelta(days=1), RetentionSettings(attendance_days=365))
    assert right.refused is None and right.events_deleted == 1 and len(_all_events(db)) == 3


def test_event_before_the_latest_is_flagged_for_review(config: Path) -> None:
    """The clock went back an hour: the 'out' that lands before the 'in' is stored, flagged, and marked."""
    from kiosk.store import open_database as open_db

    cli_db = open_db(config.parent / "k.db")
    try:
        ann = add_person(cli_db, "E1", "Ann")
        bob = add_person(cli_db, "E2", "Bob")
        check_in = record_event(cli_db, ann.id, T0 + timedelta(hours=1), "in", "kiosk-1")
        assert check_in.review is None
        back = record_event(cli_db, ann.id, T0 + timedelta(minutes=30), "out", "kiosk-1")
        assert back.review and "before" in back.review
        # Bob's first event: earlier than the newest event of anyone at the door -> flagged too
        other = record_event(cli_db, bob.id, T0, "in", "kiosk-1")
        assert other.review
        ok = record_event(cli_db, ann.id, T0 + timedelta(hours=9), "out", "kiosk-1")
        assert ok.review is None
    finally:
        cli_db.close()
    proc = kiosk(config, "events", "list", "E1", "--date", "2026-11-02")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert "REVIEW" in lines[0] and "REVIEW" not in lines[1] + lines[2]  # 09:30 out, 10:00 in, 18:00 out


# --- 3. an erasure killed after its commit leaves the face templates in the backups ------------


EMBEDDING = (np.arange(128, dtype=np.float32) * 0.0123 + 0.777).astype(np.float32)  # easy to find in bytes


def _holds_template(path: Path) -> bool:
    """Whether the embedding's bytes are in the file at path or its -wal (read with no connection open)."""
    needle = EMBEDDING.tobytes()[:64]
    return any(needle in p.read_bytes() for p in path.parent.glob(path.name + "*")
               if p.is_file() and not p.name.endswith("-shm"))


DIE_AT_FIRST_VACUUM = """
import os, signal, sys
from kiosk.store.db import Database

def die(self):  # the first thing an erasure does after its commit: VACUUM; a power cut strikes here
    os.kill(os.getpid(), signal.SIGKILL)

Database.vacuum = die
from kiosk.cli import main
main(sys.argv[1:], prog_name="kiosk")
"""


def _kill_erasure_after_commit(config: Path) -> None:
    """`kiosk people remove E1 --yes --with-events` as a real process that SIGKILLs itself right after
    the erasure's commit, before the backups are scrubbed and the file is vacuumed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK")}
    proc = subprocess.run([sys.executable, "-c", DIE_AT_FIRST_VACUUM, "--config", str(config), "people",
                           "remove", "E1", "--yes", "--with-events"], env=clean, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("then", ["remove again", "any other command"])
def test_erasure_killed_after_commit_is_finished_later(config: Path, then: str) -> None:
    db_path = config.parent / "k.db"
    with open_database(db_path) as db:
        ann = add_person(db, "E1", "Ann")
        add_templates(db, ann.id, np.stack([EMBEDDING, EMBEDDING * 2]))
        record_event(db, ann.id, T0, "in", "kiosk-1")
        add_person(db, "E2", "Bob")
        backup = backup_database(db_path, backups_kept=3)  # as `kiosk db upgrade` leaves one
    assert backup is not None and _holds_template(backup)

    _kill_erasure_after_commit(config)
    assert _holds_template(backup)  # the fault: the templates are still in the backup

    if then == "remove again":
        proc = kiosk(config, "people", "remove", "E1", "--yes", "--with-events")
        assert proc.returncode == 0, proc.stderr
        assert "E1" in proc.stdout and "finished" in proc.stdout
    else:
        proc = kiosk(config, "people", "list")
        assert proc.returncode == 0, proc.stderr
        assert "Bob" in proc.stdout and "Ann" not in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not _holds_template(backup)
    assert not _holds_template(db_path)
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("SELECT count(*) FROM pending_erasures").fetchone() == (0,)
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY id")]
    finally:
        con.close()
    assert actions.count("person.erase") == 1 and "person.erase_finished" in actions


# --- 4. a correction outside the retention window is accepted and then silently purged ----------


def _events_of(config: Path, employee_id: str) -> list[tuple[str, str]]:
    con = sqlite3.connect(config.parent / "k.db")
    try:
        return con.execute("SELECT e.occurred_at, e.kind FROM attendance_events e JOIN people p "
                           "ON p.id = e.person_id WHERE p.employee_id = ?", (employee_id,)).fetchall()
    finally:
        con.close()


@pytest.fixture
def ann_at_the_door(config: Path) -> Path:
    """The CLI's database with Ann (E1) enrolled; the config path."""
    with open_database(config.parent / "k.db") as db:
        add_person(db, "E1", "Ann")
    return config


@pytest.mark.parametrize("at, says", [("1970-01-01 09:00", "retention"), ("2099-01-01 09:00", "future")])
def test_correction_outside_retention_is_refused(ann_at_the_door: Path, at: str, says: str) -> None:
    proc = kiosk(ann_at_the_door, "events", "add", "E1", "--kind", "in", "--at", at, "--note", "forgot")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _events_of(ann_at_the_door, "E1") == []


def test_store_refuses_corrections_older_than_retention(db: Database) -> None:
    """The web corrections box calls the same store function."""
    from kiosk.errors import KioskError
    from kiosk.store import add_correction

    ann = add_person(db, "E1", "Ann")
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with pytest.raises(KioskError, match="older than the 400 days"):
        add_correction(db, ann.id, now - timedelta(days=401), "in", actor="web:alice", note="x", now=now,
                       retention_days=400)
    ok = add_correction(db, ann.id, now - timedelta(days=399), "in", actor="web:alice", note="x", now=now,
                        retention_days=400)
    assert len(_all_events(db)) == 1 and ok.id


# --- 5. a local time that does not exist (or happens twice) in the site's zone -----------------


def test_nonexistent_local_time_is_refused(ann_at_the_door: Path) -> None:
    """2026-03-29 02:30 does not exist in Berlin (clocks jump 02:00 -> 03:00); it was stored as 03:30."""
    proc = kiosk(ann_at_the_door, "events", "add", "E1", "--kind", "in", "--at", "2026-03-29 02:30",
                 "--note", "forgot")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "does not exist" in proc.stderr, proc.stderr
    assert _events_of(ann_at_the_door, "E1") == []


def test_ambiguous_local_time_needs_an_offset(ann_at_the_door: Path) -> None:
    """2026-10-25 02:30 happens twice in Berlin; the user must say which with a UTC offset."""
    proc = kiosk(ann_at_the_door, "events", "add", "E1", "--kind", "out", "--at", "2026-10-25 02:30",
                 "--note", "night shift")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "twice" in proc.stderr and "+02:00" in proc.stderr and "+01:00" in proc.stderr, proc.stderr
    assert _events_of(ann_at_the_door, "E1") == []
    for at in ("2026-10-25 02:30+02:00", "2026-10-25 02:30+01:00"):
        proc = kiosk(ann_at_the_door, "events", "add", "E1", "--kind", "out", "--at", at, "--note", "night shift")
        assert proc.returncode == 0, proc.stderr
    assert sorted(t[:19] for t, _ in _events_of(ann_at_the_door, "E1")) == [
        "2026-10-25 00:30:00", "2026-10-25 01:30:00"]
    wrong = kiosk(ann_at_the_door, "events", "add", "E1", "--kind", "out", "--at", "2026-10-25 05:30+02:00",
                  "--note", "x")  # Berlin is at +01:00 by then
    assert wrong.returncode != 0 and "offset" in wrong.stderr and "Traceback" not in wrong.stderr


def test_web_form_times_go_through_the_same_check() -> None:
    from zoneinfo import ZoneInfo

    from kiosk.clock import site_time
    from kiosk.errors import KioskError

    berlin = ZoneInfo(SITE_TZ)
    with pytest.raises(KioskError, match="does not exist"):
        site_time(datetime(2026, 3, 29, 2, 30), berlin)
    with pytest.raises(KioskError, match="twice"):
        site_time(datetime(2026, 10, 25, 2, 30), berlin)
    first = site_time(datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=2))), berlin)
    assert first.tzinfo is berlin and first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert site_time(datetime(2026, 6, 15, 9, 0), berlin).utcoffset() == timedelta(hours=2)


# --- 6. read-only database, damaged database ---------------------------------------------------


def _fill_deterministic(path: Path) -> None:
    """A real database of ~80 pages: 40 people, 5 templates and 20 events each, byte for byte the same
    on every run (fixed times and embeddings), checkpointed into the main file."""
    rng = np.random.default_rng(0)
    with open_database(path) as db:
        for i in range(40):
            p = add_person(db, f"E{i}", f"Person {i}", now=T0)
            add_templates(db, p.id, rng.random((5, 128), dtype=np.float32), now=T0)
            for j in range(20):
                record_event(db, p.id, T0 + timedelta(minutes=20 * i + j), "in", "kiosk-1")


def _damage(path: Path, seed: int) -> None:
    """Overwrite 1 to 64 bytes somewhere in a data page (not page 1) with seeded random bytes."""
    import random

    pages = path.stat().st_size // 4096
    rnd = random.Random(seed)
    page, offset, n = rnd.randint(2, pages), rnd.randint(0, 4000), rnd.randint(1, 64)
    with path.open("r+b") as fh:  # no connection to this file is open in this process
        fh.seek((page - 1) * 4096 + offset)
        fh.write(rnd.randbytes(n))


@pytest.fixture
def read_only():
    """make(path): writes to path really fail, even as root (chattr +i; chmod when not root); undone after."""
    marked: list[tuple[Path, int]] = []

    def make(path: Path) -> None:
        if os.geteuid() == 0:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
                pytest.skip("chattr +i does not work here (root ignores chmod)")
        else:
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
        marked.append((path, path.stat().st_mode))

    yield make
    for path, mode in reversed(marked):
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        os.chmod(path, mode | 0o200)


def _one_clear_error(proc: CliResult) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "sqlalche" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_database_gives_one_clear_message(ann_at_the_door: Path, read_only, what: str) -> None:
    db_path = ann_at_the_door.parent / "k.db"
    folder = db_path.parent / "db"
    if what == "folder":  # the database in a folder of its own, then the folder made read-only
        folder.mkdir()
        db_path.rename(folder / "k.db")
        db_path = folder / "k.db"
        ann_at_the_door.write_text(f"site:\n  timezone: {SITE_TZ}\ndatabase:\n  path: {db_path}\n")
        read_only(folder)
    else:
        read_only(db_path)
    before = db_path.read_bytes()
    outside = ann_at_the_door.parent / "copies"
    outside.mkdir()
    for args, stdin in ((["people", "rename", "E1", "Ann Other"], None),
                        (["users", "add", "bob", "--role", "admin", "--password-stdin"], "a-long-password-1\n"),
                        (["db", "backup", str(outside / "copy.db")], None)):
        line = _one_clear_error(kiosk(ann_at_the_door, *args, stdin=stdin))
        assert "read-only" in line and str(db_path) in line, line
    assert db_path.read_bytes() == before


def _detected_damage_seeds(good: Path, scratch: Path, wanted: int) -> list[int]:
    """The first `wanted` seeds whose _damage() SQLite's quick_check finds (many hit unused bytes).

    Chosen at run time, so the test does not depend on where the schema puts its pages; on the
    schema of issue 11 they included damage that made `kiosk db backup` say 'database or disk is
    full', die with a UnicodeDecodeError traceback, or write a damaged copy in silence.
    """
    import shutil

    seeds = []
    for seed in range(200):
        shutil.copy(good, scratch)
        _damage(scratch, seed)
        con = sqlite3.connect(scratch)  # its own scratch file: no other connection in this process
        try:
            intact = con.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        except (sqlite3.DatabaseError, UnicodeDecodeError):
            intact = False
        finally:
            con.close()
        if not intact:
            seeds.append(seed)
        if len(seeds) == wanted:
            return seeds
    raise AssertionError(f"only {len(seeds)} damaging seeds found")


def test_backup_of_a_damaged_database_names_the_damage(config: Path, tmp_path: Path) -> None:
    db_path = config.parent / "k.db"
    good = tmp_path / "good" / "k.db"
    good.parent.mkdir()
    _fill_deterministic(good)
    scratch = tmp_path / "scratch" / "k.db"
    scratch.parent.mkdir()
    dest = config.parent / "copy.db"
    for seed in _detected_damage_seeds(good, scratch, wanted=4):
        good_bytes = good.read_bytes()
        db_path.write_bytes(good_bytes)
        _damage(db_path, seed)
        line = _one_clear_error(kiosk(config, "db", "backup", str(dest)))
        assert "damaged" in line and "integrity_check" in line and "backup" in line, (seed, line)
        assert "disk is full" not in line and str(db_path) in line, (seed, line)
        assert not dest.exists() and not list(config.parent.glob("copy.db*")), seed
        for extra in config.parent.glob("k.db-*"):
            extra.unlink()


def test_sqlite_full_with_free_space_is_reported_as_damage(tmp_path: Path) -> None:
    """SQLite also says 'database or disk is full' for some damaged pages: believed only on a full disk."""
    from kiosk.errors import DatabaseDamaged
    from kiosk.store.sqlite import database_error

    path = tmp_path / "k.db"
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE t (x BLOB)")
        con.execute("PRAGMA max_page_count = 3")  # a real SQLITE_FULL, with gigabytes free
        with pytest.raises(sqlite3.OperationalError) as caught:
            con.execute("INSERT INTO t VALUES (zeroblob(100000))")
    finally:
        con.close()
    assert caught.value.sqlite_errorname == "SQLITE_FULL"
    error = database_error(path, caught.value)
    assert isinstance(error, DatabaseDamaged) and str(error).startswith(f"{path} is damaged")
    assert "integrity_check" in str(error)
