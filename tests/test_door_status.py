"""The door service's status record (kiosk.door_status), its scheduled jobs (kiosk.maintenance) and
open_service() undoing what it opened when a step fails. No models, no camera frames."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from net_helpers import busy_port

from kiosk import maintenance, store
from kiosk.clock import ManualClock
from kiosk.config import Settings, load_settings
from kiosk.door_lock import DoorLock
from kiosk.door_status import (
    CameraReport,
    DbFault,
    DoorState,
    DoorStatus,
    GalleryReport,
    JournalReport,
    ModelReport,
    RecentDecision,
    StatusWriter,
    read_status_file,
    write_status_file,
)
from kiosk.errors import KioskError
from kiosk.maintenance import DailyPurge, daily_jobs, run_purge
from kiosk.web.status import read_status

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _settings(tmp_path: Path, **screen: object) -> Settings:
    frames = tmp_path / "frames"
    frames.mkdir(exist_ok=True)
    data = {"site": {"timezone": "Europe/Berlin", "device_id": "door-test"},
            "database": {"path": str(tmp_path / "k.db")}, "expression": {"enabled": False},
            "camera": {"type": "replay", "options": {"path": str(frames)}}, "screen": {"port": 0, **screen}}
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_settings(path, environ={})


def _full_record() -> DoorStatus:
    return DoorStatus(
        version="1.2.3", pid=42, state=DoorState.RUNNING, stop_reason=None, started_at=NOW, updated_at=NOW,
        clock="system", now=NOW, last_frame_at=NOW, device_id="door-test",
        camera=CameraReport("ok", None, 1, 0, None, 120, 3.5), pipeline="idle", capture_request=7,
        counts={"frames": 120, "events": 2}, db_fault=DbFault("database is locked", None, NOW, 1, 3),
        purge_refused=None, journal=JournalReport("/var/lib/kiosk/checkins.journal", 1, 0),
        gallery=GalleryReport(6, 2, [5]), model=ModelReport("hog", 400, False, None),
        screen="http://127.0.0.1:8081/", rss_mb=210.5, rss_start_mb=200.0,
        recent=[RecentDecision(NOW, 3, 0.41, 4, False, {"detect": 12.5}, "in", late=False, has_event=True,
                               event_id=11),
                RecentDecision(NOW, None, None, 3, False, {}, "unknown (cooldown)")])


def test_the_record_reads_back_as_written(tmp_path: Path) -> None:
    record = _full_record()
    path = tmp_path / "status.json"
    write_status_file(path, record)
    again, data = read_status_file(path)
    assert again == record
    assert data["recent"][0]["event_id"] == 11 and "event_id" not in data["recent"][1]  # no event, no key
    assert "late" not in data["recent"][1]
    assert data["camera"]["reconnects"] == 1 and data["state"] == "running"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


def test_old_or_odd_files_read_with_defaults(tmp_path: Path) -> None:
    record = DoorStatus.from_json({"updated_at": "2026-03-02T09:00:00", "camera": "lost", "state": "paused",
                                   "counts": {"frames": 10, "bad": "x"}, "recent": [{"kind": "in"}, 3]})
    assert record.updated_at == NOW  # naive: taken as UTC
    assert record.camera.state == "lost" and record.state is None
    assert record.counts == {"frames": 10}
    assert len(record.recent) == 1 and record.recent[0].person_id is None
    path = tmp_path / "status.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_status_file(path)


def test_read_status_gives_the_typed_record(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert read_status(settings, NOW).record is None
    write_status_file(settings.status_path, _full_record())
    st = read_status(settings, NOW + timedelta(seconds=5))
    assert st.running and st.record is not None and st.record.gallery.people == 2
    assert st.data["gallery"] == {"templates": 6, "people": 2, "people_to_re_enrol": [5]}


def test_the_status_writer_logs_a_failing_disk_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    writer = StatusWriter(blocker / "status.json")
    assert not writer.save(_full_record()) and not writer.save(_full_record())
    assert sum("cannot write the status file" in r.message for r in caplog.records) == 1
    writer.path = tmp_path / "status.json"
    assert writer.save(_full_record()) and not writer.failing


def test_daily_purge_runs_once_a_local_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)

    class Target:
        def __init__(self, db: store.Database) -> None:
            self.db, self.settings, self.clock = db, settings, ManualClock(NOW)

    with store.open_database(settings.database.path) as db:
        person = store.add_person(db, "E1", "Ada Lovelace")
        for days_ago in (500, 1):  # one event past attendance_days (400), one recent
            store.record_event(db, person.id, NOW - timedelta(days=days_ago), "in", "door-test")
        target = Target(db)
        calls: list[str] = []
        real = maintenance.purge_expired
        monkeypatch.setattr(maintenance, "purge_expired",
                            lambda *a, actor, **kw: calls.append(actor) or real(*a, actor=actor, **kw))
        purge = DailyPurge()
        purge.run_if_due(target)
        assert purge.last_day == NOW.date() and purge.refused is None
        assert calls == ["kiosk"] and len(store.events_between(db, NOW - timedelta(days=600), NOW)) == 1
        purge.run_if_due(target)  # same day: nothing
        assert calls == ["kiosk"]
        target.clock.advance(hours=24)
        purge.run_if_due(target)  # the next day
        assert calls == ["kiosk", "kiosk"]
        assert run_purge(target, "test").refused is None and calls[-1] == "test"
        assert [name for name, _ in daily_jobs(target)] == ["retention purge"]


def test_a_failed_start_closes_what_it_opened_and_says_stopped(tmp_path: Path) -> None:
    from kiosk.service import open_service

    with busy_port() as port:
        settings = _settings(tmp_path, port=port)
        with pytest.raises(KioskError, match="cannot listen on"):
            open_service(settings, analyzer=object())  # type: ignore[arg-type]  # never used
    assert json.loads(settings.status_path.read_text())["state"] == "stopped"
    lock = DoorLock(settings.database.path)  # released: the next door service starts
    lock.acquire()
    lock.release()
