"""Door-service faults (issue 11): the database locked, full or read-only, a kill -9 with check-ins
waiting, missing dlib models, a vanished replay folder, a clock stepping back.

Real `kiosk run` processes on a replayed arrival, real SQLite files; faults are made for real
(another connection holding the write lock, a small tmpfs filled up or remounted read-only).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
import yaml
from door_helpers import (
    PEOPLE,
    clean_env,
    enrol_people,
    person_photos,
    read_status,
    start_kiosk,
    wait_for,
    write_config,
)

from kiosk import store
from kiosk.attendance import Attendance
from kiosk.clock import ManualClock
from kiosk.config import load_settings
from kiosk.journal import JOURNAL_NAME, Journal, JournalEntry
from kiosk.outbox import PENDING_ID, RETRY_MAX_S, EventOutbox
from kiosk.pipeline import CheckinDecision
from kiosk.replay_scenes import make_scene
from kiosk.service import open_service
from kiosk.vision.faces import DlibFaceAnalyzer, make_analyzer

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")
SCENE_FPS = 5.0
# Real-time pacing of the replay camera: the arrival comes ARRIVAL_AFTER_S after the camera opens.
CAMERA_FPS = 10.0
ARRIVAL_AFTER_S = 4.0


@pytest.fixture(scope="module")
def analyzer() -> DlibFaceAnalyzer:
    return make_analyzer()


@pytest.fixture(scope="module")
def arrival(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames: ARRIVAL_AFTER_S of empty entrance (at CAMERA_FPS), then person A walks up and leaves."""
    frames = tmp_path_factory.mktemp("arrival") / "frames"
    empty_s = ARRIVAL_AFTER_S * CAMERA_FPS / SCENE_FPS
    make_scene([person_photos(PEOPLE[0])[0]], None, frames, SCENE_FPS, empty_s=empty_s, tail_s=2.0)
    return frames


@pytest.fixture(scope="module")
def empty_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few frames with nobody in them."""
    frames = tmp_path_factory.mktemp("empty") / "frames"
    make_scene([], None, frames, SCENE_FPS, empty_s=1.0)
    return frames


def _config(tmp_path: Path, db_path: Path, frames: Path, *, loop: bool = True, camera_fps: float = CAMERA_FPS,
            busy_timeout_ms: int = 200, status_file: Path | None = None, cooldown_s: float = 3600.0) -> Path:
    """A kiosk.yaml for a replay; a long cooldown so that a looping arrival makes one event."""
    path = tmp_path / "kiosk.yaml"
    write_config(path, db_path, frames, cooldown_s=cooldown_s, loop=loop)
    data = yaml.safe_load(path.read_text())
    data["camera"]["options"]["fps"] = camera_fps
    data["database"]["busy_timeout_ms"] = busy_timeout_ms
    if status_file is not None:
        data["service"]["status_file"] = str(status_file)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _start(config: Path, log: Path, extra_env: dict[str, str] | None = None,
           prefix: list[str] | None = None, module: bool = True) -> subprocess.Popen[bytes]:
    """`python [prefix] -m kiosk.service --config config` (without -m when not module), output to log."""
    args = [*(prefix or []), *(["-m", "kiosk.service"] if module else []), "--config", str(config)]
    return start_kiosk(args, log, env=clean_env(**(extra_env or {})))


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, wait up to 60 s (then kill); the exit code (negative: killed by that signal)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _events(db_path: Path) -> list[tuple[int | None, str, datetime]]:
    with store.open_database(db_path, create=False) as db:
        rows = store.events_between(db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return [(e.person_id, e.kind, e.occurred_at) for e in rows]


def _pending(status: dict[str, Any]) -> int:
    return int((status.get("journal") or {}).get("pending", -1))


def _screen(status_file: Path) -> dict[str, Any]:
    url = read_status(status_file).get("screen")
    if not url:
        return {}
    try:
        return json.loads(urllib.request.urlopen(url + "state.json", timeout=2).read())
    except OSError:
        return {}


@contextmanager
def _write_lock(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's view: a connection holding the database's write lock (BEGIN IMMEDIATE)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def _running(status_file: Path) -> Callable[[], bool]:
    return lambda: read_status(status_file).get("state") == "running"


def _journalled(status_file: Path) -> Callable[[], bool]:
    def check() -> bool:
        status = read_status(status_file)
        return _pending(status) == 1 and bool(status.get("db_fault"))
    return check


class _Door(NamedTuple):
    """A door service started on a scene: its people's ids, database, status file, log and process."""

    ids: dict[str, int]
    db_path: Path
    status_file: Path
    log: Path
    proc: subprocess.Popen[bytes]


