"""`kiosk db backup`: a copy for safe keeping elsewhere, without biometric or expression data (real processes)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from test_cli import kiosk

from kiosk import store


@pytest.fixture
def site(tmp_path) -> tuple[Path, Path, np.ndarray]:
    """(config, database, the stored template) with one person, a template and two events with expression data."""
    db_path = tmp_path / "kiosk.db"
    config = tmp_path / "kiosk.yaml"
    config.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {db_path}\n")
    template = np.random.default_rng(5).normal(size=128).astype(np.float32)
    with store.open_database(db_path) as db:
        person = store.add_person(db, "E1", "Ada Lovelace", expression_consent=True, now=datetime(2026, 3, 1, tzinfo=UTC))
        store.add_templates(db, person.id, template[None, :])
        start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
        for i, kind in enumerate(("in", "out")):
            store.record_event(db, person.id, start + timedelta(hours=9 * i), kind, "door",
                               expression_label="happy", expression_scores={"happy": 0.9, "neutral": 0.1},
                               expression_confidence=0.9, match_distance=0.3, match_score=0.8)
        store.add_leave(db, person.id, date(2026, 3, 3), date(2026, 3, 4), "holiday", actor="admin")
    return config, db_path, template


def _rows(path: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_backup_keeps_attendance_and_leaves_biometrics_out(site, tmp_path):
    config, db_path, template = site
    dest = tmp_path / "usb" / "kiosk-copy.db"
    dest.parent.mkdir()
    proc = kiosk("db", "backup", str(dest), config=config)
    assert proc.returncode == 0, proc.stderr
    assert "1 people, 2 attendance events" in proc.stdout
    assert _rows(dest, "SELECT employee_id, name FROM people") == [("E1", "Ada Lovelace")]
    assert _rows(dest, "SELECT count(*) FROM face_templates") == [(0,)]
    assert _rows(dest, "SELECT kind, expression_label, expression_scores, match_distance FROM attendance_events "
                       "ORDER BY occurred_at") == [("in", None, None, None), ("out", None, None, None)]
    assert _rows(dest, "SELECT first_day, last_day, kind FROM leave") == [("2026-03-03", "2026-03-04", "holiday")]
    assert template.tobytes() not in dest.read_bytes()  # not even in free pages
    assert not list(dest.parent.glob("*.partial")) and not Path(f"{dest}-wal").exists()
    # the live database keeps everything and records the copy
    assert _rows(db_path, "SELECT count(*) FROM face_templates") == [(1,)]
    assert _rows(db_path, "SELECT count(*) FROM attendance_events WHERE expression_label = 'happy'") == [(2,)]
    assert ("db.backup", str(dest)) in _rows(db_path, "SELECT action, target FROM audit_log")


def test_a_restored_copy_serves_reports(site, tmp_path):
    config, _, _ = site
    dest = tmp_path / "copy.db"
    assert kiosk("db", "backup", str(dest), config=config).returncode == 0
    restored = tmp_path / "restored.yaml"
    restored.write_text(f"site:\n  timezone: Europe/Berlin\ndatabase:\n  path: {dest}\n")
    people = kiosk("people", "list", config=restored)
    assert people.returncode == 0 and "Ada Lovelace" in people.stdout
    report = kiosk("report", "daily", "--date", "2026-03-02", config=restored)
    assert report.returncode == 0 and "09:00" in report.stdout and "18:00" in report.stdout
    on_leave = kiosk("report", "daily", "--date", "2026-03-03", config=restored)
    assert "On leave: Ada Lovelace (E1, holiday)" in on_leave.stdout


def test_backup_mistakes_are_one_message_and_overwrite_nothing(site, tmp_path):
    config, db_path, _ = site
    taken = tmp_path / "taken.db"
    taken.write_text("someone else's file")
    for dest, expected in ((taken, "exists"), (tmp_path / "no" / "such" / "folder.db", "no such folder")):
        proc = kiosk("db", "backup", str(dest), config=config)
        assert proc.returncode == 1 and expected in proc.stderr and "Traceback" not in proc.stderr
    assert taken.read_text() == "someone else's file"
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"database:\n  path: {tmp_path / 'none.db'}\n")
    proc = kiosk("db", "backup", str(tmp_path / "x.db"), config=missing)
    assert proc.returncode == 1 and "no database" in proc.stderr
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "x.db").exists()


def test_daily_copies_are_written_once_a_day_and_pruned(site, tmp_path):
    from datetime import date

    _, db_path, _ = site
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "notes.txt").write_text("not ours")
    (folder / "kiosk-old.db").write_text("not a daily copy name")
    for day in range(1, 6):
        copy = store.write_daily_copy(db_path, folder, 3, date(2026, 3, day))
        assert copy is not None and copy.path.name == f"kiosk-2026-03-0{day}.db" and copy.events == 2
    again = store.write_daily_copy(db_path, folder, 3, date(2026, 3, 5))
    assert again is None  # today's copy exists: not written twice
    assert [p.name for p in store.daily_copies(folder)] == ["kiosk-2026-03-03.db", "kiosk-2026-03-04.db",
                                                            "kiosk-2026-03-05.db"]
    assert (folder / "notes.txt").read_text() == "not ours" and (folder / "kiosk-old.db").exists()
    assert _rows(folder / "kiosk-2026-03-05.db", "SELECT count(*) FROM face_templates") == [(0,)]
