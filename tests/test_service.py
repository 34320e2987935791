"""The kiosk service: end to end as a real process on a replayed morning, signals, crash safety,
gallery reloads and the daily purge (in process, fake monotonic time and a manual clock)."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from door_helpers import (
    PEOPLE,
    REPLAY_START,
    DoorScene,
    door_scene,
    enrol_people,
    read_status,
    start_kiosk,
    wait_for,
    write_config,
)

from kiosk import store
from kiosk.clock import ManualClock
from kiosk.service import open_service
from kiosk.vision.expression import DEFAULT_MODEL
from kiosk.vision.faces import DlibFaceAnalyzer, make_analyzer

ROOT = Path(__file__).resolve().parents[1]
BERLIN = ZoneInfo("Europe/Berlin")
EVENT_LINE = re.compile(r"event recorded: id=(\d+)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> DoorScene:
    """A arrives, B stays 2 minutes, a stranger, A leaves (~700 frames at 5 fps)."""
    return door_scene(tmp_path_factory.mktemp("morning") / "frames")


@pytest.fixture(scope="module")
def short_loop(tmp_path_factory: pytest.TempPathFactory) -> DoorScene:
    """The same visits with B staying 4 s: a loop is ~25 s of scene time."""
    return door_scene(tmp_path_factory.mktemp("loop") / "frames", linger_s=4.0, tail_s=0.0)


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return start_kiosk(["-m", "kiosk.service", "--config", str(config)], log, append=False)


class ScreenWatcher(threading.Thread):
    """Polls the door screen's /state.json (URL from the status file) and keeps its history."""

    def __init__(self, status_file: Path) -> None:
        super().__init__(daemon=True)
        self.status_file = status_file
        self.history: dict[int, dict[str, Any]] = {}
        self.kinds_seen: set[str] = set()
        self.stop = False

    def run(self) -> None:
        url = None
        while not self.stop:
            url = url or read_status(self.status_file).get("screen")
            if url:
                try:
                    state = json.loads(urllib.request.urlopen(url + "state.json", timeout=2).read())
                except OSError:
                    state = None
                if state:
                    self.kinds_seen.add(state["kind"])
                    for item in state["history"]:
                        self.history[item["seq"]] = item
            time.sleep(0.1)


