"""kiosk.atomic_write: a file replaced whole or not at all, with the mode asked for."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kiosk.atomic_write import replace_file


def test_replace_file_writes_the_content_with_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text("old")
    replace_file(path, b"new\n", mode=0o640)
    assert path.read_bytes() == b"new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    replace_file(path, b"again", sync_folder=True)
    assert path.read_bytes() == b"again" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]  # no temp file left


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "door.token"
    path.write_text("old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr("kiosk.atomic_write.os.replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        replace_file(path, b"new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["door.token"]


def test_the_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "missing" / "state.json", b"{}")


def test_journal_compaction_keeps_only_the_pending_entries(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Journal.compact rewrites its file through replace_file: the pending entries, mode 0640."""
    from datetime import UTC, datetime

    from kiosk import journal as journal_module
    from kiosk.journal import Journal, JournalEntry

    journal = Journal(tmp_path / "checkins.journal")
    assert journal.open() == []
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    done, pending = JournalEntry.new(1, at, "in"), JournalEntry.new(2, at, "out", note="x")
    journal.append(done)
    journal.append(pending)
    journal.mark_done(done.id, 11)
    monkeypatch.setattr(journal_module, "COMPACT_BYTES", 0)
    journal.compact([pending])
    assert journal.path.read_bytes() == pending.to_line()
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o640
    assert journal.open() == [pending]
    journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkins.journal"]