def _start_door(tmp_path: Path, analyzer: DlibFaceAnalyzer, frames: Path) -> _Door:
    """Enrol PEOPLE in tmp_path/kiosk.db and start the service on the frames folder (status.json
    beside the database, output in tmp_path/kiosk.log)."""
    db_path = tmp_path / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    config = _config(tmp_path, db_path, frames)
    log = tmp_path / "kiosk.log"
    return _Door(ids, db_path, db_path.parent / "status.json", log, _start(config, log))


@contextmanager
def _checkin_held_by_a_lock(door: _Door) -> Iterator[None]:
    """Once the service runs, another process takes the write lock; inside: the arriving check-in
    waits in the journal (the lock is held until the block ends)."""
    wait_for(_running(door.status_file), door.proc, 120, "the service to run", door.log)
    with _write_lock(door.db_path):
        wait_for(_journalled(door.status_file), door.proc, 60, "the check-in to wait in the journal", door.log)
        yield


# -- 1. the database fails under the door --------------------------------------------------------

@pytest.mark.slow
def test_lock_beyond_busy_timeout_keeps_the_checkin(arrival: Path, analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    """Another process holds the write lock far longer than busy_timeout while A arrives: the
    service stays up, shows the fault, and writes the check-in once the lock is gone."""
    door = ids, db_path, status_file, log, proc = _start_door(tmp_path, analyzer, arrival)
    try:
        with _checkin_held_by_a_lock(door):
            status = read_status(status_file)
            assert "locked" in status["db_fault"]["error"]
            assert status["counts"]["events"] == 0
            wait_for(lambda: _screen(status_file).get("db_fault"), proc, 10, "the screen to show the fault", log)
            time.sleep(1.0)  # held for well over busy_timeout (0.2 s) in all
        waited = wait_for(lambda: _pending(read_status(status_file)) == 0, proc, 60,
                          "the journalled check-in to reach the database", log)
        status = read_status(status_file)
        assert status["db_fault"] is None and status["counts"]["events"] == 1
        print(f"check-in reached the database {waited:.1f} s after the lock was released")
    finally:
        rc = _stop(proc)
    assert rc == 0, log.read_text()[-4000:]
    assert [(p, k) for p, k, _ in _events(db_path)] == [(ids[PEOPLE[0]], "in")]


@pytest.mark.slow
def test_sigkill_while_locked_then_restart_writes_the_checkin_once(
        arrival: Path, empty_scene: Path, analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    """kill -9 while the check-in waits for a locked database; the next start writes it, once."""
    door = ids, db_path, status_file, log, proc = _start_door(tmp_path, analyzer, arrival)
    try:
        with _checkin_held_by_a_lock(door):
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
    assert _events(db_path) == []
    journal = Path(read_status(status_file)["journal"]["path"])
    with journal.open("ab") as handle:  # a write torn by the kill (a power cut would do the same)
        handle.write(b'{"op":"event","id":"torn","person_id":1,"at":"2026-')
    for _run in range(2):  # restarted twice: the second start must not add it again
        config = _config(tmp_path, db_path, empty_scene, loop=False, camera_fps=0)
        proc = _start(config, log)
        try:
            assert proc.wait(timeout=120) == 0, log.read_text()[-4000:]
        finally:
            proc.kill()
        events = _events(db_path)
        assert [(p, k) for p, k, _ in events] == [(ids[PEOPLE[0]], "in")], log.read_text()[-4000:]
        assert _pending(read_status(status_file)) == 0
    occurred = events[0][2]
    assert datetime(2026, 3, 2, 7, 55, tzinfo=UTC) < occurred < datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _tmpfs(path: Path, size: str = "2m") -> None:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


def _fill(folder: Path) -> Path:
    """Fill the file system of folder to the last byte; the filler file's path."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted at tmp_path/disk (skipped where mount is not allowed)."""
    disk = tmp_path / "disk"
    _tmpfs(disk)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _journalled_until_cleared(proc: subprocess.Popen[bytes], status_file: Path, log: Path, fault: str,
                              clear: Callable[[], object]) -> None:
    """The arriving check-in waits in the journal with `fault` in the status, the service stays up;
    after clear() it reaches the database and the fault is gone."""
    wait_for(_journalled(status_file), proc, 60, "the check-in to wait in the journal", log)
    assert fault in read_status(status_file)["db_fault"]["error"]
    time.sleep(1.0)
    assert proc.poll() is None
    clear()
    wait_for(lambda: _pending(read_status(status_file)) == 0, proc, 60, "the check-in to reach the database", log)
    assert read_status(status_file)["db_fault"] is None


@pytest.mark.slow
def test_full_disk_keeps_the_service_up(arrival: Path, analyzer: DlibFaceAnalyzer, small_disk: Path,
                                       tmp_path: Path) -> None:
    """The database's disk fills up (SQLITE_FULL) while the door runs: the service stays up, the
    status says what is wrong, and the check-in goes in once there is space again."""
    db_path = small_disk / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    status_file = tmp_path / "state" / "status.json"
    config = _config(tmp_path, db_path, arrival, status_file=status_file)
    log = tmp_path / "kiosk.log"
    proc = _start(config, log)
    try:
        wait_for(_running(status_file), proc, 120, "the service to run", log)
        filler = _fill(small_disk)
        _journalled_until_cleared(proc, status_file, log, "full", filler.unlink)
    finally:
        rc = _stop(proc)
    assert rc == 0, log.read_text()[-4000:]
    assert [(p, k) for p, k, _ in _events(db_path)] == [(ids[PEOPLE[0]], "in")]


# Runs the service with every new SQLite connection made read-only (PRAGMA query_only) while
# the flag file exists: SQLite then answers writes with SQLITE_READONLY, as for a read-only file.
# (A real read-only file or mount cannot be made under a running root process: root ignores
# file modes and a remount fails while the database is open for writing.)
READONLY_WRAPPER = """
import runpy, sys
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine
flag = Path(sys.argv.pop(1))
@event.listens_for(Engine, "connect")
def _read_only(dbapi_conn, _record):
    if flag.exists():
        dbapi_conn.execute("PRAGMA query_only=ON")
sys.argv[0] = "kiosk.service"
runpy.run_module("kiosk.service", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_readonly_database_keeps_the_service_up(arrival: Path, analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    """The database refuses writes (read-only) from the start: the door runs, the status says
    "readonly", and once it is writable again the check-in goes in (fresh connections)."""
    db_path = tmp_path / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    config = _config(tmp_path, db_path, arrival)
    status_file = db_path.parent / "status.json"
    flag = tmp_path / "read-only"
    flag.touch()
    log = tmp_path / "kiosk.log"
    proc = _start(config, log, prefix=["-c", READONLY_WRAPPER, str(flag)], module=False)
    try:
        wait_for(_running(status_file), proc, 120, "the service to run", log)
        _journalled_until_cleared(proc, status_file, log, "readonly", flag.unlink)
    finally:
        rc = _stop(proc)
    assert rc == 0, log.read_text()[-4000:]
    assert [(p, k) for p, k, _ in _events(db_path)] == [(ids[PEOPLE[0]], "in")]


@pytest.mark.slow
def test_full_state_disk_does_not_crash_the_status_writer(arrival: Path, analyzer: DlibFaceAnalyzer,
                                                          small_disk: Path, tmp_path: Path) -> None:
    """The status file's disk is full from the start: the door still records check-ins."""
    db_path = tmp_path / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    status_file = small_disk / "status.json"
    config = _config(tmp_path, db_path, arrival, loop=False, camera_fps=0, status_file=status_file)
    _fill(small_disk)
    log = tmp_path / "kiosk.log"
    proc = _start(config, log)
    try:
        assert proc.wait(timeout=180) == 0, log.read_text()[-4000:]
    finally:
        proc.kill()
    assert "Traceback" not in log.read_text()
    assert [(p, k) for p, k, _ in _events(db_path)] == [(ids[PEOPLE[0]], "in")]


# -- 3. the replay camera's folder disappears ------------------------------------------------------

def _camera(status_file: Path) -> dict[str, Any]:
    return read_status(status_file).get("camera") or {}


@pytest.mark.slow
def test_missing_replay_folder_at_start_is_camera_offline_then_recovers(
        arrival: Path, analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    """The replay folder is not there when the service starts: "camera offline" and retries
    (not an exit); once the folder appears the door works."""
    frames = tmp_path / "frames"
    ids, db_path, status_file, log, proc = _start_door(tmp_path, analyzer, frames)
    try:
        wait_for(lambda: _camera(status_file).get("state") == "retrying", proc, 120, "the camera to retry", log)
        wait_for(lambda: _screen(status_file).get("kind") == "offline", proc, 10, "'camera offline'", log)
        assert "no such folder" in _camera(status_file)["last_error"]
        shutil.copytree(arrival, frames)
        wait_for(lambda: read_status(status_file).get("counts", {}).get("events") == 1, proc, 90,
                 "the check-in after the folder appeared", log)
        assert _camera(status_file)["reconnects"] == 1
    finally:
        rc = _stop(proc)
    assert rc == 0, log.read_text()[-4000:]
    assert [(p, k) for p, k, _ in _events(db_path)] == [(ids[PEOPLE[0]], "in")]


@pytest.mark.slow
def test_replay_folder_deleted_while_running_is_camera_offline(
        arrival: Path, analyzer: DlibFaceAnalyzer, tmp_path: Path) -> None:
    """The replay folder is removed under a running service: "camera offline", retries, and
    frames flow again when the folder is back."""
    frames = tmp_path / "frames"
    shutil.copytree(arrival, frames)
    _, _, status_file, log, proc = _start_door(tmp_path, analyzer, frames)
    try:
        wait_for(lambda: _camera(status_file).get("frames", 0) >= 5, proc, 120, "frames", log)
        shutil.rmtree(frames)
        wait_for(lambda: _camera(status_file).get("state") in ("lost", "retrying"), proc, 30,
                 "the camera to be lost", log)
        wait_for(lambda: _screen(status_file).get("kind") == "offline", proc, 10, "'camera offline'", log)
        time.sleep(1.0)
        assert proc.poll() is None
        before = _camera(status_file)["frames"]
        shutil.copytree(arrival, frames)
        wait_for(lambda: _camera(status_file).get("frames", 0) > before + 5, proc, 60, "frames again", log)
        assert _camera(status_file)["reconnects"] >= 1
    finally:
        rc = _stop(proc)
    assert rc == 0, log.read_text()[-4000:]


# -- 2. missing or damaged dlib model files ----------------------------------------------------------

def _broken_models(root: Path, damage: dict[str, int | None]) -> Path:
    """A copy of the face_recognition_models package under root whose model files link to the real
    ones, except those in damage: cut to that many bytes, or missing (None). Put root on PYTHONPATH."""
    import face_recognition_models

    real = Path(face_recognition_models.__file__).parent
    package = root / "face_recognition_models"
    (package / "models").mkdir(parents=True)
    shutil.copy(real / "__init__.py", package / "__init__.py")
    for model in (real / "models").glob("*.dat"):
        target = package / "models" / model.name
        if model.name not in damage:
            target.symlink_to(model)
        elif damage[model.name] is not None:
            with model.open("rb") as src:
                target.write_bytes(src.read(damage[model.name]))
    return root


@pytest.mark.parametrize(("command", "damage"), [
    ("run", {"shape_predictor_68_face_landmarks.dat": 1_000_000}),
    ("enroll", {"shape_predictor_5_face_landmarks.dat": None}),
])
def test_damaged_or_missing_dlib_model_is_one_clear_message(command: str, damage: dict[str, int | None],
                                                            arrival: Path, tmp_path: Path) -> None:
    """`kiosk run` / `kiosk enroll` with a cut-off or missing dlib model: one message naming the
    file and the fix, exit 1, no traceback."""
    db_path = tmp_path / "kiosk.db"
    config = _config(tmp_path, db_path, arrival)
    models = _broken_models(tmp_path / "site", damage)
    env = clean_env(PYTHONPATH=str(models))
    kiosk = [str(Path(sys.executable).parent / "kiosk"), "--config", str(config)]
    args = kiosk + (["run"] if command == "run" else
                    ["enroll", "--name", "Debbie Reynolds", "--employee-id", "E1",
                     str(person_photos(PEOPLE[0])[1])])
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    (name,) = damage
    assert name in output and "face_recognition_models" in output and "reinstall" in output, output


# -- 4. the wall clock steps back ---------------------------------------------------------------------

class _FakeMonotonic:
    """Monotonic seconds that only move when told (never back, unlike the wall clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _decision(person_id: int) -> CheckinDecision:
    return CheckinDecision(person_id=person_id, distance=0.3, score=0.7, expression=None, frames_used=3,
                           frames_analysed=3, timings_ms={}, t=0.0)


@pytest.mark.parametrize("mode", ["toggle", "first_last"])
def test_clock_stepping_back_an_hour_makes_no_burst_of_events(mode: str, arrival: Path, analyzer: DlibFaceAnalyzer,
                                                              tmp_path: Path) -> None:
    """A is checked in at 10:00, then the wall clock steps back an hour (NTP, an RTC-less Pi)
    while A still stands at the door: no new events while A stays (cooldown on the monotonic
    clock); later visits still alternate in processing order (toggle) and nothing crashes."""
    db_path = tmp_path / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    a = ids[PEOPLE[0]]
    config = _config(tmp_path, db_path, arrival, cooldown_s=60.0)
    data = yaml.safe_load(config.read_text())
    data["attendance"]["mode"] = mode
    data["screen"]["enabled"] = False
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config, environ={})
    clock = ManualClock(datetime(2026, 3, 2, 10, 0, tzinfo=BERLIN))
    mono = _FakeMonotonic()
    service = open_service(settings, clock=clock, analyzer=analyzer, monotonic=mono)
    try:
        service.act(_decision(a))  # 10:00 in
        clock.advance(-3600 + 5)  # the clock steps back an hour, 5 s later
        for _ in range(24):  # A stays two more minutes; the pipeline re-checks every 5 s
            mono.now += 5
            service.act(_decision(a))
            clock.advance(5)
        mono.now += 30 * 60  # half an hour later (09:32 on the stepped clock) A comes back
        clock.advance(30 * 60)
        service.act(_decision(a))
        mono.now += 15 * 60  # and again a quarter of an hour after that
        clock.advance(15 * 60)
        service.act(_decision(a))
    finally:
        service.close()
    with store.open_database(db_path, create=False) as db:
        events = sorted(store.events_between(db, datetime(2000, 1, 1, tzinfo=UTC),
                                             datetime(2100, 1, 1, tzinfo=UTC)), key=lambda e: e.id)
    kinds = [e.kind for e in events]
    assert kinds == (["in", "out", "in"] if mode == "toggle" else ["in", "out", "out"]), kinds
    local = [e.occurred_at.astimezone(BERLIN).strftime("%H:%M") for e in events]
    assert local == ["10:00", "09:32", "09:47"]  # times as the clock said (the store flags these for review)


# -- the journal and the outbox on their own (real files, real SQLite) ---------------------------------

def test_journal_cuts_a_torn_line_and_keeps_only_unfinished_entries(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    journal = Journal(path)
    assert journal.open() == []
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    first, second = JournalEntry.new(1, t, "in", match_score=0.7), JournalEntry.new(None, t, "unknown")
    journal.append(first)
    journal.append(second)
    journal.mark_done(first.id, 11)
    journal.close()
    with path.open("ab") as handle:  # a power cut in the middle of the next line
        handle.write(b'{"op":"event","id":"cut')
    journal = Journal(path)
    assert journal.open() == [second]
    assert path.read_bytes().endswith(b"\n")  # the torn bytes are gone: the next line starts clean
    third = JournalEntry.new(2, t, "out")
    journal.append(third)
    journal.mark_dropped(second.id, "test")
    journal.close()
    assert Journal(path).open() == [third]


def test_outbox_writes_an_entry_once_even_when_its_done_mark_was_lost(analyzer: DlibFaceAnalyzer,
                                                                       tmp_path: Path) -> None:
    db_path = tmp_path / "kiosk.db"
    a = enrol_people(db_path, analyzer)[PEOPLE[0]]
    path = tmp_path / JOURNAL_NAME
    t = datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC)
    with store.open_database(db_path) as db:
        outbox = EventOutbox(db, "door-test", Journal(path), wall_clock=lambda: t)
        outbox.start()
        event = outbox.record(a, t, "in", match_distance=0.3)
        assert event.id != PENDING_ID and outbox.pending == 0
        outbox.close()
        # The process died after the commit, before the "done" line reached the disk.
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(line for line in lines if b'"op":"done"' not in line))
        again = EventOutbox(db, "door-test", Journal(path), wall_clock=lambda: t)
        assert again.start() == 1 and again.pending == 0
        again.close()
        assert [(e.person_id, e.kind, e.occurred_at) for e in
                store.events_between(db, t, t + timedelta(seconds=1))] == [(a, "in", t)]


def test_in_and_out_pair_from_memory_while_the_database_is_locked(analyzer: DlibFaceAnalyzer,
                                                                   tmp_path: Path) -> None:
    """Toggle mode: in at 09:00 and out at 17:00 are both decided (and kept in order) while
    another process holds the write lock; both reach the database when it is released."""
    db_path = tmp_path / "kiosk.db"
    a = enrol_people(db_path, analyzer)[PEOPLE[0]]
    config = _config(tmp_path, db_path, tmp_path, cooldown_s=60.0)
    data = yaml.safe_load(config.read_text())
    data["attendance"]["mode"] = "toggle"
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config, environ={})
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN))
    mono = _FakeMonotonic()
    with store.open_database(db_path, busy_timeout_ms=50) as db:
        outbox = EventOutbox(db, "door-test", Journal(tmp_path / JOURNAL_NAME), wall_clock=clock.now, monotonic=mono)
        outbox.start()
        attendance = Attendance(outbox, settings, clock, monotonic=mono)
        with _write_lock(db_path):
            first = attendance.sighting(a)
            clock.advance(8 * 3600)
            mono.now += 8 * 3600
            second = attendance.sighting(a)
            assert (first.kind, second.kind) == ("in", "out")
            assert first.event is not None and first.event.id == PENDING_ID
            assert outbox.pending == 2 and outbox.fault is not None and "locked" in outbox.fault.error
            assert outbox.flush() == {}  # not due yet: back-off
        mono.now += RETRY_MAX_S
        assert len(outbox.flush()) == 2 and outbox.pending == 0 and outbox.fault is None
        outbox.close()
        events = store.events_between(db, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    assert [(e.kind, e.occurred_at.astimezone(BERLIN).hour) for e in events] == [("in", 9), ("out", 17)]


def test_entries_kept_in_memory_reach_the_journal_when_its_disk_recovers(
        analyzer: DlibFaceAnalyzer, small_disk: Path, tmp_path: Path) -> None:
    """Database locked and the journal's disk full: the check-in is kept in memory; once the
    disk has room it goes into the journal (with the next one), so a crash then loses nothing."""
    db_path = tmp_path / "kiosk.db"
    ids = enrol_people(db_path, analyzer)
    path = small_disk / JOURNAL_NAME
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    mono = _FakeMonotonic()
    with store.open_database(db_path, busy_timeout_ms=50) as db:
        outbox = EventOutbox(db, "door-test", Journal(path), wall_clock=lambda: t, monotonic=mono)
        outbox.start()
        with _write_lock(db_path):
            filler = _fill(small_disk)
            first = outbox.record(ids[PEOPLE[0]], t, "in")
            fault = outbox.fault
            assert fault is not None and fault.journal_error and "locked" in fault.error
            assert Journal(path).open() == []
            filler.unlink()
            second = outbox.record(ids[PEOPLE[1]], t, "in")
            assert first.id == second.id == PENDING_ID
            assert [(e.person_id, e.kind) for e in Journal(path).open()] == [
                (ids[PEOPLE[0]], "in"), (ids[PEOPLE[1]], "in")]
        mono.now += RETRY_MAX_S
        assert len(outbox.flush()) == 2 and outbox.fault is None
        outbox.close()
    assert Journal(path).open() == []


@pytest.mark.slow
def test_greeting_is_not_held_back_by_a_locked_database(analyzer: DlibFaceAnalyzer, arrival: Path,
                                                         tmp_path: Path) -> None:
    """With the database locked, the person still sees "Good morning" at once, not after
    busy_timeout (the journal already holds the check-in; the database write comes after)."""
    db_path = tmp_path / "kiosk.db"
    a = enrol_people(db_path, analyzer)[PEOPLE[0]]
    config = _config(tmp_path, db_path, arrival, busy_timeout_ms=3000)
    data = yaml.safe_load(config.read_text())
    data["screen"]["enabled"] = False
    config.write_text(yaml.safe_dump(data))
    settings = load_settings(config, environ={})
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN))
    service = open_service(settings, clock=clock, analyzer=analyzer, monotonic=_FakeMonotonic())
    try:
        with _write_lock(db_path):
            worker = threading.Thread(target=service.act, args=(_decision(a),))
            started = time.monotonic()
            worker.start()
            while service.screen.snapshot()["kind"] != "in" and time.monotonic() - started < 10:
                time.sleep(0.01)
            shown_after = time.monotonic() - started
            worker.join(10)
        print(f"greeting shown {shown_after:.2f} s after the decision (busy_timeout 3 s)")
        assert shown_after < 1.0
        assert service.outbox is not None and service.outbox.pending == 1
    finally:
        service.close()
    assert [(p, k) for p, k, _ in _events(db_path)] == [(a, "in")]


def test_a_damaged_resnet_file_stops_only_the_dlib_embedder(tmp_path: Path) -> None:
    """dlib's ResNet file loads only when dlib embeds (the LiteRT twin needs it not); damaged, it is
    one ModelError naming it, at the analyzer's start."""
    from kiosk.config import RecognitionSettings
    from kiosk.errors import ModelError
    from kiosk.vision import dlib_models

    paths = dlib_models.check_model_files()
    broken = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    broken.write_bytes(paths[broken.name].read_bytes()[:1_000_000])
    original = dlib_models.check_model_files
    dlib_models.check_model_files = lambda: {**original(), broken.name: broken}
    try:
        make_analyzer(RecognitionSettings(embedder="litert"))  # needs no ResNet file
        with pytest.raises(ModelError, match="dlib_face_recognition_resnet_model_v1.dat"):
            make_analyzer(RecognitionSettings(embedder="dlib"))
    finally:
        dlib_models.check_model_files = original