def _events(db_path: Path) -> list[store.EventInfo]:
    with store.open_database(db_path, create=False) as db:
        return store.events_between(db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _integrity(db_path: Path) -> str:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_replayed_morning_end_to_end(morning: DoorScene, analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    db_path = tmp_path / "kiosk.db"
    # Only A agreed to expression analysis (when the model is there to run it).
    expression = DEFAULT_MODEL.exists()
    ids = enrol_people(db_path, analyzer, consent=(PEOPLE[0],))
    # The camera disappears for 2 s in the middle of B's two minutes in front of it.
    settings = write_config(tmp_path / "kiosk.yaml", db_path, morning.frames, expression=expression,
                            gap_after=300, gap_s=2.0)
    status_file = settings.status_path
    log = tmp_path / "kiosk.log"
    proc = _start(tmp_path / "kiosk.yaml", log)
    watcher = ScreenWatcher(status_file)
    watcher.start()
    try:
        rc = proc.wait(timeout=300)
    finally:
        watcher.stop = True
        proc.kill()
    watcher.join(5)
    output = log.read_text()
    assert rc == 0, output[-3000:]
    # Start-up objects are frozen out of the garbage collector before READY (kiosk.gc_tuning).
    frozen = re.search(r"(\d+) start-up objects frozen", output)
    assert frozen is not None and int(frozen.group(1)) > 10_000, output[-3000:]

    a, b = (ids[name] for name in PEOPLE)
    events = _events(db_path)
    assert [(e.person_id, e.kind) for e in events] == [(a, "in"), (b, "in"), (None, "unknown"), (a, "out")], output
    start = datetime.fromisoformat(REPLAY_START)
    visits = [morning.visits[0], morning.visits[1], morning.visits[2], morning.visits[3]]
    for event, visit in zip(events, visits, strict=True):
        offset = (event.occurred_at - start).total_seconds()
        assert visit.start_s <= offset <= visit.last_frame / visit.fps, (event, visit)
        assert event.device_id == "door-test"
        assert (event.match_distance is not None) is (event.person_id is not None)
        has_expression = expression and event.person_id == a
        assert (event.expression_label is not None) is has_expression, event
        assert (event.expression_scores is not None) is has_expression
    assert _integrity(db_path) == "ok"

    status = read_status(status_file)
    assert status["state"] == "stopped" and status["stop_reason"] == "end of replay"
    assert status["counts"]["events"] == 4 and status["counts"]["frames"] == len(list(morning.frames.iterdir()))
    assert status["camera"]["reconnects"] == 1
    assert status["gallery"] == {"templates": 6, "people": 2, "people_to_re_enrol": []}
    assert status["model"]["expression"] is expression
    assert "Debbie" not in json.dumps(status)  # no names in the status file

    shown = [watcher.history[k] for k in sorted(watcher.history)]
    greetings = [(m["title"], m["subtitle"]) for m in shown if m["kind"] != "again"]
    assert greetings == [
        ("Good morning, Debbie", "Checked in 08:55"),
        ("Good morning, Hu", "Checked in 08:55"),
        ("Not recognised", "Please see the admin"),
        ("Goodbye, Debbie", "Checked out 08:57"),
    ], shown
    # B came back into view after the camera gap: at most a "you are already checked in".
    assert all(m["title"] == "Hello, Hu" for m in shown if m["kind"] == "again")
    assert "offline" in watcher.kinds_seen or status["camera"]["reconnects"] == 1


def _start_looping(scene: DoorScene, analyzer: DlibFaceAnalyzer, tmp_path: Path, events: int,
                   what: str) -> tuple[Path, Path, Path, subprocess.Popen[bytes]]:
    """Enrol, start the service on the looping scene, wait for `events` events; (db, status, log, proc)."""
    db_path = tmp_path / "kiosk.db"
    enrol_people(db_path, analyzer)
    settings = write_config(tmp_path / "kiosk.yaml", db_path, scene.frames, cooldown_s=5.0, loop=True)
    status_file = settings.status_path
    log = tmp_path / "kiosk.log"
    proc = _start(tmp_path / "kiosk.yaml", log)
    wait_for(lambda: read_status(status_file).get("counts", {}).get("events", 0) >= events, proc, 240,
             what, log)
    return db_path, status_file, log, proc


def test_sigkill_loses_no_committed_event(short_loop: DoorScene, analyzer: DlibFaceAnalyzer,
                                          tmp_path: Path) -> None:
    db_path, status_file, log, proc = _start_looping(short_loop, analyzer, tmp_path, 6, "6 events")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    reported = read_status(status_file)["counts"]["events"]
    logged = {int(m) for m in EVENT_LINE.findall(log.read_text())}
    assert _integrity(db_path) == "ok"
    events = _events(db_path)  # opens cleanly (WAL recovered), schema at head
    assert len(events) >= reported >= 6
    assert logged <= {e.id for e in events}


def test_sigterm_finishes_and_exits_zero(short_loop: DoorScene, analyzer: DlibFaceAnalyzer,
                                         tmp_path: Path) -> None:
    db_path, status_file, log, proc = _start_looping(short_loop, analyzer, tmp_path, 1, "an event")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    status = read_status(status_file)
    assert status["state"] == "stopped" and status["stop_reason"] == "SIGTERM"
    assert len(_events(db_path)) == status["counts"]["events"]


def test_bad_config_is_one_message_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("attendance:\n  frames_per_checkin: 0\n  warp: 9\n")
    proc = subprocess.run([sys.executable, "-m", "kiosk.service", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "line 2" in proc.stderr and "attendance.warp" in proc.stderr and "Traceback" not in proc.stderr


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_gallery_reload_consent_and_daily_purge(morning: DoorScene, analyzer: DlibFaceAnalyzer,
                                               tmp_path: Path) -> None:
    db_path = tmp_path / "kiosk.db"
    settings = write_config(tmp_path / "kiosk.yaml", db_path, morning.frames)
    settings.screen.enabled = False
    with store.open_database(db_path) as db:
        first = store.add_person(db, "E1", "Only Person")
        store.add_templates(db, first.id, [[0.01] * 128, [0.02] * 128])
    clock = ManualClock(datetime(2026, 3, 2, 10, 0, tzinfo=BERLIN))
    mono = FakeMonotonic()
    service = open_service(settings, clock=clock, analyzer=analyzer, monotonic=mono)
    try:
        assert service.pipeline is not None
        assert service.pipeline.gallery.people == [first.id]
        assert service.stale_templates == {first.id: 2}  # stored without saying how they were made
        assert service.last_purge_day == clock.now().astimezone(BERLIN).date()
        with store.open_database(db_path) as db:  # another process (the web app) enrols someone
            second = store.add_person(db, "E2", "Second Person")
            store.add_templates(db, second.id, [[0.5] * 128])
        service.housekeeping()  # not due yet
        assert len(service.pipeline.gallery.people) == 1
        mono.now += settings.service.gallery_check_s
        service.housekeeping()
        assert sorted(service.pipeline.gallery.people) == [first.id, second.id]
        assert not service._consent(second.id)
        with store.open_database(db_path) as db:
            store.set_consent(db, second.id, True, actor="admin")
        mono.now += settings.service.gallery_check_s
        service.housekeeping()
        assert service._consent(second.id)
        reloads = service.counts["gallery_reloads"]
        mono.now += settings.service.gallery_check_s
        service.housekeeping()  # nothing changed: no reload
        assert service.counts["gallery_reloads"] == reloads
        with store.open_database(db_path) as db:  # re-enrolment with as many photos as before
            store.add_templates(db, first.id, [[0.03] * 128, [0.04] * 128], replace=True)
        mono.now += settings.service.gallery_check_s
        service.housekeeping()
        assert service.counts["gallery_reloads"] == reloads + 1
        assert service.pipeline.gallery.templates_of(first.id).min() > 0.025  # the old ones are gone
        clock.advance(timedelta(days=1).total_seconds())
        mono.now += settings.service.gallery_check_s
        service.housekeeping()
        assert service.last_purge_day == clock.now().astimezone(BERLIN).date()
        status = json.loads(settings.status_path.read_text())
        assert status["state"] == "running" and status["gallery"]["people"] == 2
        assert status["gallery"]["people_to_re_enrol"] == sorted([first.id, second.id])
    finally:
        service.close()
    assert json.loads(settings.status_path.read_text())["state"] == "stopped"
