"""Red team of issue 13's joining and privacy (red2): a bad upgrade backup beside a kiosk's file, a fake central's
malicious join answer, a hand correction racing a door's push of the same person-day, event times far off.
Real SQLite files, a real PostgreSQL server (the `db` fixture), real threads; each test failed before its fix."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk import store
from kiosk.errors import StoreError

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SCORES = {"happy": 0.918273, "neutral": 0.0817}


def _backup(path: Path, minutes: int) -> Path:
    backup = store.backup_database(path, backups_kept=5, now=T0 + timedelta(minutes=minutes))
    assert backup is not None
    return backup


def _scores_in(path: Path) -> list[Any]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT expression_scores FROM attendance_events ORDER BY id")]
    finally:
        con.close()


# --- one bad backup must not shield the others ---------------------------------------------------------------


@pytest.mark.parametrize("fault", ["corrupt", "truncated"])
def test_a_bad_backup_does_not_keep_the_withdrawal_from_the_other_backups(tmp_path: Path, fault: str) -> None:
    """Two backups, the older one corrupt (or cut short by a failing SD card): a consent withdrawal withdraws in the live file, strips
    the good backup, and raises one StoreError naming the bad one and saying the live file is done. Before the
    fix the first bad backup stopped the loop: the good backup kept the scores."""
    path = tmp_path / "kiosk.db"
    with store.open_database(path) as db:
        pid = store.add_person(db, "E1", "Ada", expression_consent=True, now=T0).id
        store.record_event(db, pid, T0, "in", "kiosk", expression_label="happy", expression_scores=SCORES,
                           expression_confidence=0.9)
    bad = _backup(path, 10)
    good = _backup(path, 20)
    data = bad.read_bytes()
    bad.write_bytes(b"\x00garbage" * 4096 if fault == "corrupt" else data[:len(data) // 3])
    with store.open_database(path) as db, pytest.raises(StoreError) as raised:
        store.set_consent(db, pid, False, actor="alice", now=T0 + timedelta(hours=1))
    message = str(raised.value)
    assert bad.name in message and good.name not in message
    assert "live" in message
    with store.open_database(path) as db:
        assert not store.get_person(db, pid).expression_consent
    assert _scores_in(path) == [None]
    assert _scores_in(good) == [None], "the good backup kept the withdrawn person's scores"
